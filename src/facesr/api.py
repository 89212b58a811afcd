"""The Python API: every bundled model, with what it needs, from paths or uint8 RGB arrays.

    import facesr
    sr = facesr.upscale(["face_16.png"])                                      # sr3-x8-res; list of uint8 (H, W, 3)
    sr = facesr.upscale(["face_16.png"], model="sr3-x8", steps=50)            # another model, another recipe
    sr = facesr.upscale([lr], model="fasr-x8", refs=["her_1.jpg", "her_2.jpg"])  # FASR: photos of the person
    sr = facesr.upscale([lr], model="refsr-vae-x8", ref="her_photo.png")         # RefSR: one aligned HR photo
    frames = facesr.upscale_frames(lr_frames, model="mfsr3-x8")                  # one SR frame per input frame

A conditioned model without its extra input runs as its own fair baseline and warns so (BaselineWarning):
FASR without ``refs`` on its null identity, MF-SR3 on still images (or ``neighbours=False``) with each
image in place of its neighbours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facesr.engine.refs_gate import THRESHOLD as REFS_GATE
from facesr.methods.hub import DEFAULT_MODEL


class BaselineWarning(UserWarning):
    """A conditioned model runs without its extra input, as its own fair baseline."""


class GateWarning(UserWarning):
    """FASR references were not used for an input: its LR face does not match them (``refs_gate``)."""


def _warn(note: str | None, kind=BaselineWarning) -> None:
    if note:
        import warnings

        warnings.warn(note, kind, stacklevel=3)


def load_model(name_or_path: str = DEFAULT_MODEL, device: str = "auto", use_ema: bool = True):
    """A bundled model by name, or a folder written by ``save_pretrained`` / a training checkpoint."""
    from facesr.methods.hub import load_model as load
    from facesr.runtime import resolve_device

    return load(name_or_path, resolve_device(device), use_ema)


def _prepare(images, model, device, options: dict):
    """(model, LR tensors, noise keys, sampling options) with every input checked; errors name images[i]."""
    from facesr.engine.conditions import as_image
    from facesr.engine.options import SamplingOptions
    from facesr.engine.run import check_input
    from facesr.errors import FacesrError, InputError
    from facesr.io.images import to_tensor
    from facesr.runtime import resolve_device

    if isinstance(images, (str, Path, np.ndarray)):
        raise FacesrError("images: expected a list of paths or uint8 RGB arrays (wrap a single image in a list)")
    dev = resolve_device(device)
    if isinstance(model, str):
        model = load_model(model, device)
    tensors, keys = [], []
    for i, item in enumerate(images):
        where = str(item) if isinstance(item, (str, Path)) else f"images[{i}]"
        lr = as_image(item, where)
        problem = check_input(model, *lr.shape[:2])
        if problem:
            raise InputError(where, problem)
        tensors.append(to_tensor(lr))
        keys.append(Path(item).name if isinstance(item, (str, Path)) else f"array-{i}")  # as the CLI: by file name
    return model, tensors, keys, SamplingOptions.for_model(model, **options), dev


def upscale(images, model=DEFAULT_MODEL, *, refs=None, refs_embedder=None, refs_gate=REFS_GATE, ref=None, init=None, guidance=None, identity_scale=None,
            sampler=None, steps=None, strength=None, samples=None, eta=None, project=None, flip=None, seed=0, batch_size=16, precision="bf16", device="auto",
            check_outputs=True, **sde_options) -> list[np.ndarray]:
    """Super-resolve face chips (paths or uint8 RGB (h, w, 3) arrays); returns uint8 RGB arrays in order.

    ``refs`` (FASR models): reference images of the person, one list for all inputs or one list per
    input, or a features file from 'facesr features'; ``refs_embedder``: the network that embeds them if not
    the model's own, e.g. 'dlib-lq' (a student of dlib made for tiny faces) for tiny refs; ``refs_gate``: an input
    whose LR face scores below this cosine against its references runs on the null identity instead, with a
    GateWarning (``facesr.engine.refs_gate``; None: no gate). ``ref`` (RefSR-VAE): one aligned HR photo of the
    person, or one per input. FASR without ``refs`` runs on its null identity; MF-SR3 restores each image
    in place of its neighbours (see ``upscale_frames`` for clips); both warn so. Sampling options left as
    None take the model's recommended recipe; ``strength`` < 1 warm-starts from noised bicubic (or from the
    regression model ``init``), ``samples`` > 1 averages that many samples, ``guidance`` w guides FASR towards the identity,
    ``identity_scale`` s < 1 weakens its pull (the vector enters as s v; 0 is the null identity),
    ``project`` N > 0 makes each sample consistent with its LR by N rounds of back-projection, ``flip`` runs every
    second sample on the mirrored face (a self-ensemble within the samples' cost).
    ``sde_options``: predictor, corrector, snr, corrector_steps, probability_flow, ode_method.
    An output that is no restoration of its input (pure noise, from too few steps without a warm
    start) raises InputError naming the input; ``check_outputs=False`` returns it anyway (for studies
    of the samplers). The same seed gives the same pixels for an input whatever the batch (noise keyed by file name).
    """
    from facesr.engine.conditions import baseline_note, conditions_for, still_stack
    from facesr.engine.refs_gate import gate_conditions, gated, parse_threshold
    from facesr.engine.run import super_resolve_tensors
    from facesr.io.images import to_uint8

    refs_gate = parse_threshold(refs_gate)
    images = images if isinstance(images, (str, Path, np.ndarray)) else list(images)  # a generator, once
    options = dict(sampler=sampler, steps=steps, eta=eta, strength=strength, samples=samples, init=init,
                   guidance=guidance, identity_scale=identity_scale, project=project, flip=flip, seed=seed, batch_size=batch_size, precision=precision,
                   **sde_options)
    model, lrs, keys, opts, dev = _prepare(images, model, device, options)
    _warn(baseline_note(model, refs, stills=True))
    lrs = [still_stack(model, lr) for lr in lrs]
    identities = [Path(x).parent.name if isinstance(x, (str, Path)) else None for x in images]
    conds = conditions_for(model, len(lrs), refs=refs, ref=ref, refs_embedder=refs_embedder,
                           identities=None if None in identities else identities)
    if (refs is not None or ref is not None) and gated(model):
        conds, verdicts = gate_conditions(model, lrs, conds, refs_gate)
        for i, verdict in enumerate(verdicts):
            if not verdict.used:
                _warn(f"{images[i] if isinstance(images[i], (str, Path)) else f'images[{i}]'}: "
                      f"{verdict.describe(refs_gate)}", GateWarning)
    srs = super_resolve_tensors(model, lrs, keys, opts, dev, conditions=conds)
    if check_outputs:
        _check_outputs(model, images, lrs, srs)
    return [to_uint8(s) for s in srs]


def _check_outputs(model, images, lrs, srs) -> None:
    """An output that is no restoration of its input (pure noise from too few steps) raises, naming it."""
    from facesr.engine.run import output_problem
    from facesr.errors import InputError

    for i, (lr, sr) in enumerate(zip(lrs, srs)):
        problem = output_problem(model, lr, sr)
        if problem:
            raise InputError(str(images[i]) if isinstance(images[i], (str, Path)) else f"images[{i}]", problem)


def upscale_frames(frames, model="mfsr3-x8", *, step=1, neighbours=True, name="clip", init=None, sampler=None, steps=None,
                   strength=None, samples=None, eta=None, project=None, flip=None, seed=0, batch_size=16,
                   precision="bf16", device="auto", check_outputs=True, **sde_options) -> list[np.ndarray]:
    """Consecutive LR frames of one clip (paths or uint8 arrays) to one SR frame each: frame i from the
    model's window of k frames around it (``step`` apart, clamped at the ends). Every frame of the clip
    uses the noise of ``name`` (less flicker), as ``facesr upscale VIDEO --frames k`` does for a clip of
    that name. A single-image model restores each frame on its own. ``neighbours=False``: each frame in
    place of its neighbours (MF-SR3's fair baseline, warned). ``check_outputs``: as in ``upscale``."""
    from facesr.engine.conditions import baseline_note, frame_stacks
    from facesr.engine.run import super_resolve_tensors
    from facesr.errors import FacesrError
    from facesr.io.images import to_uint8

    frames = frames if isinstance(frames, (str, Path, np.ndarray)) else list(frames)
    options = dict(sampler=sampler, steps=steps, eta=eta, strength=strength, samples=samples, init=init,
                   project=project, flip=flip, seed=seed, batch_size=batch_size, precision=precision, **sde_options)
    model, lrs, _, opts, dev = _prepare(frames, model, device, options)
    if model.needs.vector_dim or model.needs.reference:
        raise FacesrError(f"{model.name} needs {model.needs.describe()}: use facesr.upscale")
    if len({tuple(t.shape) for t in lrs}) > 1:
        raise FacesrError("frames: all frames of a clip must have the same size")
    _warn(None if neighbours else baseline_note(model, stills=True))
    stacks = frame_stacks(model, lrs, step, neighbours)
    srs = super_resolve_tensors(model, stacks, [name] * len(stacks), opts, dev)
    if check_outputs:
        _check_outputs(model, frames, stacks, srs)
    return [to_uint8(s) for s in srs]


def restore(photo, model=None, *, upscale=None, sampler=None, steps=None, strength=None, samples=None, seed=0,
            precision="bf16", device="auto") -> dict:
    """Every face of a photo (a path or a uint8 RGB array) found, restored and pasted back, as
    ``facesr restore`` does: {"image": the restored photo (uint8, ``upscale`` x larger; default the
    largest scale used), "scale", "faces": [{box, landmarks, score, width_px, model, ...}], "chips":
    {face index: restored 128x128 chip}, "lr_chips": {index: the LR chip cut from the photo}}.
    ``model``: one model for every face, "bicubic" (the baseline), or None (by face size)."""
    from facesr.engine.conditions import as_image
    from facesr.runtime import resolve_device
    from facesr.wild.faces import FaceFinder
    from facesr.workflows.restore import Restorer, restore_photo

    key = Path(photo).name if isinstance(photo, (str, Path)) else "photo"
    img = as_image(photo, str(photo) if isinstance(photo, (str, Path)) else "photo")
    overrides = {k: v for k, v in dict(sampler=sampler, steps=steps, strength=strength, samples=samples).items()
                 if v is not None}
    restorer = Restorer(model=model, device=resolve_device(device),
                        overrides={**overrides, "seed": seed, "precision": precision})
    return restore_photo(img, FaceFinder(), restorer, upscale, key=key)


def evaluate_folders(sr_dir, hr_dir, operator="bicubic", scale=8, lr_dir=None, y=False, crop=0, out_dir=None) -> dict:
    """PSNR / SSIM / LR-consistency of SR images against HR (matched by file stem)."""
    from facesr.degrade.protocol import LRProtocol
    from facesr.workflows import evaluate

    return evaluate.evaluate_folders(sr_dir, hr_dir, LRProtocol.of(operator, scale), lr_dir, y, crop, out_dir)
