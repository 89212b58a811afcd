"""Face embedders: one interface for dlib's ResNet descriptor and AdaFace IR backbones.

``embed(images)`` takes uint8 RGB arrays (H, W, 3) and returns float32 (n, dim), each row
L2-normalised. ``embed_files(paths, cache_dir)`` reads files with ``facesr.io.images.read_image``,
keeps going past unreadable or faceless files (returned as ``InputError``\\s, their rows NaN) and
caches one ``.npy`` per file, keyed by sha256(file bytes) + embedder name + mode (never pickled).

dlib and torch are imported only when an embedder is built (dossier section 8: face/ module).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from facesr.errors import FacesrError, InputError
from facesr.io.images import check_array, read_image
from facesr.registry import Registry

EMBEDDERS = Registry("identity embedder", modules=("facesr.identity.embedders", "facesr.identity.arcface"))


def register_embedder(name: str, usage: str):
    """``@register_embedder("dlib", "dlib")`` on a factory ``(argument after the first ':') -> Embedder``."""

    def deco(factory):
        factory.usage = usage
        return EMBEDDERS.register(name)(factory)

    return deco


def make_embedder(spec: str) -> "Embedder":
    """An embedder from its spec: 'dlib' (aligned chips), 'dlib-detect', or 'adaface:PATH[:ir_18|ir_50|ir_101]'."""
    name, _, argument = str(spec).partition(":")
    if name not in EMBEDDERS:
        usages = ", ".join(repr(EMBEDDERS.get(n).usage) for n in EMBEDDERS.names())
        raise FacesrError(f"identity embedder {spec!r}: use one of {usages}")
    return EMBEDDERS.get(name)(argument)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    if np.any(norm == 0):
        raise FacesrError("cannot normalise a zero embedding")
    return (x / norm).astype(np.float32)


def upsample_min_side(img: np.ndarray, min_side: int) -> np.ndarray:
    """PIL bicubic enlargement so that the shorter side is at least ``min_side`` (aspect kept)."""
    h, w = img.shape[:2]
    if min(h, w) >= min_side:
        return img
    s = min_side / min(h, w)
    size = (max(min_side, round(w * s)), max(min_side, round(h * s)))
    return np.asarray(Image.fromarray(img).resize(size, Image.BICUBIC))


class _Cache:
    """One ``<cache_dir>/<embedder name>/<sha256>.npy`` per (file bytes, name, mode); atomic writes."""

    def __init__(self, cache_dir, name: str, mode: str, dim: int):
        self.dir = Path(cache_dir) / name
        self.tag, self.dim = f"{name}\0{mode}\0", dim

    def key(self, data: bytes) -> str:
        return hashlib.sha256(self.tag.encode() + hashlib.sha256(data).digest()).hexdigest()

    def get(self, key: str) -> np.ndarray | None:
        try:
            v = np.load(self.dir / f"{key}.npy", allow_pickle=False)
        except (OSError, ValueError):
            return None  # absent or unreadable: recompute and overwrite
        ok = v.shape == (self.dim,) and v.dtype == np.float32 and np.all(np.isfinite(v))
        return v if ok else None

    def put(self, key: str, v: np.ndarray) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, np.asarray(v, dtype=np.float32), allow_pickle=False)
            os.replace(tmp, self.dir / f"{key}.npy")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class Embedder:
    """Interface: ``name``, ``dim``, ``mode`` (part of the cache key), ``embed``, ``embed_files``.

    Subclasses implement ``_prepare(img, ref)`` (per image; may raise ``InputError(ref, ...)``)
    and ``_forward(prepared_list) -> (n, dim)`` (batched).
    """

    name: str = "embedder"
    dim: int = 0
    mode: str = ""
    batch_size: int = 32

    def _prepare(self, img: np.ndarray, ref):
        raise NotImplementedError

    def _forward(self, batch: list) -> np.ndarray:
        raise NotImplementedError

    def _run(self, prepared: list) -> np.ndarray:
        if not prepared:
            return np.zeros((0, self.dim), np.float32)
        bs = max(1, self.batch_size)
        out = np.concatenate([np.asarray(self._forward(prepared[i:i + bs]), np.float32)
                              for i in range(0, len(prepared), bs)])
        return l2_normalise(out)

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        """uint8 RGB (H, W, 3) arrays -> float32 (n, dim), unit rows. Errors name ``images[i]``."""
        return self._run([self._prepare(check_array(img, f"images[{i}]"), f"images[{i}]")
                          for i, img in enumerate(images)])

    def embed_files(self, paths, cache_dir=None) -> tuple[np.ndarray, list[InputError]]:
        """-> (float32 (n, dim) in input order, NaN rows for failures; list of InputError).

        A cached file is neither decoded nor embedded again. Work proceeds in chunks of
        ``batch_size`` so memory stays bounded for long lists.
        """
        paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
        out = np.full((len(paths), self.dim), np.nan, np.float32)
        failures: list[InputError] = []
        cache = _Cache(cache_dir, self.name, self.mode, self.dim) if cache_dir is not None else None
        pending: list[tuple[int, str | None, object]] = []

        def flush():
            if pending:
                vecs = self._run([p for _, _, p in pending])
                for (i, key, _), v in zip(pending, vecs):
                    out[i] = v
                    if cache is not None and key is not None:
                        cache.put(key, v)
                pending.clear()

        for i, path in enumerate(paths):
            key = None
            if cache is not None:
                try:
                    key = cache.key(path.read_bytes())
                except OSError:
                    key = None  # read_image below names the problem
                hit = cache.get(key) if key else None
                if hit is not None:
                    out[i] = hit
                    continue
            try:
                pending.append((i, key, self._prepare(read_image(path), path)))
            except InputError as exc:
                failures.append(exc)
                continue
            if len(pending) >= self.batch_size:
                flush()
        flush()
        return out, failures


def recognition_models():
    """The face_recognition_models module (dlib's model files), or one FacesrError saying what to install."""
    try:
        with warnings.catch_warnings():  # face_recognition_models imports the deprecated pkg_resources
            warnings.simplefilter("ignore")
            import face_recognition_models
    except ImportError as exc:
        raise FacesrError(f"dlib's networks come with face-recognition-models ({exc}); "
                          'pip install "face-recognition-models==0.3.0" "setuptools<81"') from None
    return face_recognition_models


def load_dlib():
    try:
        import dlib
    except ImportError as exc:
        raise FacesrError(f"the dlib embedder needs dlib-bin ({exc}); pip install \"dlib-bin>=20,<21\"") from None
    return dlib, recognition_models()


class DlibEmbedder(Embedder):
    """dlib's ResNet face descriptor (128-d, ``dlib_face_recognition_resnet_model_v1``), L2-normalised.

    Every input is first enlarged with PIL bicubic so its shorter side is at least 150 px (dlib's
    chip size; a 16x16 LR image is otherwise too small for the landmark predictor).

    ``aligned=True`` (facesr's data: dlib 5-point chips with padding 0.2): the 5-point shape
    predictor runs on the whole-image rectangle, then ``get_face_chip(img, shape, 150, 0.25)`` re-chips
    at 150 px with dlib's own padding (as ``compute_face_descriptor`` does, without jitter). On the 200 LFW dev
    identities this matched resizing the chip straight to 150 px (same genuine/impostor
    distributions, rank-1 within one probe), and it tolerates slightly shifted faces.

    ``aligned=False``: dlib's HOG frontal detector (retried with one 2x upsampling if nothing is
    found), the face whose centre is nearest the image centre, then landmarks and descriptor.
    No face -> ``InputError(path or images[i], "no face found")``.

    The network runs as facesr's PyTorch port (``dlib_resnet``) on dlib's own 150-px chips: it gives
    dlib's descriptors to within 2e-7 cosine and is about 13x faster than dlib-bin's CPU build
    (benchmarks/results/dlib-port.md).

    The raw descriptors have norms of about 1.3-1.5 and dlib's own rule is Euclidean distance
    < 0.6; facesr uses cosine similarity of the normalised vectors (impostor scores are high,
    about 0.84 on LFW, genuine about 0.95).
    """

    dim = 128
    min_side = 150

    def __init__(self, aligned: bool = True, batch_size: int = 32, student=None):
        """``student``: a folder from ``facesr train-embedder`` whose weights replace dlib's (``identity.student``)."""
        self._dlib, models = load_dlib()
        self.aligned, self.batch_size = bool(aligned), batch_size
        self.name = "dlib-resnet-v1"
        self.mode = f"{'aligned' if aligned else 'hog'}-min{self.min_side}-pad0.25"
        files = (models.pose_predictor_five_point_model_location(), models.face_recognition_model_location())
        for f in files:
            if not Path(f).is_file():
                raise FacesrError(f"{f}: dlib model file missing; reinstall face-recognition-models==0.3.0")
        from facesr.identity.dlib_resnet import load_dlib_resnet

        self._predictor = self._dlib.shape_predictor(files[0])
        if student is None:
            self._net = load_dlib_resnet(files[1])
        else:
            from facesr.identity.student import KIND, load_student

            self._net, config, digest = load_student(student)
            self.name = f"{KIND}-{config.get('operator', '?')}-x{config.get('scale', '?')}"
            self.mode += f"-{digest[:16]}"
        self._detector = None if aligned else self._dlib.get_frontal_face_detector()

    def _face_rect(self, img: np.ndarray, ref):
        h, w = img.shape[:2]
        if self.aligned:
            return self._dlib.rectangle(0, 0, w - 1, h - 1)
        dets = list(self._detector(img, 0)) or list(self._detector(img, 1))
        if not dets:
            raise InputError(ref, "no face found")
        return min(dets, key=lambda r: ((r.left() + r.right() - w) ** 2 + (r.top() + r.bottom() - h) ** 2, -r.area()))

    def _prepare(self, img, ref):
        img = np.ascontiguousarray(upsample_min_side(img, self.min_side))
        return img, self._predictor(img, self._face_rect(img, ref))

    def chips(self, images: list[np.ndarray]) -> np.ndarray:
        """dlib's 150-px chips (n, 150, 150, 3) uint8 of uint8 RGB images: what the network reads."""
        return np.stack([self._dlib.get_face_chip(img, shape, 150, 0.25)
                         for img, shape in (self._prepare(im, f"images[{i}]") for i, im in enumerate(images))])

    def _forward(self, batch):
        import torch

        chips = np.stack([self._dlib.get_face_chip(img, shape, 150, 0.25) for img, shape in batch])
        with torch.inference_mode():
            x = torch.from_numpy(chips).permute(0, 3, 1, 2).float() / 255.0
            return self._net(x).numpy()


class AdaFaceEmbedder(Embedder):
    """AdaFace IR-18/50/101 (dossier section 6) from an official Lightning checkpoint given by path.

    Preprocessing as FASR's ``features_extract.py`` / AdaFace's ``inference.py``: PIL bicubic resize
    to 112x112, RGB->BGR, (x/255 - 0.5)/0.5; eval mode, no grad. No alignment is done: AdaFace
    was trained on MTCNN-aligned crops, facesr's chips are dlib-aligned (dossier 2.8 item 6).
    Nothing is downloaded. The cache mode includes the checkpoint's sha256.
    """

    dim = 512

    def __init__(self, checkpoint_path, arch: str = "ir_18", device: str = "cpu", batch_size: int = 32):
        import torch

        from facesr.identity.adaface_net import UNITS, load_adaface
        from facesr.runtime import resolve_device

        if arch not in UNITS:
            raise FacesrError(f"unknown AdaFace architecture {arch!r}; choose one of {sorted(UNITS)}")
        self._torch = torch
        self.device = resolve_device(device)  # "cpu", "cuda[:i]" or "auto"; FacesrError if CUDA is absent
        self.model, digest = load_adaface(checkpoint_path, arch)
        self.model.to(self.device)
        self.arch, self.batch_size = arch, batch_size
        self.name, self.mode = f"adaface-{arch}", f"ckpt-{digest[:16]}-pil-bicubic-112"

    @staticmethod
    def preprocess(img: np.ndarray) -> np.ndarray:
        """uint8 RGB (H, W, 3) -> float32 BGR (3, 112, 112) in [-1, 1]."""
        img = np.asarray(Image.fromarray(img).resize((112, 112), Image.BICUBIC), dtype=np.float32)
        return np.ascontiguousarray(((img[:, :, ::-1] / 255.0 - 0.5) / 0.5).transpose(2, 0, 1))

    def _prepare(self, img, ref):
        return self.preprocess(img)

    def _forward(self, batch):
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.stack(batch)).to(self.device)
            emb, _ = self.model(x)
        return emb.float().cpu().numpy()


@register_embedder("dlib", "dlib")
def _dlib_aligned(argument: str) -> DlibEmbedder:
    return DlibEmbedder(aligned=True)


@register_embedder("dlib-detect", "dlib-detect")
def _dlib_detect(argument: str) -> DlibEmbedder:
    return DlibEmbedder(aligned=False)


@register_embedder("dlib-lq", "dlib-lq[:FOLDER]")
def _dlib_student(argument: str) -> DlibEmbedder:
    """The bundled student for tiny faces ('dlib-lq'), or one that 'facesr train-embedder' wrote."""
    return DlibEmbedder(aligned=True, student=argument)


def networks_of(spec: str) -> tuple[str, ...]:
    """The face networks behind an embedder spec: itself, and for a student the network it was made from."""
    from facesr.identity.student import FAMILY, KIND

    return (spec, FAMILY) if str(spec).partition(":")[0] == KIND else (spec,)


@register_embedder("adaface", "adaface:CKPT[:ARCH]")
def _adaface(argument: str) -> AdaFaceEmbedder:
    path, _, arch = argument.partition(":")
    if not path:
        raise FacesrError("identity embedder 'adaface:CKPT[:ARCH]': give the checkpoint path")
    return AdaFaceEmbedder(path, arch or "ir_18")
