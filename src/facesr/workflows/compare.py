"""Paired comparison of evaluation runs on the same probes: is method B really better than A?

Each run folder holds the per_image.csv of ``facesr evaluate --run`` or of one ``facesr benchmark``
method. Probes are matched by file name, and every difference gets a confidence interval, so a
3-point rank-1 lead on 100 probes is not mistaken for a result.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from facesr.errors import FacesrError
from facesr.metrics.stats import RESAMPLES

CONFIDENCE = 0.95


def read_per_image(folder) -> dict[str, dict]:
    """{probe name: row} from ``folder/per_image.csv``."""
    path = Path(folder) / "per_image.csv"
    if not path.is_file():
        raise FacesrError(f"{path}: not found (expected a run folder of 'facesr evaluate --run' or 'facesr benchmark')")
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FacesrError(f"{path}: unreadable ({exc})") from None
    if not rows or "name" not in rows[0]:
        raise FacesrError(f"{path}: no rows with a 'name' column")
    return {row["name"]: row for row in rows}


def _column(rows: dict[str, dict], key: str, where: str) -> dict[str, float] | None:
    if key not in next(iter(rows.values())):
        return None
    try:
        return {name: float(row[key]) for name, row in rows.items()}
    except (TypeError, ValueError):
        raise FacesrError(f"{where}/per_image.csv: column {key!r} has a non-numeric value") from None


def _columns(rows: dict[str, dict], folder) -> dict:
    """The psnr, cs and rank values of one run by probe name (None where a column is absent)."""
    return {k: _column(rows, k, str(folder)) for k in ("psnr", "cs", "rank")}


def compare_runs(base: tuple[str, Path], runs: list[tuple[str, Path]], seed: int = 0,
                 probes: slice = slice(None), on_error=None, common: bool = False) -> dict:
    """``base`` and ``runs``: (label, folder); ``probes``: which of the probes, in the order of the base run's
    per_image.csv (for a benchmark, its probe order; all by default).

    A run that cannot be read or has other probes raises FacesrError; with ``common``, the probes that every
    run has are compared instead (a benchmark of baselines alone restores the probes without aux images too).
    With several runs and ``on_error``, a bad run is reported there and left out, and the others are still compared.
    Returns {"probes", "rows", "markdown"}.
    """
    from facesr.metrics.stats import mcnemar_exact, paired_difference, proportion_interval

    base_label, base_dir = base
    base_rows = read_per_image(base_dir)
    read = [(base_label, base_dir, base_rows, _columns(base_rows, base_dir))]
    for label, folder in runs:
        try:
            rows = read_per_image(folder)
            if not common and set(rows) != set(base_rows):
                diff = sorted(set(rows) ^ set(base_rows))
                raise FacesrError(f"{folder}: {len(rows)} probes, {base_dir}: {len(base_rows)}; {len(diff)} are not in "
                                  f"both (e.g. {diff[0]}); compare runs on the same probes, or pass --common")
            read.append((label, folder, rows, _columns(rows, folder)))
        except FacesrError as exc:
            if on_error is None or len(runs) == 1:
                raise
            on_error(str(exc))
    shared = set(base_rows).intersection(*(rows for _, _, rows, _ in read[1:]))
    all_names = [n for n in base_rows if n in shared]
    if not all_names:
        raise FacesrError(f"{base_dir}: no probe in common with {', '.join(str(f) for _, f, _, _ in read[1:])}")
    names = all_names[probes]
    if not names:
        where = f"{'' if probes.start is None else probes.start}:{'' if probes.stop is None else probes.stop}"
        raise FacesrError(f"{base_dir}: no probe in {where} of {len(all_names)}")
    runs_cols = [(label, folder, {k: None if c is None else np.array([c[n] for n in names]) for k, c in cols.items()})
                 for label, folder, _, cols in read]
    if len(runs_cols) == 1:
        raise FacesrError(f"none of the {len(runs)} runs could be compared with {base_dir}")
    base_cols = runs_cols[0][2]
    out = []
    for i, (label, folder, cols) in enumerate(runs_cols):
        is_run = i > 0
        row = {"label": label, "folder": str(folder), "probes": len(names)}
        for key in ("psnr", "cs"):
            if cols[key] is not None:
                row[key] = float(cols[key].mean())
                if is_run and base_cols[key] is not None:
                    row[f"{key}_diff"] = asdict(paired_difference(cols[key], base_cols[key], seed=seed))
        if cols["rank"] is not None:
            hits = cols["rank"] == 1
            row["rank1"] = float(hits.mean())
            row["rank1_ci"] = proportion_interval(int(hits.sum()), len(hits), CONFIDENCE)
            if is_run and base_cols["rank"] is not None:
                base_hits = base_cols["rank"] == 1
                row["rank1_diff"] = asdict(paired_difference(hits, base_hits, seed=seed))
                row["only_this"] = int(np.sum(hits & ~base_hits))
                row["only_base"] = int(np.sum(base_hits & ~hits))
                row["mcnemar_p"] = mcnemar_exact(hits, base_hits)
        out.append(row)
    subset = [] if len(all_names) == len(base_rows) else [f"the {len(all_names)} of {len(base_rows)} that every run has"]
    if names != all_names:
        subset.append(f"probes {names[0]} to {names[-1]} ({len(names)} of {len(all_names)}, in the base run's order)")
    return {"probes": len(names), "rows": out, "markdown": markdown(base_label, out, seed, "; ".join(subset))}


def _diff(d: dict | None, scale: float, digits: int) -> str:
    if d is None:
        return "–"
    return f"{d['mean'] * scale:+.{digits}f} [{d['low'] * scale:+.{digits}f}, {d['high'] * scale:+.{digits}f}]"


def markdown(base_label: str, rows: list[dict], seed: int, subset: str = "") -> str:
    n = rows[0]["probes"]
    lines = [
        f"Paired comparison against `{base_label}` on the same {n} probes (matched by file name{'; ' + subset if subset else ''}). Brackets: "
        f"{CONFIDENCE:.0%} intervals; rank-1: Wilson; differences: percentile bootstrap over probes ({RESAMPLES:,} resamples, "
        f"seed {seed}); rank-1 differences in points (1 probe = {100 / n:.2g}); p: exact McNemar test on the probes that "
        "one run identifies and the other does not.",
        "",
        "| run | PSNR (dB) | PSNR difference | CS | CS difference | rank-1 | rank-1 difference (points) | "
        "identified only here / only by base | McNemar p |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rank1 = f"{r['rank1']:.3f} [{r['rank1_ci'][0]:.3f}, {r['rank1_ci'][1]:.3f}]" if "rank1" in r else "–"
        psnr = f"{r['psnr']:.2f}" if "psnr" in r else "–"
        cs = f"{r['cs']:.4f}" if "cs" in r else "–"
        counts = f"{r['only_this']} / {r['only_base']}" if "only_this" in r else "–"
        p = f"{r['mcnemar_p']:.3g}" if "mcnemar_p" in r else "–"
        lines.append(f"| {r['label']} | {psnr} | {_diff(r.get('psnr_diff'), 1, 2)} | {cs} | {_diff(r.get('cs_diff'), 1, 4)} | "
                     f"{rank1} | {_diff(r.get('rank1_diff'), 100, 1)} | {counts} | {p} |")
    return "\n".join(lines) + "\n"


def write_comparison(result: dict, out) -> None:
    from facesr.io.images import atomic_write_text

    out = Path(out)
    atomic_write_text(out / "paired.md", result["markdown"])
    atomic_write_text(out / "paired.json", json.dumps({"probes": result["probes"], "rows": result["rows"]}, indent=2) + "\n")


def parse_slice(text: str) -> slice:
    """'START:STOP' with whole numbers (either may be empty) -> slice."""
    start, sep, stop = text.partition(":")
    try:
        probes = slice(int(start) if start else None, int(stop) if stop else None)
    except ValueError:
        probes = None
    if not sep or probes is None:
        raise FacesrError(f"slice {text!r}: expected START:STOP with whole numbers, e.g. 100: or :50")
    return probes


def labelled_run(text: str) -> tuple[str, Path]:
    """'LABEL=FOLDER' or 'FOLDER' (labelled by its name)."""
    label, sep, folder = text.partition("=")
    if not sep or not label or Path(text).exists():
        return Path(text).name or text, Path(text)
    return label, Path(folder)
