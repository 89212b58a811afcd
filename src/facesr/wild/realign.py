"""A second framing of tiny faces, from the restored face.

dlib's 5-point predictor, even on an upsampled crop, places the points of a 14-px face a few percent of
the chip off. The restored chip is a face it reads well: its points there, taken back to the photo
through the first frame, frame the chip again. At 1/8 of 40 LFW photos this cut the median error
against the frame of the dev chips from 1.4 to 0.8 % of the side (centre) and from 4.5 to 3.2 %
(side) (benchmarks/wild.notes.md); a second round changed nothing.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch

# the regression models that restore the chip the points are read on, by scale (fast, no sampling)
HELPERS = {8: "msrresnet-x8-wild", 4: "msrresnet-x4-wild"}
HR_SIZE = 128
REALIGN_BELOW = 64  # chip side (photo px) from which the first framing is already close
# dlib HOG's box on an aligned chip, in units of the chip side (median over 295 train chips: 9 to 116.5 px)
CHIP_BOX = (0.07, 0.07, 0.91, 0.91)
READ_SIZE = 256  # the restored chip is upsampled to this before the predictor reads it


def chip_landmarks(dlib, predictor, chip: np.ndarray) -> np.ndarray:
    """dlib's 5 points of an aligned chip (n x n uint8), chip pixels, averaged over the jittered boxes."""
    from PIL import Image

    from facesr.wild.faces import jittered_landmarks

    big = np.asarray(Image.fromarray(chip).resize((READ_SIZE, READ_SIZE), Image.BICUBIC))
    points = jittered_landmarks(dlib, predictor, big, tuple(v * READ_SIZE for v in CHIP_BOX))
    k = READ_SIZE / chip.shape[0]
    return (points + 0.5) / k - 0.5


class Realigner:
    """``Realigner(dlib, predictor)(photo, faces)`` -> the faces with chips under REALIGN_BELOW px framed
    again from the landmarks of their restored chips (landmarks replaced too; box and score kept)."""

    def __init__(self, dlib, predictor, padding: float, device: str = "cpu"):
        self.dlib, self.predictor, self.padding, self.device = dlib, predictor, padding, device
        self._helpers = {}

    def helper(self, scale: int):
        from facesr.methods.hub import load_model

        if scale not in self._helpers:
            self._helpers[scale] = load_model(HELPERS[scale], self.device)
        return self._helpers[scale]

    @torch.no_grad()
    def __call__(self, photo: np.ndarray, faces: list) -> list:
        from facesr.io.images import to_tensor, to_uint8
        from facesr.wild.faces import cut_chip, frame_from_points

        by_scale = {}
        for i, face in enumerate(faces):
            side = face.frame.side
            if HR_SIZE / max(HELPERS) / 2 <= side < REALIGN_BELOW:  # the helper whose LR size is nearest
                scale = min(HELPERS, key=lambda s: abs(math.log(side * s / HR_SIZE)))
                by_scale.setdefault(scale, []).append(i)
        faces = list(faces)
        for scale, idx in by_scale.items():
            model = self.helper(scale)
            lr = torch.stack([to_tensor(cut_chip(photo, faces[i].frame, model.lr_size)) for i in idx])
            srs = model.super_resolve(lr.to(self.device)).cpu()
            for i, sr in zip(idx, srs):
                u, v = chip_landmarks(self.dlib, self.predictor, to_uint8(sr)).T
                x, y = faces[i].frame.to_photo(u, v, HR_SIZE)
                points = np.stack([x, y], 1)
                faces[i] = replace(faces[i], landmarks=points, frame=frame_from_points(self.dlib, points, self.padding))
        return faces
