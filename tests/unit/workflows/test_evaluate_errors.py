"""evaluate as a library call: each bad pair is one message naming the file; the others are scored."""

import json

import numpy as np
import pytest
from PIL import Image

from facesr.degrade.protocol import LRProtocol
from facesr.errors import FacesrError
from facesr.workflows.evaluate import evaluate_folders, find_protocol


def _save(path, size, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def test_two_files_with_one_stem_are_reported_not_silently_merged(tmp_path):
    hr, sr = tmp_path / "hr", tmp_path / "sr"
    _save(hr / "a" / "face.png", 128, 1)
    _save(hr / "b" / "face.png", 128, 2)
    _save(hr / "c" / "other.png", 128, 3)
    _save(sr / "face.png", 128, 1)
    _save(sr / "other.png", 128, 3)
    errors = []
    res = evaluate_folders(sr, hr, LRProtocol.of("bicubic", 8), on_error=errors.append)
    assert errors == [f"{hr / 'b' / 'face.png'}: same file stem as {hr / 'a' / 'face.png'}; HR images are matched by "
                      "stem, so it is left out"]
    assert [r["name"] for r in res["rows"]] == ["face", "other"] and res["summary"]["failures"] == errors


def test_missing_folders_are_one_error(tmp_path):
    _save(tmp_path / "sr" / "x.png", 128)
    with pytest.raises(FacesrError, match="nowhere: HR folder not found"):
        evaluate_folders(tmp_path / "sr", tmp_path / "nowhere", LRProtocol.of("bicubic", 8))
    with pytest.raises(FacesrError, match="nolr: LR folder not found"):
        evaluate_folders(tmp_path / "sr", tmp_path / "sr", LRProtocol.of("bicubic", 8), lr_dir=tmp_path / "nolr")


@pytest.mark.parametrize("record", [{"operator": {"name": "bicubic", "scale": "8"}},
                                    {"operator": {"name": "bicubic"}},
                                    {"protocol": "bicubic x8"}])
def test_an_unusable_operator_record_names_its_file(tmp_path, record):
    (tmp_path / "lr").mkdir()
    (tmp_path / "degradation.json").write_text(json.dumps(record))
    with pytest.raises(FacesrError) as info:
        find_protocol(tmp_path / "sr", tmp_path / "lr")
    assert str(info.value).startswith(f"{tmp_path / 'degradation.json'}: not a usable LR operator record (")
    assert str(info.value).endswith("pass --op and --scale to say which operator made the LR images")


def test_json_that_is_not_an_operator_record_is_passed_over(tmp_path):
    (tmp_path / "lr").mkdir()
    (tmp_path / "degradation.json").write_text("[1, 2]")
    (tmp_path / "summary.json").write_text("not json")
    assert find_protocol(tmp_path / "sr", tmp_path / "lr") is None


def test_an_hr_image_without_sr_is_reported_unless_the_lr_folder_leaves_it_out(tmp_path):
    hr, sr, lr = tmp_path / "hr", tmp_path / "sr", tmp_path / "lr"
    for i, name in enumerate(("a", "b", "c")):
        _save(hr / f"{name}.png", 128, i)
    for name in ("a", "b"):
        Image.open(hr / f"{name}.png").save(_save(sr / f"{name}.png", 128))
        Image.open(hr / f"{name}.png").resize((16, 16), Image.BICUBIC).save(_save(lr / f"{name}.png", 16))
    errors = []
    res = evaluate_folders(sr, hr, LRProtocol.of("bicubic", 8), on_error=errors.append)
    assert errors == [f"{hr / 'c.png'}: no SR image with stem 'c' in {sr}"] and len(res["rows"]) == 2
    errors.clear()
    res = evaluate_folders(sr, hr, LRProtocol.of("bicubic", 8), lr_dir=lr, on_error=errors.append)
    assert errors == [] and len(res["rows"]) == 2  # c was not among the faces to restore
    Image.open(hr / "c.png").resize((16, 16), Image.BICUBIC).save(lr / "c.png")
    res = evaluate_folders(sr, hr, LRProtocol.of("bicubic", 8), lr_dir=lr, on_error=errors.append)
    assert errors == [f"{hr / 'c.png'}: no SR image with stem 'c' in {sr}"] and len(res["rows"]) == 2
