"""Aggregating several embeddings of one identity into one vector (dossier 2.3).

FASR's feature Fm is the plain mean of unit-norm AdaFace embeddings, *not* re-normalised
(norms 0.72-0.86 in the shipped file); ``renorm=True`` returns a unit vector instead.
Inputs: (n, d) arrays, n >= 1. Outputs: float64 (d,).
"""

from __future__ import annotations

import numpy as np

from facesr.errors import FacesrError


def _as_embs(embs) -> np.ndarray:
    x = np.asarray(embs, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise FacesrError(f"expected embeddings of shape (n, d) with n >= 1, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise FacesrError("embeddings contain NaN or infinite values")
    return x


def _finish(v: np.ndarray, renorm: bool) -> np.ndarray:
    if not renorm:
        return v
    n = np.linalg.norm(v)
    if n == 0:
        raise FacesrError("the aggregated embedding is zero; it cannot be re-normalised")
    return v / n


def mean(embs, renorm: bool = False) -> np.ndarray:
    """FASR's Fm: the arithmetic mean (dossier 2.3 step 2)."""
    return _finish(_as_embs(embs).mean(axis=0), renorm)


def outlier_mask(embs, k: float = 3.0, rule: str = "distance") -> np.ndarray:
    """Boolean (n,) mask of the embeddings kept by a k-sigma rule (std with ddof=1, as torch.std).

    ``rule="distance"``: d_i = ||e_i - mean||; drop i when d_i - mean(d) > k * std(d).
    ``rule="per_dim"``: FASR's ``remove_outliers`` (defined, never called): keep rows with
    |e_ij - mean_j| <= k * std_j in every dimension j.
    Never drops everything (then all are kept). Note: with ddof=1 no z-score can exceed
    (n-1)/sqrt(n), so with k=3 nothing is ever dropped from fewer than 11 embeddings.
    """
    x = _as_embs(embs)
    if x.shape[0] < 3:
        return np.ones(x.shape[0], bool)
    if rule == "distance":
        d = np.linalg.norm(x - x.mean(axis=0), axis=1)
        keep = d - d.mean() <= k * d.std(ddof=1)
    elif rule == "per_dim":
        keep = np.all(np.abs(x - x.mean(axis=0)) <= k * x.std(axis=0, ddof=1), axis=1)
    else:
        raise FacesrError(f"unknown outlier rule {rule!r}; choose 'distance' or 'per_dim'")
    return keep if keep.any() else np.ones_like(keep)


def trimmed_mean(embs, k: float = 3.0, renorm: bool = False, rule: str = "distance") -> np.ndarray:
    """Mean of the embeddings kept by ``outlier_mask(embs, k, rule)``."""
    x = _as_embs(embs)
    return _finish(x[outlier_mask(x, k, rule)].mean(axis=0), renorm)


def quality_weighted_mean(embs, weights, renorm: bool = False) -> np.ndarray:
    """sum_i w_i e_i / sum_i w_i; weights (e.g. quality scores) must be finite, >= 0, not all 0."""
    x = _as_embs(embs)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (x.shape[0],):
        raise FacesrError(f"expected {x.shape[0]} weights, got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise FacesrError("weights must be finite, non-negative and not all zero")
    return _finish((w / w.sum()) @ x, renorm)
