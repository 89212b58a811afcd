"""Paste-back: a restored chip goes onto the upscaled photo through the inverse of its chip frame, with
a feathered edge and its colour matched to the input face (the bicubic chip), so neither a seam nor a
colour shift shows."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from facesr.wild.faces import ChipFrame

FEATHER = 0.12  # the mask rises from 0 at the chip's edge to 1 over this fraction of its side


def feather_mask(n: int, feather: float = FEATHER) -> torch.Tensor:
    """(n, n) weights: 1 inside, a smoothstep down to 0 at the border."""
    i = torch.arange(n, dtype=torch.float32) + 0.5
    edge = torch.minimum(i, n - i) / (feather * n)
    d = torch.minimum(edge[None, :], edge[:, None]).clamp(0, 1)
    return d * d * (3 - 2 * d)


def match_colour(chip: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``chip`` (3, n, n) in [0, 1] shifted per channel to the weighted mean colour of ``reference``."""
    w = mask / mask.sum()
    shift = (reference * w).sum((1, 2)) - (chip * w).sum((1, 2))
    return (chip + shift[:, None, None]).clamp(0, 1)


def paste(canvas: torch.Tensor, chip: torch.Tensor, frame: ChipFrame, mask: torch.Tensor) -> None:
    """Blend ``chip`` (3, n, n) into ``canvas`` (3, H, W) in place where ``frame`` (in canvas pixels) puts it."""
    _, h, w = canvas.shape
    n = chip.shape[-1]
    x0, y0, x1, y1 = frame.footprint()
    left, top = max(0, math.floor(x0)), max(0, math.floor(y0))
    right, bottom = min(w, math.ceil(x1) + 1), min(h, math.ceil(y1) + 1)
    if right <= left or bottom <= top:
        return
    ys, xs = np.mgrid[top:bottom, left:right].astype(np.float64)
    u, v = frame.to_chip(xs, ys, n)
    grid = torch.from_numpy(np.stack([(u + 0.5) / n * 2 - 1, (v + 0.5) / n * 2 - 1], -1)).float()[None]
    warped = F.grid_sample(torch.cat([chip, mask[None]])[None], grid, mode="bilinear", padding_mode="zeros",
                           align_corners=False)[0]
    alpha = warped[3:]
    region = canvas[:, top:bottom, left:right]
    canvas[:, top:bottom, left:right] = region * (1 - alpha) + warped[:3] * alpha


def restored_photo(photo: np.ndarray, k: int, pieces) -> torch.Tensor:
    """``photo`` (uint8) upscaled k times (bicubic) with each (SR chip, its bicubic chip, ChipFrame in
    photo pixels) of ``pieces`` colour-matched and pasted: (3, kH, kW) in [0, 1]."""
    from PIL import Image

    from facesr.io.images import to_tensor

    h, w = photo.shape[:2]
    canvas = to_tensor(np.asarray(Image.fromarray(photo).resize((w * k, h * k), Image.BICUBIC)))
    mask = None
    for sr, bic, frame in pieces:
        mask = feather_mask(sr.shape[-1]) if mask is None else mask
        paste(canvas, match_colour(sr, bic, mask), frame.scaled(k), mask)
    return canvas
