import importlib.util
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("FACESR_NUM_THREADS", "1")

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "facesr" / "samples" / "faces"

TINY = {
    "name": "tiny",
    "method": "sr3",
    "model": {
        "unet": {"block_out_channels": [32, 32], "layers_per_block": 1, "attention_levels": [],
                 "norm_num_groups": 32, "cond_images": 1},
        "diffusion": {"schedule": "linear", "timesteps": 100},
        "operator": "bicubic", "scale": 8, "hr_size": 128, "target": "residual",
    },
    "data": {"train_dirs": [], "patch_size": 32, "hflip": True},
    "optim": {"batch_size": 2, "lr": 1e-3, "warmup_steps": 2, "max_steps": 4, "checkpoint_every": 2,
              "log_every": 1, "seed": 3, "mixed_precision": "no"},
}


@pytest.fixture
def tiny_config(tmp_path) -> Path:
    cfg = json.loads(json.dumps(TINY))
    cfg["data"]["train_dirs"] = [str(SAMPLES)]
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(cfg))
    return path


@pytest.fixture
def sample_faces() -> Path:
    return SAMPLES


@pytest.fixture
def tiny_model(tmp_path) -> Path:
    """A randomly initialised two-level SR3 model (T = 50) saved with save_pretrained."""
    import torch

    from facesr.diffusion.schedules import DDPMConfig
    from facesr.nets.unet import UNetConfig
    from facesr.methods.sr3 import SR3, SR3Config

    torch.manual_seed(0)
    model = SR3(SR3Config(unet=UNetConfig(block_out_channels=(32, 32), attention_levels=()), diffusion=DDPMConfig(timesteps=50)))
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    return folder


def identity_root(tmp_path, sample_faces, people=3, images=3) -> Path:
    """<root>/<person>/<k>.png from the sample faces, each copy a little brighter: the 1st image of a
    folder is its gallery, the 2nd its probe, the rest aux images."""
    import numpy as np
    from PIL import Image

    root = tmp_path / "ids"
    for face in sorted(sample_faces.glob("*.png"))[:people]:
        (root / face.stem).mkdir(parents=True)
        img = np.asarray(Image.open(face).convert("RGB")).astype(np.float32)
        for k in range(images):
            Image.fromarray(np.clip(img * (1 + 0.04 * k), 0, 255).astype(np.uint8)).save(root / face.stem / f"{k}.png")
    return root


@pytest.fixture
def make_identity_root(tmp_path, sample_faces):
    """``make_identity_root(people=3, images=3)``: see ``identity_root``."""
    return lambda people=3, images=3: identity_root(tmp_path, sample_faces, people, images)


CHROMIUM = "/usr/bin/chromium"  # Debian's; playwright's own browser download does not work offline


@pytest.fixture
def chromium():
    """Headless Debian Chromium driven by playwright, started as root without reaching the network."""
    playwright = pytest.importorskip("playwright.sync_api")
    assert Path(CHROMIUM).is_file(), "Debian's chromium is needed: make test installs it (apt-get install chromium)"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def benchmark_script():
    """A script of benchmarks/ loaded as a module, by its stem (its main() is not run)."""

    def load(stem: str):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{stem}.py"
        spec = importlib.util.spec_from_file_location(f"benchmark_{stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
