"""The conditioning hazard (issue 19): how often is the SR output identified as the reference's person when
the reference is of the wrong person?

    python benchmarks/hijack.py --hr ../shared/data/dev/lfw --limit 100 --precision fp32

For each conditioned model, the probes are run with the next identity's images as the condition (``ref=other``:
FASR's aux images, RefSR's reference) and without references (FASR: the zero vector, its null identity;
RefSR-VAE: the same architecture without a reference, ``sisr-vae-x8``). The hijack rate is the fraction of
probes whose SR is identified (rank 1 against the gallery) as that next identity, by each judge; the rate
without references is the same fraction for the unconditioned run (how often the next identity wins anyway).
``--embedder dlib-lq``: FASR's references embedded by that network (a student of the model's own) instead.
``--view hr``: FASR's references are the aux photos as they are, not their LR faces; ``--guidance W --samples K``:
identity guidance toward the (wrong) condition, the setting most likely to be hijacked. FASR's references pass
the reference gate (``facesr.engine.refs_gate``) as they do in ``facesr upscale``, and so do the references of a
RefSR-VAE that reads its reference's identity (``ref_identity``, ``identity_refine``, as the bundled one does);
``--gate off`` runs without it.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from facesr.engine.conditions import protocol_conditions, source_folder
from facesr.engine.options import SamplingOptions
from facesr.engine.refs_gate import THRESHOLD as REFS_GATE, gated, parse_threshold
from facesr.identity.embedders import make_embedder
from facesr.identity.recognition import identity_split
from facesr.io.images import atomic_write_text
from facesr.methods.hub import load_model
from facesr.metrics.stats import proportion_interval
from facesr.workflows.benchmark import probe_set
from facesr.workflows.evaluate import Judge, as_judges, run_and_evaluate

# conditioned model -> (how it runs without references: "none" = FASR's zero vector, or a model name)
MODELS = {"fasr-x8": "none", "fasr-x4": "none", "refsr-vae-x8": "sisr-vae-x8"}


def predicted(out: Path, judge: str, first: bool) -> dict[str, str]:
    key = "predicted" if first else f"{judge}:predicted"
    with open(out / "per_image.csv") as f:
        return {row["name"]: row[key] for row in csv.DictReader(f)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hr", default="../shared/data/dev/lfw")
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--identity", nargs="+", default=["dlib", "faceplugin"])
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--embedder", help="FASR models: embed the references with this network (e.g. dlib-lq)")
    ap.add_argument("--view", choices=["lr", "hr"], default="lr", help="FASR: the aux images' LR faces or the photos")
    ap.add_argument("--guidance", type=float, help="FASR: identity guidance weight")
    ap.add_argument("--identity-scale", type=float, help="FASR: the references' vector enters scaled by this")
    ap.add_argument("--samples", type=int, help="samples per face (the model's recipe if not given)")
    ap.add_argument("--gate", default=str(REFS_GATE), help=f"FASR, RefSR-VAE reading the reference's identity: the reference gate's cosine, or off (default {REFS_GATE})")
    ap.add_argument("--without", help="how a model not in the built-in list runs without references: none (its null "
                    "identity) or a model name or folder (e.g. sisr-vae-x8)")
    ap.add_argument("-o", "--out", default="outputs/hijack")
    ap.add_argument("--results", default="benchmarks/results/hijack-lfw.md")
    args = ap.parse_args()
    gate = parse_threshold(args.gate, "--gate")
    split = identity_split(args.hr)
    judges = as_judges([Judge(make_embedder(s), {n: e["gallery"] for n, e in split.items()}) for s in args.identity])
    names = [j.embedder.name for j in judges]
    lines = [f"# Reference hijack on `{args.hr}`", "",
             f"`python benchmarks/hijack.py --hr {args.hr} --models {' '.join(args.models)}"
             f"{f' --limit {args.limit}' if args.limit else ''} "
             f"{f'--embedder {args.embedder} ' if args.embedder else ''}"
             f"{f'--view {args.view} ' if args.view != 'lr' else ''}"
             f"{f'--guidance {args.guidance} ' if args.guidance is not None else ''}"
             f"{f'--identity-scale {args.identity_scale:g} ' if args.identity_scale is not None else ''}"
             f"{f'--samples {args.samples} ' if args.samples else ''}"
             f"{f'--gate {args.gate} ' if gate != REFS_GATE else ''}"
             f"{f'--without {args.without} ' if args.without else ''}"
             f"--precision {args.precision}`", "",
             "Hijack rate: the fraction of probes identified as the next identity when that identity's images are the "
             "condition (`ref=other`); without references: the same fraction when the model runs without them. "
             "Each model's recipe, seed 0. A judge marked * is the network that makes the model's condition.", "",
             "| model | probes | " + " | ".join(f"hijack ({n}) | without references ({n})" for n in names) + " |",
             "|---|---|" + "---|---|" * len(names)]
    for name in args.models:
        model = load_model(name, "cpu")
        probes = probe_set(split, args.hr, args.limit, need_aux=True)
        folders = sorted({p.parent for p in probes})
        other = {p.stem: source_folder(p, folders, "other").name for p in probes}
        fasr = bool(model.needs.vector_dim)
        checked = gated(model)  # its references pull toward an identity: they pass the gate
        opts = SamplingOptions.for_model(model, seed=0, precision=args.precision, samples=args.samples,
                                         guidance=args.guidance if fasr else None,
                                         identity_scale=args.identity_scale if fasr else None)
        embedder = args.embedder if fasr else None
        view = args.view if fasr else "lr"
        hr, conditions, extra = protocol_conditions(model, probes, "all", "other", view=view, embedder=embedder)
        setting = "".join([f"-{embedder.replace(':', '_').replace('/', '_')}" if embedder else "",
                           f"-{view}" if view != "lr" else "", f"-g{args.guidance:g}" if fasr and args.guidance else "",
                           f"-is{args.identity_scale:g}" if fasr and args.identity_scale is not None else "",
                           f"-s{args.samples}" if args.samples else "",
                           f"-gate{gate:g}" if checked and gate is not None else ""])
        out_other = Path(args.out) / Path(name).name / f"other{setting}"
        run_and_evaluate(model, hr, opts, "cpu", out_other, judge=judges, conditions=conditions, extra=extra,
                         refs_gate=gate if checked else None)
        plain = args.without or MODELS.get(name)
        if plain is None:
            raise SystemExit(f"hijack.py: {name}: how it runs without references is not known; give --without")
        if plain == "none":
            hr0, cond0, extra0 = protocol_conditions(model, hr, "all", "none")
            base_model, base_opts = model, SamplingOptions.for_model(model, seed=0, precision=args.precision)
        else:
            base_model = load_model(plain, "cpu")
            hr0, cond0, extra0 = hr, None, {}
            base_opts = SamplingOptions.for_model(base_model, seed=0, precision=args.precision)
        out_none = Path(args.out) / Path(name).name / "without"
        run_and_evaluate(base_model, hr0, base_opts, "cpu", out_none, judge=judges, conditions=cond0, extra=extra0)
        cells = []
        for i, judge in enumerate(names):
            star = "*" if any(judge.startswith(spec) for spec in model.identity_networks) else ""
            for out in (out_other, out_none):
                pred = predicted(out, judge, i == 0)
                hits = sum(pred[n] == other[n] for n in pred)
                low, high = proportion_interval(hits, len(pred))
                cells.append(f"{hits / len(pred):.3f} [{low:.2f}, {high:.2f}]{star}")
        label = ", ".join([name] + ([f"references by {embedder}"] if embedder else [])
                          + (["the aux photos (HR view)"] if view == "hr" else [])
                          + ([f"guidance w = {args.guidance:g}, {opts.samples} samples"] if fasr and args.guidance else [])
                          + ([f"identity scale {args.identity_scale:g}"] if fasr and args.identity_scale is not None else [])
                          + ([f"reference gate {gate:g}" if gate is not None else "no reference gate"] if checked else []))
        lines.append(f"| {label} | {len(hr)} | " + " | ".join(cells) + " |")
        print(lines[-1], file=sys.stderr)
    atomic_write_text(Path(args.results), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
