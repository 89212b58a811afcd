"""User mistakes give one clear line and a non-zero exit; a bad file does not sink a batch."""

import json
import shutil

import numpy as np
import pytest

from facesr.cli import main
from facesr.io.images import read_image
from facesr.methods.sr3 import SR3, SR3Config
from facesr.nets.unet import UNetConfig
from facesr.diffusion.schedules import DDPMConfig


def _one_line(err: str, *needles):
    lines = [l for l in err.strip().splitlines() if l]
    assert len(lines) == 1, err
    assert all(n in lines[0] for n in needles), lines[0]


def test_missing_model(capsys):
    assert main(["upscale", "nothing.png", "-o", "x", "--model", "no-such-model"]) == 2
    _one_line(capsys.readouterr().err, "nothing.png")


def test_unknown_model_name(tmp_path, capsys, sample_faces):
    assert main(["upscale", str(sample_faces), "-o", str(tmp_path), "--model", "no-such-model"]) == 2
    _one_line(capsys.readouterr().err, "no-such-model", "bundled")


def test_bad_weights_file(tiny_model, tmp_path, capsys, sample_faces):
    (tiny_model / "model.safetensors").write_bytes(b"not a safetensors file")
    assert main(["upscale", str(sample_faces), "-o", str(tmp_path / "o"), "--model", str(tiny_model)]) == 2
    _one_line(capsys.readouterr().err, "model.safetensors")


def test_corrupt_file_in_batch(tiny_model, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    from PIL import Image

    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(src / f"ok{i}.png")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (src / "empty.jpg").write_bytes(b"")
    out = tmp_path / "out"
    code = main(["upscale", str(src), "-o", str(out), "--model", str(tiny_model), "--steps", "2"])
    err = capsys.readouterr().err
    assert code == 1
    assert "broken.png" in err and "empty.jpg" in err and "empty file" in err
    assert sorted(p.name for p in out.glob("*.png")) == ["ok0.png", "ok1.png", "ok2.png"]
    manifest = json.loads((out / "facesr-run.json").read_text())
    assert len(manifest["failures"]) == 2 and len(manifest["outputs"]) == 3


def test_unusable_size_fails_only_that_image(tmp_path, capsys):
    from PIL import Image

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    cfg = SR3Config(unet=UNetConfig(block_out_channels=(32, 32, 32), attention_levels=()),
                    diffusion=DDPMConfig(timesteps=50), scale=2, hr_size=16)
    SR3(cfg).save_pretrained(tmp_path / "m")  # downsamples by 4: outputs must be multiples of 4
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src / "good.png")
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(src / "odd.png")
    out = tmp_path / "out"
    assert main(["upscale", str(src), "-o", str(out), "--model", str(tmp_path / "m"), "--steps", "1"]) == 1
    err = capsys.readouterr().err
    assert "odd.png" in err and "divisible by 4" in err
    assert [p.name for p in out.glob("*.png")] == ["good.png"]


def test_never_overwrites_inputs(tiny_model, tmp_path, capsys):
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(src / "a.png")
    before = (src / "a.png").read_bytes()
    assert main(["upscale", str(src / "a.png"), "-o", str(src), "--model", str(tiny_model), "--steps", "1"]) == 2
    assert (src / "a.png").read_bytes() == before
    _one_line(capsys.readouterr().err, f"{src}: holds the input", "a.png")


def test_bad_config(tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text('{"name": "x", "model": {"target": "pixels"}}')
    assert main(["train", str(cfg)]) == 2
    _one_line(capsys.readouterr().err, "target")
    cfg.write_text("{not json")
    assert main(["train", str(cfg)]) == 2
    _one_line(capsys.readouterr().err, "c.json", "not valid JSON")


def test_evaluate_without_sr_or_run(tmp_path, capsys, sample_faces):
    assert main(["evaluate", "--hr", str(sample_faces)]) == 2
    _one_line(capsys.readouterr().err, "--sr")


def test_prepare_writes_layout_and_skips_bad(tmp_path, capsys, sample_faces):
    src = tmp_path / "src"
    shutil.copytree(sample_faces, src)
    (src / "bad.png").write_text("hello")
    out = tmp_path / "prep"
    assert main(["prepare", str(src), str(out), "--scale", "8", "--size", "128", "--op", "bicubic"]) == 1
    assert "bad.png" in capsys.readouterr().err
    assert len(list((out / "hr_128").glob("*.png"))) == 6
    lr = read_image(next((out / "lr_16").glob("*.png")))
    up = read_image(next((out / "sr_16_128").glob("*.png")))
    assert lr.shape == (16, 16, 3) and up.shape == (128, 128, 3)
    meta = json.loads((out / "degradation.json").read_text())
    assert meta["operator"] == {"name": "bicubic", "scale": 8} and meta["images"] == 6


def test_models_lists_bundled(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "sr3-x8" in out and "16x16" in out and "128x128" in out
    assert "default of upscale, report and the Python API: sr3-x8-res" in out
    assert "sr3-x8-res" in out.split("report's draws: steps 8")[0].splitlines()[-1]


def test_prepared_folder_is_a_dataset_and_a_training_root(tmp_path, sample_faces):
    from facesr.data.datasets import HRFolderDataset
    from facesr.degrade.protocol import LRProtocol
    from facesr.io.images import list_images, read_image

    out = tmp_path / "prep"
    assert main(["prepare", str(sample_faces), str(out), "--op", "tf-bilinear"]) == 0
    protocol = LRProtocol.of("tf-bilinear", 8)
    for hr_file in list_images(out / "hr_128"):
        lr = read_image(out / "lr_16" / hr_file.name)
        assert (lr == protocol.lr_image(read_image(hr_file))[0]).all()  # the protocol made it
    train = HRFolderDataset([out], protocol, 128, 64)
    assert len(train) == 6 and all("hr_128" in str(f) for f in train.files)


def test_evaluate_reads_the_operator_of_prepared_data(tmp_path, capsys, sample_faces):
    out = tmp_path / "prep"
    assert main(["prepare", str(sample_faces), str(out), "--op", "tf-bilinear"]) == 0
    # score the bicubic-upsampled images against HR; the operator comes from degradation.json
    assert main(["evaluate", "--sr", str(out / "sr_16_128"), "--hr", str(out / "hr_128"), "--lr", str(out / "lr_16"),
                 "-o", str(tmp_path / "ev")]) == 0
    assert "tf-bilinear x8 from" in capsys.readouterr().out
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert summary["protocol"]["operator"] == {"name": "tf-bilinear", "scale": 8}


def test_evaluate_reports_a_bad_file_and_scores_the_rest(tiny_model, tmp_path, capsys, sample_faces):
    import shutil

    hr = tmp_path / "hr"
    shutil.copytree(sample_faces, hr)
    (hr / "zz_empty.png").write_bytes(b"")
    out = tmp_path / "ev"
    code = main(["evaluate", "--run", "--hr", str(hr), "--model", str(tiny_model), "--steps", "1", "--samples", "1", "-o", str(out)])
    assert code == 1 and "zz_empty.png: empty file" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 6 and len(summary["failures"]) == 1
