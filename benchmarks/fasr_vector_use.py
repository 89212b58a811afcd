"""Does a FASR model use its identity vector? The same probes restored under four conditions.

On the probes of an identity-folder set (2nd image of each folder; LR = the model's operator), the
model's recipe runs with the identity vector taken from:

- "own HR": the probe's own HR embedding (an oracle: what the reference trains on);
- "next HR": the HR embedding of the next identity's probe (a wrong identity, same view);
- "aux LR, all": the mean of the LR views of the probe's aux images (what `facesr benchmark` gives);
- "next aux LR, all": the same for the next identity (the control).

Every row uses the same noise. Reported: PSNR, CS and rank-1 against the gallery (1st image of each
folder) with the model's own embedder as judge, and the mean absolute difference (8-bit levels)
between each row's output and the "own HR" output: near zero means the vector is ignored.

    python benchmarks/fasr_vector_use.py --model runs/fasrA-export --hr ../shared/data/dev/lfw --limit 30 \
        --table benchmarks/results/fasr-vector-use.md
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch


def main() -> None:
    from facesr.io.images import atomic_write_text, read_image, to_tensor, to_uint8
    from facesr.errors import FacesrError
    from facesr.identity.features import usable_embeddings
    from facesr.identity.recognition import identify, identity_split
    from facesr.metrics import psnr
    from facesr.methods.hub import load_model
    from facesr.engine.conditions import aux_vectors, model_embedder
    from facesr.engine.options import SamplingOptions
    from facesr.engine.run import super_resolve_tensors
    from facesr.methods.base import Conditions
    from facesr.runtime import resolve_device

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a FASR model (name or folder)")
    p.add_argument("--hr", required=True, help="identity-folder set")
    p.add_argument("--limit", type=int, default=30, help="first N probes with aux images")
    p.add_argument("--table", help="write the Markdown table here")
    args = p.parse_args()
    try:
        device = resolve_device("auto")
        model = load_model(args.model, device)
        if not model.needs.vector_dim:
            raise FacesrError(f"{args.model}: not a FASR model (no identity vector)")
        split = identity_split(args.hr)
        embedder = model_embedder(model)
    except FacesrError as exc:
        sys.exit(f"fasr_vector_use: {exc}")
    failed = []
    ids = [i for i, s in split.items() if s["aux"]][: args.limit]
    probes = [split[i]["probe"] for i in ids]
    own = usable_embeddings(embedder, probes, None, failed.append)
    if len(own) != len(probes):
        sys.exit(f"fasr_vector_use: a probe could not be embedded: {failed}")
    aux = aux_vectors(model, probes, 0, on_error=failed.append)
    keep = [k for k, q in enumerate(probes) if q in aux]
    ids, probes, own = [ids[k] for k in keep], [probes[k] for k in keep], own[keep]
    nxt = [(k + 1) % len(probes) for k in range(len(probes))]
    conditions = {
        "own HR (oracle)": [torch.from_numpy(own[k]) for k in range(len(probes))],
        "next HR": [torch.from_numpy(own[j]) for j in nxt],
        "aux LR, all": [aux[q] for q in probes],
        "next aux LR, all": [aux[probes[j]] for j in nxt],
    }
    hrs = [read_image(q) for q in probes]
    lrs = [to_tensor(model.lr_protocol.lr_image(hr, q.name)[0]) for hr, q in zip(hrs, probes)]
    keys = [q.name for q in probes]
    opts = SamplingOptions.for_model(model)
    gallery = usable_embeddings(embedder, [split[i]["gallery"] for i in split], None, failed.append)
    if len(gallery) != len(split):
        sys.exit(f"fasr_vector_use: a gallery image could not be embedded: {failed}")
    outputs = {}
    for name, vecs in conditions.items():
        outputs[name] = [to_uint8(t) for t in super_resolve_tensors(
            model, lrs, keys, opts, device, conditions=[Conditions(vector=v) for v in vecs])]
    lines = [f"# Identity-vector use: `{args.model}` on {args.hr}", "",
             f"{len(probes)} probes, recipe {opts.sampler} x {opts.steps} steps, strength {opts.strength}, "
             f"{opts.samples} samples; judge = the model's embedder ({model.cfg.unet.vector_embedder}).", "",
             "| vector | PSNR (dB) | CS | rank-1 | mean abs. difference to 'own HR' (levels) |", "|---|---|---|---|---|"]
    ref = outputs["own HR (oracle)"]
    for name, imgs in outputs.items():
        embs = embedder.embed(imgs)
        cs = float(np.mean(np.sum(embs * own, axis=1)))
        r1 = identify(embs, ids, gallery, list(split), ks=(1,)).accuracy[1]
        ps = float(np.mean([psnr(s, h) for s, h in zip(imgs, hrs)]))
        diff = float(np.mean([np.abs(s.astype(np.float64) - r.astype(np.float64)).mean() for s, r in zip(imgs, ref)]))
        lines.append(f"| {name} | {ps:.2f} | {cs:.4f} | {r1:.3f} | {diff:.3f} |")
    lines += ["", f"Command: `python benchmarks/fasr_vector_use.py --model {args.model} --hr {args.hr} --limit {args.limit}"
              f"{' --table ' + args.table if args.table else ''}`"]
    print("\n".join(lines))
    if args.table:
        atomic_write_text(args.table, "\n".join(lines) + "\n")
    for msg in failed:
        print(msg, file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
