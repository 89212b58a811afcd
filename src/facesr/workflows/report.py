"""The forensic report: one probe face, K restorations, and who they say it is, by two judges.

``make_report`` takes a probe (an LR chip, or a photo: its largest face, or face ``face``, is found, aligned
and cut at the model's LR size as ``facesr restore`` does) and a gallery (``<dir>/<identity>/<images>``,
or a folder of images each its own identity), draws K samples, and gathers for each judge network the
stability of the best match across samples, the top-5 candidates with their score intervals and
false-match rates (``facesr.identity.calibration``), and the same for bicubic and the posterior mean.
With references (FASR ``refs``, RefSR ``ref``) it adds the hijack control: who the references are, and
for FASR who the face is without them (the null identity vector). A judge whose network conditions the
model is marked as not independent. ``render_html`` makes the self-contained page.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from facesr.engine.refs_gate import THRESHOLD as REFS_GATE
from facesr.errors import FacesrError, InputError
from facesr.io.images import atomic_write_text, list_images, read_image, to_tensor, to_uint8
from facesr.methods.hub import DEFAULT_MODEL

TOP = 5
STABLE = 0.9  # the stability the verdict calls stable
ONE_STEP = ("No stability: with one step per sample, the samples are the model's estimates of the mean face, not draws "
            "from the faces the LR allows, so their agreement overstates it. Run the report with --steps 8 or more.")
NO_DRAWS = ("No stability: this model draws nothing at random, so its samples are all the same image and their "
            "agreement says nothing about the faces the LR allows. For a stability verdict use a model that draws "
            "samples (a diffusion model such as sr3-x8-res, or sisr-vae-x8).")


def gallery_entries(root) -> list[tuple[str, Path]]:
    """[(identity, image path)]: identity folders' images labelled by the folder, loose images by their stem."""
    root = Path(root)
    if not root.is_dir():
        raise FacesrError(f"{root}: the gallery is not a folder")
    entries = [(p.stem, p) for p in list_images(root)]
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = list_images(folder)
        if not images:
            raise FacesrError(f"{folder}: an identity folder of the gallery with no images")
        entries += [(folder.name, p) for p in images]
    if not entries:
        raise FacesrError(f"{root}: no gallery images (expected <gallery>/<identity>/<images> or images)")
    return entries


def probe_chip(model, path: Path, face: int | None = None, finder=None) -> tuple[np.ndarray, dict]:
    """(the LR chip, where it came from): the image itself when the model takes it as it is, else the
    chosen face of the photo cut at the model's LR size."""
    from facesr.engine.run import check_input

    img = read_image(path)
    if check_input(model, *img.shape[:2]) is None and face is None:
        return img, {"kind": "chip", "size": list(img.shape[1::-1])}
    from facesr.wild.faces import FaceFinder, cut_chip

    faces = (finder or FaceFinder())(img)
    if not faces:
        raise InputError(path, "no face found (give an LR chip of the face, or a photo with a face of 12 px or more)")
    index = 0 if face is None else face
    if not 0 <= index < len(faces):
        raise InputError(path, f"--face {face}: the photo has {len(faces)} face(s), numbered 0 to {len(faces) - 1}")
    f = faces[index]
    lr = cut_chip(img, f.frame, model.hr_size // model.scale)
    return lr, {"kind": "photo", "size": list(img.shape[1::-1]), "faces_found": len(faces), "face": index,
                "box": [round(v, 1) for v in f.box], "width_px": round(f.width, 1)}


def _judge_gallery(embedder, entries, on_error, cache_dir=None):
    vectors, failures = embedder.embed_files([p for _, p in entries], cache_dir)
    for failure in failures:
        on_error(f"{failure}; left out of the gallery")
    ok = np.isfinite(vectors).all(axis=1)
    if not ok.any():
        raise FacesrError(f"no gallery image could be used by {embedder.name}")
    return vectors[ok], [label for (label, _), good in zip(entries, ok) if good]


def _identify(embedder, images, gallery, labels, calibration) -> tuple[dict, object]:
    """(the JSON of the images' stability, with false-match rates, and the Stability itself)."""
    from facesr.identity.stability import identity_scores, stability

    scores, identities = identity_scores(embedder.embed(images), gallery, labels)
    found = stability(scores, identities, TOP)
    result = found.to_dict()
    for c in result["candidates"]:
        if calibration is not None:
            c["fmr"] = calibration.fmr(c["median"])
            c["fmr_text"] = calibration.fmr_text(c["median"])
            c["fmr_interval"] = [calibration.fmr(c["high"]), calibration.fmr(c["low"])]
    return result, found


def make_report(probe, gallery, model=DEFAULT_MODEL, samples: int = 16, seed: int = 0, refs=None, ref=None,
                judges=("dlib", "faceplugin"), face: int | None = None, overrides: dict | None = None,
                device="cpu", on_error=print, finder=None, cache_dir=None, progress=None,
                refs_embedder: str | None = None, refs_gate: float | None = REFS_GATE) -> tuple[dict, dict]:
    """(report JSON, images {name: uint8 array}); see the module docstring. ``refs_embedder``: the network
    that embeds FASR's ``refs`` if not the model's own (``conditions.condition_spec``); ``refs_gate``: below this
    score against its ``refs`` the face is restored without them (``facesr.engine.refs_gate``), and the report
    says so. ``cache_dir``: where the
    gallery's embeddings are kept between reports (one file per image, keyed by its bytes and the judge);
    ``progress(done, total)``: after each batch of samples."""

    from facesr._version import __version__
    from facesr.engine.conditions import baseline_note, condition_spec, conditions_for
    from facesr.engine.options import SamplingOptions, mean_estimates
    from facesr.engine.refs_gate import gate_conditions, gated
    from facesr.engine.run import super_resolve_tensors
    from facesr.identity.calibration import bundled_calibration
    from facesr.identity.embedders import make_embedder
    from facesr.identity.stability import joint_verdict, verdict
    from facesr.io.weights import file_sha256
    from facesr.methods.hub import load_model
    from facesr.metrics import lr_consistency
    from facesr.workflows.upscale import std_heatmap

    if samples < 1:
        raise FacesrError(f"--samples must be at least 1, got {samples}")
    entries = gallery_entries(gallery)
    model = load_model(model, device, flag="--model") if isinstance(model, str) else model
    probe = Path(probe)
    lr, where = probe_chip(model, probe, face, finder)
    opts = SamplingOptions.for_model(model, draws=True, **{**(overrides or {}), "samples": samples, "seed": seed})
    no_stability = None  # samples that cannot show a stability (of one sample the verdict says so itself)
    if samples > 1:
        no_stability = NO_DRAWS if not model.draws else ONE_STEP if mean_estimates(model, opts) else None
    conditions = conditions_for(model, 1, refs=refs, ref=ref, refs_embedder=refs_embedder)  # no refs: null identity
    lr_t = to_tensor(lr)
    gate = None
    if gated(model) and (refs is not None or ref is not None):
        conditions, (verdict_,) = gate_conditions(model, [lr_t], conditions, refs_gate)
        gate = {"threshold": refs_gate, "score": verdict_.score, "used": verdict_.used,
                "text": verdict_.describe(refs_gate)}
    means, stds, kept = super_resolve_tensors(model, [lr_t], [probe.name], opts, device, conditions=conditions,
                                              keep_samples=True, progress=progress)
    sample_images = [to_uint8(s) for s in kept[0]]
    mean_img = to_uint8(means[0])
    bicubic = to_uint8(model.lr_protocol.upsample(lr_t[None])[0])
    deterministic = model.lr_protocol.deterministic
    consistency = [lr_consistency(s, lr, model.operator) if deterministic else None for s in sample_images]

    control = None
    if gate is not None and gate["used"]:  # the face without the references' identity: the null identity
        null = [model.null_condition(conditions[0])]
        _, _, without = super_resolve_tensors(model, [lr_t], [probe.name], opts, device, conditions=null, keep_samples=True)
        control = [to_uint8(s) for s in without[0]]

    dependent_on = list(model.identity_networks)  # face networks it was conditioned on, trained with or guided by
    report_judges, stabilities = [], {}
    for spec in judges:
        embedder = make_embedder(spec)
        g, labels = _judge_gallery(embedder, entries, on_error, cache_dir)
        calibration = bundled_calibration(embedder.name)
        samples_json, samples_found = _identify(embedder, sample_images, g, labels, calibration)
        stabilities[embedder.name] = samples_found
        entry = {"judge": embedder.name, "spec": spec,
                 "independent": not any(embedder.name.startswith(spec) for spec in dependent_on),
                 "calibration": calibration.source if calibration else None,
                 "gallery_images": len(labels), "gallery_identities": len(set(labels)),
                 "samples": samples_json,
                 "posterior_mean": _identify(embedder, [mean_img], g, labels, calibration)[0],
                 "bicubic": _identify(embedder, [bicubic], g, labels, calibration)[0],
                 "verdict": no_stability or verdict(samples_found, threshold=STABLE)}
        if refs is not None or ref is not None:
            entry["hijack"] = _hijack(embedder, refs if refs is not None else [ref], g, labels, entry, control, calibration,
                                      gated=bool(gate and not gate["used"]))
        report_judges.append(entry)

    weights = Path(model.source) / "ema.safetensors" if model.source else None
    report = {
        "probe": str(probe), "where": where, "facesr_version": __version__,
        "model": {"name": model.name, "source": model.source,
                  "weights_sha256": file_sha256(weights) if weights and weights.is_file() else None,
                  "lr_protocol": model.lr_protocol.describe(), "identity_networks": dependent_on},
        "sampling": {**{k: v for k, v in asdict(opts).items() if k in ("sampler", "steps", "strength", "eta")},
                     "samples": samples, "seeds": list(range(seed, seed + samples)), "precision": opts.precision},
        "references": {"refs": [str(r) for r in refs] if isinstance(refs, (list, tuple)) else refs,
                       "refs_embedder": condition_spec(model, refs_embedder) if model.needs.vector_dim else None,
                       "ref": str(ref) if ref is not None else None,
                       "gate": gate} if (refs is not None or ref is not None) else None,
        "condition_note": baseline_note(model, refs) or (gate["text"] if gate and not gate["used"] else None),
        "lr_consistency": consistency,
        "gallery": str(gallery),
        "judges": report_judges,
        "verdict": no_stability or (joint_verdict(stabilities, threshold=STABLE) if samples > 1 else None),
    }
    images = {"lr": lr, "bicubic": bicubic, "mean": mean_img, "uncertainty": std_heatmap(stds[0]),
              **{f"sample_{k:02d}": img for k, img in enumerate(sample_images)}}
    return report, images


def _hijack(embedder, refs, gallery, labels, entry, control, calibration, gated: bool = False) -> dict:
    """Who the references are, and (FASR) who the face is without them; ``gated``: the references were not
    used (the reference gate), so the samples are the face without them."""
    from facesr.engine.conditions import as_image

    refs = [refs] if isinstance(refs, (str, Path, np.ndarray)) else list(refs)
    if len(refs) == 1 and str(refs[0]).endswith(".safetensors"):
        return {"note": "references given as a features file: their identity cannot be shown"}
    ref_identity, _ = _identify(embedder, [as_image(r, "refs") for r in refs], gallery, labels, calibration)
    # several reference images: the identity most of them match best
    out = {"references_identity": ref_identity["top_identity"], "references_stability": ref_identity["stability"]}
    top = entry["samples"]["top_identity"]
    if gated:
        out.update(warning=False, gated=True, text=(f"The references' best match is {out['references_identity']}, but the "
                                                     f"face does not match them, so their identity was not used: the face matches "
                                                     f"{top} without it."))
        return out
    if control is not None:
        without, _ = _identify(embedder, control, gallery, labels, calibration)
        out.update(without_references=without["top_identity"], without_references_stability=without["stability"])
    out["warning"] = (top == out["references_identity"]
                      and out.get("without_references", top) != top)
    out["text"] = _hijack_text(top, out)
    return out


def _hijack_text(top: str, h: dict) -> str:
    refs_who = h["references_identity"]
    if h["warning"]:
        return (f"Warning: with the references the face is matched to {refs_who}, the references' own best match; "
                f"without them it is matched to {h['without_references']}. The identity may come from the references.")
    if "without_references" in h:
        return (f"The references' best match is {refs_who}; with them the face matches {top}, "
                f"without them {h['without_references']}.")
    return (f"The references' best match is {refs_who}; with them the face matches {top}. The model cannot run "
            "without its reference, so no control without it is shown: a match to the references' person proves nothing.")


# --- the page ------------------------------------------------------------------------------------
def _png(img: np.ndarray, size: int | None = None) -> str:
    from PIL import Image

    im = Image.fromarray(img)
    if size and im.size[0] != size:
        im = im.resize((size, size), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _figure(img, caption, size=128) -> str:
    return (f'<figure><img src="{_png(img, size)}" width="{size}" height="{size}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _candidates_table(result: dict) -> str:
    rows = []
    for c in result["candidates"]:
        fmr = html.escape(c.get("fmr_text", "not calibrated"))
        rows.append(f"<tr><td>{html.escape(c['identity'])}</td><td>{c['median']:.3f}</td>"
                    f"<td>[{c['low']:.3f}, {c['high']:.3f}]</td><td>{c['top1_share']:.2f}</td><td>{fmr}</td></tr>")
    return ("<table><tr><th>candidate</th><th>score (median)</th><th>interval across samples</th>"
            "<th>best match in</th><th>false-match rate at the median</th></tr>" + "".join(rows) + "</table>")


def render_html(report: dict, images: dict) -> str:
    esc = html.escape
    samples = [images[k] for k in sorted(images) if k.startswith("sample_")]
    m, s = report["model"], report["sampling"]
    parts = [f"<h1>facesr forensic report: {esc(Path(report['probe']).name)}</h1>",
             '<section class="images">', _figure(images["lr"], "LR input (enlarged)"), _figure(images["bicubic"], "bicubic"),
             _figure(images["mean"], f"posterior mean of {len(samples)}"), _figure(images["uncertainty"], "uncertainty (std)"),
             "</section>", f"<h2>{len(samples)} samples</h2>", '<section class="strip">']
    for k, img in enumerate(samples):
        c = report["lr_consistency"][k]
        parts.append(_figure(img, f"seed {s['seeds'][k]}" + ("" if c is None else f", LR-consistency {c:.2f}"), 96))
    parts.append("</section>")
    if report.get("verdict"):
        parts += ["<h2>Verdict of the judges</h2>", f'<p class="joint-verdict">{esc(report["verdict"])}</p>']
    for j in report["judges"]:
        badge = "" if j["independent"] else ' <span class="warn">(this model was conditioned on, trained with or guided by it: not an independent judge)</span>'
        parts += [f"<h2>Judge: {esc(j['judge'])}{badge}</h2>", f'<p class="verdict">{esc(j["verdict"])}</p>',
                  f"<h3>Samples (stability {j['samples']['stability']:.2f})</h3>", _candidates_table(j["samples"]),
                  f"<h3>Posterior mean: best match {esc(j['posterior_mean']['top_identity'])}</h3>",
                  _candidates_table(j["posterior_mean"]),
                  f"<h3>Bicubic: best match {esc(j['bicubic']['top_identity'])}</h3>", _candidates_table(j["bicubic"]),
                  f"<p class='small'>Gallery: {j['gallery_identities']} identities, {j['gallery_images']} images. "
                  f"Calibration: {esc(j['calibration'] or 'none for this judge')}.</p>"]
        if "hijack" in j:
            cls = "warn" if j["hijack"].get("warning") else ""
            parts.append(f"<h3>Reference control</h3><p class='{cls}'>{esc(j['hijack'].get('text', j['hijack'].get('note', '')))}</p>")
    prov = {"facesr": report["facesr_version"], "model": m["name"], "weights sha256": m["weights_sha256"] or "–",
            "LR operator": m["lr_protocol"], "sampler": s.get("sampler"), "steps": s.get("steps"),
            "strength": s.get("strength"), "seeds": f"{s['seeds'][0]}..{s['seeds'][-1]}", "precision": s["precision"],
            "probe": report["probe"], "probe kind": json.dumps(report["where"]), "gallery": report["gallery"]}
    if report.get("references"):
        prov["references"] = json.dumps(report["references"])
    if report.get("condition_note"):
        prov["condition"] = report["condition_note"]
    parts.append("<h2>Provenance</h2><table>" + "".join(
        f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in prov.items()) + "</table>")
    style = ("body{font-family:sans-serif;margin:2em;max-width:1100px}figure{display:inline-block;margin:4px;text-align:center}"
             "figcaption{font-size:12px}img{image-rendering:pixelated;border:1px solid #ccc}table{border-collapse:collapse;"
             "margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}.warn{color:#b00;font-weight:bold}"
             ".verdict,.joint-verdict{font-size:16px;background:#f4f4f4;padding:8px}.joint-verdict{font-weight:bold}"
             ".small{font-size:12px;color:#555}")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>facesr report</title>"
            f"<style>{style}</style></head><body>" + "\n".join(parts) + "</body></html>\n")


def write_report(out, report: dict, images: dict) -> dict:
    from facesr.io.images import check_output_folder

    out = check_output_folder(out, "-o names the folder for report.html and report.json")
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out / "report.html", render_html(report, images))
    return {"html": out / "report.html", "json": out / "report.json"}
