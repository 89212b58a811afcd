"""Regression method: training through the same loop, blind LR records, schedule, augmentation."""

import json
import math

import pytest
import torch

from facesr.cli import main
from facesr.data.datasets import augment_hr
from facesr.train.config import DataConfig, OptimConfig, learning_rate

pytestmark = pytest.mark.slow


def regression_config(tmp_path, sample_faces, degradation=None, scale=8):
    cfg = {
        "name": "reg", "method": "regression",
        "model": {"net": {"arch": "msrresnet", "num_feat": 16, "num_blocks": 2}, "scale": scale, "hr_size": 128,
                  "operator": "bicubic", "degradation": degradation},
        "data": {"train_dirs": [str(sample_faces)], "patch_size": 32, "rot90": True,
                 "brightness": [0.7, 1.3], "contrast": [0.7, 1.3]},
        "optim": {"batch_size": 2, "lr": 2e-4, "warmup_steps": 1, "schedule": "cosine_restarts", "periods": [3, 3],
                  "restart_weights": [1, 0.5], "max_steps": 3, "checkpoint_every": 3, "mixed_precision": "no"},
    }
    path = tmp_path / "reg.json"
    path.write_text(json.dumps(cfg))
    return path


@pytest.mark.parametrize("degradation, scale", [(None, 8), ("deepfacesr", 4)])
def test_train_export_evaluate(tmp_path, sample_faces, degradation, scale):
    cfg = regression_config(tmp_path, sample_faces, degradation, scale)
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(run), "--no-progress"]) == 0
    ckpt = run / "checkpoints" / "step-00000003"
    assert main(["export", str(ckpt), str(tmp_path / "m")]) == 0
    ev = tmp_path / "ev"
    assert main(["evaluate", "--run", "--hr", str(sample_faces), "--model", str(tmp_path / "m"), "--limit", "2", "-o", str(ev)]) == 0
    summary = json.loads((ev / "summary.json").read_text())
    assert summary["images"] == 2 and "psnr" in summary["metrics"] and summary["network_evaluations"] == 1
    assert summary["protocol"]["degradation"] == (degradation or "deterministic operator")
    if degradation:
        # blind LR: no consistency (no deterministic operator); the drawn parameters are recorded
        assert "consistency" not in summary["metrics"]
        records = json.loads((ev / "lr_params.json").read_text())
        assert len(records) == 2
    else:
        assert "consistency" in summary["metrics"]


def test_blind_lr_is_reproducible_from_the_image_name(tmp_path, sample_faces):
    from facesr.methods.regression import RegressionConfig, RegressionSR
    from facesr.nets.regression import RegressionNetConfig

    m = RegressionSR(RegressionConfig(net=RegressionNetConfig(num_feat=8, num_blocks=1), scale=4, degradation="realesrgan"))
    hr = torch.rand(2, 3, 64, 64)
    a, ra = m.degrade(hr, ["x.png", "y.png"])
    b, rb = m.degrade(hr, ["x.png", "y.png"])
    c, _ = m.degrade(hr, ["x.png", "z.png"])
    assert a.shape == (2, 3, 16, 16) and torch.equal(a, b) and ra == rb
    assert torch.equal(a[0], c[0]) and not torch.equal(a[1], c[1])


def test_cosine_restarts_closed_form():
    o = OptimConfig(lr=1e-3, warmup_steps=1, schedule="cosine_restarts", periods=(10, 20), restart_weights=(1.0, 0.5), eta_min=1e-6)
    assert learning_rate(o, 0) == pytest.approx(1e-3)
    assert learning_rate(o, 5) == pytest.approx(1e-6 + (1e-3 - 1e-6) * (1 + math.cos(math.pi * 0.5)) / 2)
    assert learning_rate(o, 10) == pytest.approx(1e-6 + 0.5 * (1e-3 - 1e-6))  # restart at half weight
    assert learning_rate(o, 25) == pytest.approx(1e-6 + 0.5 * (1e-3 - 1e-6) * (1 + math.cos(math.pi * 15 / 20)) / 2)
    assert learning_rate(o, 30) == pytest.approx(1e-6)
    warm = OptimConfig(lr=1e-3, warmup_steps=4)
    assert [learning_rate(warm, s) for s in range(5)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3])


def test_augmentations():
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(3, 16, 16)
    # rotation only: a multiple of 90 degrees, pixels preserved
    rotated = augment_hr(hr, DataConfig(rot90=True), g)
    assert any(torch.equal(rotated, torch.rot90(hr, k, dims=(-2, -1))) for k in range(4))
    # brightness: a uniform factor in range; contrast keeps the luma mean (before clipping)
    grey = torch.full((3, 8, 8), 0.4)
    for _ in range(10):
        out = augment_hr(grey, DataConfig(brightness=(0.7, 1.3), jitter_prob=1.0), g)
        f = out[0, 0, 0] / 0.4
        assert 0.7 - 1e-6 <= f <= 1.3 + 1e-6 and torch.allclose(out, grey * f)
    mid = torch.rand(3, 8, 8) * 0.2 + 0.4
    out = augment_hr(mid, DataConfig(contrast=(0.7, 1.3), jitter_prob=1.0), g)
    luma = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    assert torch.allclose((out * luma).sum(0).mean(), (mid * luma).sum(0).mean(), atol=1e-6)
    assert torch.equal(augment_hr(hr, DataConfig(brightness=(0.7, 1.3), jitter_prob=0.0), g), hr)
