"""Identity metrics for an evaluation run: does the super-resolved face stay the same person?

For every probe: CS = cos(phi(SR), phi(HR)). Against a gallery (one image per identity, labelled by
its folder name): rank-k identification and verification (TAR at FAR, EER) of the SR probes, with
bicubic and HR probes measured the same way as the floor and the ceiling.
"""

from __future__ import annotations

import numpy as np

from facesr.errors import FacesrError


def _stats(values) -> dict:
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "std": float(v.std()), "n": int(len(v))}


def identity_report(embedder, probes: dict[str, list[np.ndarray]], labels: list[str],
                    gallery: list[tuple[str, np.ndarray]] | None, ks=(1, 5)) -> tuple[dict, dict]:
    """``probes``: {"sr": [...], "bicubic": [...], "hr": [...]} uint8 images in label order.

    Returns (per-image columns, summary). Columns: "cs" and "bicubic_cs"; with a gallery also "rank"
    (1-based rank of the true identity) and "predicted" (best-matching identity), and their bicubic_ twins.
    """
    from facesr.identity.recognition import cosine_similarity, identify, similarity_matrix, verify
    from facesr.metrics.stats import proportion_interval

    emb = {kind: embedder.embed(images) for kind, images in probes.items()}
    columns = {"cs": cosine_similarity(emb["sr"], emb["hr"]).tolist(),
               "bicubic_cs": cosine_similarity(emb["bicubic"], emb["hr"]).tolist()}
    summary: dict = {"embedder": f"{embedder.name} ({embedder.mode})", "cs": _stats(columns["cs"]),
                     "bicubic_cs": _stats(columns["bicubic_cs"])}
    if gallery:
        g_labels = [lab for lab, _ in gallery]
        g_emb = embedder.embed([img for _, img in gallery])
        ks = tuple(k for k in ks if k <= len(g_labels))
        genuine = np.asarray(labels)[:, None] == np.asarray(g_labels)[None, :]
        summary["gallery_identities"] = len(g_labels)
        for kind, e in emb.items():
            ident = identify(e, labels, g_emb, g_labels, ks)
            if kind in ("sr", "bicubic"):  # per probe, so two methods can be compared probe by probe
                prefix = "" if kind == "sr" else "bicubic_"
                columns[f"{prefix}rank"] = [int(r) for r in ident.rank]
                columns[f"{prefix}predicted"] = list(ident.predicted)
            ver = verify(similarity_matrix(e, g_emb).ravel(), genuine.ravel())
            summary[f"{kind}_probes"] = {
                **{f"rank{k}": float(ident.accuracy[k]) for k in ks},
                "rank1_ci95": list(proportion_interval(int(np.sum(ident.rank == 1)), len(labels))) if labels else None,
                "eer": float(ver.eer), **{f"tar_at_far_{far:g}": float(t) for far, t in ver.tar_at_far.items()},
                "auc": float(ver.auc),
            }
    return columns, summary
