"""Intervals and paired tests against closed forms and slow reference loops."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from facesr.errors import FacesrError
from facesr.metrics.stats import mcnemar_exact, paired_difference, proportion_interval


def _wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson's closed form (1927)."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 400), frac=st.floats(0, 1))
def test_proportion_interval_is_wilsons_closed_form(n, frac):
    k = round(frac * n)
    low, high = proportion_interval(k, n)
    ref_low, ref_high = _wilson(k, n)
    assert low == pytest.approx(max(ref_low, 0.0), abs=1e-9) and high == pytest.approx(min(ref_high, 1.0), abs=1e-9)
    assert low <= k / n <= high


def _mcnemar_slow(only_a: int, only_b: int) -> float:
    """Two-sided exact binomial test at p = 1/2: sum the outcomes no more likely than the observed one."""
    n = only_a + only_b
    probs = [math.comb(n, i) / 2 ** n for i in range(n + 1)]
    observed = probs[only_a]
    return min(1.0, sum(p for p in probs if p <= observed * (1 + 1e-7)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=120))
def test_mcnemar_matches_the_slow_binomial_sum(pairs):
    a, b = np.array(pairs).T
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(b & ~a))
    expected = 1.0 if only_a + only_b == 0 else _mcnemar_slow(only_a, only_b)
    assert mcnemar_exact(a, b) == pytest.approx(expected, rel=1e-9)


def test_mcnemar_ignores_agreeing_probes_and_is_symmetric():
    a = np.r_[np.ones(8, bool), np.zeros(2, bool)]
    b = np.r_[np.zeros(8, bool), np.ones(2, bool)]
    p = mcnemar_exact(a, b)
    assert p == pytest.approx(2 * (1 + 10 + 45) / 2 ** 10)  # 8 vs 2 discordant: 2 P(X <= 2), X ~ B(10, 1/2)
    padded = mcnemar_exact(np.r_[a, np.ones(50, bool)], np.r_[b, np.ones(50, bool)])
    assert padded == p == mcnemar_exact(b, a)


def test_paired_difference_mean_and_interval():
    rng = np.random.default_rng(0)
    base = rng.normal(0.9, 0.05, 2000)
    better = base + rng.normal(0.01, 0.02, 2000)
    d = paired_difference(better, base)
    se = np.std(better - base) / math.sqrt(2000)  # the bootstrap interval approaches the normal one for a large sample
    assert d.mean == pytest.approx(np.mean(better - base), rel=1e-12)
    assert d.low == pytest.approx(d.mean - 1.96 * se, abs=0.25 * se) and d.high == pytest.approx(d.mean + 1.96 * se, abs=0.25 * se)
    assert d.low < d.mean < d.high and d.n == 2000
    # paired beats unpaired: the shared per-probe spread (0.05) does not widen it (expected width ratio 0.02 / 0.071)
    assert d.high - d.low < 0.4 * (2 * 1.96 * 0.05 * math.sqrt(2 / 2000))


def test_paired_difference_of_hits_is_the_rank1_difference():
    rng = np.random.default_rng(4)
    b = rng.random(50) < 0.6
    a = b.copy()
    a[np.flatnonzero(~b)[:10]] = True  # a identifies 10 more probes: d = a - b is 1 on 10 of 50 probes
    d = paired_difference(a, b, seed=3)
    assert d.mean == pytest.approx(a.mean() - b.mean()) == pytest.approx(0.2)
    # A resample's mean is Binomial(50, 0.2) / 50, so the percentile interval is its 2.5 % and 97.5 % quantiles.
    from scipy.stats import binom

    assert (d.low, d.high) == pytest.approx(tuple(binom.ppf([0.025, 0.975], 50, 0.2) / 50))
    assert paired_difference(a, b, seed=3) == d  # seeded
    same = paired_difference(a, a)
    assert (same.mean, same.low, same.high) == (0.0, 0.0, 0.0)


def test_bad_inputs_raise_one_clear_error():
    with pytest.raises(FacesrError, match="0 <= successes <= n"):
        proportion_interval(3, 2)
    with pytest.raises(FacesrError, match="differ in length"):
        paired_difference([1, 2], [1])
    with pytest.raises(FacesrError, match="NaN"):
        mcnemar_exact([1, float("nan")], [1, 0])
    with pytest.raises(FacesrError, match="no paired scores"):
        paired_difference([], [])
