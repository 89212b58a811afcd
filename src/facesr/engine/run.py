"""Super-resolve LR tensors in batches: noise per image, warm starts, K samples and their spread."""

from __future__ import annotations

import functools
import math
import zlib

import torch

from facesr.errors import FacesrError
from facesr.io.frames import middle_frame
from facesr.methods.base import Conditions

INPUT_SIDE_LIMIT = 2  # inputs may be at most this many times the model's LR side (see check_input)
# An SR output further than this from the bicubic upsampling of its input (PSNR, dB) does not restore
# that input: pure noise from too few sampling steps, or a diverged sampler. Measured on the bundled
# models: such outputs score 5-13 dB; restorations 18-30 dB (a random-noise input still 21 dB).
BICUBIC_FLOOR_DB = 14.0


def image_generator(seed: int, key: str) -> torch.Generator:
    """Noise for one image depends on (seed, its name) only, not on batching."""
    return torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(key.encode())) % (2**63))


def check_input(model, h: int, w: int) -> str | None:
    """Why an LR image of h x w should not be run (None if it can): the model's own limits; anything
    under a quarter of its LR side (no face to restore: a 1x1 image is not a face); and anything far larger than
    its face chips (more than INPUT_SIDE_LIMIT x its LR side), which would run for hours or exhaust
    memory: such an input is a photo, not a face chip."""
    side = model.lr_size * INPUT_SIDE_LIMIT
    if h > side or w > side:
        return (f"{w}x{h} input is far larger than the {model.lr_size}x{model.lr_size} face chips {model.name} "
                f"takes (limit {side}x{side}): crop and align the face first")
    smallest = max(4, model.lr_size // 4)
    if h < smallest or w < smallest:
        return (f"{w}x{h} input is too small for {model.name}, which restores {model.lr_size}x{model.lr_size} "
                f"face chips (at least {smallest}x{smallest})")
    return model.input_problem(h, w)


def output_problem(model, lr: torch.Tensor, sr: torch.Tensor) -> str | None:
    """Why an SR output (3, H, W) in [0, 1] is not a restoration of its LR (3k, h, w): it is further
    than BICUBIC_FLOOR_DB from the bicubic upsampling of the LR (of its middle frame)."""
    up = model.upsample(middle_frame(lr[None]).float())[0]
    mse = float(((sr.float() - up) ** 2).mean())
    psnr = 10 * math.log10(1.0 / max(mse, 1e-12))
    if psnr >= BICUBIC_FLOOR_DB:
        return None
    why = ("too few steps for this sampler from pure noise; use more steps or a warm start (strength < 1)"
           if model.uses_sampler else f"is {model.name} trained?")
    return (f"the output is not a restoration of the input ({psnr:.1f} dB from its bicubic upsampling, "
            f"below {BICUBIC_FLOOR_DB:.0f}): {why}")


def available_memory(device) -> int | None:
    """Bytes free for a batch on ``device`` (MemAvailable on CPU, free memory on CUDA); None if unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def check_memory(model, batch: int, h: int, w: int, device) -> None:
    """Refuse a batch whose estimated working memory (``model.memory_per_face``) exceeds what is free."""
    need = batch * model.memory_per_face(h, w)
    free = available_memory(torch.device(device))
    if free is not None and need > free:
        fits = max(1, free // model.memory_per_face(h, w))
        raise FacesrError(f"a batch of {batch} {w}x{h} face(s) needs about {need / 2**30:.1f} GB for {model.name}, "
                          f"{free / 2**30:.1f} GB are free: use a batch size of {fits} or less")


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


def mirror(x: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    """``x`` (B, C, H, W) with the images where ``which`` (B,) is True mirrored left to right."""
    if not which.any():
        return x
    return torch.where(which.view(-1, 1, 1, 1), x.flip(-1), x)


def super_resolve_tensors(model, lrs: list[torch.Tensor], keys: list[str], opts, device, with_std: bool = False,
                          conditions: list[Conditions] | None = None, progress=None, keep_samples: bool = False):
    """LR tensors (3k, h, w) to SR tensors (3, H, W); batches group images of equal size.

    ``conditions``: one per image (``facesr.engine.conditions``) for models that need them.
    With ``opts.samples`` = K > 1 each image is the mean of K samples (seeds seed..seed+K-1; ``opts.flip``:
    samples k = 1, 3, ... from the mirrored input, mirrored back);
    ``with_std`` also returns the per-pixel standard deviation over the K samples.
    ``keep_samples``: returns (means, stds, samples), samples[i] the K samples of image i in seed order.
    ``progress(done, total)``: after each batch, in samples (images x K).
    """
    jobs = [(i, k) for i in range(len(lrs)) for k in range(opts.samples)]
    by_size: dict[tuple, list] = {}
    for i, k in jobs:
        by_size.setdefault(tuple(lrs[i].shape), []).append((i, k))
    sums: dict[int, torch.Tensor] = {}
    squares: dict[int, torch.Tensor] = {}
    kept: dict[tuple[int, int], torch.Tensor] = {}
    init_model = warm_start_model(model, opts, device)
    for size in by_size:
        check_memory(model, min(opts.batch_size, len(by_size[size])), size[-2], size[-1], device)
    done = 0
    for group in by_size.values():
        for start in range(0, len(group), opts.batch_size):
            chunk = group[start : start + opts.batch_size]
            mirrored = torch.tensor([opts.flip and k % 2 == 1 for _, k in chunk])
            lr = mirror(torch.stack([lrs[i] for i, _ in chunk]), mirrored).to(device)
            gens = [image_generator(opts.seed + k, keys[i]) for i, k in chunk]
            init = init_model.super_resolve(middle_frame(lr), None, opts) if init_model else None
            cond = Conditions.stack([conditions[i] for i, _ in chunk], device) if conditions is not None else None
            if cond is not None and cond.ref is not None:
                cond = Conditions(cond.vector, mirror(cond.ref, mirrored.to(device)))
            sr = model.super_resolve(lr, cond, opts, gens, init)
            if opts.project:  # each sample, so that the spread is that of consistent samples
                sr = model.lr_protocol.project(sr.float(), middle_frame(lr).float(), opts.project)
            sr = mirror(sr.cpu().double(), mirrored)
            for (i, k), img in zip(chunk, sr):
                sums[i] = sums.get(i, 0) + img
                squares[i] = squares.get(i, 0) + img**2
                if keep_samples:
                    kept[i, k] = img.float()
            done += len(chunk)
            if progress:
                progress(done, len(jobs))
    out, std = [], []
    for i in range(len(lrs)):
        mean = sums[i] / opts.samples
        out.append(mean.float())
        std.append((squares[i] / opts.samples - mean**2).clamp(min=0).sqrt().float())
    if keep_samples:
        return out, std, [[kept[i, k] for k in range(opts.samples)] for i in range(len(lrs))]
    return (out, std) if with_std else out
