"""The reference gate's parts: the threshold a user gives, the LR face the student reads, and what is never gated."""

import numpy as np
import pytest
import torch

from facesr.engine.refs_gate import (THRESHOLD, GateVerdict, gate_conditions, gated, lr_embeddings, parse_threshold,
                                    student_lr)
from facesr.errors import FacesrError
from facesr.methods.base import Conditions, SRMethod
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
    """FASR's side of the model interface, with nothing else."""

    needs = _Needs()
    identity_space = SRMethod.identity_space
    identity_condition = SRMethod.identity_condition
    null_condition = SRMethod.null_condition
    gate_refusal = SRMethod.gate_refusal


def test_the_null_identity_and_missing_conditions_are_never_gated():
    lrs = [torch.zeros(3, 16, 16)] * 2
    conds = [Conditions(vector=torch.zeros(4)), None]
    out, verdicts = gate_conditions(_Model(), lrs, conds, threshold=1.0)
    assert out == conds and verdicts == [GateVerdict(None, True), GateVerdict(None, True)]
    assert gate_conditions(_Model(), lrs, None) == (None, [GateVerdict(None, True)] * 2)


def test_the_benchmark_gates_fasr_references_by_default_and_never_the_null_identity():
    class Plain(_Model):
        needs = type("N", (), {"vector_dim": 0, "vector_embedder": None})()

    assert method_gate(parse_method("a=fasr-x8"), _Model()) == THRESHOLD
    assert method_gate(parse_method("a=fasr-x8,gate=off"), _Model()) is None
    assert method_gate(parse_method("a=fasr-x8,gate=0.5,ref=other"), _Model()) == 0.5
    assert method_gate(parse_method("a=fasr-x8,ref=none"), _Model()) is None
    assert method_gate(parse_method("a=sr3-x8"), Plain()) is None
    with pytest.raises(FacesrError, match="method 'a=fasr-x8,gate=x': gate must be a cosine"):
        parse_method("a=fasr-x8,gate=x")


def test_a_refsr_reference_identity_is_gated_like_a_fasr_vector():
    """RefSR-VAE with ref_identity: the gate scores the student's LR embedding against the reference photo's
    descriptor; a refused reference keeps its pixels and loses its identity (the path off, a zero vector)."""
    from facesr.identity.recognition import cosine_similarity
    from facesr.methods.refsr_vae import RefSRVAE, RefSRVAEConfig

    widths = dict(trunk_channels=(4, 8, 8, 8), skip_channels=(8, 4), encoder_channels=(8, 4, 4), encoder_fc=(16, 16),
                  latent=8, noise_fc=8, decoder_fc=(16, 16), decoder_map_channels=4, upproj_channels=4)
    cfg = dict(variant="refsr", scale=4, hr_size=32, fusion="gated", **widths)
    torch.manual_seed(0)
    model = RefSRVAE(RefSRVAEConfig(**cfg, ref_identity=True)).eval()
    with torch.no_grad():
        model.ref_film[2].weight.normal_(0, 0.5)
    plain = RefSRVAE(RefSRVAEConfig(**cfg)).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("ref_film")})
    assert gated(model) and not gated(plain)
    g = torch.Generator().manual_seed(1)
    lrs = [torch.rand(3, 8, 8, generator=g) for _ in range(2)]
    conds = [Conditions(ref=torch.rand(3, 32, 32, generator=g)) for _ in range(2)]
    descriptors = [model.reference_identity(c.ref[None])[0] for c in conds]
    want = [float(cosine_similarity(e, d.double().numpy())[0])
            for e, d in zip(lr_embeddings(model, lrs), descriptors)]

    used, verdicts = gate_conditions(model, lrs, conds, threshold=-1.0)
    assert [v.used for v in verdicts] == [True, True]
    assert [v.score for v in verdicts] == pytest.approx(want, abs=1e-6)
    for out, cond, d in zip(used, conds, descriptors):
        assert out.ref is cond.ref and torch.equal(out.vector, d)
    refused, verdicts = gate_conditions(model, lrs, conds, threshold=1.0)
    assert [v.used for v in verdicts] == [False, False]
    assert all(torch.equal(o.vector, torch.zeros(128)) and o.ref is c.ref for o, c in zip(refused, conds))

    def restore(m, cs):
        return m.super_resolve(torch.stack(lrs), Conditions.stack(cs))

    with torch.no_grad():
        # the gate's descriptor gives the pixels the reference gives by itself; the null identity, the model
        # without the path; one refused input beside one used, each as it would be alone
        torch.testing.assert_close(restore(model, used), restore(model, conds))
        torch.testing.assert_close(restore(model, refused), restore(plain, conds))
        assert (restore(model, used) - restore(model, refused)).abs().max() > 1e-4
        mixed = restore(model, [used[0], refused[1]])
        torch.testing.assert_close(mixed[0], restore(model, used)[0])
        torch.testing.assert_close(mixed[1], restore(plain, conds)[1])
