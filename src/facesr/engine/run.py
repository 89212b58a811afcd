"""Super-resolve LR tensors in batches: noise per image, warm starts, K samples and their spread."""

from __future__ import annotations

import functools
import zlib

import torch

from facesr.errors import FacesrError
from facesr.io.frames import middle_frame
from facesr.methods.base import Conditions

INPUT_SIDE_LIMIT = 2  # inputs may be at most this many times the model's LR side (see check_input)


def image_generator(seed: int, key: str) -> torch.Generator:
    """Noise for one image depends on (seed, its name) only, not on batching."""
    return torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(key.encode())) % (2**63))


def check_input(model, h: int, w: int) -> str | None:
    """Why an LR image of h x w should not be run (None if it can): the model's own limits, and
    anything far larger than its face chips (more than INPUT_SIDE_LIMIT x its LR side), which would
    run for hours or exhaust memory; such an input is a photo, not a face chip."""
    side = model.lr_size * INPUT_SIDE_LIMIT
    if h > side or w > side:
        return (f"{w}x{h} input is far larger than the {model.lr_size}x{model.lr_size} face chips {model.name} "
                f"takes (limit {side}x{side}): crop and align the face first")
    return model.input_problem(h, w)


@functools.lru_cache(maxsize=4)
def _load_init_model(name: str, device: str):
    from facesr.methods.hub import load_model

    return load_model(name, device, flag="init")


def warm_start_model(model, opts, device):
    """The regression model named by ``opts.init``, checked against ``model``; None when unused.

    It is only used with strength < 1: from pure noise there is nothing to start from.
    """
    if not opts.init or opts.strength >= 1 or not model.uses_sampler:
        return None
    init = _load_init_model(opts.init, str(device))
    if init.uses_sampler or init.needs.frames > 1 or init.needs.vector_dim or init.needs.reference:
        raise FacesrError(f"init model {opts.init}: must be a single-image regression model, got method {init.method!r}")
    for key in ("scale", "hr_size"):
        if getattr(init, key) != getattr(model, key):
            raise FacesrError(f"init model {opts.init}: {key} {getattr(init, key)} does not match "
                              f"{model.name} ({getattr(model, key)})")
    return init


def super_resolve_tensors(model, lrs: list[torch.Tensor], keys: list[str], opts, device, with_std: bool = False,
                          conditions: list[Conditions] | None = None):
    """LR tensors (3k, h, w) to SR tensors (3, H, W); batches group images of equal size.

    ``conditions``: one per image (``facesr.engine.conditions``) for models that need them.
    With ``opts.samples`` = K > 1 each image is the mean of K samples (seeds seed..seed+K-1);
    ``with_std`` also returns the per-pixel standard deviation over the K samples.
    """
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
            init = init_model.super_resolve(middle_frame(lr), None, opts) if init_model else None
            cond = Conditions.stack([conditions[i] for i, _ in chunk], device) if conditions is not None else None
            sr = model.super_resolve(lr, cond, opts, gens, init).cpu().double()
            for (i, _), img in zip(chunk, sr):
                sums[i] = sums.get(i, 0) + img
                squares[i] = squares.get(i, 0) + img**2
    out, std = [], []
    for i in range(len(lrs)):
        mean = sums[i] / opts.samples
        out.append(mean.float())
        std.append((squares[i] / opts.samples - mean**2).clamp(min=0).sqrt().float())
    return (out, std) if with_std else out
