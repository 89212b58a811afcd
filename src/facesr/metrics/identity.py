"""Identity metrics for an evaluation run: does the super-resolved face stay the same person?

For every probe: CS = cos(phi(SR), phi(HR)). Against a gallery (one image per identity, labelled by
its folder name): rank-k identification and verification (TAR at FAR, EER) of the SR probes, with
bicubic and HR probes measured the same way as the floor and the ceiling.

An image the embedder cannot use (e.g. no face found by ``dlib-detect``) is reported through
``on_error`` and left out, never the whole report: a probe without an embedding gets no CS (None) and
no rank; a gallery image without one leaves its identity out of the gallery, and that identity's
probes get no rank (they cannot be identified in a closed set without it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facesr.errors import InputError


def _stats(values) -> dict | None:
    v = np.asarray([x for x in values if x is not None], np.float64)
    if not len(v):
        return None
    return {"mean": float(v.mean()), "std": float(v.std()), "n": int(len(v))}


def embed_each(embedder, images: list[np.ndarray], refs: list, on_error=None) -> np.ndarray:
    """(n, dim) float32 embeddings, a NaN row for every image the embedder cannot use; each failure is
    reported through ``on_error`` as one line naming ``refs[i]`` (raised without ``on_error``)."""
    try:
        return np.asarray(embedder.embed(images), np.float32)
    except InputError:
        if on_error is None:
            raise
    out = np.full((len(images), embedder.dim), np.nan, np.float32)
    for i, (img, ref) in enumerate(zip(images, refs)):
        try:
            out[i] = embedder.embed([img])[0]
        except InputError as exc:
            on_error(f"{ref}: {exc.problem}")
    return out


@dataclass
class EmbeddedGallery:
    """The usable gallery: ``labels`` and their (n, dim) ``vectors``; ``left_out``: {identity: why} for
    identities whose gallery image could not be read or embedded (already reported)."""

    labels: list
    vectors: np.ndarray
    left_out: dict = field(default_factory=dict)


def embed_gallery(embedder, gallery, on_error=None, left_out: dict | None = None) -> EmbeddedGallery:
    """``gallery``: [(label, uint8 image)] or [(label, image, where)] (``where`` names it in messages).
    An image that cannot be embedded is reported and its identity left out (``left_out``: identities
    already left out, e.g. unreadable files)."""
    left = dict(left_out or {})
    items = [(g[0], g[1], g[2] if len(g) > 2 else f"gallery image of {g[0]}") for g in gallery]
    failed: dict[int, str] = {}

    def fail(i: int):
        def report(message: str) -> None:
            failed[i] = message
            if on_error is not None:
                on_error(f"{message}; identity {items[i][0]} left out of the gallery (its probes get no rank)")
        return report

    vectors = np.zeros((0, embedder.dim), np.float32)
    if items:
        try:
            vectors = np.asarray(embedder.embed([img for _, img, _ in items]), np.float32)
        except InputError:
            if on_error is None:
                raise
            vectors = np.stack([embed_each(embedder, [img], [where], fail(i))[0] for i, (_, img, where) in enumerate(items)])
    keep = [i for i in range(len(items)) if i not in failed]
    for i in failed:
        left[items[i][0]] = failed[i]
    return EmbeddedGallery([items[i][0] for i in keep], vectors[keep], left)


def identity_report(embedder, probes: dict[str, list[np.ndarray]], labels: list[str],
                    gallery, ks=(1, 5), names: list[str] | None = None, on_error=None) -> tuple[dict, dict]:
    """``probes``: {"sr": [...], "bicubic": [...], "hr": [...]} uint8 images in label order; ``names``:
    the probes' names for messages; ``gallery``: None, [(label, image[, where])] or an ``EmbeddedGallery``.

    Returns (per-image columns, summary). Columns: "cs" and "bicubic_cs"; with a gallery also "rank"
    (1-based rank of the true identity) and "predicted" (best-matching identity), and their bicubic_ twins;
    None where a probe could not be scored. Without ``on_error`` an unusable image raises InputError.
    """
    from facesr.identity.recognition import identify, similarity_matrix, verify
    from facesr.metrics.stats import proportion_interval

    names = list(names) if names is not None else [f"probe {i}" for i in range(len(labels))]
    what = {"sr": "SR", "bicubic": "bicubic", "hr": "HR"}
    emb = {kind: embed_each(embedder, images, [f"{n}, {what.get(kind, kind)} image" for n in names], on_error)
           for kind, images in probes.items()}
    ok = {kind: np.isfinite(e).all(axis=1) for kind, e in emb.items()}
    columns = {}
    for kind, key in (("sr", "cs"), ("bicubic", "bicubic_cs")):
        a, b = emb[kind].astype(np.float64), emb["hr"].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            cs = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        columns[key] = [float(c) if np.isfinite(c) else None for c in cs]
    summary: dict = {"embedder": f"{embedder.name} ({embedder.mode})", "cs": _stats(columns["cs"]),
                     "bicubic_cs": _stats(columns["bicubic_cs"])}
    if isinstance(gallery, EmbeddedGallery):
        g = gallery
    elif gallery:
        g = embed_gallery(embedder, gallery, on_error)
    else:
        return columns, summary
    summary["gallery_identities"] = len(g.labels)
    if g.left_out:
        summary["gallery_left_out"] = dict(g.left_out)
    labels = list(labels)
    in_gallery = np.array([lab not in g.left_out for lab in labels], dtype=bool)
    ks = tuple(k for k in ks if k <= len(g.labels))
    for kind, e in emb.items():
        ranked = ok[kind] & in_gallery
        idx = np.flatnonzero(ranked)
        rank_col: list = [None] * len(labels)
        predicted_col: list = [None] * len(labels)
        entry: dict = {"probes_ranked": int(len(idx))}
        if len(idx) and len(g.labels):
            sub_labels = [labels[i] for i in idx]
            ident = identify(e[idx], sub_labels, g.vectors, g.labels, ks)
            for i, r, p in zip(idx, ident.rank, ident.predicted):
                rank_col[i], predicted_col[i] = int(r), p
            genuine = np.asarray(sub_labels)[:, None] == np.asarray(g.labels)[None, :]
            entry.update({f"rank{k}": float(ident.accuracy[k]) for k in ks})
            entry["rank1_ci95"] = list(proportion_interval(int(np.sum(ident.rank == 1)), len(idx)))
            if genuine.any() and (~genuine).any():  # verification needs genuine and impostor pairs
                ver = verify(similarity_matrix(e[idx], g.vectors).ravel(), genuine.ravel())
                entry.update({"eer": float(ver.eer), **{f"tar_at_far_{far:g}": float(t) for far, t in ver.tar_at_far.items()},
                              "auc": float(ver.auc)})
        if kind in ("sr", "bicubic"):  # per probe, so two methods can be compared probe by probe
            prefix = "" if kind == "sr" else "bicubic_"
            columns[f"{prefix}rank"] = rank_col
            columns[f"{prefix}predicted"] = predicted_col
        summary[f"{kind}_probes"] = entry
    return columns, summary
