"""How much identity does a FASR condition carry? Rank-1 of the condition vector itself, no SR.

Under facesr's protocol (1st image of each identity folder = gallery, 2nd = probe, 3rd onwards = aux),
each row identifies the probe identities with one embedding per probe, against the HR gallery:

- probe HR (the ceiling of any SR method) and probe LR (what bicubic sees);
- the mean of the aux embeddings (1, 4 or all aux images), from their HR or their LR versions; the LR
  view is what ``facesr benchmark`` gives a FASR model;
- probe LR plus the aux mean (sum of unit vectors): what an SR model could reach if it merged both;
- with ``--gallery-identity SPEC``: the gallery embedded by another network of the same space, e.g. the
  probe and aux faces by the student ``dlib-lq`` and the gallery by ``dlib``, whose space a dlib-conditioned
  FASR model was trained in: does the student put a tiny face where dlib puts that person's photos?
- with ``--map HR_TABLE LR_TABLE`` (per-image tables of the same training faces, ``facesr features
  --per-image``): the LR-view embeddings first mapped to the HR view by a ridge regression fitted on those
  pairs. Does the LR view lack identity, or only sit elsewhere in the embedding space?

Only probes with at least one aux image are used, so every row has the same probes.

    python benchmarks/condition_identity.py --hr ../shared/data/dev/lfw --scale 8 \
        --table benchmarks/results/condition-identity-lfw-x8.md
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def main() -> None:
    from facesr.io.images import atomic_write_text
    from facesr.degrade.protocol import LRProtocol
    from facesr.errors import FacesrError
    from facesr.identity.embedders import l2_normalise as unit
    from facesr.identity.features import usable_embeddings
    from facesr.identity.recognition import identify, identity_split
    from facesr.identity.embedders import make_embedder

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hr", required=True, help="identity-folder set")
    p.add_argument("--scale", type=int, default=8)
    p.add_argument("--operator", default="bicubic")
    p.add_argument("--identity", default="dlib", help="embedder (as in facesr evaluate)")
    p.add_argument("--gallery-identity", help="embed the gallery with this embedder instead (default: --identity)")
    p.add_argument("--table", help="write the Markdown table here")
    p.add_argument("--map", nargs=2, metavar=("HR_TABLE", "LR_TABLE"),
                   help="also map LR-view embeddings to the HR view, fitted on these training pairs")
    args = p.parse_args()
    errors = []

    def report(msg):  # a bad file fails in both views: say it once
        if msg not in errors:
            errors.append(msg)
            print(msg, file=sys.stderr)

    try:
        lr_to_hr = fit_lr_to_hr(*args.map) if args.map else None
        split = identity_split(args.hr)
        embedder = make_embedder(args.identity)
        gallery_embedder = make_embedder(args.gallery_identity) if args.gallery_identity else embedder
        operator = LRProtocol.of(args.operator, args.scale)  # embed_paths makes each LR with lr_image
    except FacesrError as exc:
        sys.exit(f"condition_identity: {exc}")
    ids = [i for i, s in split.items() if s["aux"]]
    gallery = usable_embeddings(gallery_embedder, [split[i]["gallery"] for i in split], None, report)
    if len(gallery) != len(split):
        sys.exit("condition_identity: a gallery image could not be embedded (above); fix or remove it")

    def one(path, view):
        e = usable_embeddings(embedder, [path], operator if view == "LR" else None, report)
        return e[0] if len(e) else None

    rows = {}
    probe = {view: {i: one(split[i]["probe"], view) for i in ids} for view in ("HR", "LR")}
    aux = {view: {i: [e for e in (one(a, view) for a in split[i]["aux"]) if e is not None] for i in ids}
           for view in ("HR", "LR")}
    ids = [i for i in ids if probe["HR"][i] is not None and probe["LR"][i] is not None
           and aux["LR"][i] and aux["HR"][i]]

    def rank1(vectors):
        return identify(np.stack(vectors), ids, gallery, list(split), ks=(1,)).accuracy[1]

    rows["probe HR (ceiling)"] = rank1([probe["HR"][i] for i in ids])
    rows["probe LR (bicubic's input)"] = rank1([probe["LR"][i] for i in ids])
    for view in ("LR", "HR"):
        for n, name in ((1, "1"), (4, "4"), (0, "all")):
            means = [unit(np.mean(aux[view][i][:n] if n else aux[view][i], axis=0)) for i in ids]
            rows[f"aux {view} mean, {name}"] = rank1(means)
            if view == "LR":
                rows[f"probe LR + aux LR mean, {name}"] = rank1([unit(probe["LR"][i]) + m for i, m in zip(ids, means)])
    if lr_to_hr is not None:
        for n, name in ((1, "1"), (4, "4"), (0, "all")):
            means = [unit(np.mean(lr_to_hr(np.stack(aux["LR"][i][:n] if n else aux["LR"][i])), axis=0)) for i in ids]
            rows[f"aux LR mapped to HR view, mean, {name}"] = rank1(means)
        rows["probe LR mapped to HR view"] = rank1([lr_to_hr(probe["LR"][i][None])[0] for i in ids])
    n_aux = [len(aux["LR"][i]) for i in ids]
    lines = [f"# Identity in the FASR condition: {args.hr}, {args.operator} x{args.scale}", "",
             f"{len(ids)} probes with aux images (aux per probe: median {int(np.median(n_aux))}, max {max(n_aux)}); "
             f"gallery {len(split)} identities; embedder {args.identity}"
             f"{', gallery embedder ' + args.gallery_identity if args.gallery_identity else ''}. Rank-1 of each embedding alone, no SR.", "",
             "| embedding | rank-1 |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in rows.items()]
    lines += ["", f"Command: `python benchmarks/condition_identity.py --hr {args.hr} --scale {args.scale}"
              f"{'' if args.operator == 'bicubic' else ' --operator ' + args.operator}"
              f"{'' if args.identity == 'dlib' else ' --identity ' + args.identity}"
              f"{' --gallery-identity ' + args.gallery_identity if args.gallery_identity else ''}"
              f"{' --map ' + ' '.join(args.map) if args.map else ''}"
              f"{' --table ' + args.table if args.table else ''}`"]
    print("\n".join(lines))
    if args.table:
        atomic_write_text(args.table, "\n".join(lines) + "\n")
    sys.exit(1 if errors else 0)


def fit_lr_to_hr(hr_table: str, lr_table: str, ridge: float = 1e-2):
    """A function mapping (m, d) LR-view embeddings to unit HR-view ones: ridge regression on centred pairs."""
    from facesr.errors import FacesrError
    from facesr.identity.embedders import l2_normalise
    from facesr.identity.features import FeatureTable

    hr, lr = FeatureTable.load(hr_table), FeatureTable.load(lr_table)
    names = [n for n in hr.names if lr.get(n) is not None]
    if len(names) <= hr.dim:
        raise FacesrError(f"{lr_table}: only {len(names)} images in common with {hr_table}; need more than {hr.dim}")
    x = np.stack([lr.get(n) for n in names]).astype(np.float64)
    y = np.stack([hr.get(n) for n in names]).astype(np.float64)
    mx, my = x.mean(0), y.mean(0)
    xc = x - mx
    w = np.linalg.solve(xc.T @ xc + ridge * np.eye(x.shape[1]), xc.T @ (y - my))

    def lr_to_hr(e):
        return l2_normalise((e - mx) @ w + my)

    return lr_to_hr


if __name__ == "__main__":
    main()
