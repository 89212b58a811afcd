"""The error contract of the data and scoring commands (issue 17): every user mistake is one line on stderr
naming the input and the problem, a bad item never sinks the others (they are still written or scored, and the
command returns 1), and a mistake that stops the command returns 2 before any work, without a traceback."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from facesr.cli import main
from facesr.io.images import read_image


def _lines(err: str) -> list[str]:
    assert "Traceback" not in err, err
    return [line for line in err.strip().splitlines() if line]


def _one_line(err: str, *needles) -> str:
    lines = _lines(err)
    assert len(lines) == 1, err
    assert all(n in lines[0] for n in needles), lines[0]
    return lines[0]


def _line_with(lines: list[str], needle: str) -> str:
    found = [line for line in lines if needle in line]
    assert len(found) == 1, (needle, lines)
    return found[0]


def _save(path, size, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


# --- facesr prepare -----------------------------------------------------------------------------------------


def test_prepare_skips_small_images_names_same_stems_apart_and_goes_past_a_missing_path(tmp_path, capsys):
    src = tmp_path / "src"
    _save(src / "tiny1.png", 1)
    _save(src / "tiny16.png", 16)
    a = _save(src / "a" / "face.png", 128, seed=1)
    b = _save(src / "b" / "face.png", 160, seed=2)  # larger: centre-cropped and resized down
    out = tmp_path / "prep"
    code = main(["prepare", str(src), str(tmp_path / "nowhere.png"), str(out)])
    captured = capsys.readouterr()
    lines = _lines(captured.err)
    assert code == 1
    assert _line_with(lines, "tiny16.png").endswith(
        "tiny16.png: 16x16 is smaller than the 128x128 HR size; prepare does not upsample")
    assert _line_with(lines, "tiny1.png").endswith(
        "tiny1.png: 1x1 is smaller than the 128x128 HR size; prepare does not upsample")
    assert _line_with(lines, "nowhere.png").endswith("nowhere.png: no such file or folder")
    assert "divisible" not in captured.err
    # the two faces have distinct outputs, and the count is the number of files really written
    for sub in ("hr_128", "lr_16", "sr_16_128"):
        assert sorted(p.name for p in (out / sub).iterdir()) == ["face.png", "face_2.png"]
    assert np.array_equal(read_image(out / "hr_128" / "face.png"), read_image(a))
    assert not np.array_equal(read_image(out / "hr_128" / "face.png"), read_image(out / "hr_128" / "face_2.png"))
    meta = json.loads((out / "degradation.json").read_text())
    assert meta["images"] == 2 and len(meta["skipped"]) == 3
    assert meta["renamed"] == {str(b.resolve()): "face_2.png"}
    assert "wrote 2 image(s)" in captured.out and "1 renamed" in captured.out


def test_prepare_into_a_file_is_one_line_before_any_work(tmp_path, capsys, sample_faces):
    target = tmp_path / "taken"
    target.write_text("x")
    assert main(["prepare", str(sample_faces), str(target)]) == 2
    _one_line(capsys.readouterr().err, "facesr prepare: error:", str(target), "is a file, not a folder")


# --- facesr prepare-video -----------------------------------------------------------------------------------


def test_prepare_video_reports_a_missing_source_and_prepares_the_others(tmp_path, capsys):
    clip = tmp_path / "clip"
    for i in range(6):
        _save(clip / f"{i:04d}.png", 128, seed=i)
    (clip / "meta.json").write_text(json.dumps({"fps": 2}))
    out = tmp_path / "out"
    code = main(["prepare-video", str(tmp_path / "gone.mp4"), str(clip), str(out), "--frames", "2", "--interval", "1"])
    captured = capsys.readouterr()
    assert code == 1
    _one_line(captured.err, "gone.mp4", "no such file or folder")
    assert sorted(p.name for p in (out / "hr_128" / "clip").iterdir()) == ["frame_0.png", "frame_1.png"]
    assert "wrote 1 clip(s)" in captured.out
    assert json.loads((out / "clips.json").read_text())["skipped"][0]["source"] == str(tmp_path / "gone.mp4")


# --- facesr features ----------------------------------------------------------------------------------------


def test_features_into_an_existing_folder_is_one_line_and_leaves_no_temp_file(tmp_path, capsys, sample_faces):
    folder = tmp_path / "feats"
    folder.mkdir()
    assert main(["features", str(sample_faces), str(folder), "--per-image"]) == 2
    _one_line(capsys.readouterr().err, "facesr features: error:", str(folder), "is a folder")
    assert list(folder.iterdir()) == []
    assert [p.name for p in tmp_path.iterdir()] == ["feats"]


def test_a_features_file_that_cannot_be_written_leaves_no_temp_file(tmp_path, monkeypatch):
    from facesr.errors import FacesrError
    from facesr.identity.features import FeatureTable

    table = FeatureTable(["a"], np.ones((1, 4)))
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(FacesrError, match="blocker: is a file, not a folder"):
        table.save(blocker / "f.safetensors")
    (tmp_path / "dir.safetensors").mkdir()
    with pytest.raises(FacesrError, match="dir.safetensors: is a folder; give the features file to write"):
        table.save(tmp_path / "dir.safetensors")
    full = tmp_path / "full"
    full.mkdir()

    def no_space(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("facesr.io.weights.os.replace", no_space)
    with pytest.raises(FacesrError, match=r"f.safetensors: cannot write the features file \(No space left on device\)"):
        table.save(full / "f.safetensors")
    assert list(full.iterdir()) == []  # the temporary file is gone
    monkeypatch.undo()
    table.save(tmp_path / "new" / "f.safetensors")  # a missing folder is made
    assert FeatureTable.load(tmp_path / "new" / "f.safetensors").names == ["a"]
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["f.safetensors"]


# --- facesr evaluate ----------------------------------------------------------------------------------------


def test_evaluate_into_a_file_is_one_line_before_the_model_is_loaded(tmp_path, capsys, sample_faces):
    target = tmp_path / "report.json"
    target.write_text("{}")
    assert main(["evaluate", "--run", "--hr", str(sample_faces), "--model", "msrresnet-x8", "-o", str(target)]) == 2
    _one_line(capsys.readouterr().err, "facesr evaluate: error:", str(target), "is a file, not a folder", "-o")
    assert main(["evaluate", "--sr", str(sample_faces), "--hr", str(sample_faces), "-o", str(target / "sub")]) == 2
    _one_line(capsys.readouterr().err, str(target / "sub"), f"inside {target}, which is a file")
    assert target.read_text() == "{}"


def test_evaluate_folders_reports_each_bad_pair_and_scores_the_rest(tmp_path, capsys):
    hr, sr, lr = tmp_path / "hr", tmp_path / "sr", tmp_path / "lr"
    for name in ("good", "nosr", "small", "badlr"):
        _save(hr / f"{name}.png", 128, seed=len(name))
        img = read_image(hr / f"{name}.png")
        Image.fromarray(img).resize((16, 16), Image.BICUBIC).save(_save(lr / f"{name}.png", 16))
        if name != "nosr":
            Image.fromarray(img).save(_save(sr / f"{name}.png", 128))
    Image.open(sr / "small.png").resize((64, 64)).save(sr / "small.png")  # the wrong size
    Image.open(lr / "badlr.png").resize((16, 24)).save(lr / "badlr.png")  # D(SR) cannot match it
    _save(hr / "dot.png", 1)
    _save(sr / "dot.png", 1)
    out = tmp_path / "ev"
    code = main(["evaluate", "--sr", str(sr), "--hr", str(hr), "--lr", str(lr), "--op", "bicubic", "--scale", "8",
                 "-o", str(out)])
    lines = _lines(capsys.readouterr().err)
    assert code == 1
    assert f"{hr / 'nosr.png'}: no SR image with stem 'nosr' in {sr}" in lines
    assert f"{sr / 'small.png'}: SR is 64x64 but its HR {hr / 'small.png'} is 128x128: they must be the same size" in lines
    assert (f"{lr / 'badlr.png'}: LR is 16x24 but SR {sr / 'badlr.png'} is 128x128: the SR size must be the LR size x 8 "
            "(expected a 16x16 LR)") in lines
    assert f"{hr / 'dot.png'}: HR size 1x1 is not divisible by the scale 8, so no LR can be made for LR-consistency" in lines
    assert "listed in" in lines[-1] and len(lines) == 5
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    assert [r["name"] for r in rows] == ["good"] and float(rows[0]["psnr"]) > 40
    assert len(json.loads((out / "summary.json").read_text())["failures"]) == 4


def test_evaluate_run_leaves_out_an_identity_whose_gallery_image_is_bad(tmp_path, capsys, sample_faces, make_identity_root):
    pytest.importorskip("dlib")
    root = make_identity_root(images=2)
    people = sorted(p.name for p in root.iterdir())
    bad = root / people[1] / "0.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "ev"
    code = main(["evaluate", "--run", "--hr", str(root), "--protocol", "second", "--model", "msrresnet-x8",
                 "--identity", "dlib", "-o", str(out)])
    lines = _lines(capsys.readouterr().err)
    assert code == 1 and len(lines) == 2, lines
    assert lines[0].startswith(f"{bad}: ") and f"identity {people[1]} left out of the gallery" in lines[0]
    rows = {r["name"]: r for r in csv.DictReader(open(out / "per_image.csv"))}
    assert len(rows) == 3 and all(float(r["psnr"]) > 20 and float(r["cs"]) > 0.5 for r in rows.values())
    assert rows[f"{people[1]}__1"]["rank"] == "" and rows[f"{people[1]}__1"]["cs"] != ""  # scored, not ranked
    assert all(rows[f"{p}__1"]["rank"] == "1" for p in (people[0], people[2]))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["identity"]["gallery_identities"] == 2 and list(summary["identity"]["gallery_left_out"]) == [people[1]]
    assert summary["identity"]["sr_probes"]["probes_ranked"] == 2 and len(summary["failures"]) == 1


# --- facesr benchmark ---------------------------------------------------------------------------------------


def test_benchmark_reports_a_bad_gallery_image_once_and_still_writes_the_table(tmp_path, capsys, sample_faces, make_identity_root):
    pytest.importorskip("dlib")
    root = make_identity_root(images=2)
    people = sorted(p.name for p in root.iterdir())
    bad = root / people[0] / "0.png"
    bad.write_bytes(b"")
    out = tmp_path / "bench"
    code = main(["benchmark", "--hr", str(root), "--method", "a=msrresnet-x8", "b=msrresnet-x8", "--baseline", "a",
                 "-o", str(out)])
    lines = _lines(capsys.readouterr().err)
    assert code == 1
    assert lines == [f"{bad}: empty file; identity {people[0]} left out of the gallery (its probes get no rank)"]
    rows = list(csv.DictReader(open(out / "benchmark.csv")))
    assert [r["method"] for r in rows][2:] == ["a", "b"] and all(r["faces"] == "3" for r in rows)
    assert float(rows[2]["rank1"]) == 1.0  # over the 2 probes that have a gallery image
    assert float(rows[0]["detail"]) == 1.0 and float(rows[1]["detail"]) < float(rows[2]["detail"])  # bicubic smoothest
    text = (out / "benchmark.md").read_text()
    assert f"dlib-resnet-v1: left out of the gallery (its image could not be used): {people[0]}" in text
    assert f"faceplugin-arcface: left out of the gallery (its image could not be used): {people[0]}" in text
    paired = json.loads((out / "paired.json").read_text())["rows"]
    assert paired[1]["rank_probes"] == 2 and paired[1]["psnr_diff"]["mean"] == 0


def test_benchmark_into_a_file_is_one_line(tmp_path, capsys, sample_faces):
    target = tmp_path / "bench.md"
    target.write_text("")
    assert main(["benchmark", "--hr", str(sample_faces), "--method", "a=msrresnet-x8", "-o", str(target)]) == 2
    _one_line(capsys.readouterr().err, "facesr benchmark: error:", str(target), "is a file, not a folder")


# --- facesr compare -----------------------------------------------------------------------------------------


def _run(folder, rows):
    folder.mkdir(parents=True)
    with open(folder / "per_image.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "psnr", "cs", "rank"])
        w.writerows(rows)
    return folder


def test_compare_leaves_out_a_nan_and_names_the_run_probe_and_column(tmp_path, capsys):
    names = [f"p{i}" for i in range(6)]
    base = _run(tmp_path / "base", [(n, 28 + i, 0.9, 1) for i, n in enumerate(names)])
    other = _run(tmp_path / "other", [(n, "nan" if n == "p2" else 29 + i, 0.91, "" if n == "p4" else 1)
                                      for i, n in enumerate(names)])
    code = main(["compare", str(base), str(other), "-o", str(tmp_path / "cmp")])
    captured = capsys.readouterr()
    lines = _lines(captured.err)
    assert code == 1 and len(lines) == 2
    assert lines[0] == (f"{other}/per_image.csv: column 'psnr' has no number for 1 probe(s) (p2: 'nan'); "
                        "those values are left out")
    assert lines[1] == (f"{other}/per_image.csv: column 'rank' has no number for 1 probe(s) (p4: an empty cell); "
                        "those values are left out")
    rows = json.loads((tmp_path / "cmp" / "paired.json").read_text())["rows"]
    assert rows[1]["psnr"] == pytest.approx(np.mean([29, 30, 32, 33, 34])) and rows[1]["psnr_probes"] == 5
    assert rows[1]["psnr_diff"]["mean"] == pytest.approx(1.0) and rows[1]["psnr_diff"]["n"] == 5
    assert rows[1]["rank1"] == 1.0 and rows[1]["rank_probes"] == 5
    assert "were left out: other: PSNR on 5 of 6; other: rank-1 on 5 of 6 probes" in captured.out


def test_compare_names_the_probe_of_a_non_numeric_cell_and_numeric_looking_names_work(tmp_path, capsys):
    base = _run(tmp_path / "base", [("1", 28, 0.9, 1), ("02", 29, 0.9, 2), ("10", 30, 0.9, 1)])
    good = _run(tmp_path / "good", [("10", 31, 0.9, 1), ("1", 29, 0.9, 1), ("02", 30, 0.9, 1)])
    bad = _run(tmp_path / "bad", [("1", 28, "high", 1), ("02", 29, 0.9, 2), ("10", 30, 0.9, 1)])
    assert main(["compare", str(base), str(good), str(bad)]) == 1
    err = capsys.readouterr().err
    _one_line(err, f"{bad}/per_image.csv: column 'cs' has a non-numeric value at probe '1' ('high')")
    assert main(["compare", str(base), str(good)]) == 0
    assert main(["compare", str(base), str(bad)]) == 2
    _one_line(capsys.readouterr().err, "facesr compare: error:", "bad/per_image.csv", "'cs'", "probe '1'")


def test_compare_a_probe_named_twice_is_one_line(tmp_path, capsys):
    base = _run(tmp_path / "base", [("a", 28, 0.9, 1), ("b", 29, 0.9, 1)])
    twice = _run(tmp_path / "twice", [("a", 28, 0.9, 1), ("a", 29, 0.9, 1), ("b", 29, 0.9, 1)])
    assert main(["compare", str(base), str(twice)]) == 2
    _one_line(capsys.readouterr().err, "twice/per_image.csv: probe 'a' is in more than one row")
