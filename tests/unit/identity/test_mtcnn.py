"""MTCNN finds every face of a scene of tiny faces, with boxes where the faces are and landmarks in
face order; NMS against a direct O(n^2) definition."""

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from facesr.identity.mtcnn import MTCNN, nms

SAMPLES = Path(__file__).resolve().parents[3] / "src" / "facesr" / "samples" / "faces"


def scene(face_px: int, gap: float = 0.6):
    """The 6 sample chips (the face spans about 0.6 of a chip) side by side on grey, two rows,
    scaled so each face is about ``face_px`` wide; returns the image and each chip's box."""
    chips = [Image.open(p).convert("RGB") for p in sorted(SAMPLES.glob("*.png"))]
    side = round(face_px / 0.6)
    pad = round(side * gap)
    img = Image.new("RGB", (3 * side + 4 * pad, 2 * side + 3 * pad), (128, 128, 128))
    boxes = []
    for i, chip in enumerate(chips):
        x, y = pad + (i % 3) * (side + pad), pad + (i // 3) * (side + pad)
        img.paste(chip.resize((side, side), Image.BICUBIC), (x, y))
        boxes.append((x, y, x + side, y + side))
    return np.asarray(img), boxes


@pytest.fixture(scope="module")
def detector():
    return MTCNN()


@pytest.mark.parametrize("face_px", [14, 20, 40])
def test_every_face_of_a_scene_is_found_once_inside_its_chip(detector, face_px):
    img, chips = scene(face_px)
    faces = detector(img)
    assert len(faces) == len(chips)
    for x0, y0, x1, y1 in chips:
        inside = [f for f in faces if x0 <= (f.box[0] + f.box[2]) / 2 <= x1 and y0 <= (f.box[1] + f.box[3]) / 2 <= y1]
        assert len(inside) == 1
        f = inside[0]
        assert 0.5 * face_px < f.width < 2.0 * face_px and f.score > 0.9
        (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = f.landmarks
        assert lx < nx < rx and mlx < mrx  # left eye, nose, right eye from left to right (as seen)
        assert max(ly, ry) < ny < min(mly, mry)  # eyes above the nose above the mouth
        assert all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in f.landmarks)


def test_no_face_in_noise_or_a_flat_image(detector):
    rng = np.random.default_rng(0)
    assert detector(np.full((120, 160, 3), 128, np.uint8)) == []
    assert len(detector(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))) <= 1
    assert detector(np.zeros((8, 8, 3), np.uint8)) == []  # smaller than one 12-px window


def _nms_reference(boxes, scores, threshold, mode):
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep = []
    for i in order:
        ok = True
        for j in keep:
            iw = max(0.0, min(boxes[i][2], boxes[j][2]) - max(boxes[i][0], boxes[j][0]) + 1)
            ih = max(0.0, min(boxes[i][3], boxes[j][3]) - max(boxes[i][1], boxes[j][1]) + 1)
            a = lambda b: (b[2] - b[0] + 1) * (b[3] - b[1] + 1)  # noqa: E731
            inter = iw * ih
            denom = min(a(boxes[i]), a(boxes[j])) if mode == "min" else a(boxes[i]) + a(boxes[j]) - inter
            if inter / denom > threshold:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50), st.integers(1, 30), st.integers(1, 30),
                          st.floats(0, 1)), min_size=1, max_size=12),
       st.sampled_from([0.3, 0.5, 0.7]), st.sampled_from(["union", "min"]))
def test_nms_matches_the_direct_definition(rows, threshold, mode):
    scores = [r[4] + 1e-6 * i for i, r in enumerate(rows)]  # distinct scores: one right order
    boxes = [(x, y, x + w, y + h) for x, y, w, h, _ in rows]
    got = nms(torch.tensor(boxes, dtype=torch.float32), torch.tensor(scores, dtype=torch.float64), threshold, mode)
    assert got.tolist() == _nms_reference(boxes, scores, threshold, mode)
