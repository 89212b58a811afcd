"""Identity metrics on embeddings (dossier section 7): CS, rank-k identification, verification.

Unlike FASR's ``accuracy.py`` (dossier 2.6), probes and gallery are matched by explicit labels,
not by position, and the gallery may hold several images per identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facesr.io.images import list_images
from facesr.errors import FacesrError


def _unit_rows(x, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    x = x[None] if x.ndim == 1 else x
    if x.ndim != 2:
        raise FacesrError(f"{what}: expected (n, d) embeddings, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise FacesrError(f"{what}: embeddings contain NaN or infinite values (failed files?)")
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norm == 0):
        raise FacesrError(f"{what}: zero embedding")
    return x / norm


def cosine_similarity(a, b) -> np.ndarray:
    """Row-wise cos(a_i, b_i) for paired (n, d) arrays -> (n,); (d,) vectors -> shape (1,)."""
    a, b = _unit_rows(a, "a"), _unit_rows(b, "b")
    if a.shape != b.shape:
        raise FacesrError(f"paired embeddings differ in shape: {a.shape} vs {b.shape}")
    return np.sum(a * b, axis=1)


def similarity_matrix(probes, gallery) -> np.ndarray:
    """Cosine similarities (n_probes, n_gallery); inputs need not be unit-norm."""
    p, g = _unit_rows(probes, "probes"), _unit_rows(gallery, "gallery")
    if p.shape[1] != g.shape[1]:
        raise FacesrError(f"embedding sizes differ: {p.shape[1]} vs {g.shape[1]}")
    return p @ g.T


@dataclass
class Identification:
    accuracy: dict[int, float]   # k -> rank-k accuracy
    predicted: list              # per probe: best-scoring gallery identity (the true one only at rank 1)
    rank: np.ndarray             # per probe: 1-based rank of its true identity
    identities: list             # gallery identities, column order of ``scores``
    scores: np.ndarray = field(repr=False)  # (n_probes, n_identities): best match per identity


def identify(probe_embs, probe_labels, gallery_embs, gallery_labels, ks=(1, 5)) -> Identification:
    """Closed-set rank-k identification by cosine similarity.

    An identity's score is its best-matching gallery image. The rank of the true identity counts
    every other identity scoring >= it (ties go against the probe). Every probe identity must be
    in the gallery (closed set), otherwise FacesrError. Each probe is scored independently, so the
    result does not depend on probe order.
    """
    probe_labels, gallery_labels = list(probe_labels), list(gallery_labels)
    sims = similarity_matrix(probe_embs, gallery_embs)
    if sims.shape != (len(probe_labels), len(gallery_labels)):
        raise FacesrError(f"{sims.shape[0]} probes / {sims.shape[1]} gallery embeddings but "
                          f"{len(probe_labels)} / {len(gallery_labels)} labels")
    identities = list(dict.fromkeys(gallery_labels))
    col = {label: j for j, label in enumerate(identities)}
    missing = [lab for lab in dict.fromkeys(probe_labels) if lab not in col]
    if missing:
        raise FacesrError(f"{len(missing)} probe identities are not in the gallery (closed-set protocol): "
                          f"{', '.join(map(str, missing[:5]))}")
    scores = np.full((len(probe_labels), len(identities)), -np.inf)
    gcol = np.array([col[lab] for lab in gallery_labels])
    for j in range(len(identities)):
        scores[:, j] = sims[:, gcol == j].max(axis=1)
    true = np.array([col[lab] for lab in probe_labels], dtype=int)
    true_score = scores[np.arange(len(true)), true]
    rank = np.sum(scores >= true_score[:, None], axis=1)  # the true column itself counts once
    accuracy = {int(k): float(np.mean(rank <= k)) if len(rank) else float("nan") for k in ks}
    others = scores.copy()
    others[np.arange(len(true)), true] = -np.inf
    # a tie at the top counts against the probe, so its prediction is then the other identity
    best = np.where(rank == 1, true, others.argmax(axis=1)) if len(identities) > 1 else true
    predicted = [identities[j] for j in best]
    return Identification(accuracy, predicted, rank, identities, scores)


@dataclass
class Verification:
    far: np.ndarray          # false accept rate at each threshold (increasing)
    tar: np.ndarray          # true accept rate at each threshold
    thresholds: np.ndarray   # accept when score >= threshold (decreasing; first is +inf)
    tar_at_far: dict[float, float]
    eer: float
    auc: float


def verify(scores, is_genuine, fars=(1e-2, 1e-3)) -> Verification:
    """ROC of accept-if-score>=t over all distinct scores (plus t=+inf: FAR=TAR=0).

    TAR@FAR: the largest TAR among ROC points with FAR <= target (conservative; with fewer than
    1/target impostor pairs this is TAR at FAR 0). EER: FAR = FRR on the straight line between
    the two ROC points where FAR - FRR changes sign. AUC: trapezoid rule (ties count half).
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    g = np.asarray(is_genuine, dtype=bool).ravel()
    if s.shape != g.shape:
        raise FacesrError(f"{s.size} scores but {g.size} labels")
    if not np.all(np.isfinite(s)):
        raise FacesrError("scores contain NaN or infinite values")
    n_gen, n_imp = int(g.sum()), int((~g).sum())
    if n_gen == 0 or n_imp == 0:
        raise FacesrError(f"verification needs genuine and impostor pairs (got {n_gen} and {n_imp})")
    order = np.argsort(-s, kind="stable")
    s_sorted, g_sorted = s[order], g[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), s.size - 1]  # last index of each distinct score
    tar = np.r_[0.0, np.cumsum(g_sorted)[last] / n_gen]
    far = np.r_[0.0, np.cumsum(~g_sorted)[last] / n_imp]
    thresholds = np.r_[np.inf, s_sorted[last]]
    tar_at = {float(f): float(tar[far <= f].max()) for f in fars}
    d = far - (1.0 - tar)  # FAR - FRR: -1 at t=+inf, increasing, >= 0 at the lowest threshold
    i = int(np.argmax(d >= 0))
    a = -d[i - 1] / (d[i] - d[i - 1])
    eer = float(far[i - 1] + a * (far[i] - far[i - 1]))
    auc = float(np.sum(np.diff(far) * (tar[1:] + tar[:-1]) / 2))
    return Verification(far, tar, thresholds, tar_at, eer, auc)


def pairs_from_labels(labels, max_impostors: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """All pairs i < j -> (pairs (m, 2) int, is_genuine (m,) bool): genuine pairs first, then impostors.

    ``max_impostors``: keep a seeded random subset of that many impostor pairs (sorted).
    Memory is O(n^2) in the number of labels.
    """
    labels = list(labels)
    index: dict = {}
    codes = np.array([index.setdefault(lab, len(index)) for lab in labels], dtype=np.int64)
    i, j = np.triu_indices(len(labels), k=1)
    same = codes[i] == codes[j]
    gen, imp = np.stack([i[same], j[same]], 1), np.stack([i[~same], j[~same]], 1)
    if max_impostors is not None and len(imp) > max_impostors:
        pick = np.sort(np.random.default_rng(seed).choice(len(imp), size=int(max_impostors), replace=False))
        imp = imp[pick]
    pairs = np.concatenate([gen, imp]).astype(np.int64).reshape(-1, 2)
    return pairs, np.r_[np.ones(len(gen), bool), np.zeros(len(imp), bool)]


class IdentitySplit(dict):
    """{identity: {"gallery": Path, "probe": Path, "aux": [Path]}}; ``skipped``: {identity: reason}."""

    skipped: dict[str, str]


def identity_split(root) -> IdentitySplit:
    """facesr's protocol (shared/data/README.md) for ``<root>/<identity>/<images>``: per identity,
    images sorted by file name; the 1st is the gallery, the 2nd the probe, the rest auxiliary.
    Identities with fewer than 2 images are skipped and listed in ``result.skipped``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FacesrError(f"{root}: not a folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise FacesrError(f"{root}: no identity folders (expected <root>/<identity>/<images>)")
    split, split.skipped = IdentitySplit(), {}
    for folder in folders:
        images = list_images(folder)
        if len(images) < 2:
            split.skipped[folder.name] = f"{len(images)} image{'s' if len(images) != 1 else ''}"
            continue
        split[folder.name] = split_images(images)
    return split


def split_images(images: list[Path]) -> dict:
    """One identity's sorted images under the protocol: {"gallery": 1st, "probe": 2nd, "aux": the rest}
    (None where the folder has too few images)."""
    first, second = (list(images) + [None, None])[:2]
    return {"gallery": first, "probe": second, "aux": images[2:]}


def aux_images(folder) -> list[Path]:
    """The auxiliary images of an identity folder under the protocol (3rd image onwards, sorted)."""
    return split_images(list_images(folder))["aux"]
