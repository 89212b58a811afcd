"""The reference gate (issue 22): references of the wrong person must not rewrite a face.

A condition made from references pulls the output toward the references' person: FASR's identity vector, and the
reference photo's descriptor in a RefSR-VAE with ``ref_identity`` or ``identity_refine`` (the model says which: ``identity_space``,
``identity_condition``, ``null_condition``). When the references show someone else, that pull is the hijack the
trust issue measures. The gate compares the LR face itself with the
references before any sampling: the face is embedded by the bundled student of the model's network (it reads
16-px faces into the space the references' vector lives in) and scored by cosine against that vector. Below the
threshold the input runs on the null identity (the model's fair baseline, what it gives without references),
and the caller says so. The null identity is never gated.

The threshold was chosen on dev/lfw only (``python benchmarks/refs_gate.py``): the score that 10 % of
impostor pairs (a probe's 16-px face against another person's photos) reach. dev/celeba is the held-out
check. The gate uses the conditioning family (dlib and its student), never the ArcFace judge.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

THRESHOLD = 0.92  # cosine, student(LR face) against the references' vector; None turns the gate off


@dataclass
class GateVerdict:
    """What the gate decided for one input: its score (None: not gated, e.g. the null identity) and whether the
    references were used."""

    score: float | None
    used: bool
    refused: str = field(default="", compare=False)  # what a refusal means for the model (``SRMethod.gate_refusal``)

    def describe(self, threshold: float | None) -> str:
        if self.score is None:
            return "references not checked"
        what = "references used" if self.used else self.refused
        gate = "no gate" if threshold is None else f"the gate {threshold:.3f}"
        return f"{what}: score {self.score:.3f} against {gate}"


def gate_embedder_spec(model) -> str | None:
    """The student that reads the model's LR faces into its condition space, or None (no gate possible)."""
    from facesr.identity.student import student_for

    return student_for(model.identity_space, 8) if model.identity_space else None


def gated(model) -> bool:
    """Whether the model's references pull toward an identity that the gate can check."""
    return gate_embedder_spec(model) is not None


def student_lr(img: np.ndarray, side: int = 16) -> np.ndarray:
    """The LR face at the student's input size (its x8 faces of 128-px chips): other LR sizes resampled
    bicubically, so an x4 model's 32-px face is read as the 16-px face it would be at x8."""
    from PIL import Image

    if img.shape[:2] == (side, side):
        return img
    return np.asarray(Image.fromarray(img).resize((side, side), Image.BICUBIC))


def lr_embeddings(model, lrs: list) -> np.ndarray | None:
    """(n, dim): the LR faces (3, h, w) in [0, 1] read by the model's student; None when it has none."""
    from facesr.engine.conditions import shared_embedder
    from facesr.io.images import to_uint8

    spec = gate_embedder_spec(model)
    if spec is None or not lrs:
        return None
    return shared_embedder(spec).embed([student_lr(to_uint8(lr[:3])) for lr in lrs])


def gate_scores(model, lrs: list, conditions: list) -> list[float | None]:
    """Cosine of each LR face (3, h, w) in [0, 1], embedded by the student, with the identity its condition
    pulls toward; None for inputs without one or with the null identity (all zeros), and for a model
    without a student."""
    return _scores(model, lrs, _identities(model, conditions))


def _identities(model, conditions: list) -> list:
    """The identity each condition pulls toward (``SRMethod.identity_condition``; a RefSR reference's descriptor
    is a network pass, so it is made once here), None for none."""
    return [None if c is None else model.identity_condition(c) for c in conditions]


def _scores(model, lrs: list, vectors: list) -> list[float | None]:
    import torch

    from facesr.identity.recognition import cosine_similarity

    todo = [i for i, v in enumerate(vectors) if v is not None and bool(torch.any(v != 0))]
    scores: list[float | None] = [None] * len(lrs)
    embs = lr_embeddings(model, [lrs[i] for i in todo])
    if embs is None:
        return scores
    for i, e in zip(todo, embs):
        scores[i] = float(cosine_similarity(e, vectors[i].double().cpu().numpy())[0])
    return scores


def gate_conditions(model, lrs: list, conditions: list | None,
                    threshold: float | None = THRESHOLD) -> tuple[list | None, list[GateVerdict]]:
    """(conditions with the null identity where the LR face does not match its references, one verdict per
    input). ``threshold`` None keeps every condition (verdicts still carry the scores)."""
    if conditions is None:
        return None, [GateVerdict(None, True) for _ in lrs]
    vectors = _identities(model, conditions)
    out, verdicts = [], []
    for cond, vector, score in zip(conditions, vectors, _scores(model, lrs, vectors)):
        used = threshold is None or score is None or score >= threshold
        verdicts.append(GateVerdict(score, used, model.gate_refusal))
        # the vector the gate read goes with the condition, so used and refused inputs batch alike
        out.append(model.null_condition(cond) if not used else cond if vector is None else replace(cond, vector=vector))
    return out, verdicts


def parse_threshold(value, where: str = "refs_gate") -> float | None:
    """A gate threshold from the user: a cosine in [-1, 1], or None / 'off' (no gate); FacesrError otherwise."""
    from facesr.errors import FacesrError

    if value is None or value == "off":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not -1 <= number <= 1:
        raise FacesrError(f"{where} must be a cosine in [-1, 1] or 'off', got {value!r}")
    return number
