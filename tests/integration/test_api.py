"""The Python API runs every bundled model with what it needs, in the documented shapes, and a model
missing its inputs raises one error naming the API parameter (never a CLI flag)."""

from pathlib import Path

import numpy as np
import pytest

import facesr
from facesr.errors import FacesrError
from facesr.io.images import list_images, read_image
from facesr.methods.hub import bundled_models

FAST = {"steps": 2, "strength": 0.5, "samples": 1, "init": None, "precision": "fp32"}


SAMPLES = Path(__file__).resolve().parents[2] / "src" / "facesr" / "samples" / "faces"


@pytest.fixture(scope="module")
def faces():
    return [read_image(p) for p in list_images(SAMPLES)]


def lr_of(model, face):
    return model.lr_protocol.lr_image(face, "probe")[0]


def _fast(model) -> dict:
    return FAST if model.uses_sampler else {"precision": "fp32"}


@pytest.mark.parametrize("name", [m["name"] for m in bundled_models()])
def test_every_bundled_model_runs_through_the_api(name, faces):
    model = facesr.load_model(name, device="cpu")
    extra = {}
    if model.needs.vector_dim:
        extra["refs"] = [faces[1], faces[2]]
    if model.needs.reference:
        extra["ref"] = faces[1]
    lrs = [lr_of(model, f) for f in faces[:2]]
    if model.needs.frames > 1:
        out = facesr.upscale_frames(lrs + [lrs[0]], model=model, **_fast(model))
        assert len(out) == 3
    else:
        out = facesr.upscale(lrs, model=model, **_fast(model), **extra)
        assert len(out) == 2
    for sr in out:
        assert sr.dtype == np.uint8 and sr.shape == (model.hr_size, model.hr_size, 3)
        assert 5 < sr.mean() < 250  # an image, not a blank or saturated tensor


@pytest.fixture(scope="module")
def fasr():
    return facesr.load_model("fasr-x8", device="cpu")


def test_refs_one_list_for_all_equals_the_same_list_per_input(fasr, faces):
    lrs = [lr_of(fasr, f) for f in faces[:2]]
    refs = [faces[2], faces[3]]
    shared = facesr.upscale(lrs, model=fasr, refs=refs, refs_gate=None, **FAST)
    per_input = facesr.upscale(lrs, model=fasr, refs=[refs, refs], refs_gate=None, **FAST)
    assert all(np.array_equal(a, b) for a, b in zip(shared, per_input))


def levels(a, b):
    """The largest difference between two 8-bit images, in levels."""
    return np.abs(a.astype(int) - b.astype(int)).max()


def test_refs_per_input_condition_each_input_on_its_own_person(fasr, faces):
    """Input i of a batch gets the vector of refs[i]: the pixels of a run alone with those refs (to one 8-bit level:
    a batch of two and a batch of one may round differently), far from those of a run with another person's."""
    lr = lr_of(fasr, faces[0])
    both = facesr.upscale([lr, lr], model=fasr, refs=[[faces[1]], [faces[4]]], refs_gate=None, **FAST)
    alone = facesr.upscale([lr], model=fasr, refs=[faces[1]], refs_gate=None, **FAST)[0]
    other = facesr.upscale([lr], model=fasr, refs=[faces[4]], refs_gate=None, **FAST)[0]
    assert levels(both[0], alone) <= 1 and levels(both[0], other) > 8


def test_refs_list_per_input_must_match_the_inputs(fasr, faces):
    lrs = [lr_of(fasr, f) for f in faces[:2]]
    with pytest.raises(FacesrError, match="refs"):
        facesr.upscale(lrs, model=fasr, refs=[[faces[1]], [faces[2]], [faces[3]]], **FAST)


def test_a_model_missing_its_reference_names_the_api_parameter(faces):
    model = facesr.load_model("refsr-vae-x8", device="cpu")
    with pytest.raises(FacesrError) as info:
        facesr.upscale([lr_of(model, faces[0])], model=model, **_fast(model))
    message = str(info.value)
    assert "give ref" in message and "--" not in message


def test_fasr_without_refs_is_its_null_identity_and_warns(fasr, faces):
    """The fair baseline ships with the model: no refs = the zero vector, the same pixels as passing it."""
    from facesr.engine.conditions import null_identity
    from facesr.engine.options import SamplingOptions
    from facesr.engine.run import super_resolve_tensors
    from facesr.io.images import to_tensor, to_uint8
    from facesr.methods.base import Conditions

    lr = lr_of(fasr, faces[0])
    with pytest.warns(facesr.api.BaselineWarning, match="null identity"):
        plain = facesr.upscale([lr], model=fasr, **FAST)[0]
    opts = SamplingOptions.for_model(fasr, seed=0, **FAST)
    zero = super_resolve_tensors(fasr, [to_tensor(lr)], ["array-0"], opts, "cpu",
                                 conditions=[Conditions(vector=null_identity(fasr))])[0]
    assert np.array_equal(plain, to_uint8(zero))
    assert not np.array_equal(plain, facesr.upscale([lr], model=fasr, refs=[faces[1]], refs_gate=None, **FAST)[0])


def test_the_reference_gate_runs_a_face_that_does_not_match_its_refs_on_the_null_identity(fasr, faces):
    """Gated: the same pixels as without refs, and a GateWarning naming the input; passed: the same pixels as
    with no gate. A face's own photo passes the default gate (the student reads its 16-px face as that photo)."""
    import warnings

    lr = lr_of(fasr, faces[0])
    with pytest.warns(facesr.api.BaselineWarning):
        null = facesr.upscale([lr], model=fasr, **FAST)[0]
    ungated = facesr.upscale([lr], model=fasr, refs=[faces[1]], refs_gate=None, **FAST)[0]
    with pytest.warns(facesr.api.GateWarning, match=r"^images\[0\]: references not used .* score 0\.\d+ against the gate 1\.000"):
        gated = facesr.upscale([lr], model=fasr, refs=[faces[1]], refs_gate=1.0, **FAST)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", facesr.api.GateWarning)
        passed = facesr.upscale([lr], model=fasr, refs=[faces[1]], refs_gate=-1.0, **FAST)[0]
    assert np.array_equal(gated, null) and np.array_equal(passed, ungated) and not np.array_equal(null, ungated)
    with warnings.catch_warnings():
        warnings.simplefilter("error", facesr.api.GateWarning)
        for face in faces:  # its own photo: used under the default gate
            facesr.upscale([lr_of(fasr, face)], model=fasr, refs=[face], **FAST)
    with pytest.raises(FacesrError, match="refs_gate must be a cosine"):
        facesr.upscale([lr], model=fasr, refs=[faces[1]], refs_gate=1.5, **FAST)


def test_a_condition_the_model_does_not_take_is_refused(faces):
    model = facesr.load_model("msrresnet-x8", device="cpu")
    with pytest.raises(FacesrError, match="^ref: .*takes no reference"):
        facesr.upscale([lr_of(model, faces[0])], model=model, ref=faces[1])


def test_ref_one_image_equals_one_per_input(faces):
    model = facesr.load_model("refsr-vae-x8", device="cpu")
    lrs = [lr_of(model, f) for f in faces[:2]]
    one = facesr.upscale(lrs, model=model, ref=faces[3])
    each = facesr.upscale(lrs, model=model, ref=[faces[3], faces[3]])
    other = facesr.upscale(lrs, model=model, ref=[faces[3], faces[4]])
    assert all(np.array_equal(a, b) for a, b in zip(one, each))
    assert np.array_equal(one[0], other[0]) and not np.array_equal(one[1], other[1])


def test_a_multi_frame_model_on_stills_is_its_baseline_without_neighbours(faces):
    """A still image stands in for its neighbours: the same pixels as a clip run with neighbours=False,
    where frame i's output does not depend on the other frames."""
    model = facesr.load_model("mfsr3-x8", device="cpu")
    lrs = [lr_of(model, f) for f in faces[:3]]
    with pytest.warns(facesr.api.BaselineWarning, match="neighbour"):
        still = facesr.upscale([lrs[1]], model=model, **FAST)[0]
    with pytest.warns(facesr.api.BaselineWarning):
        clip = facesr.upscale_frames(lrs, model=model, name="array-0", neighbours=False, **FAST)
    with pytest.warns(facesr.api.BaselineWarning):
        other = facesr.upscale_frames([lrs[2], lrs[1], lrs[0]], model=model, name="array-0", neighbours=False, **FAST)
    assert np.array_equal(clip[1], other[1])
    assert np.abs(still.astype(int) - clip[1]).max() <= 1  # a batch of 1 against 3: float rounding only


def test_upscale_frames_on_a_single_image_model_restores_each_frame_alone(faces):
    model = facesr.load_model("msrresnet-x8", device="cpu")
    lrs = [lr_of(model, f) for f in faces[:3]]
    frames = facesr.upscale_frames(lrs, model=model)
    alone = facesr.upscale(lrs, model=model)
    assert all(np.array_equal(a, b) for a, b in zip(frames, alone))


@pytest.mark.parametrize("bad, problem", [
    (np.zeros((128, 128, 3), np.uint8), "far larger"),  # an HR chip to an x8 model
    (np.zeros((16, 16, 3), np.float32), "float32 array"),
    (np.zeros((16, 16), np.uint8), "shape (16, 16)"),
    (np.zeros((16, 16, 4), np.uint8), "shape (16, 16, 4)"),  # RGBA
    (np.zeros((1, 1, 3), np.uint8), "1x1 input is too small"),
])
def test_bad_arrays_are_named_by_their_index(bad, problem):
    model = facesr.load_model("msrresnet-x8", device="cpu")
    good = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(FacesrError) as info:
        facesr.upscale([good, bad], model=model)
    assert "images[1]" in str(info.value) and problem in str(info.value)
