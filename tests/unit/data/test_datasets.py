"""Training patches are aligned crops of the full-image HR, LR and up(LR), flipped together."""

import torch

from facesr.data.datasets import EpochSampler, HRFolderDataset
from facesr.degrade.protocol import LRProtocol
from facesr.degrade.resample import quantize


def _full(ds, i):
    hr = ds.load_hr(i)
    lr = quantize(ds.operator.down(hr[None]))
    return hr, lr[0], ds.operator.up(lr).clamp(0, 1)[0]


def test_whole_image_item(sample_faces):
    ds = HRFolderDataset([sample_faces], LRProtocol.of("bicubic", 8), 128, 0, hflip=False)
    item = ds.item(0, torch.Generator().manual_seed(0))
    hr, lr, up = _full(ds, 0)
    assert torch.equal(item["hr"], hr) and torch.equal(item["lr"], lr) and torch.equal(item["up"], up)


def test_patches_are_aligned_crops(sample_faces):
    ds = HRFolderDataset([sample_faces], LRProtocol.of("bicubic", 8), 128, 32, hflip=True)
    g = torch.Generator().manual_seed(1)
    flips = 0
    for n in range(24):
        i = n % len(ds)
        item = ds.item(i, g)
        hr, lr, up = _full(ds, i)
        found = False
        for y in range(0, 97, 8):
            for x in range(0, 97, 8):
                for flip in (False, True):
                    f = (lambda t: t.flip(-1)) if flip else (lambda t: t)
                    if torch.equal(item["hr"], f(hr[:, y:y + 32, x:x + 32])):
                        assert torch.equal(item["up"], f(up[:, y:y + 32, x:x + 32]))
                        assert torch.equal(item["lr"], f(lr[:, y // 8:y // 8 + 4, x // 8:x // 8 + 4]))
                        found, flips = True, flips + flip
        assert found
    assert 0 < flips < 24  # both orientations occur


def test_epoch_sampler_is_a_permutation_per_epoch_and_deterministic():
    s1, s2 = EpochSampler(10, seed=4), EpochSampler(10, seed=4)
    first = [s1(p) for p in range(10)]
    assert sorted(first) == list(range(10))
    assert [s2(p) for p in range(20)] == first + [s1(p) for p in range(10, 20)]
    assert [s1(p) for p in range(10, 20)] != first  # a new order each epoch


def test_unreadable_training_file_is_skipped(tmp_path, sample_faces, caplog):
    import shutil

    shutil.copytree(sample_faces, tmp_path / "faces")
    (tmp_path / "faces" / "0_broken.png").write_bytes(b"\x89PNG broken")
    ds = HRFolderDataset([tmp_path / "faces"], LRProtocol.of("bicubic", 8), 128, 32)
    item = ds.item(0, torch.Generator().manual_seed(0))
    assert item["hr"].shape == (3, 32, 32) and 0 in ds.bad and "0_broken.png" in caplog.text


def test_an_hr_size_the_scale_does_not_divide_is_refused_up_front(sample_faces):
    import pytest

    from facesr.errors import FacesrError

    with pytest.raises(FacesrError, match="hr_size 100 is not divisible by the scale 8"):
        HRFolderDataset([sample_faces], LRProtocol.of("bicubic", 8), 100, 64)
