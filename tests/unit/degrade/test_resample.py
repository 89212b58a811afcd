"""Resampling operators against PIL (the reference implementation of the protocols)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from facesr.degrade.resample import make_operator, operator_from_dict, quantize
from facesr.errors import FacesrError

SETTINGS = settings(max_examples=15, deadline=None)


@st.composite
def images(draw, lo=0, hi=255):
    """(uint8 RGB image with values in [lo, hi], scale); both sides a multiple of the scale.

    Sides are at least 2 * scale: a 1-pixel-wide LR image hits a separate bug, tested below.
    """
    s = draw(st.sampled_from([2, 4, 8]))
    h, w = (draw(st.integers(2, 48 // s)) * s for _ in range(2))
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).integers(lo, hi + 1, (h, w, 3), dtype=np.uint8), s


# PIL's 8-bit resize clips (and rounds) to uint8 between its horizontal and vertical
# passes. The "bicubic" operator clips between passes too (pil_passes); "tf-bilinear"
# follows TF and does not. Two references: PIL's float ("F") mode run as two passes,
# clipped in between where the operator does so (exact up to float error), and PIL's
# 8-bit mode (within one grey level; for images whose range leaves head-room, also
# without the clipping).
MID = dict(lo=40, hi=215)


def torch_float(op, rgb: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].double() / 255
    return op(x)[0].permute(1, 2, 0).numpy() * 255


def torch_u8(op, rgb: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    y = op(x)[0].clamp(0, 1)
    return torch.round(y * 255).to(torch.uint8).permute(1, 2, 0).numpy()


def pil(rgb: np.ndarray, size, method) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize(size, method))


def pil_float(rgb: np.ndarray, size, method, clip_between: bool = False) -> np.ndarray:
    """PIL float mode, horizontal pass then vertical pass (PIL's own order)."""
    out = []
    for c in range(3):
        img = Image.fromarray(rgb[..., c].astype(np.float32), "F").resize((size[0], rgb.shape[0]), method)
        if clip_between:
            img = Image.fromarray(np.clip(np.asarray(img), 0, 255).astype(np.float32), "F")
        out.append(np.asarray(img.resize(size, method), dtype=np.float64))
    return np.stack(out, -1)


def assert_within_one(a, b):
    assert a.shape == b.shape
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def down_size(rgb, s):
    return rgb.shape[1] // s, rgb.shape[0] // s


def up_size(rgb, s):
    return rgb.shape[1] * s, rgb.shape[0] * s


CASES = [("bicubic", "down", down_size, Image.BICUBIC), ("bicubic", "up", up_size, Image.BICUBIC),
         ("tf-bilinear", "down", down_size, Image.BILINEAR)]


@pytest.mark.parametrize("name, method, size, pil_method", CASES)
@SETTINGS
@given(case=images())
def test_matches_pil_float_on_full_range_noise(name, method, size, pil_method, case):
    rgb, s = case
    op = make_operator(name, s)
    got = torch_float(getattr(op, method), rgb)
    want = pil_float(rgb, size(rgb, s), pil_method, clip_between=op.pil_passes)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-3)  # grey levels


@pytest.mark.parametrize("name, method, size, pil_method", CASES)
@SETTINGS
@given(case=images(**MID))
def test_matches_pil_uint8_within_one_level(name, method, size, pil_method, case):
    rgb, s = case
    assert_within_one(torch_u8(getattr(make_operator(name, s), method), rgb), pil(rgb, size(rgb, s), pil_method))


def pil_two_passes(rgb: np.ndarray, size, method) -> np.ndarray:
    """PIL's 8-bit resize in the order the operator defines: a horizontal-only resize, then a vertical one."""
    wide = Image.fromarray(rgb).resize((size[0], rgb.shape[0]), method)
    return np.asarray(wide.resize(size, method))


@pytest.mark.parametrize("method, size", [("down", down_size), ("up", up_size)])
@SETTINGS
@given(case=images())
def test_bicubic_matches_pil_uint8_on_full_range_noise(method, size, case):
    """Full-range noise is the worst case: the bicubic overshoot is clipped (and, in PIL, rounded)
    between the passes, so the result depends on which pass runs first. The operator runs the
    horizontal pass first, as PIL documents; PIL's 8-bit arithmetic in that order agrees within one level."""
    rgb, s = case
    got = torch_u8(getattr(make_operator("bicubic", s), method), rgb)
    assert_within_one(got, pil_two_passes(rgb, size(rgb, s), Image.BICUBIC))


@pytest.mark.parametrize("method, size", [("down", down_size), ("up", up_size)])
@SETTINGS
@given(case=images())
def test_bicubic_matches_one_pil_call_on_square_images(method, size, case):
    """Face chips are square; there one PIL resize call runs the horizontal pass first too.
    (For some tall images, Pillow 13 runs the vertical pass first, and its clipped overshoot
    then differs by up to 8 levels on full-range noise.)"""
    rgb, s = case
    rgb = rgb[: min(rgb.shape[:2]), : min(rgb.shape[:2])]
    got = torch_u8(getattr(make_operator("bicubic", s), method), rgb)
    assert_within_one(got, pil(rgb, size(rgb, s), Image.BICUBIC))


@SETTINGS
@given(case=images())
def test_tf_bilinear_down_matches_pil_uint8_on_full_range_noise(case):
    rgb, s = case  # bilinear has no overshoot, so PIL's 8-bit path needs no head-room
    assert_within_one(torch_u8(make_operator("tf-bilinear", s).down, rgb), pil(rgb, down_size(rgb, s), Image.BILINEAR))


def down_vs_pil_float(name, hr_shape, scale=8):
    rgb = np.random.default_rng(1).integers(0, 256, hr_shape + (3,), dtype=np.uint8)
    method = {"bicubic": Image.BICUBIC, "tf-bilinear": Image.BILINEAR}[name]
    op = make_operator(name, scale)
    return torch_float(op.down, rgb), pil_float(rgb, down_size(rgb, scale), method, clip_between=op.pil_passes)


@pytest.mark.parametrize("name", ["bicubic", "tf-bilinear"])
def test_down_to_one_pixel_tall_lr(name):
    got, want = down_vs_pil_float(name, (8, 32))  # LR 1 x 4
    np.testing.assert_allclose(got, want, atol=1e-3)


# Regression: torch's antialiased kernel is wrong for 1-pixel-wide outputs; resample.py works around it.
@pytest.mark.parametrize("name", ["bicubic", "tf-bilinear"])
def test_down_to_one_pixel_wide_lr(name):
    got, want = down_vs_pil_float(name, (32, 8))  # LR 4 x 1
    np.testing.assert_allclose(got, want, atol=1e-3)


@pytest.mark.parametrize("name", ["bicubic", "tf-bilinear"])
@pytest.mark.parametrize("scale", [1, 2, 4, 8])
def test_operator_dict_round_trip(name, scale):
    op = make_operator(name, scale)
    again = operator_from_dict(op.to_dict())
    assert again == op and again.scale == scale and again.name == name


@pytest.mark.parametrize("name, scale", [("lanczos", 4), ("bicubic", 2.5), ("bicubic", 0), ("bicubic", -2)])
def test_bad_operator(name, scale):
    with pytest.raises(FacesrError):
        make_operator(name, scale)


@pytest.mark.parametrize("shape", [(1, 3, 30, 32), (1, 3, 32, 30)])
def test_size_not_divisible_by_scale(shape):
    with pytest.raises(FacesrError, match="not divisible"):
        make_operator("bicubic", 4).down(torch.zeros(shape))


@pytest.mark.parametrize("name", ["bicubic", "tf-bilinear"])
@pytest.mark.parametrize("value", [0.0, 0.37, 1.0])
def test_constant_image_stays_constant(name, value):
    op = make_operator(name, 4)
    hr = torch.full((2, 3, 32, 16), value)
    lr = op.down(hr)
    assert lr.shape == (2, 3, 8, 4)
    assert torch.allclose(lr, torch.full_like(lr, value), atol=1e-5)
    up = op.up(lr)
    assert up.shape == hr.shape and torch.allclose(up, hr, atol=1e-5)


def test_quantize_maps_onto_the_8bit_grid():
    x = torch.cat([torch.rand(1000) * 1.4 - 0.2, torch.tensor([0.5 / 255, 254.4 / 255])])
    q = quantize(x)
    k = q * 255
    assert torch.allclose(k, k.round(), atol=1e-4)
    assert q.min() >= 0 and q.max() <= 1
    assert (q - x.clamp(0, 1)).abs().max() <= 0.5 / 255 + 1e-7
    assert torch.equal(quantize(q), q)


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_bicubic_within_one_grey_level_of_pil_on_real_faces(scale):
    """The issue's contract on natural images: the bundled sample faces, uint8 in and out."""
    from facesr.io.images import list_images, read_image, to_tensor, to_uint8

    faces = list_images(Path(__file__).resolve().parents[3] / "src" / "facesr" / "samples" / "faces")
    assert faces
    op = make_operator("bicubic", scale)
    for path in faces:
        hr = read_image(path)
        size = (hr.shape[1] // scale, hr.shape[0] // scale)
        ours = to_uint8(op.down(to_tensor(hr)[None])[0]).astype(int)
        pil = np.asarray(Image.fromarray(hr).resize(size, Image.BICUBIC)).astype(int)
        assert np.abs(ours - pil).max() <= 1, path.name
        lr = pil.astype(np.uint8)
        ours_up = to_uint8(op.up(to_tensor(lr)[None])[0]).astype(int)
        pil_up = np.asarray(Image.fromarray(lr).resize(hr.shape[1::-1], Image.BICUBIC)).astype(int)
        assert np.abs(ours_up - pil_up).max() <= 1, path.name
