import numpy as np
import pytest

from facesr.errors import FacesrError
from facesr.identity.aggregate import mean, outlier_mask, quality_weighted_mean, trimmed_mean

E1, E2 = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])


def test_mean_of_orthogonal_unit_vectors():
    m = mean([E1, E2])
    np.testing.assert_allclose(m, [0.5, 0.5, 0.0])
    assert np.linalg.norm(m) == pytest.approx(1 / np.sqrt(2))  # FASR keeps this norm
    np.testing.assert_allclose(mean([E1, E2], renorm=True), [2**-0.5, 2**-0.5, 0.0])


def _cluster_with_outlier(n=20, d=8, seed=0):
    rng = np.random.default_rng(seed)
    x = np.tile(np.eye(d)[0], (n, 1)) + 0.01 * rng.standard_normal((n, d))
    x[-1] = -np.eye(d)[0]  # far away
    return x


@pytest.mark.parametrize("rule", ["distance", "per_dim"])
def test_trimmed_mean_drops_far_outlier(rule):
    x = _cluster_with_outlier()
    keep = outlier_mask(x, 3.0, rule)
    assert keep[:-1].all() and not keep[-1]
    np.testing.assert_allclose(trimmed_mean(x, rule=rule), x[:-1].mean(0))
    assert np.linalg.norm(trimmed_mean(x, renorm=True, rule=rule)) == pytest.approx(1.0)


def test_three_sigma_cannot_fire_below_eleven_embeddings():
    # Samuelson: a z-score (ddof=1) is at most (n-1)/sqrt(n) = 2.85 for n = 10.
    x = _cluster_with_outlier(n=10)
    assert outlier_mask(x, 3.0).all()
    assert not outlier_mask(_cluster_with_outlier(n=11), 3.0)[-1]
    assert not outlier_mask(x, 2.0)[-1]


def test_trimmed_mean_never_drops_everything():
    x = np.tile(E1, (5, 1))  # zero spread: nothing is an outlier
    assert outlier_mask(x, 0.0).all()
    np.testing.assert_allclose(trimmed_mean(x, k=0.0), E1)


def test_quality_weighted_mean():
    np.testing.assert_allclose(quality_weighted_mean([E1, E2], [1, 0]), E1)
    np.testing.assert_allclose(quality_weighted_mean([E1, E2], [3, 1]), [0.75, 0.25, 0.0])
    np.testing.assert_allclose(quality_weighted_mean([E1, E2], [5, 5]), mean([E1, E2]))  # normalised
    np.testing.assert_allclose(quality_weighted_mean([E1, E2], [1, 1], renorm=True), mean([E1, E2], renorm=True))


@pytest.mark.parametrize("weights", [[1, -1], [0, 0], [1, np.nan], [1]])
def test_bad_weights(weights):
    with pytest.raises(FacesrError):
        quality_weighted_mean([E1, E2], weights)


def test_bad_inputs():
    with pytest.raises(FacesrError):
        mean(np.zeros((0, 3)))
    with pytest.raises(FacesrError):
        mean([E1, -E1], renorm=True)  # zero vector
    with pytest.raises(FacesrError):
        outlier_mask(np.eye(3), rule="median")
