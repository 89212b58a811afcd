"""The LR chip as ``facesr restore`` cuts it from a photo: the face at its own size, resampled to the chip.

In a photo the face is rarely exactly the model's LR size: a chip that spans m photo pixels is cut at n
(the model's LR side) by bicubic sampling (``facesr.wild.faces.cut_chip``), enlarging it when m < n and
aliasing it when m > n. On the LFW scenes at x8 (m about 13.75, n = 16) a model trained on the exact
bicubic LR lost rank-1 0.55 -> 0.33 to this (benchmarks/wild.notes.md). This degradation makes such
chips from aligned HR chips: the HR chip is shrunk to m x m by the ``bicubic`` operator (a photo made
smaller, 8-bit), then sampled at n x n exactly as cut_chip samples a photo. With m = n it is the
``bicubic`` operator's LR, bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from facesr.degrade.blind import DEGRADATIONS
from facesr.degrade.resample import make_operator, quantize
from facesr.errors import FacesrError


@dataclass(frozen=True)
class PhotoCut:
    """``op(hr, seed) -> (lr, records)``; records are {"face_px": m} per image.

    m = n * r with r log-uniform over ``size_range`` (x8: faces of about 10.4-22.7 px, the range
    ``facesr restore`` sends to an x8 model), or exactly n with probability ``exact_prob``.
    """

    scale: int
    size_range: tuple[float, float] = (0.65, 1.42)
    exact_prob: float = 0.2
    name: str = field(default="photo-cut", init=False)

    def __post_init__(self):
        lo, hi = self.size_range
        if not 0 < lo <= hi:
            raise FacesrError(f"photo degradation: size_range must be 0 < lo <= hi, got {self.size_range}")
        if not 0 <= self.exact_prob <= 1:
            raise FacesrError(f"photo degradation: exact_prob must be in [0, 1], got {self.exact_prob}")

    def draw(self, rng: np.random.Generator, n: int) -> int:
        if rng.random() < self.exact_prob:
            return n
        lo, hi = (math.log(r) for r in self.size_range)
        return max(2, round(n * math.exp(rng.uniform(lo, hi))))

    def __call__(self, hr: torch.Tensor, seed) -> tuple[torch.Tensor, list[dict]]:
        h, w = hr.shape[-2:]
        if h != w or h % self.scale:
            raise FacesrError(f"photo degradation: expected square HR chips divisible by {self.scale}, got {w}x{h}")
        rng = np.random.default_rng(seed)
        n = h // self.scale
        sizes = [self.draw(rng, n) for _ in range(len(hr))]
        lr = torch.cat([photo_cut(x[None], m, n, self.scale) for x, m in zip(hr, sizes)])
        return lr, [{"face_px": m} for m in sizes]

    def to_dict(self) -> dict:
        return {"name": self.name, "scale": self.scale, "size_range": list(self.size_range),
                "exact_prob": self.exact_prob}


def photo_cut(hr: torch.Tensor, m: int, n: int, scale: int) -> torch.Tensor:
    """HR (B, 3, H, H) -> the n x n chip cut from the HR shrunk to m x m (both steps 8-bit)."""
    small = quantize(make_operator("bicubic", scale)._resize(hr, (m, m), "bicubic"))
    if m == n:
        return small
    # cut_chip's sampling: chip pixel u at photo coordinate (u + 0.5) m / n - 0.5, bicubic, edges repeated
    pos = (torch.arange(n, dtype=torch.float64) + 0.5) * m / n - 0.5
    g = (pos / max(m - 1, 1) * 2 - 1).float()
    grid = torch.stack(torch.meshgrid(g, g, indexing="xy"), -1)[None].expand(len(hr), n, n, 2)
    chip = F.grid_sample(small * 255, grid.to(hr.dtype), mode="bicubic", padding_mode="border", align_corners=True)
    return chip.round().clamp(0, 255) / 255


DEGRADATIONS.register("photo", PhotoCut)
