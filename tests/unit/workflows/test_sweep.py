"""facesr sweep: steps for an NFE budget, the snr-r sweep and the sampler/NFE sweep end to end."""

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from facesr.cli import main
from facesr.workflows.sweep import steps_for_budget
from facesr.engine.options import SamplingOptions

BASE = SamplingOptions()  # pc: reverse-diffusion predictor + 1 Langevin step; samples 1


@pytest.mark.parametrize("sampler, opts, nfe, steps", [
    ("ddim", {}, 1, 1), ("ddim", {}, 8, 8), ("ddim", {}, 2000, 2000),
    ("dpmpp-2m", {}, 1, 1), ("dpmpp-2m", {}, 100, 100),
    ("heun", {}, 1, 1), ("heun", {}, 2, 1), ("heun", {}, 4, 2), ("heun", {}, 5, 3), ("heun", {}, 100, 50),
    ("pc", {}, 1, None), ("pc", {}, 2, 1), ("pc", {}, 5, 2), ("pc", {}, 2000, 1000),
    ("pc", {"corrector_steps": 2}, 2, None), ("pc", {"corrector_steps": 2}, 8, 2),
    ("pc", {"corrector": "none"}, 5, 5),
    ("ode", {}, 1, None), ("ode", {}, 5, 2), ("ode", {"ode_method": "euler"}, 5, 5),
    ("ddim", {"samples": 2}, 1, None), ("ddim", {"samples": 2}, 9, 4), ("heun", {"samples": 2}, 4, 1),
    ("ddim", {}, 0, None),
])
def test_steps_for_budget_hand_computed(sampler, opts, nfe, steps):
    assert steps_for_budget(sampler, nfe, replace(BASE, **opts)) == steps


@pytest.mark.parametrize("sampler", ["ddim", "ancestral", "euler", "heun", "dpmpp-2m", "pc", "ode"])
@pytest.mark.parametrize("opts", [{}, {"samples": 3}, {"corrector_steps": 3}])
def test_steps_for_budget_is_the_largest_that_fits(sampler, opts):
    base = replace(BASE, sampler=sampler, **opts)
    for nfe in [1, 2, 3, 4, 7, 8, 16, 31, 100, 1000, 2000]:
        steps = steps_for_budget(sampler, nfe, base)
        if steps is None:
            assert replace(base, steps=1).network_evaluations > nfe
            continue
        assert replace(base, steps=steps).network_evaluations <= nfe
        assert replace(base, steps=steps + 1).network_evaluations > nfe


@pytest.fixture
def id_tree(tmp_path, sample_faces):
    """Three people: gallery = the face, probe = a brighter copy."""
    tree = tmp_path / "ids"
    for face in sorted(sample_faces.glob("*.png"))[:3]:
        person = tree / face.stem
        person.mkdir(parents=True)
        img = Image.open(face)
        img.save(person / "a_gallery.png")
        ImageEnhance.Brightness(img).enhance(1.1).save(person / "b_probe.png")
    return tree


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _valid_png(path):
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > 100 and img.size[1] > 100


def _common(model, tree, out):
    return ["sweep", "--model", str(model), "--hr", str(tree), "--protocol", "second", "--identity", "dlib",
            "--precision", "fp32", "--device", "cpu", "-o", str(out)]


def test_snr_sweep_end_to_end(tiny_model, id_tree, tmp_path, capsys):
    out = tmp_path / "snr"
    assert main(_common(tiny_model, id_tree, out) + ["--snr", "0.05", "0.3", "--steps", "2"]) == 0
    printed = capsys.readouterr().out
    assert "snr 0.05: PSNR" in printed and "snr 0.3: PSNR" in printed and "CS" in printed
    rows = _csv(out / "snr.csv")
    assert [float(r["snr"]) for r in rows] == [0.05, 0.3]
    for r in rows:
        assert {"psnr_mean", "psnr_std", "ssim_mean", "consistency_mean", "cs_mean", "cs_std", "rank1",
                "seconds_per_face"} <= r.keys()
        assert int(r["network_evaluations"]) == 4 and int(r["images"]) == 3
    per_image = _csv(out / "snr_per_image.csv")
    assert len(per_image) == 6 and {"snr", "name", "psnr", "ssim", "consistency", "cs"} <= per_image[0].keys()
    for r in rows:  # the table's means are the per-image means at that r
        mine = [float(p["psnr"]) for p in per_image if p["snr"] == r["snr"]]
        assert float(r["psnr_mean"]) == pytest.approx(np.mean(mine), abs=1e-5)
    for png in ("psnr_cs_vs_snr.png", "cs_vs_psnr.png"):
        _valid_png(out / png)
    info = json.loads((out / "sweep.json").read_text())
    psnr = np.array([float(p["psnr"]) for p in per_image])
    cs = np.array([float(p["cs"]) for p in per_image])
    assert info["pearson_cs_psnr"] == pytest.approx(np.corrcoef(psnr, cs)[0, 1], abs=1e-4)
    assert info["pearson_points"] == 6
    assert (out / "snr_0.05" / "sr").is_dir() and (out / "snr_0.3" / "summary.json").is_file()
    assert not list(out.glob(".*.tmp"))


def test_nfe_sweep_end_to_end(tiny_model, id_tree, tmp_path, capsys):
    out = tmp_path / "nfe"
    assert main(_common(tiny_model, id_tree, out) + ["--nfe", "1", "3", "--samplers", "ddim", "heun", "pc"]) == 0
    printed = capsys.readouterr().out
    assert "pc nfe 1: skipped" in printed and "heun nfe 3 (steps 2, 3 evaluations)" in printed
    rows = _csv(out / "nfe.csv")
    got = [(r["sampler"], int(r["nfe"]), int(r["steps"]), int(r["network_evaluations"])) for r in rows]
    assert got == [("ddim", 1, 1, 1), ("ddim", 3, 3, 3), ("heun", 1, 1, 1), ("heun", 3, 2, 3), ("pc", 3, 1, 2)]
    for r in rows:
        assert {"psnr_mean", "psnr_std", "ssim_mean", "ssim_std", "consistency_mean", "cs_mean", "cs_std",
                "seconds_per_face"} <= r.keys()
        assert 0 < float(r["psnr_mean"]) < 100 and -1 <= float(r["cs_mean"]) <= 1
    _valid_png(out / "quality_vs_nfe.png")
    info = json.loads((out / "sweep.json").read_text())
    assert info["skipped"] == [{"sampler": "pc", "nfe": 1, "reason": "one step costs 2 evaluations"}]


def test_negative_snr_is_one_line(tiny_model, id_tree, tmp_path, capsys):
    code = main(_common(tiny_model, id_tree, tmp_path / "bad") + ["--snr", "0.1", "-0.05"])
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line]
    assert code == 2 and len(lines) == 1 and "snr: " in lines[0] and "-0.05" in lines[0], err
    assert not (tmp_path / "bad").exists()
