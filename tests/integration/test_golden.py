"""Behaviour kept: every bundled model and sampler, through the Python API, gives the pixels the code
before the engine redesign gave (tests/data/README.md). Also the API integration test of every bundled model."""

import json
from pathlib import Path

import numpy as np
import pytest

import facesr
from facesr.io.images import list_images, read_image

DATA = Path(__file__).resolve().parents[1] / "data"
CASES = json.loads((DATA / "golden_cases.json").read_text())["cases"]
SAMPLES = Path(__file__).resolve().parents[2] / "src" / "facesr" / "samples" / "faces"


@pytest.fixture(scope="module")
def golden():
    with np.load(DATA / "golden_outputs.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def faces():
    return [read_image(p) for p in list_images(SAMPLES)]


def _same_pixels(got: np.ndarray, want: np.ndarray, case: dict) -> None:
    """Identical here; another CPU's kernels may round a few values differently (bf16 more so)."""
    assert got.shape == want.shape
    diff = np.abs(got.astype(int) - want.astype(int))
    if case["precision"] == "bf16":
        assert diff.max() <= 8 and (diff <= 1).mean() >= 0.95, (diff.max(), (diff == 0).mean())
    else:
        assert diff.max() <= 3 and (diff == 0).mean() >= 0.95, (diff.max(), (diff == 0).mean())


def run_case(case: dict, lr: np.ndarray, faces: list[np.ndarray]) -> np.ndarray:
    """A case's SR output through today's Python API (tests/data/write_golden.py writes new cases with it)."""
    # the cheap cases sample from noise in few steps: pixels to compare, not restorations
    options = {k: v for k, v in case.items() if k not in ("id", "model", "recipe")} | {"check_outputs": False}
    model = facesr.load_model(case["model"], device="cpu")
    extra = {}
    if model.needs.vector_dim:  # the pixels of the condition itself: no reference gate
        extra.update(refs=[faces[1], faces[2]], refs_gate=None)
    if model.needs.reference:  # the same: a reference that pulls toward its identity is not gated here
        extra.update(ref=faces[1], refs_gate=None)
    if model.needs.frames > 1:
        return np.stack(facesr.upscale_frames(list(lr), model=model, seed=0, **options))
    return np.stack(facesr.upscale([lr[0]], model=model, seed=0, **options, **extra))


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_same_pixels_as_before_the_redesign(case, golden, faces):
    key = case["id"]
    if f"{key}/error" in golden:
        with pytest.raises(facesr.errors.FacesrError, match="N > beta_max"):
            run_case(case, golden[f"{key}/lr"], faces)
        return
    _same_pixels(run_case(case, golden[f"{key}/lr"], faces), golden[f"{key}/sr"], case)
