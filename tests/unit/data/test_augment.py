"""The HR augmentations of training data (rotation, brightness, contrast)."""

import torch

from facesr.data.datasets import augment_hr
from facesr.train.config import DataConfig


def test_augmentations():
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(3, 16, 16)
    # rotation only: a multiple of 90 degrees, pixels preserved
    rotated = augment_hr(hr, DataConfig(rot90=True), g)
    assert any(torch.equal(rotated, torch.rot90(hr, k, dims=(-2, -1))) for k in range(4))
    # brightness: a uniform factor in range; contrast keeps the luma mean (before clipping)
    grey = torch.full((3, 8, 8), 0.4)
    for _ in range(10):
        out = augment_hr(grey, DataConfig(brightness=(0.7, 1.3), jitter_prob=1.0), g)
        f = out[0, 0, 0] / 0.4
        assert 0.7 - 1e-6 <= f <= 1.3 + 1e-6 and torch.allclose(out, grey * f)
    mid = torch.rand(3, 8, 8) * 0.2 + 0.4
    out = augment_hr(mid, DataConfig(contrast=(0.7, 1.3), jitter_prob=1.0), g)
    luma = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    assert torch.allclose((out * luma).sum(0).mean(), (mid * luma).sum(0).mean(), atol=1e-6)
    assert torch.equal(augment_hr(hr, DataConfig(brightness=(0.7, 1.3), jitter_prob=0.0), g), hr)
