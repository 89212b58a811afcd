"""Identity vectors for FASR models: from reference images, a features file, or a test set's aux images.

A FASR model (``unet.vector_dim`` > 0) needs one vector per face: the aggregate of the embeddings
of other low-quality images of the same person, made with the model's own embedder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from facesr.errors import FacesrError


def vector_dim(model) -> int:
    return getattr(getattr(model.cfg, "unet", None), "vector_dim", 0)


def model_embedder(model):
    from facesr.pipelines.identity_eval import make_embedder

    return make_embedder(model.cfg.unet.vector_embedder)


def check_table(model, table, path) -> None:
    spec, dim = table.meta.get("embedder_spec"), vector_dim(model)
    if table.meta.get("kind") != "identity":
        raise FacesrError(f"--refs {path}: a per-image table; make identity features with 'facesr features ROOT OUT'")
    if spec != model.cfg.unet.vector_embedder or table.dim != dim:
        raise FacesrError(f"--refs {path}: {table.dim}-d features from {spec!r}; {model.source} takes "
                          f"{dim}-d features from {model.cfg.unet.vector_embedder!r}")


def refs_vectors(model, inputs: list[Path], refs: list[str], how: str = "mean", on_error=print) -> dict[Path, torch.Tensor]:
    """{input: vector} for ``upscale --refs``.

    ``refs`` is either one features file (.safetensors from 'facesr features'): each input then uses the
    row of its parent folder's name (batch mode over <root>/<identity>/<probe> folders; an input whose
    identity has no row is left out and reported), or image files / folders of one person, embedded as
    they are and aggregated into one vector used for every input.
    """
    from facesr.data.io import expand_inputs
    from facesr.identity.features import FeatureTable, aggregate, usable_embeddings

    if not vector_dim(model):
        raise FacesrError(f"--refs: {model.source} takes no identity vector (not a FASR model)")
    if len(refs) == 1 and refs[0].endswith(".safetensors"):
        table = FeatureTable.load(refs[0])
        check_table(model, table, refs[0])
        out = {}
        for path in inputs:
            v = table.get(path.parent.name)
            if v is None:
                on_error(f"{path}: no features for identity {path.parent.name!r} in {refs[0]}")
            else:
                out[path] = torch.from_numpy(v.copy())
        return out
    paths = expand_inputs(refs)
    good = usable_embeddings(model_embedder(model), paths, None, on_error)
    if len(good) == 0:
        raise FacesrError(f"--refs: none of the {len(paths)} reference image(s) could be embedded")
    v = torch.from_numpy(aggregate(good, how).astype(np.float32))
    return {path: v for path in inputs}


def parse_aux(text: str, flag: str = "--aux") -> int:
    """'all' -> 0 (no limit), 'N' -> N >= 1."""
    if text == "all":
        return 0
    if not text.isdigit() or int(text) < 1:
        raise FacesrError(f"{flag} {text!r}: expected a positive number or 'all'")
    return int(text)


def check_whose(whose: str) -> None:
    if whose not in ("same", "other", "none"):
        raise FacesrError(f"--ref-from / ref= must be 'same', 'other' or 'none', got {whose!r}")


def source_folder(probe: Path, folders: list[Path], whose: str) -> Path | None:
    """Whose images condition ``probe``: its own identity folder ("same"), or the next identity folder in
    sorted order ("other", the control; None when there is no other)."""
    check_whose(whose)
    if whose == "same":
        return probe.parent
    other = folders[(folders.index(probe.parent) + 1) % len(folders)]
    return None if other == probe.parent else other


AUX_VIEWS = ("lr", "hr")


def check_view(view: str) -> None:
    if view not in AUX_VIEWS:
        raise FacesrError(f"--aux-view / view= must be 'lr' or 'hr', got {view!r}")


def aux_vectors(model, probes: list[Path], max_aux: int = 0, how: str = "mean", whose: str = "same",
                on_error=print, view: str = "lr") -> dict[Path, torch.Tensor]:
    """{probe: vector} under facesr's identity protocol: the probe is the 2nd image of its folder, the aux
    images are the 3rd onwards (at most ``max_aux``; 0 = all) of its own folder (or, ``whose="other"``, of
    the next identity's), embedded from their LR versions made with the model's operator (``view="lr"``:
    tiny faces like the probe) or as they are (``"hr"``: the reference's test protocol, 128-px photos).
    Probes without any usable aux image are left out (not in the result). ``whose="none"``: the null
    identity, the zero vector, for every probe (the same network without identity; meaningful for a
    model trained with ``data.vector_dropout``)."""
    from facesr.identity.features import aggregate, usable_embeddings
    from facesr.identity.recognition import aux_images

    check_view(view)
    check_whose(whose)
    if whose == "none":
        return {probe: torch.zeros(vector_dim(model)) for probe in probes}
    embedder = model_embedder(model)
    folders = sorted({p.parent for p in probes})
    vectors: dict[Path, torch.Tensor | None] = {}
    for folder in folders:
        aux = aux_images(folder)
        aux = aux[:max_aux] if max_aux else aux
        good = usable_embeddings(embedder, aux, model.operator if view == "lr" else None, on_error) if aux else []
        vectors[folder] = torch.from_numpy(aggregate(good, how).astype(np.float32)) if len(good) else None
    out = {}
    for probe in probes:
        folder = source_folder(probe, folders, whose)
        if folder is not None and vectors[folder] is not None:
            out[probe] = vectors[folder]
    return out


def needs_reference(model) -> bool:
    return getattr(model, "is_refsr", False)


def read_reference(model, path) -> torch.Tensor:
    """A reference face file as a (3, H, W) tensor of the model's HR size."""
    from facesr.data.io import read_image, to_tensor
    from facesr.errors import InputError

    img = to_tensor(read_image(path))
    size = model.cfg.hr_size
    if tuple(img.shape[-2:]) != (size, size):
        raise InputError(path, f"the reference must be an aligned {size}x{size} face, got {img.shape[2]}x{img.shape[1]}")
    return img


def protocol_references(model, probes: list[Path], whose: str = "same", on_error=print) -> dict[Path, torch.Tensor]:
    """{probe: reference} under facesr's identity protocol: the first aux image (3rd of the folder) of the
    probe's own identity (``whose="same"``), or of the next identity in sorted order (``"other"``, the
    control). Probes whose identity (or the next one) has no usable aux image are left out; an unreadable
    reference is reported through ``on_error``."""
    from facesr.errors import InputError
    from facesr.identity.recognition import aux_images

    folders = sorted({p.parent for p in probes})
    check_whose(whose)
    if whose == "none":
        raise FacesrError("ref 'none' (the zero identity vector) is only for FASR models")
    references: dict[Path, torch.Tensor | None] = {}
    for folder in folders:
        first = (aux_images(folder) or [None])[0]
        try:
            references[folder] = None if first is None else read_reference(model, first)
        except InputError as exc:
            on_error(str(exc))
            references[folder] = None
    out = {}
    for probe in probes:
        folder = source_folder(probe, folders, whose)
        if folder is not None and references[folder] is not None:
            out[probe] = references[folder]
    return out


def condition_inputs(model, probes: list[Path], aux: str = "all", ref_from: str = "same", on_error=print,
                     view: str = "lr"):
    """What ``model`` needs besides each probe's LR, under the identity protocol: (the probes it can run,
    {probe: identity vector} or None, {probe: reference face} or None, summary entries saying how they
    were made). FASR probes without a usable aux image and RefSR probes without a reference are left out.
    ``view``: FASR aux images as LR ("lr") or as they are ("hr"); see ``aux_vectors``."""
    vectors = refs = None
    extra = {}
    if vector_dim(model):
        vectors = aux_vectors(model, probes, parse_aux(aux), whose=ref_from, on_error=on_error, view=view)
        described = f"LR of the aux images ({model.cfg.operator} x{model.cfg.scale})" if view == "lr" else "the aux images as they are (HR)"
        extra["identity_condition"] = {"embedder": model.cfg.unet.vector_embedder, "aux": aux, "of": ref_from,
                                       "view": described, "aux_view": view,
                                       "aggregate": "mean", "left_out": [p.parent.name for p in probes if p not in vectors]}
        probes = [p for p in probes if p in vectors]
    if needs_reference(model):
        refs = protocol_references(model, probes, ref_from, on_error)
        extra["reference"] = f"first aux image of the {'same' if ref_from == 'same' else 'next'} identity"
        probes = [p for p in probes if p in refs]
    return probes, vectors, refs, extra
