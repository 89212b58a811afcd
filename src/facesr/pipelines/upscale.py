"""Super-resolve image files in batches; a bad file is reported and the rest still run."""

from __future__ import annotations

import functools
import json
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from facesr.data.datasets import middle_frame
from facesr.data.io import atomic_write_text, read_image, to_tensor, to_uint8, write_image
from facesr.diffusion.dispatch import SDE_SAMPLERS, PCOptions, sde_evaluations
from facesr.diffusion.samplers import network_evaluations
from facesr.errors import FacesrError, InputError

PC_KEYS = ("predictor", "corrector", "snr", "corrector_steps", "probability_flow", "ode_method")
RECIPE_KEYS = ("sampler", "steps", "eta", "strength", "samples", "init", "guidance") + PC_KEYS


@dataclass
class SamplingOptions:
    sampler: str = "ddim"
    steps: int = 50
    eta: float | None = None
    seed: int = 0
    batch_size: int = 16
    precision: str = "bf16"
    strength: float = 1.0  # < 1: warm start from the noised fast estimate (bicubic, or ``init``)
    samples: int = 1  # > 1: average that many samples (posterior-mean estimate), K x steps evaluations
    init: str | None = None  # regression model (name or folder) whose output is the warm start; None: bicubic
    guidance: float = 0.0  # FASR: classifier-free guidance weight on the identity vector (2 x evaluations)
    # SDE samplers ("pc", "ode") only; see facesr.diffusion.dispatch.PCOptions
    predictor: str = "reverse_diffusion"
    corrector: str = "langevin"
    snr: float = 0.075
    corrector_steps: int = 1
    probability_flow: bool = False
    ode_method: str = "heun"

    @property
    def pc(self) -> PCOptions:
        return PCOptions(**{k: getattr(self, k) for k in PC_KEYS})

    @property
    def network_evaluations(self) -> int:
        """Denoiser calls per face: samples x the sampler's evaluations at ``steps`` levels."""
        if self.sampler in SDE_SAMPLERS:
            return self.samples * sde_evaluations(self.sampler, self.steps, self.pc)
        return self.samples * network_evaluations(self.sampler, self.steps)

    @classmethod
    def for_model(cls, model, **given) -> "SamplingOptions":
        """The model's recommended recipe (config.json "sampling"), overridden by ``given`` values that are not None."""
        from facesr.pipelines.identity_refs import vector_dim

        values = {k: v for k, v in getattr(model, "sampling", {}).items() if k in RECIPE_KEYS}
        values.update({k: v for k, v in given.items() if v is not None})
        opts = cls(**values)
        if opts.steps < 1 or opts.samples < 1 or opts.batch_size < 1:
            raise FacesrError("steps, samples and batch size must be at least 1")
        if opts.guidance < 0:
            raise FacesrError(f"guidance must be 0 or more, got {opts.guidance}")
        if opts.guidance and not vector_dim(model):
            raise FacesrError(f"guidance is for FASR models (an identity vector to guide by); "
                              f"{getattr(model, 'source', 'this model')} has none")
        return opts


@functools.lru_cache(maxsize=4)
def _load_init_model(name: str, device: str):
    from facesr.models.hub import load_model

    return load_model(name, device, flag="--init")


def warm_start_model(model, opts: SamplingOptions, device):
    """The regression model named by ``opts.init``, checked against ``model``; None when unused.

    It is only used with strength < 1: from pure noise there is nothing to start from.
    """
    if not opts.init or opts.strength >= 1 or getattr(model, "method", None) == "regression":
        return None
    init = _load_init_model(opts.init, str(device))
    if init.method != "regression":
        raise FacesrError(f"init model {opts.init}: must be a regression model, got method {init.method!r}")
    for key in ("scale", "hr_size"):
        if getattr(init.cfg, key) != getattr(model.cfg, key):
            raise FacesrError(f"init model {opts.init}: {key} {getattr(init.cfg, key)} does not match "
                              f"{getattr(model, 'source', 'the model')} ({getattr(model.cfg, key)})")
    return init


def image_generator(seed: int, key: str) -> torch.Generator:
    """Noise for one image depends on (seed, its name) only, not on batching."""
    return torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(key.encode())) % (2**63))


def super_resolve_tensors(model, lrs: list[torch.Tensor], keys: list[str], opts: SamplingOptions, device,
                          with_std: bool = False, vectors: list[torch.Tensor] | None = None,
                          refs: list[torch.Tensor] | None = None):
    """LR tensors (3, h, w) to SR tensors; batches group images of equal size.

    ``vectors``: one identity vector per image, for FASR models; ``refs``: one reference face
    (3, H, W) per image, for RefSR-VAE.

    With ``opts.samples`` = K > 1 each image is the mean of K samples (seeds seed..seed+K-1);
    ``with_std`` also returns the per-pixel standard deviation over the K samples.
    """
    out: list = [None] * len(lrs)
    std: list = [None] * len(lrs)
    jobs = [(i, k) for i in range(len(lrs)) for k in range(opts.samples)]
    by_size: dict[tuple, list] = {}
    for i, k in jobs:
        by_size.setdefault(tuple(lrs[i].shape), []).append((i, k))
    sums: dict[int, torch.Tensor] = {}
    squares: dict[int, torch.Tensor] = {}
    init_model = warm_start_model(model, opts, device)
    for group in by_size.values():
        for start in range(0, len(group), opts.batch_size):
            chunk = group[start : start + opts.batch_size]
            lr = torch.stack([lrs[i] for i, _ in chunk]).to(device)
            gens = [image_generator(opts.seed + k, keys[i]) for i, k in chunk]
            init = init_model.super_resolve(middle_frame(lr), precision=opts.precision) if init_model else None
            extra = {}
            if vectors is not None:
                extra["vector"] = torch.stack([vectors[i] for i, _ in chunk]).to(device)
                extra["guidance"] = opts.guidance
            if refs is not None:
                extra["ref"] = torch.stack([refs[i] for i, _ in chunk]).to(device)
            sr = model.super_resolve(lr, sampler=opts.sampler, steps=opts.steps, eta=opts.eta, generator=gens,
                                     precision=opts.precision, strength=opts.strength, pc=opts.pc, init=init,
                                     **extra).cpu().double()
            for (i, _), img in zip(chunk, sr):
                sums[i] = sums.get(i, 0) + img
                squares[i] = squares.get(i, 0) + img**2
    for i in range(len(lrs)):
        mean = sums[i] / opts.samples
        out[i] = mean.float()
        std[i] = (squares[i] / opts.samples - mean**2).clamp(min=0).sqrt().float()
    return (out, std) if with_std else out


def std_heatmap(std: torch.Tensor, full_scale: float = 0.1) -> "np.ndarray":
    """Per-pixel std (mean over channels) as a black-red-yellow-white uint8 heat map; full_scale maps to white."""
    import numpy as np

    v = (std.mean(0) / full_scale).clamp(0, 1).numpy()
    rgb = np.stack([np.clip(3 * v, 0, 1), np.clip(3 * v - 1, 0, 1), np.clip(3 * v - 2, 0, 1)], -1)
    return (rgb * 255).round().astype(np.uint8)


def output_names(paths: list[Path]) -> list[str]:
    """<stem>.png, with -2, -3 ... where two inputs share a stem."""
    seen: dict[str, int] = {}
    names = []
    for p in paths:
        n = seen.get(p.stem, 0) + 1
        seen[p.stem] = n
        names.append(f"{p.stem}.png" if n == 1 else f"{p.stem}-{n}.png")
    return names


def upscale_files(model, paths: list[Path], out_dir, opts: SamplingOptions, device, on_error=print, on_done=None,
                  uncertainty: bool = False, vectors: dict | None = None, ref: torch.Tensor | None = None) -> dict:
    """Write <out>/<stem>.png for each input (and <stem>.std.png with ``uncertainty``, which needs samples > 1).

    Inputs are read a chunk at a time; an unreadable file or an unusable size fails that input only.
    ``vectors``: {input path: identity vector} for FASR models; an input without one fails.
    ``ref``: one reference face (3, H, W) for every input, for RefSR-VAE models.
    """
    out_dir = Path(out_dir)
    warm_start_model(model, opts, device)  # a bad --init stops here, before any input is read
    inputs = {p.resolve() for p in paths}
    jobs, failures = [], []

    def fail(message: str) -> None:
        failures.append(message)
        on_error(message)

    for path, name in zip(paths, output_names(paths)):
        target = out_dir / name
        if target.resolve() in inputs:
            fail(f"{path}: output {target} would overwrite an input; choose another -o")
        elif vectors is not None and path not in vectors:
            failures.append(f"{path}: no identity vector")  # refs_vectors has reported why
        else:
            jobs.append((path, target))
    expected = model.cfg.hr_size // model.cfg.scale
    t0 = time.time()
    written = []
    chunk = opts.batch_size * 4
    for start in range(0, len(jobs), chunk):
        part = []
        for path, target in jobs[start : start + chunk]:
            try:
                lr = to_tensor(read_image(path))
            except InputError as exc:
                fail(str(exc))
                continue
            problem = model.input_problem(lr.shape[-2], lr.shape[-1])
            if problem:
                fail(f"{path}: {problem}")
                continue
            if lr.shape[-2:] != (expected, expected):
                on_error(f"warning: {path}: {lr.shape[2]}x{lr.shape[1]} input; {model.source} was trained on {expected}x{expected} faces")
            part.append((path, target, lr))
        if not part:
            continue
        vecs = [vectors[j[0]] for j in part] if vectors is not None else None
        srs, stds = super_resolve_tensors(model, [j[2] for j in part], [j[0].name for j in part], opts, device,
                                          with_std=True, vectors=vecs, refs=None if ref is None else [ref] * len(part))
        for (path, target, _), sr, std in zip(part, srs, stds):
            write_image(target, to_uint8(sr))
            if uncertainty:
                write_image(target.with_suffix(".std.png"), std_heatmap(std))
            written.append(str(target))
            if on_done:
                on_done(path, target)
    seconds = time.time() - t0
    manifest = {
        "model": getattr(model, "source", None),
        "options": asdict(opts),
        "network_evaluations_per_face": model.network_evaluations(opts),
        "device": str(device),
        "outputs": written,
        "failures": failures,
        "seconds": round(seconds, 3),
        "seconds_per_face": round(seconds / max(1, len(written)), 4),
    }
    atomic_write_text(out_dir / "facesr-run.json", json.dumps(manifest, indent=2) + "\n")
    return manifest
