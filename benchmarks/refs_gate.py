"""The reference gate (issue 22): how its threshold was chosen, and what it does to FASR's gain and hijack.

    python benchmarks/refs_gate.py scores --hr ../shared/data/dev/lfw --view hr -o outputs/gate/lfw-hr.json
    python benchmarks/refs_gate.py apply --scores outputs/gate/celeba-hr.json --null outputs/gate/celeba/null \
        --run outputs/gate/celeba/photos --whose same -o outputs/gate/celeba/photos-gated

``scores``: for every probe with aux images, the gate's score (``facesr.engine.refs_gate.gate_scores``: the
probe's LR face, made by the model's LR protocol as the benchmark makes it, read by the bundled student, against
the condition vector ``facesr benchmark`` gives it; for a RefSR-VAE, ``--model refsr-vae-x8``, the identity of its
one reference photo, the first aux image) for its own identity's aux images (genuine) and for every
other identity's (impostors; the next identity in sorted order is the hijack control). Prints the threshold that
a given share of impostor pairs reach (``--far``), and the share of genuine pairs and next-identity pairs that
pass a threshold (``--threshold``).

``apply``: what a gated run gives, from two ungated runs of ``facesr benchmark`` with the same seed: a probe that
passes keeps its row from ``--run``, a probe that does not takes its row from ``--null`` (the null identity,
which is what the gate runs it on: the same noise, the same pixels; tests/integration/test_api.py). Writes
``per_image.csv`` for ``facesr compare`` and ``summary.json`` (which probes were gated), and prints the hijack
rate by each judge with ``--whose other``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from facesr.errors import FacesrError


def scores(args) -> int:
    from facesr.engine.conditions import aux_vectors, protocol_references
    from facesr.engine.refs_gate import lr_embeddings
    from facesr.identity.recognition import similarity_matrix
    from facesr.identity.recognition import identity_split
    from facesr.io.images import atomic_write_text, to_tensor
    from facesr.methods.base import Conditions
    from facesr.methods.hub import load_model
    from facesr.workflows.benchmark import probe_set
    from facesr.workflows.evaluate import read_probes

    model = load_model(args.model, "cpu")
    probes = probe_set(identity_split(args.hr), args.hr, args.limit, need_aux=True)
    if model.needs.reference:  # RefSR: the reference photo's identity (the first aux image), as the benchmark gives it
        refs = protocol_references(model, probes, "same")
        vectors = {p: model.identity_condition(Conditions(None, ref)) for p, ref in refs.items()}
        if any(v is None for v in vectors.values()):
            raise FacesrError(f"{args.model}: its reference pulls toward no identity (nothing for the gate to score)")
    else:
        vectors = aux_vectors(model, probes, 0, "same", view=args.view, embedder=args.embedder)
    probes = [p for p in probes if p in vectors]
    items, _ = read_probes(model, probes, print)
    lrs = [to_tensor(lr) for _, _, lr in items]
    names = [p.parent.name for p, _, _ in items]
    embs = lr_embeddings(model, lrs)  # what gate_scores computes, each LR face read once
    conds = np.stack([vectors[p].double().numpy() for p, _, _ in items])
    matrix = similarity_matrix(embs, conds)  # [probe, identity whose condition]
    view = "reference photo" if model.needs.reference else args.view
    result = {"hr": args.hr, "model": args.model, "view": view, "embedder": args.embedder,
              "probes": [p.stem for p, _, _ in items], "identities": names, "scores": matrix.round(5).tolist()}
    atomic_write_text(Path(args.out), json.dumps(result) + "\n")
    report(result, args.far, args.threshold)
    return 0


def _pairs(result) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = np.array(result["scores"])
    n = len(s)
    genuine = np.diag(s)
    impostor = s[~np.eye(n, dtype=bool)]
    following = s[np.arange(n), (np.arange(n) + 1) % n]  # the next identity's condition: the hijack control
    return genuine, impostor, following


def report(result, far: float, threshold: float) -> None:
    genuine, impostor, following = _pairs(result)
    at_far = float(np.quantile(impostor, 1 - far))
    print(f"{result['hr']} ({result['view']} view, {len(genuine)} probes, {len(impostor)} impostor pairs)")
    print(f"  threshold at impostor pass rate {far:g}: {at_far:.4f}")
    for t in sorted({round(at_far, 4), threshold}):
        print(f"  threshold {t:.4f}: genuine pass {np.mean(genuine >= t):.3f} ({np.sum(genuine < t)} gated), "
              f"next identity pass {np.mean(following >= t):.3f}, all impostors pass {np.mean(impostor >= t):.3f}")


def apply(args) -> int:
    from facesr.engine.refs_gate import THRESHOLD
    from facesr.workflows.compare import read_per_image
    from facesr.workflows.evaluate import write_report

    threshold = THRESHOLD if args.threshold is None else args.threshold
    try:
        result = json.loads(Path(args.scores).read_text())
        genuine, _, following = _pairs(result)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FacesrError(f"{args.scores}: not a scores file of 'refs_gate.py scores' ({exc})") from None
    score = dict(zip(result["probes"], genuine if args.whose == "same" else following))
    nxt = dict(zip(result["probes"], np.roll(result["identities"], -1)))
    null, run = read_per_image(args.null), read_per_image(args.run)
    rows, gated = [], []
    for name, row in run.items():
        if name not in score or name not in null:
            raise FacesrError(f"{args.run}: probe {name!r} is not in {args.scores if name not in score else args.null}")
        used = score[name] >= threshold
        rows.append(dict(row if used else null[name], refs_score=round(float(score[name]), 4), refs_used=used))
        if not used:
            gated.append(name)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    summary = {"threshold": threshold, "whose": args.whose, "probes": len(rows), "gated": gated,
               "from": {"run": str(args.run), "null": str(args.null), "scores": str(args.scores)}}
    judges = [k.split(":")[0] for k in keys if k.endswith(":predicted")]
    if args.whose == "other":
        for judge, key in [("first judge", "predicted")] + [(j, f"{j}:predicted") for j in judges]:
            hits = sum(r.get(key) == nxt[r["name"]] for r in rows)
            without = sum(null[r["name"]].get(key) == nxt[r["name"]] for r in rows)
            summary[f"hijack ({judge})"] = [hits, len(rows)]
            print(f"{judge}: hijack {hits}/{len(rows)} = {hits / len(rows):.3f} (without references "
                  f"{without}/{len(rows)}; ungated {sum(run[r['name']].get(key) == nxt[r['name']] for r in rows)})")
    write_report(args.out, rows, summary)
    print(f"{len(gated)} of {len(rows)} probes gated at {threshold}; wrote {Path(args.out) / 'per_image.csv'}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("scores")
    s.add_argument("--hr", required=True)
    s.add_argument("--model", default="fasr-x8")
    s.add_argument("--view", choices=["lr", "hr"], default="hr")
    s.add_argument("--embedder", help="the network that embeds the aux images (e.g. dlib-lq), as the benchmark key")
    s.add_argument("--limit", type=int, default=0)
    s.add_argument("--far", type=float, default=0.1)
    s.add_argument("--threshold", type=float, default=0.92)
    s.add_argument("-o", "--out", required=True)
    a = sub.add_parser("apply")
    a.add_argument("--scores", required=True)
    a.add_argument("--null", required=True, help="the null-identity run (ref=none) of the same probes and seed")
    a.add_argument("--run", required=True, help="the ungated run with references")
    a.add_argument("--whose", choices=["same", "other"], required=True, help="whose references the run was given")
    a.add_argument("--threshold", type=float)
    a.add_argument("-o", "--out", required=True)
    args = ap.parse_args()
    try:
        return scores(args) if args.command == "scores" else apply(args)
    except FacesrError as exc:
        print(f"refs_gate.py: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
