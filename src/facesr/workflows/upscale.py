"""Super-resolve image files in batches; a bad file is reported and the rest still run."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facesr.engine.conditions import baseline_note, conditions_for, still_stack
from facesr.engine.options import mean_estimates, pixel_options, recorded_options
from facesr.engine.refs_gate import THRESHOLD as REFS_GATE, gated
from facesr.engine.run import check_input, check_memory, output_problem, super_resolve_tensors, warm_start_model
from facesr.errors import InputError
from facesr.io.images import atomic_write_text, read_image, to_tensor, to_uint8, write_image

if TYPE_CHECKING:
    import torch


def std_heatmap(std: torch.Tensor, full_scale: float = 0.1) -> "np.ndarray":
    """Per-pixel std (mean over channels) as a black-red-yellow-white uint8 heat map; full_scale maps to white."""
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


MANIFEST = "facesr-run.json"
NO_MAP = ("{model} draws nothing at random: all its samples are the same image, so an uncertainty map would be blank "
          "and read as certain; use a model that draws samples (a diffusion model, or sisr-vae-x8)")


def _described(item):
    """A JSON-able stand-in for a condition argument: resolved paths, digests of arrays, lists of them."""
    if item is None:
        return None
    if isinstance(item, (str, Path)):
        return str(Path(item).resolve())
    if isinstance(item, (list, tuple)):
        return [_described(x) for x in item]
    data = item.detach().cpu().numpy() if hasattr(item, "detach") else item
    return "sha256:" + hashlib.sha256(memoryview(np.ascontiguousarray(data)).cast("B")).hexdigest()


def _settings(model, opts, refs=None, ref=None, refs_embedder=None, refs_gate=None) -> dict:
    """What decides an output's pixels: a folder's outputs are resumed only under the same settings.
    ``conditions`` is None without refs, ref or refs_embedder (as manifests from before it was recorded)."""
    options = pixel_options(opts)
    given = {"refs": _described(refs), "ref": _described(ref), "refs_embedder": refs_embedder}
    if refs is not None:
        given["refs_gate"] = refs_gate
    return {"model": model.source, "options": options,
            "conditions": given if any(v is not None for v in given.values()) else None}


def _previous_outputs(out_dir: Path, settings: dict) -> tuple[set[str], str | None]:
    """(outputs previous runs in ``out_dir`` finished under ``settings``, why their outputs do not count).
    Every manifest counts: facesr-run.json, and those of the processes of a torchrun launch."""
    done, stale = set(), None
    for path in sorted(out_dir.glob("facesr-run*.json")):
        try:
            before = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        theirs = {"model": before.get("model"), "options": recorded_options(before.get("options", {})),
                  "conditions": before.get("conditions")}
        if theirs != settings:
            changed = sorted(k for k in set(theirs["options"]) | set(settings["options"])
                             if theirs["options"].get(k) != settings["options"].get(k))
            if theirs["conditions"] != settings["conditions"]:
                changed.append("refs/ref")
            stale = f"made with other settings ({'model' if theirs['model'] != settings['model'] else ', '.join(changed)})"
            continue
        done |= {str(Path(p).resolve()) for p in before.get("outputs", [])}
    return done, None if done else stale


def upscale_files(model, paths: list[Path], out_dir, opts, device, on_error=print, on_done=None,
                  uncertainty: bool = False, refs=None, ref=None, overwrite: bool = False, on_info=None,
                  progress=None, refs_embedder: str | None = None, input_failures: list[str] = (), check_outputs: bool = True, share=None,
                  refs_gate: float | None = REFS_GATE) -> dict:
    """Write <out>/<stem>.png for each input (and <stem>.std.png with ``uncertainty``, which needs samples > 1).

    Streams: each batch's outputs are written (atomically) as soon as they exist, and the manifest
    <out>/facesr-run.json is rewritten after each batch, so a killed run loses at most one batch. Run
    again with the same settings and it resumes: outputs the manifest lists are kept, not redone.
    Outputs already in the folder from other settings, or not from facesr, are replaced only with
    ``overwrite``. An unreadable file, an unusable size, a missing condition or an output that does
    not restore its input fails that input only. An MF-SR3 model restores each image standing in for its
    neighbours. ``refs`` / ``ref``: what a FASR / RefSR-VAE model needs (``facesr.engine.conditions.conditions_for``;
    with a features file each input uses the row of its folder's name; ``refs_embedder`` embeds ``refs`` if not
    the model's own network); FASR without ``refs`` runs on its null identity, and an input whose LR face does
    not match its ``refs`` (score below ``refs_gate``, ``facesr.engine.refs_gate``; None: no gate) runs on it
    too, said in one line and listed in the manifest's "refs_gate". ``on_info``: that line (``baseline_note``), the cost line before the work starts and the estimate after the
    first batch; ``progress(done, total)`` after each batch. ``input_failures``: inputs that were
    reported before (``expand_inputs``), recorded in the manifest with the others. ``check_outputs=False``
    writes outputs that are no restoration of their input too (sampler studies, models in training).
    ``share`` (``facesr.runtime.Share``): under torchrun, this process's inputs (output names are
    still chosen over all of them) and its own manifest facesr-run.rank<r>.json.
    """
    from facesr.errors import FacesrError
    from facesr.io.images import check_output_folder, clean_temp_files
    from facesr.runtime import Share

    out_dir = Path(out_dir)
    if uncertainty and opts.samples < 2:
        raise FacesrError("uncertainty needs samples 2 or more")
    if uncertainty and not model.draws:
        raise FacesrError(NO_MAP.format(model=model.name))
    check_output_folder(out_dir, inputs=paths)
    warm_start_model(model, opts, device)  # a bad init stops here, before any input is read
    check_memory(model, min(opts.batch_size, len(paths) * opts.samples), model.lr_size, model.lr_size, device)
    share = share or Share()
    if share.rank == 0:
        clean_temp_files(out_dir)  # before the other processes start writing
    share.wait()
    settings = _settings(model, opts, refs, ref, refs_embedder, refs_gate)
    done, stale = (set(), None) if overwrite else _previous_outputs(out_dir, settings)
    failures: list[str] = list(input_failures)

    def fail(message: str) -> None:
        failures.append(message)
        on_error(message)

    conds = conditions_for(model, len(paths), refs, ref, [p.parent.name for p in paths], on_error=fail,
                           refs_embedder=refs_embedder)
    jobs, kept = _plan(paths, conds, out_dir, done, share, failures)
    clash = [t for _, t, _ in jobs if t.exists()]
    if clash and not overwrite:
        why = stale or "not listed as finished in its facesr-run.json"
        raise FacesrError(f"{out_dir}: {len(clash)} output(s) already there ({clash[0].name}, ...) {why}; "
                          "use --overwrite (overwrite=True) to replace them, or another output folder")
    nfe = model.network_evaluations(opts)
    if on_info:
        note = baseline_note(model, refs, stills=True)
        if note:
            on_info(note)
        if uncertainty and mean_estimates(model, opts):
            on_info(f"the spread of {opts.samples} one-step samples (estimates of the mean face, not draws) understates "
                    "the uncertainty: for the map, give --steps 8 or more")
        resumed = f", {len(kept)} done before" if kept else ""
        on_info(f"{len(jobs)} input(s) to restore{resumed}; {nfe} network evaluation(s) per face "
                f"({describe_recipe(model, opts)}), {nfe * len(jobs)} in all")
    manifest = {**settings, "options": asdict(opts), "network_evaluations_per_face": nfe, "device": str(device),
                "outputs": list(kept), "failures": failures, "complete": False}
    refine = model.identity_passes(opts)
    if refine:
        manifest["identity_passes_per_face_at_most"] = refine
    if (refs is not None or ref is not None) and gated(model):
        manifest["refs_gate"] = {"threshold": refs_gate, "scores": {}, "not_used": []}
    t0 = time.time()
    for start in range(0, len(jobs), opts.batch_size):
        part = _read_batch(model, jobs[start : start + opts.batch_size], fail)
        if part and "refs_gate" in manifest:
            part = _gate_batch(model, part, refs_gate, manifest["refs_gate"], on_info)
        if part:
            _restore_batch(model, part, opts, device, uncertainty, manifest["outputs"], fail if check_outputs else None,
                           on_done)
        seconds = time.time() - t0
        manifest.update(seconds=round(seconds, 3),
                        seconds_per_face=round(seconds / max(1, len(manifest["outputs"]) - len(kept)), 4))
        atomic_write_text(out_dir / share.manifest_name(MANIFEST), json.dumps(manifest, indent=2) + "\n")
        finished = min(start + opts.batch_size, len(jobs))
        if progress:
            progress(finished, len(jobs))
        if on_info and start == 0 and finished < len(jobs):
            on_info(f"about {seconds / finished * (len(jobs) - finished) / 60:.1f} min for the other "
                    f"{len(jobs) - finished} face(s) ({seconds / finished:.2f} s per face)")
    manifest["complete"] = True
    manifest.setdefault("seconds", 0.0)
    manifest.setdefault("seconds_per_face", 0.0)
    atomic_write_text(out_dir / share.manifest_name(MANIFEST), json.dumps(manifest, indent=2) + "\n")
    return manifest


def _plan(paths, conds, out_dir: Path, done: set[str], share, failures: list[str]):
    """(jobs: (input, output, condition) this process restores, outputs kept from before)."""
    jobs, kept = [], []
    for path, name, cond in share.of(zip(paths, output_names(paths), conds)):
        target = out_dir / name
        if str(target.resolve()) in done and target.is_file():
            kept.append(str(target))
        elif cond is None:
            failures.append(f"{path}: no identity vector")  # conditions_for has reported why
        else:
            jobs.append((path, target, cond))
    return jobs, kept


def describe_recipe(model, opts) -> str:
    if model.uses_sampler:
        parts = [f"{opts.sampler} x {opts.steps} steps"]
    else:
        per_sample = model.network_evaluations(opts) // opts.samples
        parts = ["one forward pass" if per_sample == 1 else f"{per_sample}-pass self-ensemble"]
    if opts.samples > 1:
        parts.append(f"x {opts.samples} samples" + (", every second mirrored" if opts.flip else ""))
    if opts.guidance:
        parts.append("x 2 (guidance)")
    if opts.identity_scale != 1:  # check_options admits it only for models with an identity vector
        parts.append(f"identity scale {opts.identity_scale:g}")
    if opts.strength < 1:
        parts.append(f"strength {opts.strength}" + (f" from {opts.init}" if opts.init else ""))
    refine = model.identity_passes(opts)
    if refine:
        network = "/".join(model.identity_networks)
        parts.append(f"+ up to {refine} forward and backward pass(es) of the {network} face network toward the "
                     "reference's identity")
    return " ".join(parts)


def _read_batch(model, jobs, fail) -> list:
    """(path, target, LR tensor, condition) of the jobs whose input is readable and of a usable size."""
    part = []
    for path, target, cond in jobs:
        try:
            lr = to_tensor(read_image(path))
        except InputError as exc:
            fail(str(exc))
            continue
        problem = check_input(model, lr.shape[-2], lr.shape[-1])
        if problem:
            fail(f"{path}: {problem}")
            continue
        part.append((path, target, still_stack(model, lr), cond))
    return part


def _gate_batch(model, part, threshold, record: dict, on_info) -> list:
    """The batch with the null identity for inputs whose LR face does not match their references; each such
    input said in one line and listed in ``record``."""
    from facesr.engine.refs_gate import gate_conditions

    conds, verdicts = gate_conditions(model, [j[2] for j in part], [j[3] for j in part], threshold)
    out = []
    for (path, target, lr, _), cond, verdict in zip(part, conds, verdicts):
        if verdict.score is not None:
            record["scores"][str(path)] = round(verdict.score, 4)
        if not verdict.used:
            record["not_used"].append(str(path))
            if on_info:
                on_info(f"{path}: {verdict.describe(threshold)}")
        out.append((path, target, lr, cond))
    return out


def _restore_batch(model, part, opts, device, uncertainty, written, fail, on_done) -> None:
    """Restore and write a batch; with ``fail``, an output that restores nothing is reported instead."""
    srs, stds = super_resolve_tensors(model, [j[2] for j in part], [j[0].name for j in part], opts, device,
                                      with_std=True, conditions=[j[3] for j in part])
    for (path, target, lr, _), sr, std in zip(part, srs, stds):
        problem = output_problem(model, lr, sr) if fail else None
        if problem:
            fail(f"{path}: {problem}")
            continue
        write_image(target, to_uint8(sr))
        if uncertainty:
            write_image(target.with_suffix(".std.png"), std_heatmap(std))
        written.append(str(target))
        if on_done:
            on_done(path, target)
