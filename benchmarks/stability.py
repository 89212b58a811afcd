"""Is identity stability informative? A reliability table of rank-1 correctness against stability (issue 19).

    python benchmarks/stability.py --hr ../shared/data/dev/lfw ../shared/data/dev/celeba --model sr3-x8 \
        --samples 8 --limit 100 --precision fp32

For each probe (the 2nd image of each identity folder, LR by the model's protocol), K samples of the model
are identified against the set's gallery (1st images) by each judge; the probe's stability is the fraction
of samples whose best match is the most frequent best match, and it is correct when that identity is the
probe's. Probes are binned by stability; each bin's share of correct probes is the table. Also: rank-1 of
the posterior mean (the mean of the K samples) and of bicubic. Per-probe records are appended to
<out>/probes.jsonl as they are done, so a killed run resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from facesr.engine.options import SamplingOptions
from facesr.engine.run import super_resolve_tensors
from facesr.identity.embedders import make_embedder
from facesr.identity.recognition import identity_split
from facesr.identity.stability import identity_scores, judges_agree, stability
from facesr.errors import FacesrError, InputError
from facesr.io.images import atomic_write_text, read_image, to_tensor, to_uint8
from facesr.metrics.stats import proportion_interval
from facesr.methods.hub import load_model

BINS = [(0.0, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 1.01)]


def bin_label(lo, hi) -> str:
    return f">= {lo:g}" if hi > 1 else f"[{lo:g}, {hi:g})"


def run_set(root: Path, model, judges, opts, limit, out: Path, cache: Path) -> tuple[list[dict], list[str]]:
    """(the probes' records, the identities whose probe could not be read: each named on stderr in one line)."""
    split = identity_split(root)
    names = sorted(split)[:limit] if limit else sorted(split)
    gallery_names = sorted(split)
    galleries = {}
    for j in judges:
        vecs, failures = j.embed_files([split[n]["gallery"] for n in gallery_names], cache)
        ok = np.isfinite(vecs).all(axis=1)
        galleries[j.name] = (vecs[ok], [n for n, good in zip(gallery_names, ok) if good])
    done_file = out / f"{root.name}.probes.jsonl"
    done = {}
    if done_file.exists():
        for line in done_file.read_text().splitlines():
            rec = json.loads(line)
            done[rec["identity"]] = rec
    todo = [n for n in names if n not in done]
    left_out = []
    chunk = max(1, opts.batch_size // opts.samples)
    t0 = time.time()
    for start in range(0, len(todo), chunk):
        part, hrs = [], []
        for n in todo[start : start + chunk]:
            try:
                hrs.append(read_image(split[n]["probe"]))
                part.append(n)
            except InputError as exc:  # one line, and the other probes go on
                print(f"{exc}; probe left out", file=sys.stderr)
                left_out.append(n)
        lrs = [model.lr_protocol.lr_image(hr, split[n]["probe"].name)[0] for hr, n in zip(hrs, part)]
        lr_t = [to_tensor(lr) for lr in lrs]
        means, _, kept = super_resolve_tensors(model, lr_t, [split[n]["probe"].name for n in part], opts, "cpu",
                                               keep_samples=True)
        for i, n in enumerate(part):
            samples = [to_uint8(s) for s in kept[i]]
            mean = to_uint8(means[i])
            bic = to_uint8(model.lr_protocol.upsample(lr_t[i][None])[0])
            rec = {"identity": n, "judges": {}}
            for j in judges:
                g, labels = galleries[j.name]
                vecs = j.embed(samples + [mean, bic])
                scores, ids = identity_scores(vecs, g, labels)
                st = stability(scores[: len(samples)], ids)
                rec["judges"][j.name] = {"stability": st.stability, "top": st.top_identity,
                                         "correct": st.top_identity == n,
                                         "sample_correct": float(np.mean([b == n for b in st.per_sample])),
                                         "mean_correct": ids[int(scores[-2].argmax())] == n,
                                         "bicubic_correct": ids[int(scores[-1].argmax())] == n,
                                         "best": st.per_sample}
            with open(done_file, "a") as f:
                f.write(json.dumps(rec) + "\n")
            done[n] = rec
        print(f"{root.name}: {len(done)}/{len(names)} probes, {time.time() - t0:.0f} s", file=sys.stderr)
    return [done[n] for n in names if n not in left_out], left_out


def table(records: list[dict], judge: str) -> list[str]:
    lines = ["| stability | probes | rank-1 correct (top identity of the samples) | 95 % interval |", "|---|---|---|---|"]
    for lo, hi in BINS:
        sel = [r["judges"][judge] for r in records if lo <= r["judges"][judge]["stability"] < hi]
        if not sel:
            lines.append(f"| {bin_label(lo, hi)} | 0 | – | – |")
            continue
        k = sum(s["correct"] for s in sel)
        low, high = proportion_interval(k, len(sel))
        lines.append(f"| {bin_label(lo, hi)} | {len(sel)} | {k / len(sel):.3f} | [{low:.2f}, {high:.2f}] |")
    rs = [r["judges"][judge] for r in records]
    lines += ["", f"All {len(rs)} probes: top identity of the samples correct {np.mean([s['correct'] for s in rs]):.3f}; "
                  f"a single sample {np.mean([s['sample_correct'] for s in rs]):.3f}; posterior mean "
                  f"{np.mean([s['mean_correct'] for s in rs]):.3f}; bicubic {np.mean([s['bicubic_correct'] for s in rs]):.3f}; "
                  f"mean stability {np.mean([s['stability'] for s in rs]):.3f}."]
    return lines


def joint_table(records: list[dict], judges: list[str], threshold: float = 0.9) -> list[str]:
    """Rank-1 correctness of each judge's top identity when every judge is stable (>= threshold) on the same
    identity, and otherwise: the verdict `facesr report` gives (identity.stability.judges_agree)."""
    def agreed(r):
        results = {j: SimpleNamespace(top_identity=r["judges"][j]["top"], stability=r["judges"][j]["stability"])
                   for j in judges}
        return judges_agree(results, threshold) is not None

    lines = [f"| every judge stable (>= {threshold:g}) on the same identity | probes | "
             + " | ".join(f"rank-1 correct ({j}) [95 % interval]" for j in judges) + " |", "|---|---|" + "---|" * len(judges)]
    for label, sel in (("yes", [r for r in records if agreed(r)]), ("no", [r for r in records if not agreed(r)])):
        cells = []
        for j in judges:
            k = sum(r["judges"][j]["correct"] for r in sel)
            low, high = proportion_interval(k, len(sel)) if sel else (0, 0)
            cells.append(f"{k / len(sel):.3f} [{low:.2f}, {high:.2f}]" if sel else "–")
        lines.append(f"| {label} | {len(sel)} | " + " | ".join(cells) + " |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hr", nargs="+", required=True)
    ap.add_argument("--model", default="sr3-x8")
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--limit", type=int, default=0, help="the first N probes of each set")
    ap.add_argument("--identity", nargs="+", default=["dlib", "faceplugin"])
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("-o", "--out", default="outputs/stability")
    ap.add_argument("--results", default="benchmarks/results/stability-x8.md")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(args.model, "cpu")
    opts = SamplingOptions.for_model(model, draws=True, samples=args.samples, seed=0, batch_size=args.batch_size,
                                     precision=args.precision)
    judges = [make_embedder(s) for s in args.identity]
    cache = Path("outputs/embeddings")
    text = [f"# Identity stability of `{args.model}` ({model.lr_protocol.describe()})", "",
            f"`python benchmarks/stability.py --hr {' '.join(args.hr)} --model {args.model} --samples {args.samples}"
            f"{f' --limit {args.limit}' if args.limit else ''} --precision {args.precision}`", "",
            f"K = {args.samples} samples per probe (recipe: sampler {opts.sampler}, {opts.steps} steps, strength "
            f"{opts.strength}; seeds 0..{args.samples - 1}), each identified against the set's gallery. Stability = the "
            "fraction of samples whose best match is the most frequent best match; correct = that identity is the "
            "probe's. Target (issue 19): at stability >= 0.9, rank-1 correct in at least 95 % of probes. 'The judges "
            "together' is the verdict `facesr report` states first: every judge stable (>= 0.9) on the same identity."]
    left_out = []
    for root in args.hr:
        records, unread = run_set(Path(root), model, judges, opts, args.limit, out, cache)
        left_out += unread
        for j in judges:
            text += ["", f"## {Path(root).name}, judge {j.name} ({len(records)} probes)", ""] + table(records, j.name)
        if len(judges) > 1:
            text += ["", f"## {Path(root).name}, the judges together (the verdict of `facesr report`)", ""] + \
                joint_table(records, [j.name for j in judges])
    atomic_write_text(Path(args.results), "\n".join(text) + "\n")
    print("\n".join(text))
    return 1 if left_out else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except FacesrError as exc:
        print(f"stability.py: {exc}", file=sys.stderr)
        sys.exit(2)
