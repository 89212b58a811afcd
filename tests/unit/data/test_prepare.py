"""facesr prepare as a library call: every bad input is reported once and left out; names never collide."""

import json

import numpy as np
import pytest
from PIL import Image

from facesr.data.prepare import check_output_folder, prepare, unique_name
from facesr.errors import FacesrError


def _save(path, h, w=None, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w or h, 3), dtype=np.uint8)).save(path)
    return path


def test_unique_name_is_case_insensitive_and_never_reuses_a_name():
    used = set()
    assert [unique_name(s, used) for s in ("face", "Face", "face_2", "face", "other")] == \
        ["face", "Face_2", "face_2_2", "face_3", "other"]


def test_check_output_folder(tmp_path):
    assert check_output_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    (tmp_path / "f").write_text("")
    with pytest.raises(FacesrError, match=r"f: is a file, not a folder \(the output folder\)"):
        check_output_folder(tmp_path / "f")
    with pytest.raises(FacesrError, match=r"f/a/b: is inside .*f, which is a file"):
        check_output_folder(tmp_path / "f" / "a" / "b")


def test_prepare_reports_each_bad_input_and_writes_the_rest(tmp_path):
    src = tmp_path / "src"
    _save(src / "x" / "face.png", 128, seed=1)
    _save(src / "y" / "face.jpg", 200, 150, seed=2)  # not square, larger: centre crop, then down
    _save(src / "y" / "FACE.png", 130, seed=3)  # the same name on a case-insensitive file system
    _save(src / "thin.png", 300, 100)  # its short side is below 128
    (src / "broken.png").write_bytes(b"\x89PNG broken")
    errors = []
    meta = prepare([src, tmp_path / "missing", str(tmp_path / "none*.png")], tmp_path / "out", on_error=errors.append)
    assert len(errors) == 4 and meta["skipped"] == errors
    assert errors[0] == f"{tmp_path / 'missing'}: no such file or folder"
    assert errors[1] == f"{tmp_path / 'none*.png'}: pattern matches no images"
    assert any(e.endswith("thin.png: 100x300 is smaller than the 128x128 HR size; prepare does not upsample") for e in errors)
    assert any("broken.png" in e for e in errors)
    names = sorted(p.name for p in (tmp_path / "out" / "hr_128").iterdir())
    assert len(names) == meta["images"] == 3 and len({n.casefold() for n in names}) == 3
    on_disk = json.loads((tmp_path / "out" / "degradation.json").read_text())
    assert on_disk["images"] == 3 and len(on_disk["renamed"]) == 2


def test_prepare_without_any_usable_input_is_one_error(tmp_path):
    with pytest.raises(FacesrError, match="missing: no such file or folder|no images found"):
        prepare([tmp_path / "missing"], tmp_path / "out", on_error=lambda m: None)
    assert not (tmp_path / "out").exists()
