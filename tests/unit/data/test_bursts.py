"""Synthetic bursts for multi-frame training: sub-pixel shifts, the middle frame kept, k frames stacked."""

import torch

from facesr.data.datasets import HRFolderDataset, burst, shift
from facesr.degrade.protocol import LRProtocol


def test_shift_by_whole_pixels_moves_the_content_exactly():
    img = torch.rand(3, 16, 20, generator=torch.Generator().manual_seed(0))
    # float32 bicubic weights at whole-pixel offsets: exact up to ~1.7e-6 (at 1e-6 about 5 % of random images failed)
    assert torch.allclose(shift(img, 0, 0), img, atol=1e-5)
    moved = shift(img, 2, -1)  # right by 2, up by 1
    assert torch.allclose(moved[:, :-1, 2:], img[:, 1:, :-2], atol=1e-5)
    assert torch.allclose(moved[:, :, 0], moved[:, :, 1], atol=1e-6)  # the left border repeats


def test_burst_keeps_the_middle_frame_and_is_seeded():
    hr = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    a = burst(hr, 3, 1.5, torch.Generator().manual_seed(1))
    b = burst(hr, 3, 1.5, torch.Generator().manual_seed(1))
    c = burst(hr, 3, 1.5, torch.Generator().manual_seed(2))
    assert a.shape == (3, 3, 32, 32) and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a[1], hr) and not torch.allclose(a[0], hr, atol=1e-3)
    assert torch.equal(burst(hr, 3, 0.0, torch.Generator())[0], hr)


def test_dataset_stacks_frames_and_targets_the_middle_one(sample_faces):
    ds = HRFolderDataset([sample_faces], LRProtocol.of("bicubic", 8), 128, 64, hflip=False, frames=3, motion_px=2.0)
    item = ds.item(0, torch.Generator().manual_seed(0))
    assert item["up"].shape == (9, 64, 64) and item["lr"].shape == (9, 8, 8) and item["hr"].shape == (3, 64, 64)
    # whole faces: the middle frame is the unshifted one, the others are not
    ds = HRFolderDataset([sample_faces], LRProtocol.of("bicubic", 8), 128, 0, hflip=False, frames=3, motion_px=2.0)
    one = HRFolderDataset([sample_faces], LRProtocol.of("bicubic", 8), 128, 0, hflip=False).item(0, torch.Generator())
    item = ds.item(0, torch.Generator().manual_seed(0))
    assert torch.equal(item["up"][3:6], one["up"]) and torch.equal(item["hr"], one["hr"])
    assert not torch.allclose(item["up"][:3], one["up"], atol=1e-3)
