"""Identity stability: does "this is person X" hold for every plausible restoration, or for one?

A diffusion model draws a different face for each seed. Each of K samples is identified against a gallery;
``stability`` is the fraction of samples whose best match is the most frequent best match, and every
top candidate gets its score interval across the samples. Pure functions of score matrices (samples x
gallery identities), so they are tested against hand-made scores.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from facesr.errors import FacesrError


@dataclass(frozen=True)
class Candidate:
    identity: str
    median: float  # score across the samples
    low: float  # min and max across the samples: the interval every sample falls in
    high: float
    top1_share: float  # fraction of samples in which it is the best match

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Stability:
    top_identity: str  # the most frequent best match (ties: the higher median score)
    stability: float  # fraction of samples whose best match is top_identity
    samples: int
    candidates: list[Candidate]  # the top ones by median score, best first
    per_sample: list[str]  # each sample's best match

    def to_dict(self) -> dict:
        return {"top_identity": self.top_identity, "stability": self.stability, "samples": self.samples,
                "candidates": [c.to_dict() for c in self.candidates], "per_sample": list(self.per_sample)}


def identity_scores(vectors: np.ndarray, gallery: np.ndarray, labels: list[str]) -> tuple[np.ndarray, list[str]]:
    """Cosine scores (K, n identities) of K unit vectors against a gallery of unit vectors with ``labels``
    (several images of one identity: its best score), and the identities in column order."""
    vectors, gallery = np.atleast_2d(np.asarray(vectors, np.float64)), np.asarray(gallery, np.float64)
    if gallery.ndim != 2 or len(gallery) != len(labels) or not len(labels):
        raise FacesrError(f"a gallery of {len(labels)} labels needs as many vectors, got shape {gallery.shape}")
    if vectors.shape[1] != gallery.shape[1]:
        raise FacesrError(f"probe vectors of size {vectors.shape[1]} against a gallery of size {gallery.shape[1]}")
    raw = vectors @ gallery.T
    identities = sorted(set(labels))
    cols = {name: [i for i, lab in enumerate(labels) if lab == name] for name in identities}
    return np.stack([raw[:, cols[name]].max(axis=1) for name in identities], axis=1), identities


def stability(scores: np.ndarray, identities: list[str], top: int = 5) -> Stability:
    """``scores`` (K samples, n identities) -> the stability of the best match and the top candidates."""
    scores = np.atleast_2d(np.asarray(scores, np.float64))
    if scores.shape[1] != len(identities) or not scores.size:
        raise FacesrError(f"scores of shape {scores.shape} for {len(identities)} identities")
    best = [identities[j] for j in scores.argmax(axis=1)]
    counts = Counter(best)
    median = np.median(scores, axis=0)
    index = {name: j for j, name in enumerate(identities)}
    top_identity = max(counts, key=lambda name: (counts[name], median[index[name]]))
    order = np.argsort(-median, kind="stable")[:top]
    candidates = [Candidate(identities[j], float(median[j]), float(scores[:, j].min()), float(scores[:, j].max()),
                            counts.get(identities[j], 0) / len(scores)) for j in order]
    return Stability(top_identity, counts[top_identity] / len(scores), len(scores), candidates, best)


def verdict(result: Stability, correct_rate: float | None = None, threshold: float = 0.9) -> str:
    """The stability in plain words for a report."""
    share = f"{round(result.stability * result.samples)} of {result.samples} samples"
    if result.samples == 1:
        return f"One restoration only: its best match is {result.top_identity}; no stability can be measured."
    if result.stability >= threshold:
        text = (f"Stable: {share} have {result.top_identity} as their best match.")
        if correct_rate is not None:
            text += f" On the development data, probes this stable were identified correctly {correct_rate:.0%} of the time."
        return text
    others = [c.identity for c in result.candidates if c.identity != result.top_identity and c.top1_share > 0]
    alt = f"; others: {', '.join(others)}" if others else ""
    return (f"Not stable: only {share} have {result.top_identity} as their best match{alt}. "
            "The restoration does not settle who this is; do not rely on the top match.")


def judges_agree(results: dict[str, Stability], threshold: float = 0.9) -> str | None:
    """The identity that every judge (two at least) finds stable, each at ``threshold`` or above with the same
    top identity; None otherwise. One network's stability can be confidently wrong (a look-alike every sample
    drifts to); independent networks rarely drift to the same look-alike."""
    tops = {r.top_identity for r in results.values()}
    if len(results) < 2 or len(tops) != 1 or any(r.stability < threshold for r in results.values()):
        return None
    return tops.pop()


def joint_verdict(results: dict[str, Stability], threshold: float = 0.9) -> str:
    """The judges' verdicts as one sentence for a report: agreed and stable, or why not."""
    if len(results) < 2:
        return ("One judge only: its verdict has no independent check; add a second judge (e.g. faceplugin) "
                "before relying on it.")
    agreed = judges_agree(results, threshold)
    each = "; ".join(f"{name}: {r.top_identity} in {round(r.stability * r.samples)} of {r.samples} samples"
                     for name, r in results.items())
    if agreed is not None:
        return f"All {len(results)} judges agree, stably: {agreed} ({each})."
    return (f"The judges do not agree stably ({each}). Do not rely on the top match: "
            "a match one network alone is sure of can be a look-alike.")
