"""Identity feature tables: embeddings per image or aggregated per identity, saved as safetensors.

A table maps names to vectors: file paths relative to the root (``per_image``), or identity folder
names (aggregated). The JSON metadata records how it was made (embedder, view, aggregation, how
many images fed each row) so a model is never conditioned on features of another kind by accident.

Views: ``"as-is"`` embeds the files as they are (the user's own low-quality images); ``"lr"``
first makes each image's LR version with an LR protocol (down, 8-bit), the protocol's "LR versions of
the auxiliary images"; the embedder enlarges small inputs itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from facesr.io.images import list_images, read_image
from facesr.errors import FacesrError, InputError
from facesr.identity import aggregate as agg

FORMAT = "facesr-features/1"


@dataclass
class FeatureTable:
    names: list[str]
    vectors: np.ndarray  # (n, dim) float32
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.vectors = np.asarray(self.vectors, np.float32).reshape(len(self.names), -1)
        self.index = {n: i for i, n in enumerate(self.names)}

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def get(self, name: str) -> np.ndarray | None:
        i = self.index.get(name)
        return None if i is None else self.vectors[i]

    def save(self, path) -> None:
        """Write the table to ``path`` atomically (its folder is made if needed); FacesrError naming it when
        it cannot be written (see ``check_features_path``), and no temporary file is left behind."""
        from safetensors import SafetensorError

        from facesr.io.weights import save_safetensors

        path = check_features_path(path)
        meta = {"format": FORMAT, "names": json.dumps(self.names), "meta": json.dumps(self.meta)}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_safetensors({"vectors": torch.from_numpy(self.vectors)}, path, meta)
        except (OSError, SafetensorError) as exc:
            raise FacesrError(f"{path}: cannot write the features file ({getattr(exc, 'strerror', None) or exc})") from None

    @classmethod
    def load(cls, path) -> "FeatureTable":
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise FacesrError(f"{path}: no such features file")
        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
                vectors = f.get_tensor("vectors").numpy()
        except (SafetensorError, OSError, ValueError, KeyError) as exc:
            raise FacesrError(f"{path}: not a facesr features file ({exc})") from None
        if meta.get("format") != FORMAT:
            raise FacesrError(f"{path}: not a facesr features file (made by 'facesr features')")
        names = json.loads(meta["names"])
        if len(names) != len(vectors):
            raise FacesrError(f"{path}: {len(names)} names for {len(vectors)} vectors")
        return cls(names, vectors, json.loads(meta.get("meta", "{}")))


def check_features_path(path) -> Path:
    """``path`` as a features file to write, checked before any work: FacesrError naming it when it is an
    existing folder, or a folder above it is a file."""
    from facesr.io.images import check_output_folder

    path = Path(path)
    if path.is_dir():
        raise FacesrError(f"{path}: is a folder; give the features file to write, e.g. {path / 'features.safetensors'}")
    check_output_folder(path.parent, f"the folder of the features file {path.name}")
    return path


def embed_paths(embedder, paths: list[Path], protocol=None, on_error=print) -> tuple[np.ndarray, list[bool]]:
    """Embeddings of the files (their LR versions, made by the LR ``protocol``, when it is given);
    (n, dim) and an ok-mask.

    A file that cannot be read or embedded is reported and left out (mask False, row NaN).
    """
    if protocol is None:
        vecs, failures = embedder.embed_files(paths)
        for exc in failures:
            on_error(str(exc))
        return vecs, [bool(np.isfinite(v).all()) for v in vecs]
    vecs = np.full((len(paths), embedder.dim), np.nan, np.float32)
    for i, path in enumerate(paths):
        try:
            img = read_image(path)
            vecs[i] = embedder.embed([protocol.lr_image(img, path.name)[0]])[0]
        except InputError as exc:
            on_error(str(exc) if exc.path == str(path) else f"{path}: {exc.problem}")
        except FacesrError as exc:  # e.g. a size the operator cannot divide
            on_error(f"{path}: {exc}")
    return vecs, [bool(np.isfinite(v).all()) for v in vecs]


def usable_embeddings(embedder, paths: list[Path], protocol=None, on_error=print) -> np.ndarray:
    """(m, dim): the rows of ``embed_paths`` that could be made (failures reported, left out)."""
    vecs, ok = embed_paths(embedder, paths, protocol, on_error)
    return vecs[np.array(ok, dtype=bool)]


def aggregate(embs: np.ndarray, how: str, renorm: bool = False) -> np.ndarray:
    if how == "mean":
        return agg.mean(embs, renorm)
    if how == "trimmed":
        return agg.trimmed_mean(embs, renorm=renorm)
    raise FacesrError(f"aggregate must be 'mean' or 'trimmed', got {how!r}")


def view_name(protocol) -> str:
    return "as-is" if protocol is None else f"lr:{protocol.operator.name}:{protocol.scale}"


def per_image_table(embedder, root, protocol=None, limit: int = 0, on_error=print, progress=None) -> FeatureTable:
    """One row per image under ``root`` (recursive), named by its path relative to ``root``.

    ``limit`` > 0 keeps that many images evenly spaced over the sorted list (a reproducible subset).
    """
    root = Path(root)
    paths = list_images(root, recursive=True)
    if not paths:
        raise FacesrError(f"{root}: no images")
    if 0 < limit < len(paths):
        paths = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, limit).round()]
    names, rows = [], []
    step = 256
    for start in range(0, len(paths), step):
        part = paths[start : start + step]
        vecs, ok = embed_paths(embedder, part, protocol, on_error)
        for p, v, good in zip(part, vecs, ok):
            if good:
                names.append(p.relative_to(root).as_posix())
                rows.append(v)
        if progress:
            progress(min(start + step, len(paths)), len(paths))
    if not rows:
        raise FacesrError(f"{root}: no image could be embedded")
    meta = {"kind": "per_image", "embedder": embedder.name, "embedder_mode": embedder.mode, "view": view_name(protocol)}
    return FeatureTable(names, np.stack(rows), meta)


def identity_images(root, skip: int = 0, max_images: int = 0) -> dict[str, list[Path]]:
    """{identity folder: its images sorted by name}, without the first ``skip`` (e.g. 2: gallery and
    probe of facesr's protocol) and at most ``max_images`` of the rest (0: all)."""
    root = Path(root)
    if not root.is_dir():
        raise FacesrError(f"{root}: not a folder")
    out = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = list_images(folder)[skip:]
        out[folder.name] = images[:max_images] if max_images else images
    if not out:
        raise FacesrError(f"{root}: no identity folders (expected <root>/<identity>/<images>)")
    return out


def identity_table(embedder, groups: dict[str, list[Path]], protocol=None, how: str = "mean", renorm: bool = False,
                   on_error=print, progress=None) -> FeatureTable:
    """One aggregated row per identity; identities with no usable image are reported and left out.
    ``progress(done, total)`` after each identity."""
    names, rows, counts = [], [], []
    for n, (name, paths) in enumerate(groups.items(), 1):
        if progress:
            progress(n - 1, len(groups))
        if not paths:
            on_error(f"{name}: no images to aggregate; skipped")
            continue
        good = usable_embeddings(embedder, paths, protocol, on_error)
        if len(good) == 0:
            on_error(f"{name}: no image could be embedded; skipped")
            continue
        names.append(name)
        rows.append(aggregate(good, how, renorm))
        counts.append(int(len(good)))
    if not rows:
        raise FacesrError("no identity could be embedded")
    meta = {"kind": "identity", "embedder": embedder.name, "embedder_mode": embedder.mode, "view": view_name(protocol),
            "aggregate": how, "renorm": renorm, "counts": dict(zip(names, counts))}
    return FeatureTable(names, np.stack(rows), meta)


def others_table(embedder, groups: dict[str, list[Path]], root, protocol=None, max_others: int = 0, how: str = "mean",
                 renorm: bool = False, seed: int = 0, on_error=print, progress=None) -> FeatureTable:
    """One row per image, named by its path under ``root``: the aggregate of *other* images of its identity
    (up to ``max_others`` drawn at random with ``seed``; 0 = all others). This is the condition a FASR model
    gets at test time (other photos of the person), made for training. Images whose identity has no other
    usable image are left out."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    names, rows = [], []
    for n, (name, paths) in enumerate(groups.items(), 1):
        if progress:
            progress(n - 1, len(groups))
        vecs, ok = embed_paths(embedder, paths, protocol, on_error)
        good = [i for i, g in enumerate(ok) if g]
        if len(good) < 2:
            on_error(f"{name}: fewer than 2 usable images, no 'other' images to aggregate; skipped")
            continue
        for i in good:
            others = [j for j in good if j != i]
            if max_others and len(others) > max_others:
                others = sorted(rng.choice(others, size=max_others, replace=False).tolist())
            names.append(paths[i].relative_to(root).as_posix())
            rows.append(aggregate(vecs[others], how, renorm))
    if not rows:
        raise FacesrError("no identity has two usable images")
    meta = {"kind": "per_image", "embedder": embedder.name, "embedder_mode": embedder.mode, "view": view_name(protocol),
            "condition": f"{how} of {max_others or 'all'} other image(s) of the identity", "seed": seed}
    return FeatureTable(names, np.stack(rows), meta)


def build_table(embedder, root, per_image: bool = False, protocol=None, how: str = "mean", renorm: bool = False,
                skip: int = 0, max_images: int = 0, limit: int = 0, others: int | None = None, seed: int = 0,
                on_error=print, progress=None) -> FeatureTable:
    """The table 'facesr features' writes: per identity folder (aggregated), per image, or per image from
    ``others`` (N, 0 = all) *other* images of its identity."""
    if skip < 0 or max_images < 0 or limit < 0:
        raise FacesrError("skip, max-images and limit must be non-negative")
    if others is not None and not per_image:
        raise FacesrError("others makes one row per image: ask for per-image rows")
    if others is not None:
        groups = identity_images(root, skip, max_images)
        return others_table(embedder, groups, root, protocol, others, how, renorm, seed, on_error=on_error,
                            progress=progress)
    if per_image:
        return per_image_table(embedder, root, protocol, limit, on_error=on_error, progress=progress)
    return identity_table(embedder, identity_images(root, skip, max_images), protocol, how, renorm, on_error=on_error,
                          progress=progress)
