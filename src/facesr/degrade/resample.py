"""Resampling operators: the degradation that makes LR from HR, and the upsampler.

An operator is a small object with a name and parameters; ``to_dict`` /
``operator_from_dict`` put it into configs and checkpoints so the consistency
metric uses exactly the operator that produced the LR image.

Images are float tensors (B, C, H, W) in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from facesr.errors import FacesrError
from facesr.registry import Registry


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    # antialias=True selects PIL's kernels (Keys a=-0.5 for bicubic, a triangle
    # stretched by the scale for bilinear) when shrinking and when enlarging.
    if size[1] == 1 and size[0] != x.shape[-2]:
        # torch 2.13's antialiased CPU kernel is wrong for a 1-pixel-wide output with
        # a resized height; the transposed problem (1 pixel tall) is computed correctly.
        return _resize(x.transpose(-1, -2), (size[1], size[0]), mode).transpose(-1, -2)
    return F.interpolate(x, size=size, mode=mode, antialias=True, align_corners=False)


def _resize_like_pil(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """PIL's order: horizontal pass, clip to the valid range, vertical pass.

    PIL stores the intermediate as uint8, so bicubic overshoot is clipped half-way;
    doing the same in float keeps 8-bit results within one grey level of PIL in this order.
    (Pillow 13 runs the vertical pass first for some tall images; square face chips are unaffected.)
    """
    x = _resize(x, (x.shape[-2], size[1]), mode).clamp(0, 1)
    return _resize(x, size, mode)


@dataclass(frozen=True)
class Resampler:
    """Down with ``down_mode``, up with Keys bicubic (a = -0.5); both antialiased.

    ``pil_passes``: clip between the horizontal and vertical passes as PIL does
    (the SR3 protocol); TF, the SR-SDE protocol, does not clip.
    """

    name: str
    scale: int
    down_mode: str
    pil_passes: bool

    def _resize(self, x, size, mode):
        return _resize_like_pil(x, size, mode) if self.pil_passes else _resize(x, size, mode)

    def down(self, hr: torch.Tensor) -> torch.Tensor:
        h, w = hr.shape[-2:]
        if h % self.scale or w % self.scale:
            raise FacesrError(f"image size {w}x{h} is not divisible by the scale {self.scale}")
        return self._resize(hr, (h // self.scale, w // self.scale), self.down_mode)

    def up(self, lr: torch.Tensor) -> torch.Tensor:
        h, w = lr.shape[-2:]
        return self._resize(lr, (h * self.scale, w * self.scale), "bicubic")

    def to_dict(self) -> dict:
        return {"name": self.name, "scale": self.scale}


# An LR operator: name -> (down mode, PIL-style passes). Adding one is one line.
OPERATORS = Registry("LR operator")
# SR3 / MF-SR3 protocol: PIL BICUBIC down (antialiased) and up.
OPERATORS.register("bicubic", ("bicubic", True))
# SR-SDE / FASR protocol: TF resize defaults, bilinear with antialias down, Keys bicubic up, no clipping.
OPERATORS.register("tf-bilinear", ("bilinear", False))


def make_operator(name: str, scale: int) -> Resampler:
    down_mode, pil_passes = OPERATORS.get(name)
    if int(scale) != scale or scale < 1:
        raise FacesrError(f"scale must be a positive integer, got {scale}")
    return Resampler(name=name, scale=int(scale), down_mode=down_mode, pil_passes=pil_passes)


def operator_from_dict(data: dict) -> Resampler:
    return make_operator(data["name"], data["scale"])


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Round to the 8-bit grid, as writing and reading a PNG would."""
    return torch.round(x.clamp(0, 1) * 255) / 255
