"""`facesr report`: the forensic report on a chip and on a face in a photo, its JSON, its bad input, and the
page rendered in headless Chromium (Debian's, driven by playwright)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facesr.cli import main
from facesr.degrade.protocol import LRProtocol
from facesr.io.images import read_image
from facesr.io.weights import file_sha256
from facesr.methods.hub import WEIGHTS_DIR

pytestmark = pytest.mark.slow
SAMPLES = Path(__file__).resolve().parents[2] / "src" / "facesr" / "samples" / "faces"


@pytest.fixture(scope="module")
def probe_and_gallery(tmp_path_factory):
    """The LR x8 chip of one sample face, and a flat gallery of the six sample faces (identity = file stem)."""
    root = tmp_path_factory.mktemp("report")
    gallery = root / "gallery"
    shutil.copytree(SAMPLES, gallery)
    face = sorted(SAMPLES.glob("*.png"))[2]
    lr, _ = LRProtocol.of("bicubic", 8).lr_image(read_image(face))
    probe = root / "probe.png"
    Image.fromarray(lr).save(probe)
    return probe, gallery, face.stem


@pytest.fixture(scope="module")
def report(probe_and_gallery, tmp_path_factory):
    probe, gallery, _ = probe_and_gallery
    out = tmp_path_factory.mktemp("out")
    assert main(["report", str(probe), "--gallery", str(gallery), "--model", "msrresnet-x8", "--samples", "3",
                 "--precision", "fp32", "-o", str(out)]) == 0
    return out, json.loads((out / "report.json").read_text())


def test_report_json_holds_both_judges_and_the_provenance(report, probe_and_gallery):
    out, rep = report
    _, _, person = probe_and_gallery
    assert [j["judge"] for j in rep["judges"]] == ["dlib-resnet-v1", "faceplugin-arcface"]
    # msrresnet-x8 was trained with dlib's identity loss: dlib is not an independent judge of it, ArcFace is
    assert [j["independent"] for j in rep["judges"]] == [False, True]
    for j in rep["judges"]:
        # a regression model gives the same face for every seed: stability 1 by construction
        assert j["samples"]["stability"] == 1.0 and j["samples"]["samples"] == 3
        assert len(j["samples"]["candidates"]) == 5
        assert j["gallery_identities"] == 6
        for c in j["samples"]["candidates"]:
            assert c["low"] <= c["median"] <= c["high"] and 0 <= c["fmr"] <= 1 and c["fmr_text"]
        # ... which is no stability: the verdict says so instead of calling them stable
        assert j["verdict"].startswith("No stability: this model draws nothing")
        assert j["posterior_mean"]["samples"] == 1 and j["bicubic"]["samples"] == 1
    assert rep["judges"][1]["samples"]["top_identity"] == person  # the independent judge knows who it is
    assert rep["verdict"] == rep["judges"][0]["verdict"]
    assert rep["model"]["weights_sha256"] == file_sha256(WEIGHTS_DIR / "msrresnet-x8" / "ema.safetensors")
    assert rep["model"]["lr_protocol"] == "bicubic x8" and rep["sampling"]["seeds"] == [0, 1, 2]
    assert rep["where"] == {"kind": "chip", "size": [16, 16]}
    assert len(rep["lr_consistency"]) == 3 and all(c < 5 for c in rep["lr_consistency"])
    assert rep["facesr_version"] and rep["references"] is None


def test_the_page_renders_in_headless_chromium(report, tmp_path, chromium):
    out, rep = report
    html = (out / "report.html").read_text()
    assert "http://" not in html and "https://" not in html  # self-contained: nothing fetched from elsewhere
    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    page.goto((out / "report.html").as_uri())
    widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
    assert len(widths) == 4 + 3 and all(w > 0 for w in widths)  # LR, bicubic, mean, std + 3 samples
    assert page.locator(".verdict").count() == 2
    assert "No stability: this model draws nothing" in page.locator(".verdict").first.inner_text()
    assert page.locator(".joint-verdict").inner_text() == rep["verdict"]
    assert "Provenance" in page.inner_text("body")
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert Image.open(tmp_path / "report.png").size[0] == 1200


def test_a_face_in_a_photo(probe_and_gallery, tmp_path):
    _, gallery, person = probe_and_gallery
    face = read_image(SAMPLES / f"{person}.png")
    photo = np.full((200, 300, 3), 120, np.uint8)
    photo[40:168, 100:228] = face
    small = Image.fromarray(photo).resize((300 // 7, 200 // 7), Image.BICUBIC)  # a face of about 16 px
    small.save(tmp_path / "scene.png")
    assert main(["report", str(tmp_path / "scene.png"), "--gallery", str(gallery), "--model", "msrresnet-x8",
                 "--samples", "1", "--identity", "faceplugin", "--precision", "fp32", "-o", str(tmp_path / "o")]) == 0
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    assert rep["where"]["kind"] == "photo" and rep["where"]["faces_found"] == 1
    assert "no stability can be measured" in rep["judges"][0]["verdict"] and rep["verdict"] is None


def test_fasr_references_add_the_hijack_control(probe_and_gallery, tmp_path):
    probe, gallery, person = probe_and_gallery
    other = next(p for p in sorted(gallery.glob("*.png")) if p.stem != person)
    assert main(["report", str(probe), "--gallery", str(gallery), "--model", "fasr-x8", "--refs", str(other),
                 "--samples", "2", "--steps", "2", "--identity", "dlib", "faceplugin", "--precision", "fp32",
                 "--refs-gate", "-1", "-o", str(tmp_path / "o")]) == 0
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    dlib, arc = rep["judges"]
    assert dlib["independent"] is False and arc["independent"] is True  # FASR is conditioned on dlib vectors
    for j in rep["judges"]:
        h = j["hijack"]
        assert h["references_identity"] == other.stem  # a reference is its own best match
        assert "without_references" in h and isinstance(h["warning"], bool) and h["text"]
    assert rep["references"]["refs"] == [str(other)] and rep["condition_note"] is None
    assert rep["references"]["refs_embedder"] == "dlib"
    assert rep["references"]["gate"]["used"] is True and -1 <= rep["references"]["gate"]["score"] <= 1
    assert "not an independent judge" in (tmp_path / "o" / "report.html").read_text()
    # a gate no face passes: the references are not used, the samples are the face without them, and it is said
    assert main(["report", str(probe), "--gallery", str(gallery), "--model", "fasr-x8", "--refs", str(other),
                 "--samples", "2", "--steps", "2", "--identity", "faceplugin", "--precision", "fp32",
                 "--refs-gate", "1", "-o", str(tmp_path / "g")]) == 0
    rep = json.loads((tmp_path / "g" / "report.json").read_text())
    assert rep["references"]["gate"]["used"] is False and "references not used" in rep["condition_note"]
    h = rep["judges"][0]["hijack"]
    assert h["gated"] is True and h["warning"] is False and "their identity was not used" in h["text"]
    assert "references not used" in (tmp_path / "g" / "report.html").read_text()
    # without references: the model's null identity, said in the report; no reference control
    assert main(["report", str(probe), "--gallery", str(gallery), "--model", "fasr-x8", "--samples", "2",
                 "--steps", "2", "--identity", "faceplugin", "--precision", "fp32", "-o", str(tmp_path / "n")]) == 0
    rep = json.loads((tmp_path / "n" / "report.json").read_text())
    assert "null identity" in rep["condition_note"] and rep["references"] is None
    assert "hijack" not in rep["judges"][0] and "null identity" in (tmp_path / "n" / "report.html").read_text()


@pytest.mark.parametrize("case, message", [
    ("no-gallery", "the gallery is not a folder"),
    ("empty-gallery", "no gallery images"),
    ("not-an-image", "probe.png"),
    ("bad-face", "--face 3: the photo has"),
    ("refsr-no-ref", "give --ref"),
    ("samples", "--samples must be at least 1"),
    ("empty-identity", "an identity folder of the gallery with no images"),
    ("bad-onnx", "judge.onnx: not a usable ONNX model"),
    ("refs-embedder", "--refs-embedder 'faceplugin': fasr-x8 takes vectors in 'dlib''s space"),
])
def test_bad_input_is_one_line(probe_and_gallery, tmp_path, capsys, case, message):
    probe, gallery, _ = probe_and_gallery
    args = [str(probe), "--gallery", str(gallery), "--model", "msrresnet-x8", "--samples", "1", "-o", str(tmp_path / "o")]
    if case == "no-gallery":
        args[2] = str(tmp_path / "nowhere")
    elif case == "empty-gallery":
        (tmp_path / "empty").mkdir()
        args[2] = str(tmp_path / "empty")
    elif case == "not-an-image":
        bad = tmp_path / "probe.png"
        bad.write_bytes(b"not a png")
        args[0] = str(bad)
    elif case == "bad-face":
        big = np.asarray(Image.open(SAMPLES / sorted(p.name for p in SAMPLES.glob("*.png"))[0]))
        Image.fromarray(np.pad(big, ((40, 40), (40, 40), (0, 0)), mode="edge")).save(tmp_path / "photo.png")
        args[0] = str(tmp_path / "photo.png")
        args += ["--face", "3"]
    elif case == "refsr-no-ref":
        args[4] = "refsr-vae-x8"
    elif case == "samples":
        args[6] = "0"
    elif case == "empty-identity":
        g = tmp_path / "g"
        shutil.copytree(gallery, g / "Someone")
        (g / "Nobody").mkdir()
        args[2] = str(g)
    elif case == "refs-embedder":
        args[4] = "fasr-x8"
        args += ["--refs", str(probe), "--refs-embedder", "faceplugin"]
    elif case == "bad-onnx":
        (tmp_path / "judge.onnx").write_bytes(b"\x08\x01garbage")
        args += ["--identity", f"onnx:{tmp_path / 'judge.onnx'}"]
    assert main(["report", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "o" / "report.html").exists()


def test_the_report_draws_samples_where_the_recipe_averages_one_step_estimates(probe_and_gallery, tmp_path):
    """sr3-x8-res's recipe averages one-step estimates of the mean, whose agreement is not a stability: the report
    draws its samples with the model's "draws" steps instead, and one-step samples asked for get no verdict."""
    probe, gallery, _ = probe_and_gallery
    args = [str(probe), "--gallery", str(gallery), "--model", "sr3-x8-res", "--samples", "2", "--identity", "faceplugin"]
    assert main(["report", *args, "-o", str(tmp_path / "o")]) == 0
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    assert rep["sampling"]["steps"] == 8 and not rep["verdict"].startswith("No stability")
    assert rep["model"]["identity_networks"] == ["dlib"]  # its regression base was trained with dlib's loss
    assert main(["report", *args, "--steps", "1", "-o", str(tmp_path / "o1")]) == 0
    rep = json.loads((tmp_path / "o1" / "report.json").read_text())
    assert rep["sampling"]["steps"] == 1 and rep["verdict"].startswith("No stability: with one step per sample")
    assert rep["judges"][0]["verdict"] == rep["verdict"]  # no judge calls such samples stable either

    # a model that draws nothing: its samples are one image, which no judge may call stable
    assert main(["report", *args[:3], "--model", "msrresnet-x8", *args[5:], "-o", str(tmp_path / "o2")]) == 0
    rep = json.loads((tmp_path / "o2" / "report.json").read_text())
    assert rep["verdict"].startswith("No stability: this model draws nothing")
    assert [j["verdict"] for j in rep["judges"]] == [rep["verdict"]]
