"""Sampler sweeps on a test set: seed 004's figures (dossier 1.6 / 1.9) and quality against cost.

- ``sweep_snr``: the PC sampler at several Langevin snr values "r" on the same faces and seeds;
  PSNR and CS against r, and CS against PSNR over all (image, r) pairs with their Pearson
  correlation (the slides report -0.6591).
- ``sweep_nfe``: several samplers at equal network-evaluation budgets (``steps_for_budget``).

Every setting is one ``evaluate.run_and_evaluate`` run in ``<out>/<setting>/`` (sr/, lr/,
per_image.csv, summary.json); the sweep's tables, plots and sweep.json go in ``<out>``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from facesr.io.images import atomic_write_text
from facesr.errors import FacesrError
from facesr.workflows.evaluate import run_and_evaluate, summarise

DEFAULT_NFE = (1, 2, 4, 8, 16, 32, 100, 1000, 2000)
DEFAULT_SAMPLERS = ("ddim", "dpmpp-2m", "heun", "pc")
METRICS = ("psnr", "ssim", "consistency", "cs")


def steps_for_budget(sampler: str, nfe: int, opts) -> int | None:
    """The most ``steps`` whose network evaluations per face (``opts.network_evaluations`` with this
    sampler, samples included) do not exceed ``nfe``; None when even one step costs more."""
    if nfe < 1:
        return None
    cost = lambda steps: replace(opts, sampler=sampler, steps=steps).network_evaluations  # noqa: E731
    if cost(1) > nfe:
        return None
    lo, hi = 1, nfe  # every sampler costs at least one evaluation per step, so steps <= nfe
    while lo < hi:  # evaluations grow with steps: binary search for the last affordable one
        mid = (lo + hi + 1) // 2
        if cost(mid) <= nfe:
            lo = mid
        else:
            hi = mid - 1
    return lo


def check_snrs(snrs) -> list[float]:
    snrs = [float(r) for r in snrs]
    bad = [r for r in snrs if not math.isfinite(r) or r < 0]
    if not snrs or bad:
        raise FacesrError(f"snr: r must be finite and >= 0, got {_label(bad[0]) if bad else 'no value'}")
    return snrs


def check_nfe(nfes, samplers) -> tuple[list[int], list[str]]:
    from facesr.diffusion.samplers import SAMPLERS

    nfes = [int(n) for n in nfes]
    if not nfes or min(nfes) < 1:
        raise FacesrError(f"nfe: budgets must be at least 1, got {min(nfes) if nfes else 'no value'}")
    unknown = [s for s in samplers if s not in SAMPLERS]
    if not samplers or unknown:
        raise FacesrError(f"samplers: unknown sampler {unknown[0] if unknown else 'none'!r}; "
                          f"choose from {', '.join(SAMPLERS.names())}")
    return sorted(set(nfes)), list(dict.fromkeys(samplers))


def _fmt(v):
    return f"{v:.6f}" if isinstance(v, float) else ("" if v is None else v)


def write_csv(path, rows: list[dict]) -> None:
    buf = io.StringIO()
    keys = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _fmt(v) for k, v in r.items()})
    atomic_write_text(path, buf.getvalue())


def _save_figure(fig, path) -> None:
    """PNG written to a temporary name in the same folder, then renamed into place."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a display
    import matplotlib.pyplot as plt

    return plt


def pearson(x, y) -> float | None:
    """Pearson correlation, None when undefined (fewer than 2 points or a constant column)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def _setting_row(result: dict, extra: dict) -> dict:
    """One table row: the setting, then mean/std of each metric, rank-1, seconds per face."""
    s = result["summary"]
    stats = summarise(result["rows"], list(METRICS))
    row = dict(extra)
    for k in METRICS:
        row[f"{k}_mean"] = stats[k]["mean"] if k in stats else None
        row[f"{k}_std"] = stats[k]["std"] if k in stats else None
    probes = s.get("identity", {}).get("sr_probes")
    if probes and "rank1" in probes:
        row["rank1"] = probes["rank1"]
    row["seconds_per_face"] = s["seconds_per_face"]
    row["images"] = s["images"]
    return row


def _line(label: str, row: dict) -> str:
    cs = f"  CS {row['cs_mean']:.4f}" if row.get("cs_mean") is not None else ""
    return f"{label}: PSNR {row['psnr_mean']:.2f} dB{cs}  ({row['seconds_per_face']:.2f} s/face)"


def _label(v: float) -> str:
    return f"{v:g}"


def sweep_snr(model, hr_paths, base_opts, snrs, device, out_dir, judge=None, y=False, crop=0,
              on_line=print, on_error=print) -> dict:
    """The PC sampler at each snr r on the same faces (same seeds): rows per r and per image."""
    snrs = check_snrs(snrs)
    if base_opts.sampler != "pc":
        raise FacesrError(f"the snr r belongs to the pc sampler; got --sampler {base_opts.sampler}")
    if base_opts.corrector == "none":
        raise FacesrError("the snr r only acts through the Langevin corrector; drop --corrector none")
    out_dir = Path(out_dir)
    rows, per_image = [], []
    for r in snrs:
        opts = replace(base_opts, snr=r)
        result = run_and_evaluate(model, hr_paths, opts, device, out_dir / f"snr_{_label(r)}", y, crop, on_error,
                                  judge=judge)
        row = _setting_row(result, {"snr": r, "steps": opts.steps, "network_evaluations": opts.network_evaluations})
        rows.append(row)
        per_image += [{"snr": r, **img} for img in result["rows"]]
        on_line(_line(f"snr {_label(r)}", row))
    correlation = pearson([p["psnr"] for p in per_image], [p.get("cs", math.nan) for p in per_image])
    info = {
        "mode": "snr",
        "options": {**asdict(base_opts), "snr": None},  # r: per setting, below
        "snr": snrs,
        "images": len(hr_paths),
        "pearson_cs_psnr": correlation,
        "pearson_cs_psnr_of_means": pearson([r["psnr_mean"] for r in rows],
                                             [math.nan if r["cs_mean"] is None else r["cs_mean"] for r in rows]),
        "pearson_points": len(per_image),
        "reference": "seed 004 slides: correlation of CS and PSNR across r = -0.6591 (dossier 1.9)",
    }
    write_csv(out_dir / "snr.csv", rows)
    write_csv(out_dir / "snr_per_image.csv", per_image)
    plot_snr(rows, out_dir / "psnr_cs_vs_snr.png")
    files = ["snr.csv", "snr_per_image.csv", "psnr_cs_vs_snr.png"]
    if judge is not None:
        plot_cs_vs_psnr(per_image, correlation, out_dir / "cs_vs_psnr.png")
        files.append("cs_vs_psnr.png")
    info["files"] = files
    atomic_write_text(out_dir / "sweep.json", json.dumps(info, indent=2) + "\n")
    return {"rows": rows, "per_image": per_image, "info": info}


def sweep_nfe(model, hr_paths, base_opts, nfes, samplers, device, out_dir, judge=None, y=False,
              crop=0, on_line=print, on_error=print) -> dict:
    """Each sampler at each budget of network evaluations per face (the most steps that fit).

    Impossible budgets, and settings the model refuses (e.g. more steps than its schedule has),
    are recorded as skipped; a budget that gives the same steps as a smaller one reuses its run.
    """
    nfes, samplers = check_nfe(nfes, samplers)
    out_dir = Path(out_dir)
    rows, skipped, done = [], [], {}
    for sampler in samplers:
        for nfe in nfes:
            steps = steps_for_budget(sampler, nfe, base_opts)
            if steps is None:
                one = replace(base_opts, sampler=sampler, steps=1).network_evaluations
                skipped.append({"sampler": sampler, "nfe": nfe, "reason": f"one step costs {one} evaluations"})
                on_line(f"{sampler} nfe {nfe}: skipped (one step costs {one} evaluations)")
                continue
            opts = replace(base_opts, sampler=sampler, steps=steps)
            if (sampler, steps) not in done:
                try:
                    done[sampler, steps] = run_and_evaluate(model, hr_paths, opts, device, out_dir / f"{sampler}_{steps}",
                                                            y, crop, on_error, judge=judge)
                except FacesrError as exc:
                    done[sampler, steps] = exc
            result = done[sampler, steps]
            if isinstance(result, FacesrError):
                skipped.append({"sampler": sampler, "nfe": nfe, "steps": steps, "reason": str(result)})
                on_line(f"{sampler} nfe {nfe} (steps {steps}): skipped ({result})")
                continue
            row = _setting_row(result, {"sampler": sampler, "nfe": nfe, "steps": steps,
                                        "network_evaluations": opts.network_evaluations})
            rows.append(row)
            on_line(_line(f"{sampler} nfe {nfe} (steps {steps}, {opts.network_evaluations} evaluations)", row))
    if not rows:
        raise FacesrError(f"no sampler/NFE setting could run ({skipped[0]['reason']})" if skipped else "nothing to run")
    write_csv(out_dir / "nfe.csv", rows)
    plot_nfe(rows, out_dir / "quality_vs_nfe.png", with_cs=judge is not None)
    info = {"mode": "nfe", "options": asdict(base_opts), "nfe": nfes, "samplers": samplers,
            "images": len(hr_paths), "skipped": skipped, "files": ["nfe.csv", "quality_vs_nfe.png"]}
    atomic_write_text(out_dir / "sweep.json", json.dumps(info, indent=2) + "\n")
    return {"rows": rows, "skipped": skipped, "info": info}


def plot_snr(rows: list[dict], path) -> None:
    """PSNR (left) and CS (right, when measured) against r, mean with a +-std band."""
    plt = _pyplot()
    r = np.array([row["snr"] for row in rows])
    order = np.argsort(r)
    panels = [("psnr", "PSNR (dB)", "tab:blue")]
    if all(row.get("cs_mean") is not None for row in rows):
        panels.append(("cs", "CS (cosine similarity to HR)", "tab:red"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for ax, (key, label, colour) in zip(axes[0], panels):
        m = np.array([row[f"{key}_mean"] for row in rows])[order]
        s = np.array([row[f"{key}_std"] for row in rows])[order]
        ax.plot(r[order], m, "o-", color=colour)
        ax.fill_between(r[order], m - s, m + s, color=colour, alpha=0.2)
        ax.set_xlabel("snr r")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.suptitle(f"PC sampler: quality against the Langevin snr r (n={rows[0]['images']} faces)")
    _save_figure(fig, path)


def plot_cs_vs_psnr(per_image: list[dict], correlation: float | None, path) -> None:
    """Per-image (PSNR, CS) over all r values, coloured by r."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    pts = ax.scatter([p["psnr"] for p in per_image], [p.get("cs", math.nan) for p in per_image],
                     c=[p["snr"] for p in per_image], cmap="viridis", s=18)
    fig.colorbar(pts, ax=ax, label="snr r")
    ax.set_xlabel("PSNR (dB)")
    ax.set_ylabel("CS")
    ax.grid(alpha=0.3)
    corr = "undefined" if correlation is None else f"{correlation:.4f}"
    ax.set_title(f"CS against PSNR: Pearson correlation {corr} (n={len(per_image)})")
    _save_figure(fig, path)


def plot_nfe(rows: list[dict], path, with_cs: bool = True) -> None:
    """PSNR (and CS) against network evaluations per face, one line per sampler, log x axis."""
    plt = _pyplot()
    keys = [("psnr", "PSNR (dB)")] + ([("cs", "CS")] if with_cs else [])
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4), squeeze=False)
    samplers = list(dict.fromkeys(row["sampler"] for row in rows))
    for ax, (key, label) in zip(axes[0], keys):
        for sampler in samplers:
            pts = sorted({row["network_evaluations"]: row[f"{key}_mean"] for row in rows
                          if row["sampler"] == sampler and row.get(f"{key}_mean") is not None}.items())
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=sampler)
        ax.set_xscale("log")
        ax.set_xlabel("network evaluations per face")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.suptitle(f"quality against cost (n={rows[0]['images']} faces)")
    _save_figure(fig, path)


def check_request(model, snrs, nfes, samplers, sampler=None, steps=None, judged: bool = False):
    """Which sweep a request is, checked before any work: ("snr", r values) or ("nfe", (budgets, samplers))."""
    if (snrs is None) == (nfes is None):
        raise FacesrError("choose one sweep: snr values r (pc sampler) or network-evaluation budgets (samplers at equal cost)")
    if not model.uses_sampler:
        raise FacesrError(f"{model.name}: a {model.method} model has no sampler to sweep")
    if snrs is not None:
        if sampler not in (None, "pc"):
            raise FacesrError(f"the snr r belongs to the pc sampler; drop sampler {sampler}")
        if not judged:
            raise FacesrError("an snr sweep reproduces the PSNR/CS figures: give an identity judge (dlib or adaface:CKPT[:ARCH])")
        return "snr", check_snrs(snrs)
    if sampler or steps:
        raise FacesrError("an nfe sweep sets the steps of each of its samplers; drop sampler/steps")
    return "nfe", check_nfe(nfes or DEFAULT_NFE, samplers)
