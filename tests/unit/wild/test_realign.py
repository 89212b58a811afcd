"""The second framing of tiny faces: dlib's chip details of float points, the points of an aligned chip,
and frames of 14-px faces brought closer to the truth than the first framing."""

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facesr.identity.embedders import load_dlib
from facesr.io.images import read_image
from facesr.wild.faces import ChipFrame, FaceFinder, frame_from_points
from facesr.wild.realign import chip_landmarks

SAMPLES = sorted((Path(__file__).resolve().parents[3] / "src" / "facesr" / "samples" / "faces").glob("*.png"))
PAD = 64


@pytest.fixture(scope="module")
def dlib_and_predictor():
    dlib, models = load_dlib()
    return dlib, dlib.shape_predictor(models.pose_predictor_five_point_model_location())


def test_frame_from_points_is_dlibs_chip_details(dlib_and_predictor):
    dlib, _ = dlib_and_predictor
    points = np.array([[171, 118], [142, 117], [62, 120], [91, 119], [118, 180]], float)  # integer points
    shape = dlib.full_object_detection(dlib.rectangle(0, 0, 1, 1), [dlib.point(int(x), int(y)) for x, y in points])
    d = dlib.get_face_chip_details(shape, size=128, padding=0.2)
    frame = frame_from_points(dlib, points)
    assert frame.cx == pytest.approx((d.rect.left() + d.rect.right()) / 2, abs=0.05)
    assert frame.cy == pytest.approx((d.rect.top() + d.rect.bottom()) / 2, abs=0.05)
    assert frame.side == pytest.approx(d.rect.width(), rel=0.01) and frame.angle == pytest.approx(d.angle, abs=1e-3)
    # points between pixels: the frame moves with them (dlib's own points would round them away)
    moved = frame_from_points(dlib, points + 0.25)
    assert (moved.cx - frame.cx, moved.cy - frame.cy) == (pytest.approx(0.25, abs=0.03), pytest.approx(0.25, abs=0.03))


@pytest.mark.parametrize("path", SAMPLES[:3], ids=lambda p: p.stem)
def test_an_aligned_chip_gives_back_its_own_frame(path, dlib_and_predictor):
    dlib, predictor = dlib_and_predictor
    u, v = chip_landmarks(dlib, predictor, read_image(path)).T
    identity = ChipFrame(63.5, 63.5, 128, 0.0)  # chip pixels are photo pixels
    frame = frame_from_points(dlib, np.stack(identity.to_photo(u, v, 128), 1))
    assert math.hypot(frame.cx - 63.5, frame.cy - 63.5) < 0.02 * 128
    assert abs(frame.side / 128 - 1) < 0.04 and abs(frame.angle) < 0.03


def test_realigned_frames_of_14px_faces_are_closer_to_the_truth():
    """The 6 sample chips on grey at 1/8: each chip is its face's true frame (its own alignment)."""
    chips = [read_image(p) for p in SAMPLES]
    full = np.full((2 * 128 + 3 * PAD, 3 * 128 + 4 * PAD, 3), 128, np.uint8)
    truth = []
    for i, chip in enumerate(chips):
        x, y = PAD + (i % 3) * (128 + PAD), PAD + (i // 3) * (128 + PAD)
        full[y : y + 128, x : x + 128] = chip
        truth.append(ChipFrame(x + 63.5, y + 63.5, 128, 0.0).scaled(1 / 8))
    lr = np.asarray(Image.fromarray(full).resize((full.shape[1] // 8, full.shape[0] // 8), Image.BICUBIC))

    def errors(finder):
        faces = finder(lr)
        assert len(faces) == len(truth)
        out = []
        for t in truth:
            f = min(faces, key=lambda f: math.hypot(f.frame.cx - t.cx, f.frame.cy - t.cy)).frame
            out.append((math.hypot(f.cx - t.cx, f.cy - t.cy) / t.side, abs(f.side / t.side - 1)))
        return np.array(out)

    first, second = errors(FaceFinder(realign=False)), errors(FaceFinder())
    assert second.sum() < first.sum()  # centre and side errors together, over the 6 faces
    assert second[:, 0].max() < 0.02 and second[:, 1].max() < 0.08  # every face: centre and side
