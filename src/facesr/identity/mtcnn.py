"""MTCNN face detection (Zhang et al. 2016): three small cascaded networks and their NMS, with 5 landmarks.

P-Net scans an image pyramid for 12x12 face windows; R-Net (24x24) and O-Net (48x48) re-score and
refine the surviving boxes, and O-Net gives the 5 points (eyes, nose, mouth corners). The weights
are the original Caffe model's as converted to PyTorch (MIT licence, see weights/mtcnn/LICENSE),
shipped as safetensors; the networks are defined here.

    detector = MTCNN()
    faces = detector(rgb)   # [Face(box=(x0, y0, x1, y1), score, landmarks (5, 2))], input pixels
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "mtcnn"


def _caffe_flatten(x: torch.Tensor) -> torch.Tensor:
    """Flatten in the (W, H, C) order the converted Caffe dense layers were trained on."""
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class PNet(nn.Module):
    """12x12 windows, fully convolutional: face probability (N, 2, h, w) and box offsets (N, 4, h, w)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

    def forward(self, x):
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 2, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return F.softmax(self.conv4_1(x), dim=1), self.conv4_2(x)


class RNet(nn.Module):
    """24x24 crops: face probability (N, 2) and box offsets (N, 4)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

    def forward(self, x):
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = self.prelu4(self.dense4(_caffe_flatten(self.prelu3(self.conv3(x)))))
        return F.softmax(self.dense5_1(x), dim=1), self.dense5_2(x)


class ONet(nn.Module):
    """48x48 crops: face probability (N, 2), box offsets (N, 4), landmarks (N, 10: 5 x then 5 y)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

    def forward(self, x):
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu5(self.dense5(_caffe_flatten(self.prelu4(self.conv4(x)))))
        return F.softmax(self.dense6_1(x), dim=1), self.dense6_2(x), self.dense6_3(x)


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float, mode: str = "union") -> torch.Tensor:
    """Indices kept by greedy non-maximum suppression, best score first. Overlap of two boxes
    (x0, y0, x1, y1): intersection over their union, or (``mode="min"``) over the smaller one."""
    order = scores.argsort(descending=True)
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    keep = []
    while order.numel():
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        w = (torch.minimum(boxes[i, 2], boxes[rest, 2]) - torch.maximum(boxes[i, 0], boxes[rest, 0]) + 1).clamp(min=0)
        h = (torch.minimum(boxes[i, 3], boxes[rest, 3]) - torch.maximum(boxes[i, 1], boxes[rest, 1]) + 1).clamp(min=0)
        inter = w * h
        denom = torch.minimum(area[i], area[rest]) if mode == "min" else area[i] + area[rest] - inter
        order = rest[inter / denom <= threshold]
    return torch.tensor(keep, dtype=torch.long)


def _regress(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Move each box's corners by its offsets, in units of the box's width and height."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return boxes[:, :4] + offsets * torch.stack([w, h, w, h], dim=1)


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Each box grown to the square of its longer side, about the same centre."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    x0, y0 = boxes[:, 0] + (w - side) / 2, boxes[:, 1] + (h - side) / 2
    return torch.stack([x0, y0, x0 + side, y0 + side], dim=1)


def _crops(img: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 3, size, size) crops of the boxes (whole pixels, zero outside the image), area-resampled."""
    _, h, w = img.shape
    out = []
    for x0, y0, x1, y1 in boxes.floor().int().tolist():
        crop = torch.zeros(3, max(1, y1 - y0 + 1), max(1, x1 - x0 + 1))
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1 + 1, w), min(y1 + 1, h)
        if sx1 > sx0 and sy1 > sy0:
            crop[:, sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = img[:, sy0:sy1, sx0:sx1]
        out.append(F.interpolate(crop[None], size=(size, size), mode="area")[0])
    return torch.stack(out)


@dataclass
class Face:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in input pixels
    score: float
    landmarks: np.ndarray  # (5, 2): left eye, right eye, nose, left and right mouth corners (x, y)

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]


class MTCNN:
    """``MTCNN(min_face=12)(rgb)`` -> the faces of a uint8 RGB (H, W, 3) image, best score first.

    ``min_face``: the smallest face width searched for (the pyramid's first scale is 12 / min_face);
    ``thresholds``: the P-, R- and O-Net score thresholds; ``factor``: the pyramid's scale step.
    """

    def __init__(self, min_face: float = 12, thresholds=(0.6, 0.7, 0.7), factor: float = 0.709, device="cpu"):
        from facesr.io.weights import load_safetensors

        self.nets = {}
        for name, cls in (("pnet", PNet), ("rnet", RNet), ("onet", ONet)):
            net = cls()
            net.load_state_dict(load_safetensors(WEIGHTS / f"{name}.safetensors"))
            self.nets[name] = net.to(device).eval()
        self.min_face, self.thresholds, self.factor, self.device = float(min_face), tuple(thresholds), factor, device

    def _scales(self, h: int, w: int) -> list[float]:
        scale, scales = 12.0 / self.min_face, []
        side = min(h, w) * scale
        while side >= 12:
            scales.append(scale)
            scale *= self.factor
            side *= self.factor
        return scales

    def _propose(self, img: torch.Tensor) -> torch.Tensor:
        """P-Net over the pyramid: (N, 9) rows of box (4), score, offsets (4), after NMS."""
        _, h, w = img.shape
        found = []
        for scale in self._scales(h, w):
            size = (int(h * scale + 1), int(w * scale + 1))
            prob, reg = self.nets["pnet"](F.interpolate(img[None], size=size, mode="area"))
            ys, xs = torch.nonzero(prob[0, 1] >= self.thresholds[0], as_tuple=True)
            if not len(ys):
                continue
            cells = torch.stack([xs, ys], dim=1).float()
            x0y0, x1y1 = ((2 * cells + 1) / scale).floor(), ((2 * cells + 12) / scale).floor()
            rows = torch.cat([x0y0, x1y1, prob[0, 1, ys, xs][:, None], reg[0][:, ys, xs].T], dim=1)
            found.append(rows[nms(rows[:, :4], rows[:, 4], 0.5)])
        if not found:
            return torch.zeros(0, 9)
        rows = torch.cat(found)
        return rows[nms(rows[:, :4], rows[:, 4], 0.7)]

    def _refine(self, img: torch.Tensor, boxes: torch.Tensor, stage: int):
        net, size = (self.nets["rnet"], 24) if stage == 1 else (self.nets["onet"], 48)
        out = net(_crops(img, boxes, size))
        keep = out[0][:, 1] >= self.thresholds[stage]
        return boxes[keep], out[0][keep, 1], out[1][keep], (out[2][keep] if stage == 2 else None)

    @torch.no_grad()
    def __call__(self, rgb: np.ndarray) -> list[Face]:
        img = (torch.tensor(np.asarray(rgb), dtype=torch.float32).permute(2, 0, 1).to(self.device) - 127.5) / 128.0
        rows = self._propose(img)
        if not len(rows):
            return []
        boxes = _square(_regress(rows[:, :4], rows[:, 5:9])).floor()
        boxes, scores, offsets, _ = self._refine(img, boxes, 1)
        if not len(boxes):
            return []
        keep = nms(boxes, scores, 0.7)
        boxes = _square(_regress(boxes[keep], offsets[keep])).floor()
        boxes, scores, offsets, points = self._refine(img, boxes, 2)
        if not len(boxes):
            return []
        w, h = boxes[:, 2:3] - boxes[:, 0:1] + 1, boxes[:, 3:4] - boxes[:, 1:2] + 1
        landmarks = torch.stack([boxes[:, 0:1] + w * points[:, :5] - 1, boxes[:, 1:2] + h * points[:, 5:] - 1], dim=2)
        boxes = _regress(boxes, offsets)
        keep = nms(boxes, scores, 0.7, "min")
        return [Face(tuple(boxes[i].tolist()), float(scores[i]), landmarks[i].cpu().numpy()) for i in keep.tolist()]
