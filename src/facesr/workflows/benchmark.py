"""Several methods on one identity test set: the seed-004-style table as Markdown and CSV.

Every method runs on the same probes (the 2nd image of each identity folder; with a FASR method,
only identities that have at least one aux image, so all rows share one probe set). Each method's
run is a normal evaluation folder (per-image CSV, summary.json) under <out>/<label>/.

A method is ``LABEL=MODEL[,key=value...]``; keys: aux (FASR: N or all), view (FASR: lr or hr, the aux
images' LR versions or the images as they are), embedder (FASR: the network that embeds the aux images
if not the model's own, a student of it such as 'dlib-lq'), ref (RefSR-VAE and FASR: same or other, whose aux images
condition the probe: its own identity's or, as a control, the next identity's; FASR also none, the zero
vector), and the sampling recipe (sampler, steps, strength,
samples, init, eta, guidance). Bicubic and the HR ceiling come with every table.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from facesr.engine.options import RECIPE_KEYS, parse_option
from facesr.errors import FacesrError
from facesr.io.images import atomic_write_text


@dataclass
class Method:
    label: str
    model: str
    aux: str | None = None
    view: str | None = None
    ref: str | None = None
    embedder: str | None = None
    gate: str | None = None  # references that pull toward an identity: the gate's threshold, or 'off' (default: the gate's)
    recipe: dict = field(default_factory=dict)


def parse_method(text: str) -> Method:
    label, sep, rest = text.partition("=")
    if not sep or not label or not rest:
        raise FacesrError(f"method {text!r}: expected LABEL=MODEL[,key=value...]")
    model, *pairs = rest.split(",")
    m = Method(label, model)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise FacesrError(f"method {text!r}: {pair!r} is not key=value")
        if key == "aux":
            m.aux = value
        elif key == "view":
            from facesr.engine.conditions import check_view

            check_view(value)
            m.view = value
        elif key == "ref":
            m.ref = value
        elif key == "embedder":
            m.embedder = value
        elif key == "gate":
            from facesr.engine.refs_gate import parse_threshold

            try:
                parse_threshold(value, "gate")
            except FacesrError as exc:
                raise FacesrError(f"method {text!r}: {exc}") from None
            m.gate = value
        elif key in RECIPE_KEYS:
            try:
                m.recipe[key] = parse_option(key, value)
            except FacesrError as exc:
                raise FacesrError(f"method {text!r}: {exc}") from None
        else:
            raise FacesrError(f"method {text!r}: unknown key {key!r} (aux, view, ref, embedder, gate, {', '.join(RECIPE_KEYS)})")
    if not label.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise FacesrError(f"method {text!r}: labels use letters, digits, - _ . only (it names a folder)")
    return m


def check_methods(methods: list[Method], baseline: str | None = None) -> list[Method]:
    """Labels name folders: they must differ, and the baseline must be one of them and not the only one (a
    baseline with nothing to compare would fail after the runs)."""
    labels = [m.label for m in methods]
    if len(set(labels)) != len(labels):
        raise FacesrError(f"method labels must differ, got {labels}")
    if baseline is not None and baseline not in labels:
        raise FacesrError(f"baseline {baseline!r} is not one of the method labels {labels}")
    if baseline is not None and len(labels) == 1:
        raise FacesrError(f"baseline {baseline!r} is the only method: give another to compare with it, or drop --baseline")
    return methods


def method_gate(m: Method, model) -> float | None:
    """The reference gate's threshold for a method whose references pull toward an identity (FASR; RefSR-VAE with
    ``ref_identity`` or ``identity_refine``): the default gate unless ``gate=`` says otherwise; None for everything else (the null
    identity is never gated)."""
    from facesr.engine.refs_gate import THRESHOLD, gated, parse_threshold

    if not gated(model) or (m.ref or "same") == "none":
        return None
    return THRESHOLD if m.gate is None else parse_threshold(m.gate, "gate")


def probe_set(split: dict, hr_root, limit: int, need_aux: bool) -> list[Path]:
    """The probes of an ``identity_split``; only identities with an aux image when ``need_aux``."""
    probes = [entry["probe"] for entry in split.values() if entry["aux"] or not need_aux]
    if not probes:
        raise FacesrError(f"{hr_root}: no identity folder with {'3' if need_aux else '2'} or more images")
    return probes[:limit] if limit else probes


def run_benchmark(hr_root, methods: list[Method], out, judges, device, limit: int = 0, batch_size: int = 16,
                  seed: int = 0, precision: str = "bf16", on_error=print, log=print, overwrite: bool = False) -> dict:
    """Every method on the probes of ``hr_root`` (module docstring), judged by each embedder of ``judges``
    (one embedder or a list; each gets its own CS and rank-1 columns).

    Per-item problems (an unreadable probe, aux image or gallery image; a gallery image's identity is left
    out of the gallery and its probes get no rank) are reported through ``on_error``, one line each, and
    the benchmark goes on. FacesrError, before any work, when ``out`` is a file. A killed benchmark
    started again resumes: each method's run keeps the probes it finished (``run_and_evaluate``);
    ``overwrite`` redoes them.
    """
    from facesr.io.images import check_output_folder
    from facesr.engine.conditions import baseline_note, protocol_conditions
    from facesr.engine.options import SamplingOptions
    from facesr.engine.refs_gate import gated
    from facesr.identity.recognition import identity_split
    from facesr.methods.hub import load_model
    from facesr.identity.embedders import networks_of
    from facesr.workflows.evaluate import Judge, as_judges, run_and_evaluate

    out = check_output_folder(out, "-o names the folder for benchmark.md, benchmark.csv and the run folders")
    models = {m.model: load_model(m.model, device) for m in methods}
    fasr = {m.model for m in methods if models[m.model].needs.vector_dim}
    refsr = {m.model for m in methods if models[m.model].needs.reference}
    protocols = {mod.lr_protocol for mod in models.values()}
    if len(protocols) > 1:
        raise FacesrError(f"the methods use different LR protocols ({', '.join(sorted(p.describe() for p in protocols))}); "
                          "one table needs one protocol")
    for m in methods:
        if (m.aux is not None or m.view is not None or m.embedder is not None) and m.model not in fasr:
            raise FacesrError(f"method {m.label}: aux, view and embedder are only for FASR models")
        if m.gate is not None and not gated(models[m.model]):
            raise FacesrError(f"method {m.label}: gate is only for models whose references pull toward an identity "
                              "(FASR, RefSR-VAE with ref_identity or identity_refine)")
        if m.ref is not None and m.model not in refsr | fasr:
            raise FacesrError(f"method {m.label}: ref is only for RefSR-VAE and FASR models")
    split = identity_split(hr_root)
    probes = probe_set(split, hr_root, limit, need_aux=bool(fasr or refsr))
    # one judge for every method: the gallery is read and embedded once, and a bad gallery image is reported
    # once and its identity left out of the gallery (its probes get no rank) in every method's run
    embedders = judges if isinstance(judges, (list, tuple)) else [judges]
    who = as_judges([Judge(e, {name: entry["gallery"] for name, entry in split.items()}) for e in embedders])
    results = []
    for m in methods:
        model = models[m.model]
        opts = SamplingOptions.for_model(model, **m.recipe, seed=seed, batch_size=batch_size, precision=precision)
        hr, conditions, extra = protocol_conditions(model, probes, m.aux or "all", m.ref or "same", on_error=on_error,
                                                    view=m.view or "lr", embedder=m.embedder)
        gate = method_gate(m, model)
        log(f"{m.label}: {m.model} on {len(hr)} probes")
        note = baseline_note(model, conditions, stills=True)
        if note:
            log(note)
        res = run_and_evaluate(model, hr, opts, device, out / m.label, on_error=on_error, judge=who, overwrite=overwrite,
                               conditions=conditions, extra=extra, refs_gate=gate)
        results.append((m, res["summary"]))
    rows = table_rows(results)
    dependent = {}  # face network -> labels of the rows whose model was conditioned on or trained with it
    for m, _ in results:
        for spec in dict.fromkeys(models[m.model].identity_networks + (networks_of(m.embedder) if m.embedder else ())):
            dependent.setdefault(spec, []).append(m.label)
    text = markdown(hr_root, results, rows, dependent)
    atomic_write_text(out / "benchmark.md", text)
    atomic_write_text(out / "benchmark.csv", to_csv(rows))
    atomic_write_text(out / "benchmark.json", json.dumps({"rows": rows}, indent=2) + "\n")
    return {"rows": rows, "markdown": text, "judges": embedders}


def _mean_std(d: dict | None) -> tuple:
    return (d["mean"], d["std"]) if d else (None, None)


def judge_names(results) -> list[str]:
    """The judge networks of a benchmark, the first (the unprefixed columns) first."""
    first = results[0][1]
    return list(first.get("judges") or ({first["identity"]["embedder"]: first["identity"]} if first.get("identity") else {}))


def _identity(summaries: dict, names: list[str], cs_key: str, probes_key: str) -> dict:
    """CS and rank-1 fields of a row by every judge: unprefixed for the first, "<field>:<judge>" after it."""
    out = {}
    for i, name in enumerate(names):
        ident = summaries.get(name, {})
        fields = {**(_pair("cs", ident.get(cs_key)) if cs_key else {"cs": 1.0, "cs_std": 0.0}),
                  **_rank1(ident.get(probes_key))}
        out.update(fields if i == 0 else {f"{k}:{name}": v for k, v in fields.items()})
    return out


def table_rows(results) -> list[dict]:
    first = results[0][1]
    names = judge_names(results)
    judged = first.get("judges") or {}
    rows = [{"method": "HR (ceiling)", "model": "", "aux": "", "faces": first["images"], "psnr": None, "psnr_std": None,
             "ssim": None, "ssim_std": None, "detail": 1.0, "detail_std": 0.0, "consistency": None, "consistency_std": None,
             **_identity(judged, names, None, "hr_probes"), "network_evaluations": 0, "seconds_per_face": None}]
    m0 = first["metrics"]
    rows.append({"method": "bicubic", "model": "", "aux": "", "faces": first["images"],
                 **_pair("psnr", m0.get("bicubic_psnr")), **_pair("ssim", m0.get("bicubic_ssim")),
                 **_pair("detail", m0.get("bicubic_detail")),
                 **_pair("consistency", m0.get("bicubic_consistency")),
                 **_identity(judged, names, "bicubic_cs", "bicubic_probes"), "network_evaluations": 0,
                 "seconds_per_face": None})
    for m, s in results:
        cond = s.get("identity_condition") or {}
        aux = cond.get("aux", "") or ("ref: " + (m.ref or "same") if m.ref or s.get("reference") else "")
        if cond.get("aux_view") == "hr":
            aux += ", HR view"
        if cond.get("of") == "other":
            aux += " (next identity's)"
        if m.embedder:
            aux += f", embedded by {m.embedder}"
        if cond.get("of") == "none":
            aux = "none (zero vector)"
        if m.recipe.get("guidance"):
            aux += f", guidance w = {m.recipe['guidance']:g}"
        if m.recipe.get("identity_scale", 1) != 1:
            aux += f", identity scale {m.recipe['identity_scale']:g}"
        if m.recipe.get("identity_gradient"):
            aux += f", dlib gradient w = {m.recipe['identity_gradient']:g}"
        rows.append({"method": m.label, "model": m.model, "aux": aux,
                     "faces": s["images"], **_pair("psnr", s["metrics"].get("psnr")), **_pair("ssim", s["metrics"].get("ssim")),
                     **_pair("detail", s["metrics"].get("detail")),
                     **_pair("consistency", s["metrics"].get("consistency")),
                     **_identity(s.get("judges") or {}, names, "cs", "sr_probes"),
                     "network_evaluations": s["network_evaluations"], "seconds_per_face": s["seconds_per_face"]})
    return rows


def _rank1(probes: dict | None) -> dict:
    probes = probes or {}
    low, high = probes.get("rank1_ci95") or (None, None)
    return {"rank1": probes.get("rank1"), "rank1_low": low, "rank1_high": high}


def _pair(key: str, stats: dict | None) -> dict:
    mean, std = _mean_std(stats)
    return {key: mean, f"{key}_std": std}


def _cell(mean, std, digits: int) -> str:
    if mean is None:
        return "–"
    return f"{mean:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")


def _rank1_cell(r: dict, suffix: str) -> str:
    rank1 = r.get("rank1" + suffix)
    if rank1 is None:
        return "–"
    low, high = r.get("rank1_low" + suffix), r.get("rank1_high" + suffix)
    return f"{rank1:.3f}" + ("" if low is None else f" [{low:.2f}, {high:.2f}]")


def markdown(hr_root, results, rows, dependent: dict[str, list[str]]) -> str:
    s = results[0][1]
    p = s["protocol"]
    names = judge_names(results)
    judged = s.get("judges") or {}
    short = {name: judged.get(name, {}).get("embedder", name).split(" ")[0] for name in names}
    judges_text = "; ".join(judged.get(n, {}).get("embedder", n) for n in names) or "none"
    gallery = next((judged[n].get("gallery_identities") for n in names if judged.get(n, {}).get("gallery_identities")), "?")
    head = "| method | model | aux | faces | PSNR (dB) | SSIM | detail | consistency | " + \
        " | ".join(f"CS ({short[n]}) | rank-1 ({short[n]})" for n in names) + " | network evaluations | s / face |"
    lines = [
        f"Test set `{hr_root}`: the 2nd image of each identity folder is the probe, the 1st the gallery, the rest aux "
        f"images (their LR versions condition FASR; the photos as they are in rows marked HR view). LR = {p['operator']['name']} x{p['operator']['scale']} of HR, 8-bit. "
        f"PSNR/SSIM on {p['colour']}, crop {p['crop_border']}; detail = {p.get('detail', '–')}; consistency = {p['consistency']}. Judge networks: "
        f"{judges_text}; rank-1 = closed-set identification against the {gallery} "
        f"gallery images, with its 95 % Wilson interval in brackets (differences between methods: `--baseline`). Seed {s['seed']}, {s['precision']}, batch {s['batch_size']}, {s['device']}, {s['threads']} thread(s).",
        "",
        head,
        "|" + "---|" * (10 + 2 * len(names)),
    ]
    for r in rows:
        speed = "–" if r["seconds_per_face"] is None else f"{r['seconds_per_face']:.2f}"
        ident = " | ".join(f"{_cell(r.get('cs' + sfx), r.get('cs_std' + sfx), 4)} | {_rank1_cell(r, sfx)}"
                           for sfx in ("" if i == 0 else f":{n}" for i, n in enumerate(names)))
        lines.append(
            f"| {r['method']} | {r['model'] or '–'} | {r['aux'] or '–'} | {r['faces']} | {_cell(r['psnr'], r['psnr_std'], 2)} | "
            f"{_cell(r['ssim'], r['ssim_std'], 4)} | {_cell(r['detail'], r['detail_std'], 2)} | "
            f"{_cell(r['consistency'], r['consistency_std'], 2)} | "
            f"{ident} | {r['network_evaluations']} | {speed} |")
    for n in names:
        left_out = judged.get(n, {}).get("gallery_left_out")
        if left_out:
            ranked = judged[n].get("sr_probes", {}).get("probes_ranked", "?")
            lines += ["", f"{short[n]}: left out of the gallery (its image could not be used): {', '.join(map(str, left_out))}; "
                          f"their probes get no rank, so rank-1 is over {ranked} of {s['images']} probes."]
    for spec, labels in sorted(dependent.items()):
        judged_by_it = [short[n] for n in names if n.startswith(spec)]
        lines += ["", f"Rows {', '.join(labels)} were conditioned on or trained with the {spec} face network"
                      + (f": the {', '.join(judged_by_it)} columns judge them with that network, so those identity "
                         "figures are optimistic; the other judge's are not." if judged_by_it else
                         "; no judge of this table is that network.")]
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
