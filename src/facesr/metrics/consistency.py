"""LR-consistency: how well the SR image explains the LR input it came from.

consistency = MSE(D(SR), LR) on the 0-255 scale at LR resolution, where D is the
exact operator that produced the LR image (SR3's "consistency"; the SR-SDE
slides' values match this scale). A different D gives numbers that are not
comparable, so the operator travels with every model and evaluation.
"""

from __future__ import annotations

import numpy as np

from facesr.errors import FacesrError
from facesr.io.images import to_tensor
from facesr.degrade.resample import Resampler


def lr_consistency(sr: np.ndarray, lr: np.ndarray, operator: Resampler) -> float:
    """sr, lr: uint8 (H, W, 3). D(SR) is compared in float, before any rounding.

    FacesrError when the SR size is not the LR size x the operator's scale (the caller names the files).
    """
    s = operator.scale
    (h, w), (lh, lw) = sr.shape[:2], lr.shape[:2]
    if (h, w) != (lh * s, lw * s):
        raise FacesrError(f"SR size {w}x{h} does not match the LR size {lw}x{lh} x {s} (= {lw * s}x{lh * s})")
    down = operator.down(to_tensor(sr)[None])[0].clamp(0, 1) * 255.0
    ref = to_tensor(lr) * 255.0
    return float(((down.double() - ref.double()) ** 2).mean())
