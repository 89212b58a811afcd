"""Face alignment to the framing of facesr's data sets (shared/data/README.md): dlib 5 points, chip padding 0.2."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facesr.errors import FacesrError

ALIGN_PADDING = 0.2  # dlib.get_face_chip padding used for every facesr data set


class FaceAligner:
    """dlib HOG detector (retried with one 2x upsampling), the face nearest the image centre,
    5-point landmarks (face_recognition_models), ``dlib.get_face_chip(size, padding=0.2)``:
    the framing of facesr's data sets. ``__call__(rgb)`` -> uint8 (size, size, 3) or None."""

    def __init__(self, size: int, padding: float = ALIGN_PADDING):
        from facesr.identity.embedders import load_dlib

        self.dlib, models = load_dlib()
        landmarks = models.pose_predictor_five_point_model_location()
        if not Path(landmarks).is_file():
            raise FacesrError(f"{landmarks}: dlib model file missing; reinstall face-recognition-models==0.3.0")
        self.detector = self.dlib.get_frontal_face_detector()
        self.predictor = self.dlib.shape_predictor(landmarks)
        self.size, self.padding = int(size), float(padding)

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        img = np.ascontiguousarray(rgb, dtype=np.uint8)
        h, w = img.shape[:2]
        dets = list(self.detector(img, 0)) or list(self.detector(img, 1))
        if not dets:
            return None
        rect = min(dets, key=lambda r: ((r.left() + r.right() - w) ** 2 + (r.top() + r.bottom() - h) ** 2, -r.area()))
        shape = self.predictor(img, rect)
        chip = self.dlib.get_face_chip(img, shape, size=self.size, padding=self.padding)
        return np.ascontiguousarray(chip, dtype=np.uint8)
