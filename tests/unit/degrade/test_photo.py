"""The ``photo`` degradation against the path it imitates: a photo shrunk by the bicubic operator, then
cut by ``facesr.wild.faces.cut_chip``."""

import numpy as np
import pytest
import torch

from facesr.degrade.photo import PhotoCut, photo_cut
from facesr.degrade.protocol import LRProtocol
from facesr.degrade.resample import make_operator, quantize
from facesr.errors import FacesrError
from facesr.io.images import to_uint8
from facesr.wild.faces import ChipFrame, cut_chip


def _faces(b=3, side=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    # smooth random images (a face-like spectrum) plus some fine texture
    low = torch.rand(b, 3, 8, 8, generator=g)
    x = torch.nn.functional.interpolate(low, size=(side, side), mode="bicubic", align_corners=False)
    return (x + 0.1 * torch.rand(b, 3, side, side, generator=g)).clamp(0, 1)


def test_at_the_chip_size_it_is_the_bicubic_operator():
    hr = _faces()
    assert torch.equal(photo_cut(hr, 16, 16, 8), quantize(make_operator("bicubic", 8).down(hr)))


@pytest.mark.parametrize("m", [11, 14, 19, 23])
def test_it_is_cut_chip_on_the_shrunk_photo(m):
    hr = _faces(b=1)
    small = quantize(make_operator("bicubic", 8)._resize(hr, (m, m), "bicubic"))
    photo = to_uint8(small[0])
    frame = ChipFrame(cx=m / 2 - 0.5, cy=m / 2 - 0.5, side=float(m), angle=0.0)  # the chip spans the photo
    expected = cut_chip(photo, frame, 16)
    got = to_uint8(photo_cut(hr, m, 16, 8)[0])
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_draws_are_seeded_and_in_range():
    op = PhotoCut(8, size_range=(0.7, 1.3), exact_prob=0.0)
    hr = _faces(b=8)
    lr1, rec1 = op(hr, 5)
    lr2, rec2 = op(hr, 5)
    assert torch.equal(lr1, lr2) and rec1 == rec2
    assert all(round(16 * 0.7) <= r["face_px"] <= round(16 * 1.3) for r in rec1)
    assert len({r["face_px"] for r in rec1}) > 1
    assert op(hr, 6)[1] != rec1
    assert lr1.shape == (8, 3, 16, 16)


def test_exact_prob_one_gives_the_operator():
    hr = _faces(b=4)
    lr, rec = PhotoCut(8, exact_prob=1.0)(hr, 0)
    assert all(r["face_px"] == 16 for r in rec)
    assert torch.equal(lr, quantize(make_operator("bicubic", 8).down(hr)))


def test_protocol_per_image_records_from_names():
    protocol = LRProtocol.of("bicubic", 8, "photo")
    assert not protocol.deterministic and "photo" in protocol.describe()
    hr = _faces(b=2)
    lr, records = protocol.degrade(hr, ["a.png", "b.png"])
    again, records_again = protocol.degrade(hr[:1], ["a.png"])
    assert torch.equal(lr[:1], again) and records[0] == records_again[0]


@pytest.mark.parametrize("kwargs", [{"size_range": (1.2, 0.8)}, {"size_range": (0.0, 1.0)}, {"exact_prob": 1.5}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(FacesrError):
        PhotoCut(8, **kwargs)


def test_non_square_hr_is_refused():
    with pytest.raises(FacesrError, match="square"):
        PhotoCut(8)(torch.rand(1, 3, 128, 96), 0)
