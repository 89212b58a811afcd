"""What a conditioned model gets without its extra input: FASR its null identity, MF-SR3 the frame itself."""

from types import SimpleNamespace

import torch

from facesr.engine.conditions import baseline_note, conditions_for, frame_stacks, still_stack
from facesr.methods.base import Needs


class Recorder:
    """A model stand-in with the given needs that accepts any conditions."""

    def __init__(self, **needs):
        self.needs = Needs(**needs)
        self.name = "stand-in"

    def check_conditions(self, cond):
        self.checked = cond


def test_fasr_without_refs_gets_the_zero_vector_for_every_input():
    model = Recorder(vector_dim=128, vector_embedder="dlib")
    conds = conditions_for(model, 3)
    assert len(conds) == 3 and all(torch.equal(c.vector, torch.zeros(128)) and c.ref is None for c in conds)
    assert "null identity" in baseline_note(model) and baseline_note(model, refs=["her.png"]) is None


def test_a_model_without_conditions_gets_none_and_no_note():
    model = Recorder()
    assert all(c.vector is None and c.ref is None for c in conditions_for(model, 2))
    assert baseline_note(model, stills=True) is None


def test_frames_without_neighbours_repeat_each_frame():
    model = Recorder(frames=3)
    frames = [torch.full((3, 4, 4), float(i)) for i in range(5)]
    plain = frame_stacks(model, frames, neighbours=False)
    assert all(torch.equal(s, f.repeat(3, 1, 1)) for s, f in zip(plain, frames))
    windows = frame_stacks(model, frames)  # the reference: frames i-1, i, i+1, clamped
    assert [s[::3, 0, 0].tolist() for s in windows] == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 4]]
    assert torch.equal(still_stack(model, frames[2]), plain[2])
    assert "neighbour" in baseline_note(model, stills=True) and baseline_note(model) is None
    single = SimpleNamespace(needs=Needs())
    assert still_stack(single, frames[1]) is frames[1]


def test_refs_may_be_embedded_by_a_student_of_the_models_network_only(tmp_path, sample_faces):
    import numpy as np
    import pytest

    from facesr.engine.conditions import condition_spec
    from facesr.identity.dlib_resnet import load_dlib_resnet
    from facesr.identity.embedders import make_embedder
    from facesr.identity.student import save_student
    from facesr.io.images import list_images, read_image
    from facesr.methods.base import ConditionError

    model = Recorder(vector_dim=128, vector_embedder="dlib")
    student = f"dlib-lq:{tmp_path / 's'}"
    save_student(load_dlib_resnet(), tmp_path / "s", {"operator": "bicubic", "scale": 8})
    assert condition_spec(model) == "dlib" and condition_spec(model, student) == student
    for other in ("dlib-detect", "adaface:x.ckpt", "faceplugin"):
        with pytest.raises(ConditionError, match="takes vectors in 'dlib'"):
            condition_spec(model, other)
    with pytest.raises(ConditionError, match="refs_embedder 'faceplugin'"):
        conditions_for(model, 1, refs_embedder="faceplugin")  # refused even without refs
    refs = list_images(sample_faces)[:2]
    (cond,) = conditions_for(model, 1, refs=refs, refs_embedder=student)
    want = make_embedder(student).embed([read_image(p) for p in refs]).mean(0)  # an untrained student is dlib
    np.testing.assert_allclose(cond.vector.numpy(), want, atol=1e-6)
