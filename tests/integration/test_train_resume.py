"""End to end: train a tiny model a few steps, resume exactly, sample, evaluate."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from facesr.cli import main
from facesr.io.images import read_image

pytestmark = pytest.mark.slow


def _weights(ckpt: Path) -> dict:
    return load_file(str(ckpt / "model.safetensors"))


def _latest(run: Path) -> Path:
    return run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()


def test_train_resume_is_exact(tiny_config, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(["train", str(tiny_config), "--out", str(straight), "--no-progress"]) == 0
    assert main(["train", str(tiny_config), "--out", str(split), "--max-steps", "2", "--no-progress"]) == 0
    assert json.loads((_latest(split) / "state.json").read_text())["step"] == 2
    assert main(["train", str(tiny_config), "--out", str(split), "--resume", "--no-progress"]) == 0
    a, b = _weights(_latest(straight)), _weights(_latest(split))
    assert _latest(straight).name == _latest(split).name == "step-00000004"
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k].numpy(), b[k].numpy()), k
    ema_a, ema_b = load_file(str(_latest(straight) / "ema.safetensors")), load_file(str(_latest(split) / "ema.safetensors"))
    assert all(np.array_equal(ema_a[k].numpy(), ema_b[k].numpy()) for k in ema_a)
    rows = (straight / "log.csv").read_text().strip().splitlines()
    assert rows[0].startswith("step,loss") and len(rows) == 5


def test_train_refuses_to_clobber_a_run(tiny_config, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(tiny_config), "--out", str(run), "--max-steps", "2", "--no-progress"]) == 0
    assert main(["train", str(tiny_config), "--out", str(run), "--no-progress"]) == 2
    assert "already holds checkpoints" in capsys.readouterr().err


def test_sigterm_checkpoints_and_resumes(tiny_config, tmp_path):
    cfg = json.loads(tiny_config.read_text())
    cfg["optim"].update(max_steps=100000, checkpoint_every=100000)
    tiny_config.write_text(json.dumps(cfg))
    run = tmp_path / "run"
    env = {**os.environ, "FACESR_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "facesr.cli", "train", str(tiny_config), "--out", str(run), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    log = run / "log.csv"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and len(log.read_text().splitlines()) > 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, out  # 128 + SIGTERM: the run did not finish
    step = json.loads((_latest(run) / "state.json").read_text())["step"]
    assert step >= 3
    assert (f"facesr train: stopped by SIGTERM at step {step}; checkpoint saved in {_latest(run)}; "
            f"continue with: facesr train {tiny_config} --out {run} --resume") in out.splitlines()
    assert main(["train", str(tiny_config), "--out", str(run), "--resume", "--max-steps", str(step + 1), "--no-progress"]) == 0
    assert json.loads((_latest(run) / "state.json").read_text())["step"] == step + 1
    assert _log_steps(run) == list(range(1, step + 2))


def _log_rows(run: Path) -> list[list[str]]:
    return [line.split(",") for line in (run / "log.csv").read_text().splitlines()[1:]]


def _log_steps(run: Path) -> list[int]:
    return [int(row[0]) for row in _log_rows(run)]


def test_resume_logs_each_step_once(tiny_config, tmp_path):
    """A run that went on past its last checkpoint (killed after step 4, checkpoint 2; then junk rows and
    a line cut short): resuming drops the log rows after step 2, so log.csv matches an uninterrupted run."""
    straight, run = tmp_path / "straight", tmp_path / "run"
    assert main(["train", str(tiny_config), "--out", str(straight), "--no-progress"]) == 0
    assert main(["train", str(tiny_config), "--out", str(run), "--no-progress"]) == 0
    (run / "checkpoints" / "latest").write_text("step-00000002\n")  # as if killed before checkpoint 4
    with open(run / "log.csv", "a", newline="") as f:
        f.write("5,0.5,1.000e-03,1.0,9.0\r\n6,0.4")
    assert _log_steps(straight) == [1, 2, 3, 4]
    assert main(["train", str(tiny_config), "--out", str(run), "--resume", "--no-progress"]) == 0
    assert _log_steps(run) == [1, 2, 3, 4]
    assert [row[:3] for row in _log_rows(run)] == [row[:3] for row in _log_rows(straight)]  # step, loss, lr
    elapsed = [float(row[4]) for row in _log_rows(run)]
    assert elapsed == sorted(elapsed)  # elapsed_s goes on from the kept rows
    assert (run / "log.csv").read_text().startswith("step,loss,lr,steps_per_s,elapsed_s\n")


def test_killed_run_resumes_with_each_step_logged_once(tiny_config, tmp_path):
    """SIGKILL (no checkpoint on the way out) after step 3, checkpoint every 2 steps: the resumed run's
    log.csv has steps 1..6 once each, with an uninterrupted run's losses."""
    cfg = json.loads(tiny_config.read_text())
    cfg["optim"].update(max_steps=6, checkpoint_every=2)
    tiny_config.write_text(json.dumps(cfg))
    straight, run = tmp_path / "straight", tmp_path / "run"
    env = {**os.environ, "FACESR_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "facesr.cli", "train", str(tiny_config), "--out", str(run), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    log = run / "log.csv"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not (log.exists() and len(log.read_text().splitlines()) > 3):
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=60)
    killed_at = _log_steps(run)
    if proc.returncode == 0 or not killed_at or killed_at[-1] >= 6:
        pytest.skip("the run finished before it could be killed")
    assert main(["train", str(tiny_config), "--out", str(run), "--resume", "--no-progress"]) == 0
    assert main(["train", str(tiny_config), "--out", str(straight), "--no-progress"]) == 0
    assert _log_steps(run) == _log_steps(straight) == [1, 2, 3, 4, 5, 6]
    assert [row[:3] for row in _log_rows(run)] == [row[:3] for row in _log_rows(straight)]


def test_upscale_evaluate_demo_from_checkpoint(tiny_config, tmp_path, sample_faces, capsys):
    run = tmp_path / "run"
    assert main(["train", str(tiny_config), "--out", str(run), "--max-steps", "2", "--no-progress"]) == 0
    ckpt = _latest(run)
    model = tmp_path / "exported"
    assert main(["export", str(ckpt), str(model), "--steps", "3", "--samples", "2", "--strength", "0.5"]) == 0
    assert not (model / "model.safetensors").exists() and (model / "ema.safetensors").exists()
    config = json.loads((model / "config.json").read_text())
    assert config["sampling"] == {"steps": 3, "strength": 0.5, "samples": 2} and config["card"]["trained_steps"] == 2
    # a new recipe for exported weights: the same weights, the card kept
    again = tmp_path / "again"
    assert main(["export", str(model), str(again), "--steps", "1", "--samples", "4", "--strength", "0.5"]) == 0
    config = json.loads((again / "config.json").read_text())
    assert config["sampling"] == {"steps": 1, "strength": 0.5, "samples": 4} and config["card"]["trained_steps"] == 2
    assert (again / "ema.safetensors").read_bytes() == (model / "ema.safetensors").read_bytes()

    # evaluate --run: LR made with the model's operator, SR saved, bicubic measured alongside;
    # the sampling recipe recorded at export is the default
    ev = tmp_path / "eval"
    assert main(["evaluate", "--run", "--hr", str(sample_faces), "--model", str(model),
                 "--limit", "3", "-o", str(ev), "--precision", "fp32"]) == 0
    summary = json.loads((ev / "summary.json").read_text())
    assert summary["images"] == 3 and summary["steps"] == 3 and summary["samples"] == 2
    assert summary["network_evaluations"] == 6 and summary["strength"] == 0.5
    assert summary["protocol"]["operator"] == {"name": "bicubic", "scale": 8}
    assert {"psnr", "ssim", "consistency", "bicubic_psnr"} <= set(summary["metrics"])
    assert summary["metrics"]["bicubic_consistency"]["mean"] > 0  # down(up(LR)) blurs: bicubic is not consistent
    lr_files = sorted((ev / "lr").glob("*.png"))
    assert len(lr_files) == 3 and read_image(lr_files[0]).shape == (16, 16, 3)

    # upscale the LR files; the same seed gives the same pixels, whatever the batch size
    out1, out2 = tmp_path / "up1", tmp_path / "up2"
    assert main(["upscale", str(ev / "lr"), "-o", str(out1), "--model", str(model), "--steps", "2", "--batch-size", "3"]) == 0
    assert json.loads((out1 / "facesr-run.json").read_text())["options"]["steps"] == 2  # given beats recommended
    assert main(["upscale", *map(str, lr_files), "-o", str(out2), "--model", str(model), "--steps", "2", "--batch-size", "1"]) == 0
    for f in lr_files:
        a, b = read_image(out1 / f.name), read_image(out2 / f.name)
        assert a.shape == (128, 128, 3) and np.array_equal(a, b)

    # evaluate existing folders: the SR written by --run scores what summary.json says
    ev2 = tmp_path / "eval2"
    assert main(["evaluate", "--sr", str(ev / "sr"), "--hr", str(sample_faces), "--lr", str(ev / "lr"), "-o", str(ev2)]) == 0
    again = json.loads((ev2 / "summary.json").read_text())["metrics"]
    assert abs(again["psnr"]["mean"] - summary["metrics"]["psnr"]["mean"]) < 1e-9
    assert abs(again["consistency"]["mean"] - summary["metrics"]["consistency"]["mean"]) < 1e-9

    demo = tmp_path / "demo"
    assert main(["demo", "--model", str(model), "--steps", "2", "-o", str(demo)]) == 0
    sheet = read_image(demo / "sheet.png")
    assert sheet.shape[1] == 4 * 132 + 4 and len(list((demo / "sr").glob("*.png"))) == 6
    assert "PSNR" in capsys.readouterr().out


def test_evaluate_with_identity_metrics(tiny_config, tmp_path, sample_faces):
    """An identity-folder tree from the six sample people: gallery = the face, probe = a brighter copy."""
    from PIL import Image, ImageEnhance

    tree = tmp_path / "ids"
    for face in sorted(sample_faces.glob("*.png")):
        person = tree / face.stem
        person.mkdir(parents=True)
        img = Image.open(face)
        img.save(person / "a_gallery.png")
        ImageEnhance.Brightness(img).enhance(1.1).save(person / "b_probe.png")
    run = tmp_path / "run"
    assert main(["train", str(tiny_config), "--out", str(run), "--max-steps", "1", "--no-progress"]) == 0
    ev = tmp_path / "ev"
    assert main(["evaluate", "--run", "--hr", str(tree), "--protocol", "second", "--model", str(_latest(run)),
                 "--steps", "2", "--identity", "dlib", "-o", str(ev)]) == 0
    summary = json.loads((ev / "summary.json").read_text())
    ident = summary["identity"]
    assert summary["images"] == 6 and ident["gallery_identities"] == 6
    assert ident["hr_probes"]["rank1"] == 1.0  # the HR probe is the gallery face, brighter
    low, high = ident["hr_probes"]["rank1_ci95"]  # Wilson, 6 of 6: [1 / (1 + z^2 / 6), 1]
    assert low == pytest.approx(6 / (6 + 1.959964 ** 2), abs=1e-6) and high == pytest.approx(1.0)
    assert 0 <= ident["sr_probes"]["rank1"] <= 1 and 0 <= ident["bicubic_probes"]["eer"] <= 1
    rows = (ev / "per_image.csv").read_text().splitlines()
    assert "cs" in rows[0].split(",") and "bicubic_cs" in rows[0].split(",") and len(rows) == 7
