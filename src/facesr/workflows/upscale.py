"""Super-resolve image files in batches; a bad file is reported and the rest still run."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from facesr.engine.conditions import conditions_for
from facesr.engine.run import check_input, super_resolve_tensors, warm_start_model
from facesr.errors import InputError
from facesr.io.images import atomic_write_text, read_image, to_tensor, to_uint8, write_image


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


def upscale_files(model, paths: list[Path], out_dir, opts, device, on_error=print, on_done=None,
                  uncertainty: bool = False, refs=None, ref=None) -> dict:
    """Write <out>/<stem>.png for each input (and <stem>.std.png with ``uncertainty``, which needs samples > 1).

    Inputs are read a chunk at a time; an unreadable file or an unusable size fails that input only.
    ``refs`` / ``ref``: what a FASR / RefSR-VAE model needs (``facesr.engine.conditions.conditions_for``;
    with a features file each input uses the row of its folder's name). An input without its condition fails.
    """
    from facesr.errors import FacesrError

    out_dir = Path(out_dir)
    if uncertainty and opts.samples < 2:
        raise FacesrError("uncertainty needs samples 2 or more")
    warm_start_model(model, opts, device)  # a bad init stops here, before any input is read
    inputs = {p.resolve() for p in paths}
    jobs, failures = [], []

    def fail(message: str) -> None:
        failures.append(message)
        on_error(message)

    conds = conditions_for(model, len(paths), refs, ref, [p.parent.name for p in paths], on_error=fail)
    for path, name, cond in zip(paths, output_names(paths), conds):
        target = out_dir / name
        if target.resolve() in inputs:
            fail(f"{path}: output {target} would overwrite an input; choose another output folder")
        elif cond is None:
            failures.append(f"{path}: no identity vector")  # conditions_for has reported why
        else:
            jobs.append((path, target, cond))
    expected = model.lr_size
    t0 = time.time()
    written = []
    chunk = opts.batch_size * 4
    for start in range(0, len(jobs), chunk):
        part = []
        for path, target, cond in jobs[start : start + chunk]:
            try:
                lr = to_tensor(read_image(path))
            except InputError as exc:
                fail(str(exc))
                continue
            problem = check_input(model, lr.shape[-2], lr.shape[-1])
            if problem:
                fail(f"{path}: {problem}")
                continue
            if lr.shape[-2:] != (expected, expected):
                on_error(f"warning: {path}: {lr.shape[2]}x{lr.shape[1]} input; {model.name} was trained on {expected}x{expected} faces")
            part.append((path, target, lr, cond))
        if not part:
            continue
        srs, stds = super_resolve_tensors(model, [j[2] for j in part], [j[0].name for j in part], opts, device,
                                          with_std=True, conditions=[j[3] for j in part])
        for (path, target, _, _), sr, std in zip(part, srs, stds):
            write_image(target, to_uint8(sr))
            if uncertainty:
                write_image(target.with_suffix(".std.png"), std_heatmap(std))
            written.append(str(target))
            if on_done:
                on_done(path, target)
    seconds = time.time() - t0
    manifest = {
        "model": model.source,
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
