"""The real dlib models on the six bundled sample faces (six different people)."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from facesr.io.images import list_images, read_image
from facesr.errors import InputError

SAMPLES = Path(__file__).resolve().parents[3] / "src" / "facesr" / "samples" / "faces"

pytest.importorskip("dlib")
from facesr.identity.embedders import DlibEmbedder  # noqa: E402


@pytest.fixture(scope="module")
def faces():
    paths = list_images(SAMPLES)
    assert len(paths) == 6
    return paths, [read_image(p) for p in paths]


@pytest.fixture(scope="module")
def aligned():
    return DlibEmbedder(aligned=True)


@pytest.fixture(scope="module")
def reference(aligned, faces):
    return aligned.embed(faces[1])


def _down_up(img, f):
    h, w = img.shape[:2]
    small = Image.fromarray(img).resize((w // f, h // f), Image.BICUBIC)
    return np.asarray(small.resize((w, h), Image.BICUBIC))


def test_unit_norm_128d(aligned, reference):
    assert aligned.dim == 128 and reference.shape == (6, 128) and reference.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(reference, axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("degrade", [lambda a: _down_up(a, 4),
                                     lambda a: np.asarray(Image.fromarray(a).filter(ImageFilter.GaussianBlur(1.5)))],
                         ids=["bicubic-x4-down-up", "blur-1.5"])
def test_degraded_copy_is_closer_than_any_other_person(aligned, faces, reference, degrade):
    deg = aligned.embed([degrade(a) for a in faces[1]])
    same = np.sum(reference * deg, axis=1)
    cross = reference @ deg.T
    other = reference @ reference.T
    np.fill_diagonal(cross, -1)
    np.fill_diagonal(other, -1)
    assert np.all(same > cross.max(axis=1)) and np.all(same > cross.max(axis=0))
    assert np.all(same > other.max(axis=1))


def test_tiny_lr_input_is_upsampled(aligned, faces, reference):
    lr = np.asarray(Image.fromarray(faces[1][0]).resize((16, 16), Image.BICUBIC))
    out = aligned.embed([lr])
    assert out.shape == (1, 128) and np.isfinite(out).all()


def test_detector_mode_finds_every_chip(faces, reference):
    hog = DlibEmbedder(aligned=False)
    assert hog.mode != DlibEmbedder().mode  # different cache keys
    out = hog.embed(faces[1])
    assert np.all(np.sum(out * reference, axis=1) > 0.99)
    with pytest.raises(InputError, match=r"images\[1\]: no face found"):
        hog.embed([faces[1][0], np.full((128, 128, 3), 128, np.uint8)])


def test_files_cache_and_corrupt_file(aligned, faces, reference, tmp_path):
    paths = []
    for p in faces[0]:
        shutil.copy(p, tmp_path / p.name)
        paths.append(tmp_path / p.name)
    bad = tmp_path / "Broken_0001.png"
    bad.write_bytes(faces[0][0].read_bytes()[:200])  # truncated PNG
    batch = paths[:3] + [bad] + paths[3:]
    computed = []
    forward = aligned._forward
    aligned._forward = lambda b: computed.append(len(b)) or forward(b)
    try:
        out, failures = aligned.embed_files(batch, cache_dir=tmp_path / "cache")
        assert sum(computed) == 6 and len(failures) == 1 and failures[0].path == str(bad)
        assert np.isnan(out[3]).all()
        np.testing.assert_allclose(np.delete(out, 3, axis=0), reference, atol=1e-6)
        again, failures2 = aligned.embed_files(batch, cache_dir=tmp_path / "cache")
        assert sum(computed) == 6  # nothing recomputed
        assert np.array_equal(np.delete(again, 3, 0), np.delete(out, 3, 0)) and len(failures2) == 1
    finally:
        del aligned._forward
