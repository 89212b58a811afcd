"""RefSR-VAE through facesr: training with references, upscale --ref, evaluate --ref-from, benchmark."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from facesr.cli import main
from facesr.data.datasets import HRFolderDataset
from facesr.degrade.protocol import LRProtocol

pytestmark = pytest.mark.slow

WIDTHS = {"trunk_channels": [4, 8, 8, 8], "skip_channels": [8, 4], "encoder_channels": [8, 4, 4], "encoder_fc": [16, 16],
          "latent": 8, "noise_fc": 8, "decoder_fc": [16, 16], "decoder_map_channels": 4, "upproj_channels": 4}


def config(tmp_path, train_dir, variant="refsr", reference="self"):
    cfg = {"name": "refsr", "method": "refsr-vae", "model": {"variant": variant, **WIDTHS},
           "data": {"train_dirs": [str(train_dir)], "patch_size": 0, "reference": reference},
           "optim": {"batch_size": 2, "warmup_steps": 1, "max_steps": 2, "checkpoint_every": 2, "mixed_precision": "no"}}
    path = tmp_path / f"{variant}.json"
    path.write_text(json.dumps(cfg))
    return path


def test_reference_items(tmp_path, sample_faces, make_identity_root):
    root = make_identity_root(people=2, images=2)
    (root / "single").mkdir()
    Image.open(next(sample_faces.glob("*.png"))).save(root / "single" / "0.png")
    ds = HRFolderDataset([root], LRProtocol.of("bicubic", 8), 128, 0, hflip=False, reference="same-identity")
    assert len(ds) == 4 and all(f.parent.name != "single" for f in ds.files)
    item = ds.item(0, torch.Generator().manual_seed(0))
    other = ds.load_hr(1)  # the only other image of that identity
    assert torch.equal(item["ref"], other) and not torch.equal(item["ref"], item["hr"])
    selfref = HRFolderDataset([root], LRProtocol.of("bicubic", 8), 128, 0, hflip=False, reference="self")
    it = selfref.item(0, torch.Generator().manual_seed(0))
    assert it["ref"].shape == (3, 128, 128) and not torch.allclose(it["ref"], it["hr"], atol=1e-2)


def test_train_upscale_evaluate_and_benchmark(tmp_path, sample_faces, capsys, make_identity_root):
    root = make_identity_root(images=3)
    models = {}
    for variant, reference in (("refsr", "same-identity"), ("sisr", None)):
        run = tmp_path / f"run-{variant}"
        cfg = config(tmp_path, root if reference else sample_faces, variant, reference)
        if variant == "sisr":  # SISR takes no reference; training without one must work
            data = json.loads(cfg.read_text())
            del data["data"]["reference"]
            cfg.write_text(json.dumps(data))
        assert main(["train", str(cfg), "--out", str(run), "--no-progress"]) == 0
        models[variant] = tmp_path / variant
        assert main(["export", str(run / "checkpoints" / "step-00000002"), str(models[variant])]) == 0

    lr = tmp_path / "lr.png"
    Image.open(root / "Ai_Sugiyama_0003" / "1.png").resize((16, 16), Image.BICUBIC).save(lr)
    out = tmp_path / "up"
    # a model trained for a few steps restores nothing yet: the check would report it, not write it
    assert main(["upscale", str(lr), "-o", str(out), "--model", str(models["refsr"]), "--ref",
                 str(root / "Ai_Sugiyama_0003" / "2.png"), "--no-output-check"]) == 0
    assert np.asarray(Image.open(out / "lr.png")).shape == (128, 128, 3)
    capsys.readouterr()
    assert main(["upscale", str(lr), "-o", str(out), "--model", str(models["refsr"])]) == 2
    assert main(["upscale", str(lr), "-o", str(out), "--model", str(models["sisr"]), "--ref", str(lr)]) == 2
    assert main(["upscale", str(lr), "-o", str(out), "--model", str(models["refsr"]), "--ref", str(lr)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "give --ref" in err[0] and "takes no reference photo" in err[1] and "128x128 face, got 16x16" in err[2]

    summaries = {}
    for whose in ("same", "other"):
        ev = tmp_path / f"ev-{whose}"
        assert main(["evaluate", "--run", "--hr", str(root), "--protocol", "second", "--model", str(models["refsr"]),
                     "--ref-from", whose, "-o", str(ev)]) == 0
        summaries[whose] = json.loads((ev / "summary.json").read_text())
    assert summaries["same"]["images"] == 3 and "same identity" in summaries["same"]["reference"]
    assert summaries["same"]["metrics"]["psnr"]["mean"] != summaries["other"]["metrics"]["psnr"]["mean"]

    bench = tmp_path / "bench"
    assert main(["benchmark", "--hr", str(root), "-o", str(bench), "--method", f"ref={models['refsr']},ref=same",
                 f"ref-other={models['refsr']},ref=other", f"sisr={models['sisr']}"]) == 0
    rows = list(csv.DictReader(open(bench / "benchmark.csv")))
    assert [r["method"] for r in rows][2:] == ["ref", "ref-other", "sisr"]
    assert rows[2]["aux"] == "ref: same" and rows[3]["aux"] == "ref: other"
    assert abs(float(rows[2]["psnr"]) - summaries["same"]["metrics"]["psnr"]["mean"]) < 1e-9


def test_refsr_training_needs_references(tmp_path, sample_faces, capsys):
    cfg = config(tmp_path, sample_faces, "refsr", None)
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert "set data.reference" in capsys.readouterr().err


def test_an_unreadable_reference_leaves_out_only_its_probe(tmp_path, sample_faces, capsys, make_identity_root):
    from facesr.methods.refsr_vae import RefSRVAE, RefSRVAEConfig

    root = make_identity_root(images=3)
    bad = sorted(root.iterdir())[0] / "2.png"
    bad.write_bytes(b"not an image")
    RefSRVAE(RefSRVAEConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in WIDTHS.items()})).save_pretrained(
        tmp_path / "m")
    ev = tmp_path / "ev"
    assert main(["evaluate", "--run", "--hr", str(root), "--protocol", "second", "--model", str(tmp_path / "m"),
                 "-o", str(ev)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert str(bad) in err[0] and "could not be evaluated" in err[-1]
    summary = json.loads((ev / "summary.json").read_text())
    assert summary["images"] == 2 and summary["unusable_images"] == [err[0]]
