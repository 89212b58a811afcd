"""Faces of a photo as the bundled models expect them: detected (MTCNN), landmarked (dlib's 5 points on
an upsampled crop) and framed exactly as facesr's chips were made (``dlib.get_face_chip``, padding 0.2).

A face's framing is a ``ChipFrame``: the similarity transform between chip pixels and photo pixels,
independent of the chip's resolution, so the same frame cuts the LR chip from the photo, and puts the
restored chip back onto the photo at any upscale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from facesr.identity.align import ALIGN_PADDING

LANDMARK_SIDE = 200  # the crop around a detected face is upsampled until the face is this wide
# dlib's predictor was trained on its HOG detector's boxes: an MTCNN box moved to that convention
# (median offsets of the HOG box from the MTCNN box, in units of the box's width and height, measured on
# 40 dev/lfw_photos): left, top, right, bottom
TO_HOG_BOX = (-0.106, 0.136, -0.004, -0.021)
# box jitters (x shift, y shift, growth per side; fractions of the box side) whose landmarks are averaged
JITTER = [(0, 0, 0)] + [(dx, dy, 0) for dx in (-0.04, 0.04) for dy in (-0.04, 0.04)] + [(0, 0, -0.04), (0, 0, 0.04)]


@dataclass(frozen=True)
class ChipFrame:
    """Chip pixel (u, v) of a chip of ``n`` pixels -> photo point center + R(angle) s (u + 0.5 - n/2, v + 0.5 - n/2)
    with s = side / n: ``side`` is the chip's side in photo pixels (the frame dlib's get_face_chip_details
    gives, for padding 0.2)."""

    cx: float
    cy: float
    side: float
    angle: float

    def scaled(self, k: float) -> "ChipFrame":
        """The same frame on the photo resized by ``k`` (pixel centres: x -> k x + (k - 1) / 2)."""
        return ChipFrame(self.cx * k + (k - 1) / 2, self.cy * k + (k - 1) / 2, self.side * k, self.angle)

    def to_photo(self, u: np.ndarray, v: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        s, c, si = self.side / n, math.cos(self.angle), math.sin(self.angle)
        du, dv = (u + 0.5 - n / 2) * s, (v + 0.5 - n / 2) * s
        return self.cx + c * du - si * dv, self.cy + si * du + c * dv

    def to_chip(self, x: np.ndarray, y: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        s, c, si = self.side / n, math.cos(self.angle), math.sin(self.angle)
        dx, dy = x - self.cx, y - self.cy
        return (c * dx + si * dy) / s + n / 2 - 0.5, (-si * dx + c * dy) / s + n / 2 - 0.5

    def footprint(self) -> tuple[float, float, float, float]:
        """The photo box (x0, y0, x1, y1) that holds the chip."""
        corners = np.array([0.0, 1.0])
        u, v = np.meshgrid(corners * 128 - 0.5, corners * 128 - 0.5)
        x, y = self.to_photo(u.ravel(), v.ravel(), 128)
        return float(x.min()), float(y.min()), float(x.max()), float(y.max())


def cut_chip(photo: np.ndarray, frame: ChipFrame, n: int, mode: str = "bicubic") -> np.ndarray:
    """The n x n chip of ``frame``, resampled (bicubic, or ``mode``) from the photo (edge pixels repeated
    outside it), uint8. Cut at the model's LR size this is the LR chip: on LFW photos at the chips' own
    resolution, bicubic gave rank-1 0.55 after SR against 0.50 bilinear and 0.45 for a 128-px cut
    downscaled (60 faces, benchmarks/wild.notes.md)."""
    h, w = photo.shape[:2]
    u, v = np.meshgrid(np.arange(n, dtype=np.float64), np.arange(n, dtype=np.float64))
    x, y = frame.to_photo(u, v, n)
    grid = torch.from_numpy(np.stack([x / max(w - 1, 1) * 2 - 1, y / max(h - 1, 1) * 2 - 1], -1)).float()[None]
    img = torch.tensor(np.asarray(photo), dtype=torch.float32).permute(2, 0, 1)[None]
    chip = F.grid_sample(img, grid, mode=mode, padding_mode="border", align_corners=True)[0]
    return chip.permute(1, 2, 0).round().clamp(0, 255).byte().numpy()


@dataclass
class PhotoFace:
    box: tuple[float, float, float, float]  # detector box, photo pixels
    score: float
    landmarks: np.ndarray  # (5, 2) dlib's points, photo pixels
    frame: ChipFrame

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]


class FaceFinder:
    """``FaceFinder()(photo)`` -> the photo's faces, framed like facesr's chips, largest first.

    MTCNN finds the faces (down to about 12 px); dlib's 5-point predictor places the landmarks on a
    crop upsampled until the face is LANDMARK_SIDE px wide (it is trained on large faces; on a 16-px
    face at its own size it is several pixels off); dlib's chip details then give the frame. With
    ``realign`` (default) faces under 64 px are framed again from their restored chips (wild.realign)."""

    def __init__(self, min_face: float = 12, padding: float = ALIGN_PADDING, realign: bool = True,
                 device: str = "cpu"):
        from facesr.identity.embedders import load_dlib
        from facesr.identity.mtcnn import MTCNN
        from facesr.wild.realign import Realigner

        self.dlib, models = load_dlib()
        self.predictor = self.dlib.shape_predictor(models.pose_predictor_five_point_model_location())
        self.detector = MTCNN(min_face=min_face)
        self.padding = padding
        self.realigner = Realigner(self.dlib, self.predictor, padding, device) if realign else None

    def landmarks_and_frame(self, photo: np.ndarray, box) -> tuple[np.ndarray, ChipFrame]:
        from PIL import Image

        bw, bh = box[2] - box[0], box[3] - box[1]
        x0, y0, x1, y1 = (box[0] + TO_HOG_BOX[0] * bw, box[1] + TO_HOG_BOX[1] * bh, box[2] + TO_HOG_BOX[2] * bw,
                          box[3] + TO_HOG_BOX[3] * bh)
        side = max(x1 - x0, y1 - y0)
        k = LANDMARK_SIDE / max(side, 1.0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        half = side  # crop twice the face: the predictor sees the whole head
        left, top = math.floor(cx - half), math.floor(cy - half)
        size = math.ceil(2 * half) + 1
        h, w = photo.shape[:2]
        crop = np.zeros((size, size, 3), np.uint8)
        sx0, sy0, sx1, sy1 = max(left, 0), max(top, 0), min(left + size, w), min(top + size, h)
        crop[sy0 - top : sy1 - top, sx0 - left : sx1 - left] = photo[sy0:sy1, sx0:sx1]
        big = np.asarray(Image.fromarray(crop).resize((round(size * k), round(size * k)), Image.BICUBIC))
        scale = big.shape[0] / size  # the crop's exact upsampling
        up = lambda v: (v + 0.5) * scale - 0.5  # noqa: E731  crop pixel -> upsampled pixel (pixel centres)
        down = lambda v: (v + 0.5) / scale - 0.5  # noqa: E731
        box_big = (up(x0 - left), up(y0 - top), up(x1 - left), up(y1 - top))
        points = down(jittered_landmarks(self.dlib, self.predictor, big, box_big)) + [left, top]
        return points, frame_from_points(self.dlib, points, self.padding)

    def __call__(self, photo: np.ndarray) -> list[PhotoFace]:
        faces = []
        for f in self.detector(photo):
            points, frame = self.landmarks_and_frame(photo, f.box)
            faces.append(PhotoFace(f.box, f.score, points, frame))
        if self.realigner is not None:
            faces = self.realigner(photo, faces)
        return sorted(faces, key=lambda f: -f.width)


def jittered_landmarks(dlib, predictor, image: np.ndarray, box) -> np.ndarray:
    """dlib's 5 points (image pixels) for a face in ``box`` (x0, y0, x1, y1, floats), averaged over the JITTER
    boxes: the predictor's points on a tiny or restored face vary with the box."""
    x0, y0, x1, y1 = box
    side = x1 - x0
    runs = []
    for dx, dy, ds in JITTER:
        r = dlib.rectangle(round(x0 + dx * side - ds * side), round(y0 + dy * side - ds * side),
                           round(x1 + dx * side + ds * side), round(y1 + dy * side + ds * side))
        shape = predictor(image, r)
        runs.append([[shape.part(i).x, shape.part(i).y] for i in range(5)])
    return np.mean(np.array(runs, np.float64), axis=0)


def frame_from_points(dlib, points: np.ndarray, padding: float = ALIGN_PADDING) -> ChipFrame:
    """The chip frame dlib's get_face_chip_details gives for 5 points (photo pixels, floats): the points
    go to dlib in a 64-times finer grid, since its points are integers."""
    k = 64.0
    rect = dlib.rectangle(0, 0, 1, 1)  # not used by the chip details
    shape = dlib.full_object_detection(rect, [dlib.point(round(x * k), round(y * k)) for x, y in points])
    r = dlib.get_face_chip_details(shape, size=128, padding=padding)
    return ChipFrame((r.rect.left() + r.rect.right()) / 2 / k, (r.rect.top() + r.rect.bottom()) / 2 / k,
                     r.rect.width() / k, r.angle)
