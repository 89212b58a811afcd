"""The LR-to-HR embedding map of benchmarks/condition_identity.py against a known affine map."""

import numpy as np
import pytest

from facesr.errors import FacesrError
from facesr.identity.features import FeatureTable


def test_map_recovers_an_affine_relation(tmp_path, benchmark_script):
    rng = np.random.default_rng(0)
    names = [f"img{i}.jpg" for i in range(300)]
    a, b = rng.normal(size=(16, 16)), rng.normal(size=16)
    x = rng.normal(size=(300, 16))
    FeatureTable(names, x).save(tmp_path / "lr.safetensors")
    # the HR table lists the names in another order and one extra name: pairs go by name
    order = rng.permutation(300)
    FeatureTable([names[i] for i in order] + ["extra.jpg"], np.vstack([(x @ a + b)[order], np.ones(16)])).save(
        tmp_path / "hr.safetensors")
    lr_to_hr = benchmark_script("condition_identity").fit_lr_to_hr(tmp_path / "hr.safetensors", tmp_path / "lr.safetensors", ridge=1e-6)
    probe = rng.normal(size=(5, 16))
    want = probe @ a + b
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(lr_to_hr(probe), want, atol=1e-4)


def test_map_needs_more_pairs_than_dimensions(tmp_path, benchmark_script):
    FeatureTable(["a.jpg", "b.jpg"], np.eye(2, 16)).save(tmp_path / "t.safetensors")
    with pytest.raises(FacesrError, match="only 2 images in common"):
        benchmark_script("condition_identity").fit_lr_to_hr(tmp_path / "t.safetensors", tmp_path / "t.safetensors")
