"""How sure is a number? Intervals for rates and for paired differences between two methods.

Two methods restored the same probes, so their per-probe scores are paired: compare them probe by
probe (paired bootstrap, exact McNemar), not as two independent means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facesr.errors import FacesrError

RESAMPLES = 10_000  # bootstrap resamples per interval


def proportion_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a rate such as rank-1 accuracy (successes of n)."""
    from scipy.stats import binomtest

    if n <= 0 or not 0 <= successes <= n:
        raise FacesrError(f"a rate needs 0 <= successes <= n and n > 0 (got {successes} of {n})")
    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def mcnemar_exact(hits_a, hits_b) -> float:
    """Two-sided exact McNemar p-value for paired success/failure outcomes (e.g. rank-1 hits).

    Only discordant probes count: under "no difference" each is equally likely to favour a or b.
    """
    from scipy.stats import binomtest

    a, b = _paired(hits_a, hits_b)
    a, b = a.astype(bool), b.astype(bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(b & ~a))
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


@dataclass(frozen=True)
class PairedDifference:
    mean: float   # mean of a - b over the probes
    low: float    # confidence interval of that mean (paired percentile bootstrap)
    high: float
    n: int


def paired_difference(a, b, confidence: float = 0.95, resamples: int = RESAMPLES, seed: int = 0) -> PairedDifference:
    """Mean per-probe difference a - b with a bootstrap interval that resamples probes (seeded)."""
    a, b = _paired(a, b)
    d = a - b
    if np.all(d == d[0]):  # nothing to resample
        return PairedDifference(float(d[0]), float(d[0]), float(d[0]), len(d))
    from scipy.stats import bootstrap

    res = bootstrap((d,), np.mean, n_resamples=resamples, confidence_level=confidence, method="percentile",
                    rng=np.random.default_rng(seed))
    low, high = res.confidence_interval
    return PairedDifference(float(d.mean()), float(low), float(high), len(d))


def _paired(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise FacesrError(f"paired scores differ in length: {a.size} vs {b.size}")
    if a.size == 0:
        raise FacesrError("no paired scores")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise FacesrError("paired scores contain NaN or infinite values")
    return a, b
