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
