"""Photos in the wild: every face of a scene of tiny faces is found, restored and pasted back with no
seam and no colour shift; outputs and their JSON as documented; bad photos fail alone; a rerun keeps
finished photos."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import facesr
from facesr.cli import main
from facesr.io.images import read_image

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "facesr" / "samples" / "faces"


def scene(div: int):
    """(LR scene, its full-resolution original, div): the 6 sample chips (128 px) in two rows on grey, the
    LR scene made with the bicubic operator at 1 / ``div``, so each chip becomes 128 / div px (div 8:
    the 16-px chips of the x8 models, faces about 14 px wide)."""
    chips = [read_image(p) for p in sorted(SAMPLES.glob("*.png"))]
    pad = 64
    full = np.full((2 * 128 + 3 * pad, 3 * 128 + 4 * pad, 3), 128, np.uint8)
    for i, chip in enumerate(chips):
        x, y = pad + (i % 3) * (128 + pad), pad + (i // 3) * (128 + pad)
        full[y : y + 128, x : x + 128] = chip
    h, w = full.shape[0] // div * div, full.shape[1] // div * div
    full = full[:h, :w]
    return np.asarray(Image.fromarray(full).resize((w // div, h // div), Image.BICUBIC)), full, div


def psnr(a, b):
    return 10 * np.log10(255**2 / np.mean((a.astype(float) - b.astype(float)) ** 2))


@pytest.fixture(scope="module")
def x8():
    lr, full, div = scene(8)
    return lr, full, facesr.restore(lr, upscale=div), facesr.restore(lr, model="bicubic", upscale=div)


def test_every_face_is_restored_and_beats_bicubic(x8):
    lr, full, restored, bicubic = x8
    assert len(restored["faces"]) == 6 and all(f["model"] == "msrresnet-x8-wild" for f in restored["faces"])
    assert restored["image"].shape == full.shape
    assert psnr(restored["image"], full) > psnr(bicubic["image"], full)  # the whole photo
    for f in restored["faces"]:  # each face region
        x0, y0, x1, y1 = (int(round(v * restored["scale"])) for v in f["box"])
        assert psnr(restored["image"][y0:y1, x0:x1], full[y0:y1, x0:x1]) > psnr(bicubic["image"][y0:y1, x0:x1],
                                                                                  full[y0:y1, x0:x1]) + 0.3


def test_no_colour_shift_and_nothing_changed_outside_the_faces(x8):
    lr, full, restored, bicubic = x8
    a, b = restored["image"].astype(float), bicubic["image"].astype(float)
    changed = np.abs(a - b).max(axis=2) > 0
    for f in restored["faces"]:
        x0, y0, x1, y1 = (int(round(v * restored["scale"])) for v in f["box"])
        region = (slice(y0, y1), slice(x0, x1))
        assert np.abs(a[region].mean((0, 1)) - b[region].mean((0, 1))).max() < 2.0  # levels, per channel
        changed[max(0, y0 - 60) : y1 + 60, max(0, x0 - 60) : x1 + 60] = False  # the chip's footprint and feather
    assert not changed.any()  # the rest of the photo is exactly the bicubic upscale: no seam can be there


def test_restore_writes_the_documented_outputs_and_resumes(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(scene(8)[0]).save(src / "group.png")
    Image.fromarray(np.full((60, 80, 3), 128, np.uint8)).save(src / "empty.png")
    (src / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    out = tmp_path / "out"
    assert main(["restore", str(src), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "empty.png: no face found" in err and "broken.jpg: " in err
    record = json.loads((out / "group.json").read_text())
    assert record["restored"] == "group.png" and record["scale"] == 8 and len(record["faces"]) == 6
    lr = read_image(src / "group.png")
    assert read_image(out / "group.png").shape == (lr.shape[0] * 8, lr.shape[1] * 8, 3)
    for face in record["faces"]:
        assert set(face) >= {"box", "landmarks", "score", "width_px", "model", "chip", "lr_chip"}
        assert len(face["landmarks"]) == 5 and 9 < face["width_px"] < 20
        assert read_image(out / face["chip"]).shape == (128, 128, 3)
        assert read_image(out / face["lr_chip"]).shape == (16, 16, 3)
    before = (out / "group.png").stat().st_mtime_ns
    assert main(["restore", str(src / "group.png"), "-o", str(out)]) == 0
    assert "1 kept from before" in capsys.readouterr().out and (out / "group.png").stat().st_mtime_ns == before
    assert main(["restore", str(src / "group.png"), "-o", str(out), "--overwrite"]) == 0
    assert (out / "group.png").stat().st_mtime_ns != before


def test_a_face_no_model_takes_is_reported(tmp_path, capsys):
    photo = tmp_path / "big.png"
    Image.fromarray(scene(1)[0]).save(photo)  # 128-px chips: larger than any model's input
    assert main(["restore", str(photo), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "not restored: large enough" in err
    record = json.loads((tmp_path / "out" / "big.json").read_text())
    assert all("skipped" in f and f["model"] is None for f in record["faces"])


def test_a_photo_above_the_pixel_limit_is_one_line(tmp_path, capsys, monkeypatch):
    import facesr.io.images as images

    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    photo = tmp_path / "huge.png"
    Image.fromarray(scene(8)[0]).save(photo)
    monkeypatch.setattr(images.read_image, "__defaults__", (1000,))
    assert main(["restore", str(photo), "-o", str(tmp_path / "out")]) == 1
    line, summary = [l for l in capsys.readouterr().err.splitlines() if l]
    assert "huge.png: image too large" in line and "1 problem(s) reported above" in summary


def test_uncertainty_maps_of_a_diffusion_model(tmp_path):
    photo = tmp_path / "group.png"
    Image.fromarray(scene(8)[0]).save(photo)
    out = tmp_path / "out"
    assert main(["restore", str(photo), "-o", str(out), "--model", "sr3-x8", "--samples", "2", "--steps", "2",
                 "--strength", "0.5", "--uncertainty", "--precision", "fp32"]) == 0
    faces = json.loads((out / "group.json").read_text())["faces"]
    assert len(faces) == 6 and all(f["model"] == "sr3-x8" for f in faces)
    maps = [read_image(out / f["std"]) for f in faces]
    assert all(m.shape == (128, 128, 3) for m in maps) and any(m.max() > 0 for m in maps)
    # a regression model's samples are one image: no map that would read as certain, and the record says why
    assert main(["restore", str(photo), "-o", str(tmp_path / "reg"), "--model", "msrresnet-x8", "--samples", "2",
                 "--uncertainty"]) == 0
    faces = json.loads((tmp_path / "reg" / "group.json").read_text())["faces"]
    assert len(faces) == 6 and not any("std" in f for f in faces) and not list((tmp_path / "reg").rglob("*_std.png"))
    assert all(f["uncertainty"] == "none: msrresnet-x8 draws no samples" for f in faces)


def test_noise_from_too_few_steps_is_not_pasted(tmp_path, capsys):
    photo = tmp_path / "group.png"
    Image.fromarray(scene(8)[0]).save(photo)
    assert main(["restore", str(photo), "-o", str(tmp_path / "out"), "--model", "sr3-x8", "--sampler", "heun",
                 "--steps", "2", "--strength", "1", "--samples", "1", "--precision", "fp32"]) == 1
    assert "not restored: the output is not a restoration" in capsys.readouterr().err


def test_multi_frame_and_fasr_models_take_a_photo_and_refsr_says_what_it_lacks(tmp_path, capsys):
    photo = tmp_path / "group.png"
    Image.fromarray(scene(8)[0]).save(photo)
    fast = ["--steps", "2", "--strength", "0.5", "--samples", "1", "--precision", "fp32"]
    assert main(["restore", str(photo), "-o", str(tmp_path / "mf"), "--model", "mfsr3-x8", *fast]) == 0
    faces = json.loads((tmp_path / "mf" / "group.json").read_text())["faces"]
    assert len(faces) == 6 and all("chip" in f for f in faces)
    capsys.readouterr()
    assert main(["restore", str(photo), "-o", str(tmp_path / "fasr"), "--model", "fasr-x8", *fast]) == 0
    assert "fasr-x8: the null identity: a photo has no other images of the person" in capsys.readouterr().out
    faces = json.loads((tmp_path / "fasr" / "group.json").read_text())["faces"]
    assert len(faces) == 6 and all("chip" in f and f["condition"].startswith("the null identity") for f in faces)
    assert main(["restore", str(photo), "-o", str(tmp_path / "ref"), "--model", "refsr-vae-x8", "--precision", "fp32"]) == 1
    assert "refsr-vae-x8 needs " in capsys.readouterr().err and "a photo has none" in (tmp_path / "ref" / "group.json").read_text()


def test_a_killed_restore_resumes_and_ends_as_an_uninterrupted_one(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "in"
    src.mkdir()
    lr = scene(8)[0]
    for i in range(24):
        Image.fromarray(np.roll(lr, i, axis=1)).save(src / f"p{i:02d}.png")
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert main(["restore", str(src), "-o", str(whole)]) == 0
    # the same thread count as this process's run above: a different one rounds some float sums differently
    env = {**os.environ, "FACESR_NUM_THREADS": os.environ.get("FACESR_NUM_THREADS", "1"), "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [sys.executable, "-m", "facesr.cli", "restore", str(src), "-o", str(killed)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and len(list(killed.glob("p*.json"))) < 3:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(killed.glob("p*.json")))
    assert 3 <= done < 24
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{done} kept from before" in again.stdout and not list(killed.glob(".facesr-tmp-*"))
    for i in range(24):
        assert (killed / f"p{i:02d}.png").read_bytes() == (whole / f"p{i:02d}.png").read_bytes()


def test_photos_of_one_name_in_two_folders_both_come_out(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        Image.fromarray(scene(8)[0]).save(tmp_path / folder / "group.png")
    out = tmp_path / "out"
    assert main(["restore", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(out), "--model", "bicubic"]) == 0
    first, second = (json.loads((out / f"{s}.json").read_text()) for s in ("group", "group-2"))
    assert first["input"].endswith("a/group.png") and second["input"].endswith("b/group.png")
    assert second["restored"] == "group-2.png" and second["faces"][0]["chip"].startswith("group-2/")


def test_an_option_the_default_models_refuse_stops_before_any_photo(tmp_path, capsys):
    photo = tmp_path / "group.png"
    Image.fromarray(scene(8)[0]).save(photo)
    assert main(["restore", str(photo), "-o", str(tmp_path / "out"), "--project", "2"]) == 2
    err = [l for l in capsys.readouterr().err.splitlines() if l]
    assert len(err) == 1 and "project" in err[0] and "blind" in err[0]
    assert not (tmp_path / "out" / "group.json").exists()
