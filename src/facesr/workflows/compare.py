"""Paired comparison of evaluation runs on the same probes: is method B really better than A?

Each run folder holds the per_image.csv of ``facesr evaluate --run`` or of one ``facesr benchmark``
method. Probes are matched by file name, and every difference gets a confidence interval, so a
3-point rank-1 lead on 100 probes is not mistaken for a result.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np

from facesr.errors import FacesrError
from facesr.metrics.stats import RESAMPLES

CONFIDENCE = 0.95


def read_per_image(folder) -> dict[str, dict]:
    """{probe name: row} from ``folder/per_image.csv``; FacesrError naming the file when it cannot be read,
    has no 'name' column or names a probe twice."""
    path = Path(folder) / "per_image.csv"
    if not path.is_file():
        raise FacesrError(f"{path}: not found (expected a run folder of 'facesr evaluate --run' or 'facesr benchmark')")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: a byte-order mark from a spreadsheet
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FacesrError(f"{path}: unreadable ({exc})") from None
    if not rows or "name" not in rows[0]:
        raise FacesrError(f"{path}: no rows with a 'name' column")
    out: dict[str, dict] = {}
    for row in rows:
        name = row["name"]
        if name in out:
            raise FacesrError(f"{path}: probe {name!r} is in more than one row")
        out[name] = row
    return out


def _column(rows: dict[str, dict], key: str, where: str, notes: list[str]) -> dict[str, float] | None:
    """{probe: value} of column ``key`` (None when the run has no such column). An empty cell or a value
    that is not a finite number (nan, inf) is NaN there, left out of the comparison, and noted in
    ``notes`` (one line per column); text that is not a number, or a row cut short, means a damaged
    file: FacesrError naming it, the probe and the column."""
    if key not in next(iter(rows.values())):
        return None
    path = f"{where}/per_image.csv"
    values, missing = {}, []
    for name, row in rows.items():
        text = row.get(key)
        if text is None or isinstance(text, list):
            raise FacesrError(f"{path}: column {key!r} has a non-numeric value at probe {name!r} "
                              "(the row ends before it: the file is cut short or damaged)")
        text = text.strip()
        try:
            value = float(text) if text else math.nan
        except ValueError:
            raise FacesrError(f"{path}: column {key!r} has a non-numeric value at probe {name!r} ({text!r})") from None
        if not math.isfinite(value):
            missing.append((name, text))
            value = math.nan
        values[name] = value
    if missing:
        (first, text), more = missing[0], len(missing) - 1
        shown = repr(text) if text else "an empty cell"
        notes.append(f"{path}: column {key!r} has no number for {len(missing)} probe(s) ({first}: {shown}"
                     f"{f' and {more} more' if more else ''}); those values are left out")
    return values


def _columns(rows: dict[str, dict], folder, notes: list[str], judge: str | None = None) -> dict:
    """The psnr, cs and rank values of one run by probe name (None where a column is absent); ``judge``:
    a second judge's columns ("<judge>:cs", "<judge>:rank") instead of the first judge's."""
    mine: list[str] = []
    prefix = f"{judge}:" if judge else ""
    cols = {k: _column(rows, prefix + k if k != "psnr" else k, str(folder), mine) for k in ("psnr", "cs", "rank")}
    notes.extend(mine)  # only once the whole run is known to be readable
    return cols


def compare_runs(base: tuple[str, Path], runs: list[tuple[str, Path]], seed: int = 0,
                 probes: slice = slice(None), on_error=None, common: bool = False, on_missing=None,
                 judge: str | None = None) -> dict:
    """``base`` and ``runs``: (label, folder); ``probes``: which of the probes, in the order of the base run's
    per_image.csv (for a benchmark, its probe order; all by default).

    A run that cannot be read (a missing or damaged per_image.csv, text where a number belongs) or has other
    probes raises FacesrError naming the file; with ``common``, the probes that every run has are compared
    instead (a benchmark of baselines alone restores the probes without aux images too). With several runs
    and ``on_error``, a bad run is reported there and left out, and the others are still compared.

    A value that is not a number (an empty cell, nan, inf: e.g. a probe the judge could not rank) is left out:
    each run's mean is over its values, each difference over the probes both runs have a value for; it is
    reported through ``on_missing`` (default ``on_error``; one line per run and column), listed in "left_out"
    and noted in the Markdown. ``judge``: the CS and rank-1 of that judge network (a run's second judge
    onwards, columns "<judge>:cs"); default the run's first judge. Returns {"probes", "rows", "markdown", "left_out"}.
    """
    from facesr.metrics.stats import mcnemar_exact, paired_difference, proportion_interval

    base_label, base_dir = base
    notes: list[str] = []
    base_rows = read_per_image(base_dir)
    read = [(base_label, base_dir, base_rows, _columns(base_rows, base_dir, notes, judge))]
    for label, folder in runs:
        try:
            rows = read_per_image(folder)
            if not common and set(rows) != set(base_rows):
                diff = sorted(set(rows) ^ set(base_rows))
                raise FacesrError(f"{folder}: {len(rows)} probes, {base_dir}: {len(base_rows)}; {len(diff)} are not in "
                                  f"both (e.g. {diff[0]}); compare runs on the same probes, or pass --common")
            read.append((label, folder, rows, _columns(rows, folder, notes, judge)))
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
    report = on_missing if on_missing is not None else on_error
    if report is not None:
        for note in notes:
            report(note)
    base_cols = runs_cols[0][2]
    out = []
    for i, (label, folder, cols) in enumerate(runs_cols):
        is_run = i > 0
        row = {"label": label, "folder": str(folder), "probes": len(names)}
        for key in ("psnr", "cs"):
            v = cols[key]
            if v is None:
                continue
            ok = np.isfinite(v)
            if ok.any():
                row[key] = float(v[ok].mean())
            if not ok.all():
                row[f"{key}_probes"] = int(ok.sum())
            if is_run and base_cols[key] is not None:
                both = ok & np.isfinite(base_cols[key])
                if both.any():
                    row[f"{key}_diff"] = asdict(paired_difference(v[both], base_cols[key][both], seed=seed))
        if cols["rank"] is not None:
            ok = np.isfinite(cols["rank"])
            if not ok.all():
                row["rank_probes"] = int(ok.sum())
            if ok.any():
                hits = cols["rank"][ok] == 1
                row["rank1"] = float(hits.mean())
                row["rank1_ci"] = proportion_interval(int(hits.sum()), len(hits), CONFIDENCE)
            if is_run and base_cols["rank"] is not None:
                both = ok & np.isfinite(base_cols["rank"])
                if both.any():
                    hits, base_hits = cols["rank"][both] == 1, base_cols["rank"][both] == 1
                    row["rank1_diff"] = asdict(paired_difference(hits, base_hits, seed=seed))
                    row["only_this"] = int(np.sum(hits & ~base_hits))
                    row["only_base"] = int(np.sum(base_hits & ~hits))
                    row["mcnemar_p"] = mcnemar_exact(hits, base_hits)
        out.append(row)
    subset = [] if len(all_names) == len(base_rows) else [f"the {len(all_names)} of {len(base_rows)} that every run has"]
    if names != all_names:
        subset.append(f"probes {names[0]} to {names[-1]} ({len(names)} of {len(all_names)}, in the base run's order)")
    return {"probes": len(names), "rows": out, "markdown": markdown(base_label, out, seed, "; ".join(subset), judge),
            "left_out": notes}


def _diff(d: dict | None, scale: float, digits: int) -> str:
    if d is None:
        return "–"
    return f"{d['mean'] * scale:+.{digits}f} [{d['low'] * scale:+.{digits}f}, {d['high'] * scale:+.{digits}f}]"


def markdown(base_label: str, rows: list[dict], seed: int, subset: str = "", judge: str | None = None) -> str:
    n = rows[0]["probes"]
    who = f" CS and rank-1 by {judge}." if judge else ""
    lines = [
        f"Paired comparison against `{base_label}` on the same {n} probes (matched by file name{'; ' + subset if subset else ''}).{who} Brackets: "
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
    fewer = [f"{r['label']}: {what} on {r[key]} of {n}" for r in rows
             for key, what in (("psnr_probes", "PSNR"), ("cs_probes", "CS"), ("rank_probes", "rank-1")) if key in r]
    if fewer:
        lines += ["", f"Values that are not numbers (empty, nan, inf) were left out: {'; '.join(fewer)} probes; each "
                      "difference is over the probes both runs have a value for."]
    return "\n".join(lines) + "\n"


def write_comparison(result: dict, out, name: str = "paired") -> None:
    from facesr.io.images import atomic_write_text

    out = Path(out)
    atomic_write_text(out / f"{name}.md", result["markdown"])
    atomic_write_text(out / f"{name}.json", json.dumps({"probes": result["probes"], "rows": result["rows"]}, indent=2) + "\n")


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
