"""ArcFace-style identity networks in ONNX: the independent judge of facesr's identity figures.

An ArcFace network reads a 112x112 face aligned to the ArcFace 5-point template (eye centres, nose tip,
mouth corners). A facesr chip is framed by dlib's landmarks, not by that template, so each chip is
re-aligned: MTCNN (``facesr.identity.mtcnn``) finds its 5 points and a least-squares similarity maps them
onto the template; where MTCNN finds no face (a blurred 16-px chip enlarged, say) the mean points of
facesr's chips (``CHIP_POINTS``) stand in. On the 200 dev/lfw HR probes with the project's judge, rank-1
was 1.000 with MTCNN's points, 0.995 with the fixed chip points, and 0.465 for the chip resized to 112 (measured
during development; that script is not kept).

``onnx:PATH`` runs any such model file (first input (N, 3, 112, 112), RGB, (x - 127.5) / 127.5 unless
``onnx:PATH:MEAN,STD`` says otherwise); ``faceplugin`` is the project's own judge, the 512-d
``model/fr_feature.onnx`` of the npm package faceplugin-face-recognition-js@0.0.1 (MIT), which
``make judge`` (tools/fetch_judge.py) fetches and checks; it is never committed or redistributed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from facesr.errors import FacesrError
from facesr.identity.embedders import Embedder, register_embedder, upsample_min_side
from facesr.io.weights import file_sha256

# The ArcFace template (insightface's arcface_dst) in 112x112 pixels: left eye, right eye, nose, mouth corners.
ARCFACE_POINTS = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                           [41.5493, 92.3655], [70.7299, 92.2041]])
# MTCNN's 5 points on facesr's 128-px chips: the mean over the 400 dev/lfw gallery and probe HR chips.
CHIP_POINTS = np.array([[37.54, 35.83], [87.11, 35.67], [61.64, 65.29], [40.73, 90.20], [84.34, 90.18]])
MIN_CHIP_SIDE = 112  # smaller inputs are enlarged (PIL bicubic) before MTCNN looks for the points

FACEPLUGIN = {
    "package": "faceplugin-face-recognition-js@0.0.1",
    "member": "package/model/fr_feature.onnx",
    "sha256": "87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581",
    "file": "faceplugin-fr_feature.onnx",
    "mean": 127.0,
    "std": 128.0,
}


def judges_dir() -> Path:
    """Where fetched judge networks live: $FACESR_JUDGES, else ~/.cache/facesr/judges."""
    env = os.environ.get("FACESR_JUDGES")
    return Path(env) if env else Path.home() / ".cache" / "facesr" / "judges"


def faceplugin_path() -> Path:
    path = judges_dir() / FACEPLUGIN["file"]
    if not path.is_file():
        raise FacesrError(f"{path}: the faceplugin judge is not installed; run `make judge` "
                          f"(fetches {FACEPLUGIN['package']} with npm pack and checks its sha256)")
    return path


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The least-squares similarity (Umeyama) with dst ~ A @ src + t: (A (2, 2), t (2,))."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    u, sv, vt = np.linalg.svd(d.T @ s / len(src))
    flip = np.diag([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rotation = u @ flip @ vt
    scale = np.trace(np.diag(sv) @ flip) / (s ** 2).sum(1).mean()
    return scale * rotation, mu_d - scale * rotation @ mu_s


def warp_to_template(img: np.ndarray, points: np.ndarray, size: int = 112) -> np.ndarray:
    """uint8 RGB -> the size x size face with ``points`` moved onto the ArcFace template (bicubic)."""
    a, t = similarity_transform(points, ARCFACE_POINTS * size / 112)
    inv = np.linalg.inv(a)
    shift = -inv @ t  # output pixel -> input pixel, as PIL's AFFINE expects
    coeffs = (inv[0, 0], inv[0, 1], shift[0], inv[1, 0], inv[1, 1], shift[1])
    return np.asarray(Image.fromarray(img).transform((size, size), Image.AFFINE, coeffs, Image.BICUBIC))


class OnnxArcFaceEmbedder(Embedder):
    """An ArcFace-style ONNX network on re-aligned chips (see the module). ``fallbacks`` counts the
    inputs on which MTCNN found no face and the chip points were used."""

    def __init__(self, path, mean: float = 127.5, std: float = 127.5, name: str | None = None,
                 batch_size: int = 32):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise FacesrError(f"ONNX judges need onnxruntime ({exc}); pip install onnxruntime") from None
        from facesr.identity.mtcnn import MTCNN

        path = Path(path)
        if not path.is_file():
            raise FacesrError(f"{path}: ONNX model file not found")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("FACESR_NUM_THREADS") or 1)
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable graphs
            raise FacesrError(f"{path}: not a usable ONNX model ({str(exc).splitlines()[0][:200]})") from None
        first = self._session.get_inputs()[0]
        shape = list(first.shape)
        if len(shape) != 4 or shape[1] not in (3, "3") or any(isinstance(s, int) and s != 112 for s in shape[2:]):
            raise FacesrError(f"{path}: expected an input of shape (N, 3, 112, 112), got {shape}")
        self._input = first.name
        self._one_at_a_time = shape[0] == 1  # a graph with its batch size fixed to 1
        self.dim = int(self._session.get_outputs()[0].shape[-1])
        self.mean, self.std, self.batch_size = float(mean), float(std), batch_size
        digest = file_sha256(path)
        self.sha256 = digest
        self.name = name or f"onnx-{digest[:12]}"
        self.mode = f"sha{digest[:16]}-mtcnn5-arcface112-m{self.mean:g}-s{self.std:g}"
        self._mtcnn = MTCNN(min_face=40)
        self.fallbacks = 0

    def points(self, img: np.ndarray) -> np.ndarray:
        """The 5 ArcFace points of a chip: MTCNN's (the most confident face), else the chip points."""
        faces = self._mtcnn(img)
        if faces:
            return faces[0].landmarks
        self.fallbacks += 1
        return CHIP_POINTS * np.array([img.shape[1], img.shape[0]]) / 128

    def _prepare(self, img, ref):
        img = upsample_min_side(np.ascontiguousarray(img, dtype=np.uint8), MIN_CHIP_SIDE)
        face = warp_to_template(img, self.points(img)).astype(np.float32)
        return ((face - self.mean) / self.std).transpose(2, 0, 1)

    def _forward(self, batch):
        x = np.ascontiguousarray(np.stack(batch), dtype=np.float32)
        if self._one_at_a_time:
            return np.concatenate([self._session.run(None, {self._input: x[i:i + 1]})[0] for i in range(len(x))])
        return self._session.run(None, {self._input: x})[0]


def _normalisation(argument: str) -> tuple[str, float, float]:
    """'PATH' or 'PATH:MEAN,STD' -> (path, mean, std)."""
    path, _, last = argument.rpartition(":")
    if path and "," in last:
        try:
            mean, std = (float(v) for v in last.split(","))
        except ValueError:
            raise FacesrError(f"identity embedder 'onnx:{argument}': MEAN,STD must be two numbers") from None
        if std <= 0:
            raise FacesrError(f"identity embedder 'onnx:{argument}': STD must be positive")
        return path, mean, std
    return argument, 127.5, 127.5


@register_embedder("onnx", "onnx:PATH[:MEAN,STD]")
def _onnx(argument: str) -> OnnxArcFaceEmbedder:
    if not argument:
        raise FacesrError("identity embedder 'onnx:PATH': give the model file")
    path, mean, std = _normalisation(argument)
    return OnnxArcFaceEmbedder(path, mean, std)


@register_embedder("faceplugin", "faceplugin")
def _faceplugin(argument: str) -> OnnxArcFaceEmbedder:
    path = faceplugin_path()
    embedder = OnnxArcFaceEmbedder(path, FACEPLUGIN["mean"], FACEPLUGIN["std"], name="faceplugin-arcface")
    if embedder.sha256 != FACEPLUGIN["sha256"]:
        raise FacesrError(f"{path}: sha256 {embedder.sha256} is not the faceplugin judge's; run `make judge` again")
    return embedder
