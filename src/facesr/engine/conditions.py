"""The one place that turns user inputs into what a model needs besides each LR image.

- FASR (``needs.vector_dim``): ``refs``, reference images of the person (paths or uint8 arrays; one
  list for every input, or one list per input) aggregated into one identity vector with the model's
  own embedder (or ``refs_embedder``, a student of it: ``condition_spec``), or a features file from 'facesr
  features' whose row for each input's identity is used;
  without ``refs``, the null identity (``null_identity``: the model's fair baseline);
- RefSR (``needs.reference``): ``ref``, one aligned HR photo of the person for every input, or one per input;
- MF-SR3 (``needs.frames`` = k): consecutive frames, each output from a window of k of them (``frame_stacks``);
  a still image, or a clip with ``neighbours=False``, stands in for its own neighbours (the fair baseline);
- the benchmark protocol: the aux images of each probe's identity folder (``protocol_conditions``).

The CLI, the Python API and the benchmark all come here. Errors name the API parameter (``refs``,
``ref``); the CLI translates them to its flags.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from facesr.errors import FacesrError, InputError
from facesr.methods.base import ConditionError, Conditions

AUX_VIEWS = ("lr", "hr")
WHOSE = ("same", "other", "none")


def _raise(message: str) -> None:
    raise FacesrError(message)


def null_identity(model) -> torch.Tensor:
    """FASR's "no identity": the zero vector, which vector dropout shows the model in training."""
    return torch.zeros(model.needs.vector_dim)


def condition_spec(model, embedder: str | None = None) -> str:
    """The embedder that makes a FASR model's vector: its own (None), or a student of it, a network trained
    into the same space ('dlib-lq' for 'dlib': it embeds a tiny face where dlib puts its HR face)."""
    from facesr.identity.embedders import networks_of

    own = model.needs.vector_embedder
    if embedder is None or embedder == own:
        return own
    if own not in networks_of(embedder)[1:]:
        raise ConditionError(f"{{param}} {embedder!r}: {model.name} takes vectors in {own!r}'s space; use "
                             f"{own!r} or a student of it (e.g. 'dlib-lq' for 'dlib')", "refs_embedder")
    return embedder


def model_embedder(model, embedder: str | None = None):
    """The network that embeds a FASR model's references (``condition_spec``), loaded once per process."""
    return shared_embedder(condition_spec(model, embedder))


@functools.lru_cache(maxsize=4)
def shared_embedder(spec: str):
    """``make_embedder(spec)``, kept: dlib's networks and a student's 22 MB are read once, not per input or track."""
    from facesr.identity.embedders import make_embedder

    return make_embedder(spec)


def as_image(item, where: str) -> np.ndarray:
    """A path (read and checked) or a uint8 RGB (H, W, 3) array (checked); errors name ``where``."""
    from facesr.io.images import check_array, read_image

    if isinstance(item, (str, Path)):
        return read_image(item)
    return check_array(item, where)


# --- FASR: identity vectors -------------------------------------------------------------------
def check_table(model, table, path) -> None:
    from facesr.identity.embedders import networks_of

    spec, dim = table.meta.get("embedder_spec"), model.needs.vector_dim
    if table.meta.get("kind") != "identity":
        raise ConditionError(f"{{param}} {path}: a per-image table; make identity features with "
                             "'facesr features ROOT OUT'", "refs")
    if model.needs.vector_embedder not in networks_of(spec or "") or table.dim != dim:
        raise ConditionError(f"{{param}} {path}: {table.dim}-d features from {spec!r}; {model.name} takes "
                             f"{dim}-d features from {model.needs.vector_embedder!r}", "refs")


def is_features_file(refs) -> bool:
    if isinstance(refs, (str, Path)):
        return str(refs).endswith(".safetensors")
    return isinstance(refs, (list, tuple)) and len(refs) == 1 and isinstance(refs[0], (str, Path)) \
        and str(refs[0]).endswith(".safetensors")


def identity_vector(model, refs: list, on_error=_raise, embedder: str | None = None) -> torch.Tensor:
    """The mean embedding of reference images (paths, folders, globs or uint8 arrays) with the model's
    embedder (or ``embedder``: ``condition_spec``); unusable images are reported through ``on_error`` and
    left out."""
    from facesr.identity.features import aggregate, usable_embeddings
    from facesr.io.images import expand_inputs

    embedder = model_embedder(model, embedder)
    paths = expand_inputs([str(r) for r in refs if isinstance(r, (str, Path))], on_error=on_error) if any(
        isinstance(r, (str, Path)) for r in refs) else []
    paths = [p for p in paths if _reference_size_ok(p, _header_size(p), on_error)]
    arrays = [as_image(r, f"refs[{i}]") for i, r in enumerate(refs) if not isinstance(r, (str, Path))]
    arrays = [a for i, a in enumerate(arrays) if _reference_size_ok(f"refs[{i}]", a.shape[1::-1], on_error)]
    good = [usable_embeddings(embedder, paths, None, on_error)] if paths else []
    if arrays:
        good.append(embedder.embed(arrays))
    good = np.concatenate(good) if good else np.zeros((0, embedder.dim), np.float32)
    if len(good) == 0:
        raise ConditionError(f"{{param}}: none of the {len(refs)} reference image(s) could be embedded", "refs")
    return torch.from_numpy(aggregate(good, "mean").astype(np.float32))


REF_SIDES = (8, 1024)  # a FASR reference is a face chip: a tiny LR face up to an aligned photo


def _header_size(path: Path) -> tuple[int, int] | None:
    """(w, h) from the file's header, or None if unreadable (reading it later reports why)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size
    except Exception:  # noqa: BLE001 - any unreadable file is reported by the full read
        return None


def _reference_size_ok(where, size, on_error) -> bool:
    """A reference far smaller or larger than a face chip (1x1, a 3000x2000 photo) is reported and left out."""
    if size is None:
        return True
    lo, hi = REF_SIDES
    if min(size) < lo or max(size) > hi:
        on_error(f"{where}: a {size[0]}x{size[1]} reference is not a face chip (sides {lo} to {hi} px; "
                 "crop and align the face); left out")
        return False
    return True


def _vectors(model, n: int, refs, identities, on_error, embedder=None) -> list:
    from facesr.identity.features import FeatureTable

    if is_features_file(refs):
        path = refs if isinstance(refs, (str, Path)) else refs[0]
        table = FeatureTable.load(path)
        check_table(model, table, path)
        if identities is None:
            raise ConditionError("{param}: a features file gives each input its identity's row; the inputs "
                                 "must be files in <identity>/ folders", "refs")
        out = []
        for who in identities:
            v = table.get(who)
            if v is None:
                on_error(f"no features for identity {who!r} in {path}")
            out.append(None if v is None else torch.from_numpy(v.copy()))
        return out
    if not isinstance(refs, (list, tuple)) or not refs:
        raise ConditionError("{param}: expected a list of reference images (or one list per input), "
                             "or a features file", "refs")
    if all(isinstance(r, (list, tuple)) for r in refs):  # one list per input
        if len(refs) != n:
            raise ConditionError(f"{{param}}: {len(refs)} lists of references for {n} input(s)", "refs")
        return [identity_vector(model, r, on_error, embedder) for r in refs]
    v = identity_vector(model, list(refs), on_error, embedder)
    return [v] * n


# --- RefSR: reference faces -------------------------------------------------------------------
def read_reference(model, item, where: str = "ref") -> torch.Tensor:
    """A reference face (path or uint8 array) as a (3, H, W) tensor of the model's HR size."""
    from facesr.io.images import to_tensor

    img = as_image(item, where)
    size = model.hr_size
    if img.shape[:2] != (size, size):
        name = item if isinstance(item, (str, Path)) else where
        raise InputError(name, f"the reference must be an aligned {size}x{size} face, got {img.shape[1]}x{img.shape[0]}")
    return to_tensor(img)


def _references(model, n: int, ref) -> list:
    if isinstance(ref, (list, tuple)):
        if len(ref) != n:
            raise ConditionError(f"{{param}}: {len(ref)} references for {n} input(s) (give one, or one per input)", "ref")
        return [read_reference(model, r, f"ref[{i}]") for i, r in enumerate(ref)]
    return [read_reference(model, ref)] * n


def conditions_for(model, n: int, refs=None, ref=None, identities: list[str] | None = None,
                   on_error=_raise, refs_embedder: str | None = None) -> list[Conditions | None]:
    """The conditions of ``n`` inputs from the user's ``refs`` / ``ref`` (see the module docstring).

    ``identities``: each input's identity (its folder name), for a features file. ``refs_embedder``: the
    network that embeds ``refs`` if not the model's own (``condition_spec``). An input whose
    condition could not be made is None (reported through ``on_error``); a missing or misplaced
    ``refs`` / ``ref`` raises ConditionError. FASR without ``refs``: the null identity for every input."""
    needs = model.needs
    if needs.vector_dim:
        if refs_embedder is not None:
            condition_spec(model, refs_embedder)  # a wrong network is an error even without refs
        vectors = _vectors(model, n, refs, identities, on_error, refs_embedder) if refs is not None \
            else [null_identity(model)] * n
    else:
        vectors = [None] * n
    references = _references(model, n, ref) if needs.reference and ref is not None else [None] * n
    if refs is not None and not needs.vector_dim:
        model.check_conditions(Conditions(vector=torch.zeros(1)))  # raises: takes no identity vector
    if ref is not None and not needs.reference:
        model.check_conditions(Conditions(ref=torch.zeros(1)))  # raises: takes no reference
    out = []
    for v, r in zip(vectors, references):
        if needs.vector_dim and v is None and refs is not None:
            out.append(None)  # reported above
            continue
        cond = Conditions(v, r)
        model.check_conditions(cond)
        out.append(cond)
    return out


# --- MF-SR3: consecutive frames ---------------------------------------------------------------
def frame_stacks(model, frames: list[torch.Tensor], step: int = 1, neighbours: bool = True) -> list[torch.Tensor]:
    """One LR stack (3k, h, w) per frame: frames i + step (j - k // 2), j < k, clamped to the clip;
    ``neighbours=False``: frame i k times, the same network without what the neighbours add."""
    from facesr.io.frames import window_indices

    if step < 1:
        raise FacesrError(f"frame step must be at least 1, got {step}")
    k = model.needs.frames
    if not neighbours:
        return [still_stack(model, f) for f in frames]
    return [torch.cat([frames[j] for j in window_indices(len(frames), i, k, step)]) for i in range(len(frames))]


def still_stack(model, lr: torch.Tensor) -> torch.Tensor:
    """A still LR image as the model's input: for MF-SR3 the image in place of every frame of its window."""
    return lr.repeat(model.needs.frames, 1, 1) if model.needs.frames > 1 else lr


def baseline_note(model, refs=None, stills: bool = False) -> str | None:
    """The line that says a conditioned model runs as its own fair baseline: FASR without references (its
    null identity, the zero vector it was trained with by vector dropout), MF-SR3 on still images."""
    if model.needs.vector_dim and refs is None:
        return (f"{model.name}: no references, so every input is conditioned on the null identity (the zero "
                "vector): the model's baseline without identity")
    if model.needs.frames > 1 and stills:
        return (f"{model.name}: each image stands in for its {model.needs.frames - 1} neighbour frames: "
                "the model's baseline without neighbours")
    return None


# --- the benchmark protocol: aux images of each probe's identity --------------------------------
def parse_aux(text: str, flag: str = "aux") -> int:
    """'all' -> 0 (no limit), 'N' -> N >= 1."""
    if text == "all":
        return 0
    if not text.isdigit() or int(text) < 1:
        raise FacesrError(f"{flag} {text!r}: expected a positive number or 'all'")
    return int(text)


def check_whose(whose: str) -> None:
    if whose not in WHOSE:
        raise FacesrError(f"ref-from / ref= must be 'same', 'other' or 'none', got {whose!r}")


def check_view(view: str) -> None:
    if view not in AUX_VIEWS:
        raise FacesrError(f"aux-view / view= must be 'lr' or 'hr', got {view!r}")


def source_folder(probe: Path, folders: list[Path], whose: str) -> Path | None:
    """Whose images condition ``probe``: its own identity folder ("same"), or the next identity folder in
    sorted order ("other", the control; None when there is no other)."""
    check_whose(whose)
    if whose == "same":
        return probe.parent
    other = folders[(folders.index(probe.parent) + 1) % len(folders)]
    return None if other == probe.parent else other


def _per_folder(probes: list[Path], whose: str, make) -> dict[Path, object]:
    """{probe: make(folder)} for the folder whose images condition each probe (None results left out)."""
    folders = sorted({p.parent for p in probes})
    made = {folder: make(folder) for folder in folders}
    out = {}
    for probe in probes:
        folder = source_folder(probe, folders, whose)
        if folder is not None and made[folder] is not None:
            out[probe] = made[folder]
    return out


def aux_vectors(model, probes: list[Path], max_aux: int = 0, whose: str = "same", on_error=print,
                view: str = "lr", embedder: str | None = None) -> dict[Path, torch.Tensor]:
    """{probe: vector} under facesr's identity protocol: the probe is the 2nd image of its folder, the aux
    images are the 3rd onwards (at most ``max_aux``; 0 = all) of its own folder (or, ``whose="other"``, of
    the next identity's), embedded from their LR versions made with the model's LR protocol (``view="lr"``:
    tiny faces like the probe) or as they are (``"hr"``: the reference's test protocol, 128-px photos).
    Probes without any usable aux image are left out. ``whose="none"``: the null identity, the zero
    vector, for every probe (meaningful for a model trained with ``data.vector_dropout``). ``embedder``: the
    network that embeds the aux images if not the model's own (``condition_spec``)."""
    from facesr.identity.features import aggregate, usable_embeddings
    from facesr.identity.recognition import aux_images

    check_view(view)
    check_whose(whose)
    if whose == "none":
        return {probe: null_identity(model) for probe in probes}
    embedder = model_embedder(model, embedder)

    def vector(folder):
        aux = aux_images(folder)
        aux = aux[:max_aux] if max_aux else aux
        protocol = model.lr_protocol if view == "lr" else None
        good = usable_embeddings(embedder, aux, protocol, on_error) if aux else []
        return torch.from_numpy(aggregate(good, "mean").astype(np.float32)) if len(good) else None

    return _per_folder(probes, whose, vector)


def protocol_references(model, probes: list[Path], whose: str = "same", on_error=print) -> dict[Path, torch.Tensor]:
    """{probe: reference}: the first aux image (3rd of the folder) of the probe's own identity
    (``whose="same"``), or of the next identity in sorted order (``"other"``, the control). Probes whose
    identity (or the next one) has no usable aux image are left out; an unreadable one is reported."""
    from facesr.identity.recognition import aux_images

    check_whose(whose)
    if whose == "none":
        raise FacesrError("ref 'none' (the zero identity vector) is only for FASR models")

    def reference(folder):
        first = (aux_images(folder) or [None])[0]
        try:
            return None if first is None else read_reference(model, first)
        except InputError as exc:
            on_error(str(exc))
            return None

    return _per_folder(probes, whose, reference)


def protocol_conditions(model, probes: list[Path], aux: str = "all", whose: str = "same", on_error=print,
                        view: str = "lr", embedder: str | None = None):
    """What ``model`` needs besides each probe's LR under the identity protocol: (the probes it can run,
    {probe: Conditions} or None when it needs nothing, summary entries saying how they were made).
    FASR probes without a usable aux image and RefSR probes without a reference are left out."""
    needs = model.needs
    parse_aux(aux)
    if not (needs.vector_dim or needs.reference):
        return probes, None, {}
    vectors, refs, extra = {}, {}, {}
    if needs.vector_dim:
        vectors = aux_vectors(model, probes, parse_aux(aux), whose, on_error, view, embedder)
        described = f"LR of the aux images ({model.lr_protocol.describe()})" if view == "lr" else "the aux images as they are (HR)"
        extra["identity_condition"] = {"embedder": condition_spec(model, embedder), "aux": aux, "of": whose, "view": described,
                                       "aux_view": view, "aggregate": "mean",
                                       "left_out": [p.parent.name for p in probes if p not in vectors]}
        probes = [p for p in probes if p in vectors]
    if needs.reference:
        refs = protocol_references(model, probes, whose, on_error)
        extra["reference"] = f"first aux image of the {'same' if whose == 'same' else 'next'} identity"
        probes = [p for p in probes if p in refs]
    return probes, {p: Conditions(vectors.get(p), refs.get(p)) for p in probes}, extra
