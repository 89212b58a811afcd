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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from facesr.degrade.protocol import LRProtocol
from facesr.engine.options import pixel_options, recorded_options
from facesr.errors import FacesrError, InputError
from facesr.io.images import (atomic_write_text, check_output_folder, list_images, read_image, to_tensor, to_uint8,
                              write_image)
from facesr.metrics import detail_ratio, lr_consistency, psnr, ssim

OUT_WHAT = "-o names the folder for per_image.csv and summary.json"


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
    row = {"psnr": psnr(sr, hr, y, crop), "ssim": ssim(sr, hr, y, crop), "detail": detail_ratio(sr, hr, crop)}
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
    """per_image.csv (a value that could not be measured is an empty cell) and summary.json."""
    out_dir = check_output_folder(out_dir, OUT_WHAT)
    buf = io.StringIO()
    keys = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in r.items()})
    try:
        atomic_write_text(out_dir / "per_image.csv", buf.getvalue())
        atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    except OSError as exc:
        raise FacesrError(f"{out_dir}: cannot write the report ({exc.strerror or exc})") from None


def protocol_card(protocol: LRProtocol, y: bool, crop: int) -> dict:
    return {
        "operator": protocol.operator.to_dict(),
        "degradation": protocol.degradation or "deterministic operator",
        "colour": "Y (BT.601 studio swing)" if y else "RGB",
        "crop_border": crop,
        "images": "uint8 (clamp, x255, round)",
        "ssim": "Gaussian 11x11 sigma 1.5, valid region, mean over channels",
        "detail": "mean |Laplacian| of SR's luma / HR's (1 = HR's fine detail, < 1 smoother, > 1 more high frequency)",
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
        except (OSError, UnicodeDecodeError, ValueError):
            continue  # not one of ours
        if not isinstance(data, dict):
            continue
        try:
            if "operator" in data:
                return LRProtocol(operator_from_dict(data["operator"])), str(place)
            if "protocol" in data:
                return LRProtocol(operator_from_dict(data["protocol"]["operator"])), str(place)
            if data.get("model"):
                cfg = json.loads((Path(data["model"]) / "config.json").read_text())["config"]
                return LRProtocol.of(cfg["operator"], cfg["scale"]), f"{place} (model {data['model']})"
        except (OSError, KeyError, ValueError, TypeError, FacesrError) as exc:
            # a record that names an operator but cannot be used: say which file, never guess another operator
            problem = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            raise FacesrError(f"{place}: not a usable LR operator record ({problem}); "
                              "pass --op and --scale to say which operator made the LR images") from None
    return None


def _by_stem(files: list[Path], what: str, fail) -> dict[str, Path]:
    """{stem: file}; a later file with a stem already taken is reported and left out (matching is by stem)."""
    out: dict[str, Path] = {}
    for f in files:
        if f.stem in out:
            fail(f"{f}: same file stem as {out[f.stem]}; {what} images are matched by stem, so it is left out")
        else:
            out[f.stem] = f
    return out


def _wh(img: np.ndarray) -> str:
    return f"{img.shape[1]}x{img.shape[0]}"


def score_pair(sr_path: Path, hr_path: Path, lr_path: Path | None, protocol: LRProtocol, y=False, crop=0) -> dict:
    """PSNR, SSIM and LR-consistency of one SR file against its HR file (LR read from ``lr_path`` or made
    from HR by ``protocol``). InputError naming the file at fault and saying what is wrong."""
    sr, hr = read_image(sr_path), read_image(hr_path)
    if sr.shape != hr.shape:
        raise InputError(sr_path, f"SR is {_wh(sr)} but its HR {hr_path} is {_wh(hr)}: they must be the same size")
    s = protocol.scale
    if lr_path is not None:
        lr = read_image(lr_path)
        if (lr.shape[0] * s, lr.shape[1] * s) != sr.shape[:2]:
            want = (f"expected a {sr.shape[1] // s}x{sr.shape[0] // s} LR" if not (sr.shape[0] % s or sr.shape[1] % s)
                    else f"the SR size is not a multiple of {s}")
            raise InputError(lr_path, f"LR is {_wh(lr)} but SR {sr_path} is {_wh(sr)}: the SR size must be the LR size "
                                      f"x {s} ({want})")
    else:
        if hr.shape[0] % s or hr.shape[1] % s:
            raise InputError(hr_path, f"HR size {_wh(hr)} is not divisible by the scale {s}, so no LR can be made "
                                      "for LR-consistency")
        try:
            lr = protocol.lr_image(hr, hr_path.name)[0]
        except InputError:
            raise
        except FacesrError as exc:
            raise InputError(hr_path, f"cannot make its LR ({exc})") from None
    try:
        return image_metrics(sr, hr, lr, protocol.operator, y, crop)
    except (FacesrError, ValueError) as exc:  # e.g. smaller than SSIM's 11x11 window after --crop
        raise InputError(sr_path, str(exc)) from None


def evaluate_folders(sr_dir, hr_dir, protocol: LRProtocol, lr_dir=None, y=False, crop=0, out_dir=None, on_error=print) -> dict:
    """SR images on disk against HR (matched by file stem, both searched recursively); LR read from
    ``lr_dir`` (same stem) or made from HR by ``protocol``.

    The images to score are every HR image, or with ``lr_dir`` those that have an LR image there (the
    faces that were to be restored; HR images without one, e.g. a ``--limit`` run against a whole data
    set, are passed over). Every problem with one image (an SR without its HR or an HR without its SR, an
    unreadable file, an SR whose size differs from HR, an LR whose size x scale is not the SR size, two
    files with one stem) is reported through ``on_error`` as one line naming the file, and listed in the
    summary's "failures"; the other images are still scored. FacesrError when a folder is missing or
    nothing could be scored.
    """
    sr_dir, hr_dir = Path(sr_dir), Path(hr_dir)
    for folder, what in ((sr_dir, "SR"), (hr_dir, "HR"), (lr_dir, "LR")):
        if folder is not None and not Path(folder).is_dir():
            raise FacesrError(f"{folder}: {what} folder not found")
    if out_dir:
        check_output_folder(out_dir, OUT_WHAT)
    rows, failures = [], []

    def fail(message: str) -> None:
        failures.append(message)
        on_error(message)

    sr_list = list_images(sr_dir, recursive=True)
    if not sr_list:
        raise FacesrError(f"{sr_dir}: no SR images found")
    sr_files = _by_stem(sr_list, "SR", fail)
    hr_files = _by_stem(list_images(hr_dir, recursive=True), "HR", fail)
    lr_files = _by_stem(list_images(lr_dir, recursive=True), "LR", fail) if lr_dir else {}
    for stem in sorted(set(sr_files) | set(hr_files)):
        if stem not in hr_files:
            fail(f"{sr_files[stem]}: no HR image with stem {stem!r} in {hr_dir}")
            continue
        if stem not in sr_files:
            if lr_dir is None or stem in lr_files:  # with an LR folder, only its images were to be restored
                fail(f"{hr_files[stem]}: no SR image with stem {stem!r} in {sr_dir}")
            continue
        try:
            rows.append({"name": stem, **score_pair(sr_files[stem], hr_files[stem], lr_files.get(stem), protocol, y, crop)})
        except InputError as exc:
            fail(str(exc))
    if not rows:
        raise FacesrError(f"no SR image in {sr_dir} could be evaluated against {hr_dir}")
    summary = {"protocol": protocol_card(protocol, y, crop), "metrics": summarise(rows, ["psnr", "ssim", "detail", "consistency"]),
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
    _embedded: object = field(default=None, init=False, repr=False, compare=False)

    def embedded_gallery(self, on_error=print):
        """The gallery read and embedded once (a benchmark shares one judge among its methods), or None.

        A gallery image that cannot be read or embedded is reported through ``on_error`` (once, one line
        naming it) and its identity left out of the gallery; that identity's probes get no rank.
        """
        from facesr.metrics.identity import embed_gallery

        if not self.gallery:
            return None
        if self._embedded is None:
            items, left_out = [], {}
            for label, path in sorted(self.gallery.items(), key=lambda kv: str(kv[0])):
                try:
                    items.append((label, read_image(path), path))
                except InputError as exc:
                    left_out[label] = str(exc)
                    on_error(f"{exc}; identity {label} left out of the gallery (its probes get no rank)")
            self._embedded = embed_gallery(self.embedder, items, on_error, left_out)
        return self._embedded


def as_judges(judge) -> list[Judge]:
    """None, one Judge or several -> a list; two judges with one network are refused."""
    judges = [] if judge is None else [judge] if isinstance(judge, Judge) else list(judge)
    names = [j.embedder.name for j in judges]
    if len(set(names)) < len(names):
        raise FacesrError(f"the same identity network twice among the judges: {', '.join(names)}")
    return judges


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
    keys = ["psnr", "ssim", "detail", "consistency", "bicubic_psnr", "bicubic_ssim", "bicubic_detail",
            "bicubic_consistency", "seconds"]
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
        "identity_scale": opts.identity_scale,
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


RUN_STATE = "facesr-run.json"  # rewritten after each batch of ``run_and_evaluate``: what a resumed run keeps


def _finished_rows(out_dir: Path, settings: dict, probes: dict[str, str], conditioned: bool) -> dict[str, dict]:
    """{probe name: its row} of a killed run in ``out_dir`` with the same settings, for the probes of
    ``probes`` ({name: HR path}) it scored from the same file and whose SR is on disk. Without conditions
    the probe list may differ too (each probe's SR depends on its own LR and name only), so a run over more
    probes (a larger ``--limit``) keeps what a run over fewer finished; a conditioned run's conditions can
    depend on the whole list (another person's photo is the next identity's), so it must be the same."""
    ignored = () if conditioned else ("probes",)
    try:
        before = json.loads((out_dir / RUN_STATE).read_text())
        old = {**before["settings"], "options": recorded_options(before["settings"]["options"])}
        same = ({k: v for k, v in old.items() if k not in ignored}
                == {k: v for k, v in settings.items() if k not in ignored})
        old_probes = set(old["probes"])
        rows = before["rows"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    if not same:
        return {}
    return {r["name"]: r for r in rows if isinstance(r, dict) and probes.get(r.get("name")) in old_probes
            and (out_dir / "sr" / f"{r['name']}.png").is_file()}


def run_and_evaluate(model, hr_paths: list[Path], opts, device, out_dir, y=False, crop=0, on_error=print, progress=None,
                     judge: "Judge | list[Judge] | None" = None, conditions: dict | None = None,
                     extra: dict | None = None, overwrite: bool = False, refs_gate: float | None = None) -> dict:
    """Make each probe's LR with the model's protocol, super-resolve it (``conditions``: {HR path:
    Conditions} for models that need them), save SR and LR, and score SR and bicubic against HR;
    ``extra`` is added to the summary (e.g. how the conditions were made). ``refs_gate``: FASR conditions made
    from references pass the reference gate (``facesr.engine.refs_gate``) at this threshold, recorded in the
    settings and the summary; each row gets "refs_score" and "refs_used".

    A probe that cannot be read, and with a ``judge`` a gallery image that cannot be read or embedded
    (its identity is left out of the gallery; its probes get no rank) or a probe image the judge cannot
    embed (no CS or rank for it), are reported through ``on_error``, one line each, and listed in the
    summary's "failures"; everything else is still scored and written. FacesrError, before any work,
    when ``out_dir`` is a file.

    SR and LR images are written as each batch is done, and <out>/facesr-run.json after it: started
    again with the same model, options and conditions, a killed run resumes (the probes it finished are
    read back, not redone; without conditions, so does a run over more probes, e.g. a larger ``--limit``);
    ``overwrite`` redoes them.

    ``judge``: one Judge or several (issue 19: every identity figure by two networks). The first is the
    summary's "identity" and the rows' unprefixed columns; every judge's report is in the summary's
    "judges" under its network's name, and the second judge onwards add row columns "<name>:cs", ..."""
    from facesr.engine.conditions import still_stack
    from facesr.engine.refs_gate import gate_conditions
    from facesr.engine.run import super_resolve_tensors

    op = model.operator
    out_dir = check_output_folder(out_dir, OUT_WHAT)
    for sub in ("sr", "lr"):
        check_output_folder(out_dir / sub, OUT_WHAT)
    failures = []

    def fail(message: str) -> None:
        failures.append(message)
        on_error(message)

    items, records = read_probes(model, hr_paths, fail)
    judges = as_judges(judge)
    seen: set[str] = set()

    def once(message: str) -> None:  # an unreadable gallery image is the same news for every judge
        if message not in seen:
            seen.add(message)
            fail(message)

    galleries = [j.embedded_gallery(once) for j in judges]  # bad gallery images reported up front
    consistency = model.lr_protocol.deterministic  # needs the deterministic operator that made LR
    stems = [p.stem for p, _, _ in items]
    names = stems if len(set(stems)) == len(stems) else [f"{p.parent.name}__{p.stem}" for p, _, _ in items]
    settings = {"model": model.source, "options": pixel_options(opts),
                "probes": [str(p) for p, _, _ in items], "y": y, "crop": crop, "extra": extra or {}}
    if refs_gate is not None:
        settings["refs_gate"] = refs_gate
    finished = {} if overwrite else _finished_rows(out_dir, settings, {n: str(p) for n, (p, _, _) in zip(names, items)},
                                                        conditions is not None)
    rows, t_total = [], 0.0
    kept = {"sr": [], "bicubic": [], "hr": []}
    chunk = max(1, opts.batch_size)
    for start in range(0, len(items), chunk):
        part = list(zip(items[start : start + chunk], names[start : start + chunk]))
        todo = [(item, name) for item, name in part if name not in finished]
        t0 = time.time()
        conds = [conditions[p] for (p, _, _), _ in todo] if conditions is not None else None
        lrs = [still_stack(model, to_tensor(lr)) for (_, _, lr), _ in todo]  # MF-SR3: the still in every frame
        gated = {}
        if refs_gate is not None and conds is not None and todo:
            conds, verdicts = gate_conditions(model, lrs, conds, refs_gate)
            gated = {name: v for (_, name), v in zip(todo, verdicts)}
        srs = super_resolve_tensors(model, lrs, [p.name for (p, _, _), _ in todo], opts, device,
                                    conditions=conds) if todo else []
        dt = time.time() - t0
        t_total += dt
        new = dict(zip([name for _, name in todo], srs))
        for (path, hr, lr), name in part:
            bic = to_uint8(op.up(to_tensor(lr)[None])[0])
            if name in finished:
                sr, row = read_image(out_dir / "sr" / f"{name}.png"), finished[name]
                t_total += row["seconds"]
            else:
                sr = to_uint8(new[name])
                write_image(out_dir / "sr" / f"{name}.png", sr)
                write_image(out_dir / "lr" / f"{name}.png", lr)
                lr_for_consistency = lr if consistency else None
                row = {"name": name, **image_metrics(sr, hr, lr_for_consistency, op, y, crop)}
                row.update({f"bicubic_{k}": v for k, v in image_metrics(bic, hr, lr_for_consistency, op, y, crop).items()})
                row["seconds"] = dt / len(todo)
                if name in gated:
                    row.update(refs_score=gated[name].score, refs_used=gated[name].used)
            rows.append(row)
            if judges:
                for kind, img in (("sr", sr), ("bicubic", bic), ("hr", hr)):
                    kept[kind].append(img)
        atomic_write_text(out_dir / RUN_STATE, json.dumps({"settings": settings, "rows": rows}) + "\n")
        if progress:
            progress(len(rows), len(items))
    summary = {**run_summary(model, opts, device, rows, t_total, (y, crop)), "failures": failures, **(extra or {})}
    if refs_gate is not None:
        summary["refs_gate"] = refs_gate
    if judges:
        from facesr.metrics.identity import identity_report

        labels = [p.parent.name for p, _, _ in items]
        summary["judges"] = {}
        for i, (j, gallery) in enumerate(zip(judges, galleries)):
            columns, summary["judges"][j.embedder.name] = identity_report(
                j.embedder, kept, labels, gallery, names=[str(p) for p, _, _ in items], on_error=fail)
            prefix = "" if i == 0 else f"{j.embedder.name}:"
            for key, values in columns.items():
                for row, v in zip(rows, values):
                    row[prefix + key] = v
        summary["identity"] = summary["judges"][judges[0].embedder.name]
    if records:
        atomic_write_text(out_dir / "lr_params.json", json.dumps(records) + "\n")
        summary["lr_params"] = "lr_params.json (per-image degradation parameters; regenerate LR exactly)"
    write_report(out_dir, rows, summary)
    return {"rows": rows, "summary": summary}
