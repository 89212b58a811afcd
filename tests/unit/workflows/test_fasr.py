"""FASR end to end: features files, training with identity vectors, evaluate --aux, upscale --refs."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from facesr.cli import main
from facesr.identity.features import FeatureTable

pytestmark = pytest.mark.slow
pytest.importorskip("dlib")


def identity_root(tmp_path, sample_faces, people=3, images=4):
    """<root>/<person>/<k>.png: each person's images are a sample face and small brightness changes of it."""
    root = tmp_path / "ids"
    for face in sorted(sample_faces.glob("*.png"))[:people]:
        folder = root / face.stem
        folder.mkdir(parents=True)
        img = np.asarray(Image.open(face).convert("RGB")).astype(np.float32)
        for k in range(images):
            Image.fromarray(np.clip(img * (1 + 0.03 * k), 0, 255).astype(np.uint8)).save(folder / f"{k}.png")
    return root


def fasr_config(tmp_path, sample_faces, vectors, init_from=None):
    cfg = {
        "name": "fasr", "method": "sr3", "init_from": init_from,
        "model": {"unet": {"block_out_channels": [32, 32], "attention_levels": [], "norm_num_groups": 8,
                           "vector_dim": 128, "vector_embedder": "dlib"},
                  "diffusion": {"schedule": "linear", "timesteps": 50}, "scale": 8, "hr_size": 128},
        "data": {"train_dirs": [str(sample_faces)], "patch_size": 32, "vectors": [str(v) for v in vectors]},
        "optim": {"batch_size": 2, "warmup_steps": 1, "max_steps": 2, "checkpoint_every": 2, "mixed_precision": "no"},
    }
    path = tmp_path / "fasr.json"
    path.write_text(json.dumps(cfg))
    return path


def test_features_per_identity_and_per_image(tmp_path, sample_faces):
    root = identity_root(tmp_path, sample_faces, people=2, images=3)
    assert main(["features", str(root), str(tmp_path / "ids.safetensors"), "--skip", "2", "--lr", "bicubic:8"]) == 0
    table = FeatureTable.load(tmp_path / "ids.safetensors")
    assert table.names == sorted(p.name for p in root.iterdir()) and table.vectors.shape == (2, 128)
    assert table.meta["counts"] == {n: 1 for n in table.names} and table.meta["view"] == "lr:bicubic:8"
    # one aux image, no re-normalisation: the row is that image's unit embedding
    assert np.allclose(np.linalg.norm(table.vectors, axis=1), 1, atol=1e-5)
    assert main(["features", str(sample_faces), str(tmp_path / "img.safetensors"), "--per-image", "--limit", "3"]) == 0
    per = FeatureTable.load(tmp_path / "img.safetensors")
    assert len(per.names) == 3 and per.meta["kind"] == "per_image" and per.names[0] == "Ai_Sugiyama_0003.png"


def test_features_of_other_images_per_image(tmp_path, sample_faces, capsys):
    root = identity_root(tmp_path, sample_faces, people=2, images=4)
    assert main(["features", str(root), str(tmp_path / "img.safetensors"), "--per-image"]) == 0
    own = FeatureTable.load(tmp_path / "img.safetensors")
    for others, expect_count in (("all", 3), ("2", 2)):
        out = tmp_path / f"others-{others}.safetensors"
        assert main(["features", str(root), str(out), "--per-image", "--others", others, "--seed", "1"]) == 0
        table = FeatureTable.load(out)
        assert table.names == own.names and table.meta["kind"] == "per_image"
        for name, row in zip(table.names, table.vectors):
            person = name.split("/")[0]
            mates = [own.get(n) for n in own.names if n.startswith(person + "/") and n != name]
            # the row is the mean of `expect_count` of the other images' embeddings (its own is not among them)
            if others == "all":
                assert np.allclose(row, np.mean(mates, axis=0), atol=1e-5)
            else:
                subsets = [np.mean([mates[i], mates[j]], axis=0) for i in range(3) for j in range(i + 1, 3)]
                assert any(np.allclose(row, m, atol=1e-5) for m in subsets)
    assert main(["features", str(root), str(tmp_path / "x.safetensors"), "--others", "all"]) == 2
    assert "per-image" in capsys.readouterr().err
    assert main(["features", str(root), str(tmp_path / "x.safetensors"), "--per-image", "--others", "0"]) == 2
    assert "--others '0'" in capsys.readouterr().err


def test_train_from_an_unconditioned_model_then_evaluate_and_upscale(tmp_path, sample_faces, tiny_model, capsys):
    hr_feats, lr_feats = tmp_path / "hr.safetensors", tmp_path / "lr.safetensors"
    assert main(["features", str(sample_faces), str(hr_feats), "--per-image"]) == 0
    assert main(["features", str(sample_faces), str(lr_feats), "--per-image", "--lr", "bicubic:8"]) == 0
    run = tmp_path / "run"
    cfg = fasr_config(tmp_path, sample_faces, [hr_feats, lr_feats], init_from=str(tiny_model))
    assert main(["train", str(cfg), "--out", str(run), "--no-progress"]) == 0
    assert "new: net.vector_bias, net.vector_proj" in capsys.readouterr().out
    model_dir = tmp_path / "fasr-model"
    assert main(["export", str(run / "checkpoints" / "step-00000002"), str(model_dir)]) == 0

    root = identity_root(tmp_path, sample_faces)
    ev = tmp_path / "ev"
    assert main(["evaluate", "--run", "--hr", str(root), "--protocol", "second", "--model", str(model_dir),
                 "--aux", "1", "--steps", "2", "-o", str(ev)]) == 0
    summary = json.loads((ev / "summary.json").read_text())
    assert summary["images"] == 3 and summary["identity_condition"]["aux"] == "1"
    assert summary["guidance"] == 0 and summary["network_evaluations"] == 2
    assert main(["evaluate", "--run", "--hr", str(root), "--protocol", "second", "--model", str(model_dir),
                 "--aux", "1", "--aux-view", "hr", "--steps", "2", "--guidance", "1.5", "-o", str(tmp_path / "ev-guided")]) == 0
    guided = json.loads((tmp_path / "ev-guided" / "summary.json").read_text())
    assert guided["guidance"] == 1.5 and guided["network_evaluations"] == 4
    assert guided["identity_condition"]["aux_view"] == "hr" and summary["identity_condition"]["aux_view"] == "lr"
    # FASR needs identity folders
    assert main(["evaluate", "--run", "--hr", str(root), "--model", str(model_dir), "--steps", "1", "-o", str(ev)]) == 2

    probe = root / "Ai_Sugiyama_0003" / "1.png"
    lr_probe = tmp_path / "lr" / "Ai_Sugiyama_0003" / "probe.png"
    lr_probe.parent.mkdir(parents=True)
    Image.open(probe).resize((16, 16), Image.BICUBIC).save(lr_probe)
    out = tmp_path / "up"
    assert main(["upscale", str(lr_probe), "-o", str(out), "--model", str(model_dir), "--steps", "1",
                 "--refs", str(root / "Ai_Sugiyama_0003")]) == 0
    assert (out / "probe.png").is_file()
    # an unreadable reference image is reported and the others still make the vector; exit code 1
    (root / "Ai_Sugiyama_0003" / "9.png").write_bytes(b"")
    capsys.readouterr()
    assert main(["upscale", str(lr_probe), "-o", str(tmp_path / "up-bad"), "--model", str(model_dir), "--steps", "1",
                 "--refs", str(root / "Ai_Sugiyama_0003")]) == 1
    assert "9.png: empty file" in capsys.readouterr().err and (tmp_path / "up-bad" / "probe.png").is_file()
    (root / "Ai_Sugiyama_0003" / "9.png").unlink()
    # batch mode: a features file, one row per identity folder; an identity without a row fails alone
    feats = tmp_path / "ids.safetensors"
    assert main(["features", str(root), str(feats), "--skip", "2"]) == 0
    other = tmp_path / "lr" / "Nobody" / "probe2.png"
    other.parent.mkdir()
    shutil.copy(lr_probe, other)
    capsys.readouterr()
    assert main(["upscale", str(lr_probe), str(other), "-o", str(tmp_path / "up2"), "--model", str(model_dir),
                 "--steps", "1", "--refs", str(feats)]) == 1
    err = capsys.readouterr().err
    assert "no features for identity 'Nobody'" in err and (tmp_path / "up2" / "probe.png").is_file()
    # a FASR model without --refs runs on its null identity and says so in one line
    capsys.readouterr()
    assert main(["upscale", str(lr_probe), "-o", str(tmp_path / "null"), "--model", str(model_dir), "--steps", "1"]) == 0
    said = [line for line in capsys.readouterr().out.splitlines() if "null identity" in line]
    assert len(said) == 1 and (tmp_path / "null" / "probe.png").is_file()
    # --refs for a model without identity input: one line
    assert main(["upscale", str(lr_probe), "-o", str(out), "--model", str(tiny_model), "--steps", "1",
                 "--refs", str(feats)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "takes no identity vector" in err[0]


def test_training_refuses_mismatched_vectors(tmp_path, sample_faces, capsys):
    feats = tmp_path / "ids.safetensors"
    root = identity_root(tmp_path, sample_faces, people=1, images=3)
    assert main(["features", str(root), str(feats)]) == 0
    cfg = fasr_config(tmp_path, sample_faces, [feats])
    capsys.readouterr()
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert "made per identity" in capsys.readouterr().err
    cfg = fasr_config(tmp_path, sample_faces, [])
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert "set data.vectors" in capsys.readouterr().err


def test_dataset_draws_a_vector_per_item(tmp_path, sample_faces):
    from facesr.data.datasets import HRFolderDataset
    from facesr.degrade.protocol import LRProtocol

    names = sorted(p.name for p in sample_faces.glob("*.png"))
    a = FeatureTable(names[:4], np.ones((4, 5)), {"kind": "per_image"})
    b = FeatureTable(names[2:], -np.ones((4, 5)), {"kind": "per_image"})
    ds = HRFolderDataset([sample_faces], LRProtocol.of("bicubic", 8), 128, 32, vectors=[a, b])
    assert len(ds) == 6
    g = torch.Generator().manual_seed(0)
    drawn = {name: set() for name in names}
    for _ in range(6):
        for i, name in enumerate(ds.keys):
            drawn[name].add(float(ds.item(i, g)["vector"][0]))
    assert drawn[names[0]] == {1.0} and drawn[names[5]] == {-1.0} and drawn[names[2]] == {1.0, -1.0}
    only_a = HRFolderDataset([sample_faces], LRProtocol.of("bicubic", 8), 128, 32, vectors=[a])
    assert only_a.keys == names[:4]


def test_aux_vectors_of_the_next_identity_are_the_control(tmp_path, sample_faces):
    from types import SimpleNamespace

    from facesr.degrade.protocol import LRProtocol
    from facesr.errors import FacesrError
    from facesr.engine.conditions import aux_vectors
    from facesr.methods.base import Needs

    root = identity_root(tmp_path, sample_faces, people=3, images=4)
    model = SimpleNamespace(needs=Needs(vector_dim=128, vector_embedder="dlib"), name="stand-in",
                            lr_protocol=LRProtocol.of("bicubic", 8))
    probes = [folder / "1.png" for folder in sorted(root.iterdir())]
    same = aux_vectors(model, probes)
    other = aux_vectors(model, probes, whose="other")
    assert len(same) == len(other) == 3
    for i, probe in enumerate(probes):  # the next folder in sorted order, cyclically
        assert torch.equal(other[probe], same[probes[(i + 1) % 3]])
        assert not torch.allclose(other[probe], same[probe])
    assert aux_vectors(model, probes[:1], whose="other") == {}  # no other identity among the probes
    with pytest.raises(FacesrError, match="'same', 'other' or 'none'"):
        aux_vectors(model, probes, whose="nobody")
    null = aux_vectors(model, probes, whose="none")  # the null identity for every probe
    assert list(null) == probes and all(torch.equal(v, torch.zeros(128)) for v in null.values())
    # the HR view embeds the aux images as they are: the mean over the 3rd and 4th image, against a direct loop
    from facesr.io.images import read_image
    from facesr.identity.embedders import make_embedder

    hr_view = aux_vectors(model, probes, view="hr")
    embedder = make_embedder("dlib")
    for probe in probes:
        direct = np.mean([embedder.embed([read_image(probe.parent / f"{k}.png")])[0] for k in (2, 3)], axis=0)
        assert np.allclose(hr_view[probe].numpy(), direct, atol=1e-5)
        assert not torch.allclose(hr_view[probe], same[probe], atol=1e-3)
    with pytest.raises(FacesrError, match="'lr' or 'hr'"):
        aux_vectors(model, probes, view="mid")
    # another network of dlib's space embeds them when asked: an untrained student gives dlib's vectors
    from facesr.identity.dlib_resnet import load_dlib_resnet
    from facesr.identity.student import save_student

    save_student(load_dlib_resnet(), tmp_path / "student", {"operator": "bicubic", "scale": 8})
    by_student = aux_vectors(model, probes, embedder=f"dlib-lq:{tmp_path / 'student'}")
    assert all(torch.allclose(by_student[p], same[p], atol=1e-6) for p in probes)
    with pytest.raises(FacesrError, match="takes vectors in 'dlib'"):
        aux_vectors(model, probes, embedder="dlib-detect")


def test_benchmark_table_over_methods(tmp_path, sample_faces, tiny_model, capsys):
    import csv

    from facesr.methods.sr3 import SR3, SR3Config
    from facesr.nets.unet import UNetConfig
    from facesr.diffusion.schedules import DDPMConfig

    torch.manual_seed(0)
    fasr = SR3(SR3Config(unet=UNetConfig(block_out_channels=(32, 32), attention_levels=(), norm_num_groups=8,
                                         vector_dim=128), diffusion=DDPMConfig(timesteps=50)))
    fasr.save_pretrained(tmp_path / "fasr")
    root = identity_root(tmp_path, sample_faces, people=3, images=3)
    (root / "two_only").mkdir()
    for k in range(2):  # no aux image: left out of every row, so all rows share one probe set
        shutil.copy(root / "Ai_Sugiyama_0003" / f"{k}.png", root / "two_only" / f"{k}.png")
    out = tmp_path / "bench"
    assert main(["benchmark", "--hr", str(root), "-o", str(out), "--method", f"sr3={tiny_model},steps=2",
                 f"fasr-1={tmp_path / 'fasr'},aux=1,steps=2", f"fasr-x={tmp_path / 'fasr'},ref=other,steps=2",
                 f"fasr-hr={tmp_path / 'fasr'},view=hr,steps=2,guidance=1", f"fasr-0={tmp_path / 'fasr'},ref=none,steps=1",
                 "--baseline", "sr3"]) == 0
    rows = list(csv.DictReader(open(out / "benchmark.csv")))
    assert [r["method"] for r in rows] == ["HR (ceiling)", "bicubic", "sr3", "fasr-1", "fasr-x", "fasr-hr", "fasr-0"]
    assert {r["faces"] for r in rows} == {"3"} and rows[3]["aux"] == "1" and rows[2]["network_evaluations"] == "2"
    assert rows[4]["aux"] == "all (next identity's)"
    assert rows[5]["aux"] == "all, HR view, guidance w = 1" and rows[5]["network_evaluations"] == "4"  # guidance: 2 evaluations a step
    assert rows[6]["aux"] == "none (zero vector)" and rows[6]["faces"] == "3"
    summary = json.loads((out / "sr3" / "summary.json").read_text())
    assert abs(float(rows[2]["psnr"]) - summary["metrics"]["psnr"]["mean"]) < 1e-9
    assert float(rows[0]["rank1"]) == summary["identity"]["hr_probes"]["rank1"]
    text = (out / "benchmark.md").read_text()
    assert "| fasr-1 |" in text
    # two judges by default, each in its own columns; the one that made FASR's condition is named as such
    assert list(summary["judges"]) == ["dlib-resnet-v1", "faceplugin-arcface"]
    assert "| CS (dlib-resnet-v1) | rank-1 (dlib-resnet-v1) | CS (faceplugin-arcface) | rank-1 (faceplugin-arcface) |" in text
    assert ("Rows fasr-1, fasr-x, fasr-hr, fasr-0 were conditioned on or trained with the dlib face network: the "
            "dlib-resnet-v1 columns judge them with that network") in text
    second = summary["judges"]["faceplugin-arcface"]
    assert float(rows[2]["rank1:faceplugin-arcface"]) == second["sr_probes"]["rank1"]
    assert float(rows[1]["cs:faceplugin-arcface"]) == pytest.approx(second["bicubic_cs"]["mean"])
    per_image = list(csv.DictReader(open(out / "sr3" / "per_image.csv")))
    assert all(-1 <= float(p["faceplugin-arcface:cs"]) <= 1 for p in per_image)
    # per-probe ranks make the summary's rank-1, and the paired table agrees with both
    paired = json.loads((out / "paired.json").read_text())
    assert [r["label"] for r in paired["rows"]] == ["sr3", "fasr-1", "fasr-x", "fasr-hr", "fasr-0"]
    for row, paired_row in zip(rows[2:], paired["rows"]):
        per_image = list(csv.DictReader(open(out / row["method"] / "per_image.csv")))
        hits = [int(p["rank"]) == 1 for p in per_image]
        assert float(row["rank1"]) == pytest.approx(np.mean(hits)) == pytest.approx(paired_row["rank1"])
        assert float(row["rank1_low"]) <= float(row["rank1"]) <= float(row["rank1_high"])
        for p in per_image:  # names are <identity>__<stem> here; predicted is right exactly at rank 1
            assert (p["predicted"] == p["name"].partition("__")[0]) == (int(p["rank"]) == 1)
    assert "| fasr-1 |" in (out / "paired.md").read_text()
    second = json.loads((out / "paired-faceplugin-arcface.json").read_text())  # the independent judge's paired table
    for row, paired_row in zip(rows[2:], second["rows"]):
        assert float(row["rank1:faceplugin-arcface"]) == pytest.approx(paired_row["rank1"])
    assert "CS and rank-1 by faceplugin-arcface" in (out / "paired-faceplugin-arcface.md").read_text()
    capsys.readouterr()
    assert main(["benchmark", "--hr", str(root), "--method", f"sr3={tiny_model}", "--baseline", "bicubic"]) == 2
    assert "baseline 'bicubic' is not one of the method labels" in capsys.readouterr().err
    assert main(["benchmark", "--hr", str(root), "--method", f"sr3={tiny_model}", "--baseline", "sr3",
                 "-o", str(tmp_path / "alone")]) == 2
    assert "baseline 'sr3' is the only method" in capsys.readouterr().err
    assert not (tmp_path / "alone").exists()  # refused before any run
    assert main(["benchmark", "--hr", str(root), "--method", f"x={tiny_model},aux=2"]) == 2
    assert main(["benchmark", "--hr", str(root), "--method", "nolabel"]) == 2
    err = capsys.readouterr().err
    assert "aux, view and embedder are only for FASR models" in err and "expected LABEL=MODEL" in err
    assert main(["benchmark", "--hr", str(root), "--method", f"x={tiny_model},gate=0.5"]) == 2
    assert "method x: gate is only for models whose references pull toward an identity" in capsys.readouterr().err
