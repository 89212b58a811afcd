"""The reference gate's parts: the threshold a user gives, the LR face the student reads, and what is never gated."""

import numpy as np
import pytest
import torch

from facesr.engine.refs_gate import THRESHOLD, GateVerdict, gate_conditions, parse_threshold, student_lr
from facesr.errors import FacesrError
from facesr.methods.base import Conditions
from facesr.workflows.benchmark import method_gate, parse_method


@pytest.mark.parametrize("given, want", [("0.9", 0.9), (0.5, 0.5), ("-1", -1.0), ("1", 1.0), ("off", None), (None, None)])
def test_a_threshold_is_a_cosine_or_off(given, want):
    assert parse_threshold(given) == want


@pytest.mark.parametrize("given", ["1.01", "-2", "high", "nan", True, ""])
def test_anything_else_is_refused_in_one_line(given):
    with pytest.raises(FacesrError, match=r"^refs_gate must be a cosine in \[-1, 1\] or 'off', got "):
        parse_threshold(given)


def test_the_student_reads_other_lr_sizes_as_its_16_px_faces():
    """A 32-px face is resampled to 16 px (bicubic, as PIL); a 16-px face is the same array."""
    from PIL import Image

    rng = np.random.default_rng(0)
    face = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert np.array_equal(student_lr(face), np.asarray(Image.fromarray(face).resize((16, 16), Image.BICUBIC)))
    small = face[:16, :16]
    assert student_lr(small) is small


class _Needs:
    vector_dim, vector_embedder = 4, "dlib"


class _Model:
    needs = _Needs()


def test_the_null_identity_and_missing_conditions_are_never_gated():
    lrs = [torch.zeros(3, 16, 16)] * 2
    conds = [Conditions(vector=torch.zeros(4)), None]
    out, verdicts = gate_conditions(_Model(), lrs, conds, threshold=1.0)
    assert out == conds and verdicts == [GateVerdict(None, True), GateVerdict(None, True)]
    assert gate_conditions(_Model(), lrs, None) == (None, [GateVerdict(None, True)] * 2)


def test_the_benchmark_gates_fasr_references_by_default_and_never_the_null_identity():
    class Plain:
        needs = type("N", (), {"vector_dim": 0})()

    assert method_gate(parse_method("a=fasr-x8"), _Model()) == THRESHOLD
    assert method_gate(parse_method("a=fasr-x8,gate=off"), _Model()) is None
    assert method_gate(parse_method("a=fasr-x8,gate=0.5,ref=other"), _Model()) == 0.5
    assert method_gate(parse_method("a=fasr-x8,ref=none"), _Model()) is None
    assert method_gate(parse_method("a=sr3-x8"), Plain()) is None
    with pytest.raises(FacesrError, match="method 'a=fasr-x8,gate=x': gate must be a cosine"):
        parse_method("a=fasr-x8,gate=x")
