"""Evaluation: PSNR, SSIM and LR-consistency per image, a CSV and a summary JSON.

Two modes:
- ``evaluate_folders``: SR images already on disk, matched to HR by file stem.
- ``run_and_evaluate``: make LR from HR with the model's own operator, super-resolve,
  save SR and LR, then evaluate (bicubic is always measured alongside).
"""

from __future__ import annotations

import csv
import io
import json
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facesr.degrade.protocol import LRProtocol
from facesr.errors import FacesrError, InputError
from facesr.io.images import atomic_write_text, list_images, read_image, to_tensor, to_uint8, write_image
from facesr.metrics import lr_consistency, psnr, ssim


def select_hr(hr_dir, protocol: str = "all", limit: int = 0) -> list[Path]:
    """HR files; 'second' keeps the 2nd image (sorted) of each identity folder, the probe."""
    hr_dir = Path(hr_dir)
    if not hr_dir.is_dir():
        raise FacesrError(f"{hr_dir}: folder not found")
    files = list_images(hr_dir, recursive=True)
    if protocol == "second":
        by_folder: dict[Path, list[Path]] = {}
        for f in files:
            by_folder.setdefault(f.parent, []).append(f)
        files = [v[1] for _, v in sorted(by_folder.items()) if len(v) >= 2]
    if limit:
        files = files[:limit]
    if not files:
        raise FacesrError(f"{hr_dir}: no HR images found" + (" with at least 2 per folder" if protocol == "second" else ""))
    return files


def image_metrics(sr: np.ndarray, hr: np.ndarray, lr: np.ndarray | None, operator, y=False, crop=0) -> dict:
    row = {"psnr": psnr(sr, hr, y, crop), "ssim": ssim(sr, hr, y, crop)}
    if lr is not None:
        row["consistency"] = lr_consistency(sr, lr, operator)
    return row


def summarise(rows: list[dict], keys: list[str]) -> dict:
    out = {}
    for k in keys:
        vals = np.array([r[k] for r in rows if k in r and r[k] is not None and math.isfinite(r[k])], dtype=np.float64)
        if len(vals):
            out[k] = {"mean": float(vals.mean()), "std": float(vals.std()), "n": int(len(vals))}
    return out


def write_report(out_dir, rows: list[dict], summary: dict) -> None:
    out_dir = Path(out_dir)
    buf = io.StringIO()
    keys = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write_text(out_dir / "per_image.csv", buf.getvalue())
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")


def protocol_card(protocol: LRProtocol, y: bool, crop: int) -> dict:
    return {
        "operator": protocol.operator.to_dict(),
        "degradation": protocol.degradation or "deterministic operator",
        "colour": "Y (BT.601 studio swing)" if y else "RGB",
        "crop_border": crop,
        "images": "uint8 (clamp, x255, round)",
        "ssim": "Gaussian 11x11 sigma 1.5, valid region, mean over channels",
        "consistency": "MSE(D(SR), LR) on the 0-255 scale at LR size, D = operator (not defined for blind LR)",
    }


def find_protocol(sr_dir, lr_dir=None) -> tuple[LRProtocol, str] | None:
    """The (deterministic) LR protocol recorded next to the data: prepare's degradation.json, an
    evaluation's summary.json, or the model named in an upscale run's facesr-run.json."""
    from facesr.degrade.resample import operator_from_dict

    places = []
    if lr_dir:
        places += [Path(lr_dir) / "degradation.json", Path(lr_dir).parent / "degradation.json"]
    places += [Path(sr_dir).parent / "summary.json", Path(sr_dir) / "facesr-run.json"]
    for place in places:
        if not place.is_file():
            continue
        try:
            data = json.loads(place.read_text())
            if "operator" in data:
                return LRProtocol(operator_from_dict(data["operator"])), str(place)
            if "protocol" in data:
                return LRProtocol(operator_from_dict(data["protocol"]["operator"])), str(place)
            if data.get("model"):
                cfg = json.loads((Path(data["model"]) / "config.json").read_text())["config"]
                return LRProtocol.of(cfg["operator"], cfg["scale"]), f"{place} (model {data['model']})"
        except (OSError, KeyError, ValueError, TypeError):
            continue
    return None


def evaluate_folders(sr_dir, hr_dir, protocol: LRProtocol, lr_dir=None, y=False, crop=0, out_dir=None, on_error=print) -> dict:
    """SR images on disk against HR (matched by file stem); LR read from ``lr_dir`` or made by ``protocol``."""
    sr_files = {p.stem: p for p in list_images(sr_dir, recursive=True)}
    if not sr_files:
        raise FacesrError(f"{sr_dir}: no SR images found")
    hr_files = {p.stem: p for p in list_images(hr_dir, recursive=True)}
    lr_files = {p.stem: p for p in list_images(lr_dir, recursive=True)} if lr_dir else {}
    rows, failures = [], []

    def fail(message: str) -> None:
        failures.append(message)
        on_error(message)

    for stem, sr_path in sorted(sr_files.items()):
        if stem not in hr_files:
            fail(f"{sr_path}: no HR image with stem {stem!r} in {hr_dir}")
            continue
        try:
            sr, hr = read_image(sr_path), read_image(hr_files[stem])
            lr = read_image(lr_files[stem]) if stem in lr_files else protocol.lr_image(hr, hr_files[stem].name)[0]
            if sr.shape != hr.shape:
                raise InputError(sr_path, f"size {sr.shape[1]}x{sr.shape[0]} differs from HR {hr.shape[1]}x{hr.shape[0]}")
            rows.append({"name": stem, **image_metrics(sr, hr, lr, protocol.operator, y, crop)})
        except (InputError, FacesrError, ValueError) as exc:
            fail(str(exc))
    if not rows:
        raise FacesrError(f"no SR image in {sr_dir} could be evaluated against {hr_dir}")
    summary = {"protocol": protocol_card(protocol, y, crop), "metrics": summarise(rows, ["psnr", "ssim", "consistency"]),
               "failures": failures}
    if out_dir:
        write_report(out_dir, rows, summary)
    return {"rows": rows, "summary": summary}


@dataclass
class Judge:
    """Identity metrics for a run: CS per image with ``embedder``; with ``gallery`` {identity: image
    path}, rank-k and verification, probes labelled by their folder name."""

    embedder: object
    gallery: dict[str, Path] | None = None


def read_probes(model, hr_paths: list[Path], fail) -> tuple[list, dict]:
    """[(path, HR, LR)] made with the model's LR protocol, and the blind records {name: params}."""
    items, records = [], {}
    for path in hr_paths:
        try:
            hr = read_image(path)
            if hr.shape[:2] != (model.hr_size, model.hr_size):
                raise InputError(path, f"expected a {model.hr_size}x{model.hr_size} HR face, got {hr.shape[1]}x{hr.shape[0]}")
            lr, record = model.lr_protocol.lr_image(hr, path.name)
            items.append((path, hr, lr))
            if record is not None:
                records[path.name] = record
        except InputError as exc:
            fail(str(exc))
    if not items:
        raise FacesrError("no HR image could be read")
    return items, records


def run_summary(model, opts, device, rows: list[dict], seconds: float, scoring: tuple[bool, int]) -> dict:
    keys = ["psnr", "ssim", "consistency", "bicubic_psnr", "bicubic_ssim", "bicubic_consistency", "seconds"]
    return {
        "model": model.source,
        "sampler": opts.sampler,
        "steps": opts.steps,
        "samples": opts.samples,
        "network_evaluations": model.network_evaluations(opts),
        "eta": opts.eta,
        "strength": opts.strength,
        "init": opts.init if opts.strength < 1 else None,
        "guidance": opts.guidance,
        "seed": opts.seed,
        "precision": opts.precision,
        "batch_size": opts.batch_size,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "images": len(rows),
        "seconds_per_face": seconds / len(rows),
        "protocol": protocol_card(model.lr_protocol, *scoring),
        "metrics": summarise(rows, keys),
    }


def run_and_evaluate(model, hr_paths: list[Path], opts, device, out_dir, y=False, crop=0, on_error=print, progress=None,
                     judge: Judge | None = None, conditions: dict | None = None, extra: dict | None = None) -> dict:
    """Make each probe's LR with the model's protocol, super-resolve it (``conditions``: {HR path:
    Conditions} for models that need them), save SR and LR, and score SR and bicubic against HR;
    ``extra`` is added to the summary (e.g. how the conditions were made)."""
    from facesr.engine.run import super_resolve_tensors

    op = model.operator
    out_dir = Path(out_dir)
    failures = []

    def fail(message: str) -> None:
        failures.append(message)
        on_error(message)

    items, records = read_probes(model, hr_paths, fail)
    consistency = model.lr_protocol.deterministic  # needs the deterministic operator that made LR
    stems = [p.stem for p, _, _ in items]
    names = stems if len(set(stems)) == len(stems) else [f"{p.parent.name}__{p.stem}" for p, _, _ in items]
    rows, t_total = [], 0.0
    kept = {"sr": [], "bicubic": [], "hr": []}
    chunk = max(1, opts.batch_size)
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        t0 = time.time()
        conds = [conditions[p] for p, _, _ in part] if conditions is not None else None
        srs = super_resolve_tensors(model, [to_tensor(lr) for _, _, lr in part], [p.name for p, _, _ in part], opts,
                                    device, conditions=conds)
        dt = time.time() - t0
        t_total += dt
        for (path, hr, lr), sr_t, name in zip(part, srs, names[start : start + chunk]):
            sr = to_uint8(sr_t)
            bic = to_uint8(op.up(to_tensor(lr)[None])[0])
            write_image(out_dir / "sr" / f"{name}.png", sr)
            write_image(out_dir / "lr" / f"{name}.png", lr)
            lr_for_consistency = lr if consistency else None
            row = {"name": name, **image_metrics(sr, hr, lr_for_consistency, op, y, crop)}
            row.update({f"bicubic_{k}": v for k, v in image_metrics(bic, hr, lr_for_consistency, op, y, crop).items()})
            row["seconds"] = dt / len(part)
            rows.append(row)
            if judge is not None:
                for kind, img in (("sr", sr), ("bicubic", bic), ("hr", hr)):
                    kept[kind].append(img)
        if progress:
            progress(len(rows), len(items))
    summary = {**run_summary(model, opts, device, rows, t_total, (y, crop)), "failures": failures, **(extra or {})}
    if judge is not None:
        from facesr.metrics.identity import identity_report

        labels = [p.parent.name for p, _, _ in items]
        g = [(label, read_image(path)) for label, path in sorted(judge.gallery.items())] if judge.gallery else None
        columns, summary["identity"] = identity_report(judge.embedder, kept, labels, g)
        for key, values in columns.items():
            for row, v in zip(rows, values):
                row[key] = v
    if records:
        atomic_write_text(out_dir / "lr_params.json", json.dumps(records) + "\n")
        summary["lr_params"] = "lr_params.json (per-image degradation parameters; regenerate LR exactly)"
    write_report(out_dir, rows, summary)
    return {"rows": rows, "summary": summary}
