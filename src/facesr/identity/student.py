"""An identity network for tiny faces: dlib's ResNet fine-tuned so that the LR face of an image and its HR
face embed alike (``facesr train-embedder``; issue 22). It reads a face exactly as the dlib embedder does
(enlarged to 150 px, re-chipped by dlib's 5 points) with other weights, so its vectors live in dlib's space:
an LR aux face and an HR photo of the same person can be compared, and FASR can be conditioned on them.

A student folder holds ``student.safetensors`` (the network's weights) and ``config.json`` (what it was
trained for: LR protocol, steps, data). Being made from dlib's network and trained to match it, it is of the
dlib family: neither dlib nor the student judges a model conditioned, trained or guided with either.
"""

from __future__ import annotations

import json
from pathlib import Path

from facesr.errors import FacesrError

WEIGHTS = "student.safetensors"
KIND = "dlib-lq"  # config.json "kind", and the embedder spec's name
FAMILY = "dlib"  # the network it was made from
BUNDLED = Path(__file__).resolve().parent.parent / "weights" / "identity"  # bundled students, one folder each
DEFAULT = "dlib-lq-x8"  # the student the spec 'dlib-lq' names


def resolve_student(name_or_folder: str = "") -> Path:
    """A student folder: '' is the bundled default, a bare name a bundled student, anything else a path."""
    name = name_or_folder or DEFAULT
    bundled = BUNDLED / name
    if "/" not in name and (bundled / "config.json").is_file():
        return bundled
    return Path(name)


def bundled_students() -> list[dict]:
    """One row per bundled student, from its config.json alone (no torch): name, spec, LR protocol, size."""
    rows = []
    for cfg in sorted(BUNDLED.glob("*/config.json")):
        config = json.loads(cfg.read_text())
        spec = KIND if cfg.parent.name == DEFAULT else f"{KIND}:{cfg.parent.name}"
        rows.append({"name": cfg.parent.name, "spec": spec, "operator": config.get("operator"), "scale": config.get("scale"),
                     "steps": config.get("steps"), "size_mb": round((cfg.parent / WEIGHTS).stat().st_size / 1e6, 1)})
    return rows


def student_for(network: str | None, scale: int) -> str | None:
    """The embedder spec of a bundled student of ``network`` trained on x``scale`` LR faces, or None: what
    embeds a tiny face best where ``network`` puts that person's photos."""
    if network != FAMILY:
        return None
    return next((row["spec"] for row in bundled_students() if row["scale"] == scale), None)


def save_student(net, folder, config: dict) -> None:
    """Weights and config.json, each written atomically."""
    from facesr.io.images import atomic_write_text
    from facesr.io.weights import save_safetensors

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_safetensors(net.state_dict(), folder / WEIGHTS, {"format": "pt"})
    atomic_write_text(folder / "config.json", json.dumps({"kind": KIND, **config}, indent=2) + "\n")


def load_student(folder):
    """(frozen network in eval mode, its config, the weights' sha256); one FacesrError naming the folder."""
    from facesr.identity.dlib_resnet import load_dlib_resnet
    from facesr.io.weights import file_sha256, load_safetensors

    folder = resolve_student(str(folder))
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        raise FacesrError(f"{folder}: not an identity student (no readable config.json)") from None
    if not isinstance(config, dict) or config.get("kind") != KIND:
        raise FacesrError(f"{folder / 'config.json'}: not an identity student (kind is not {KIND!r})")
    net = load_dlib_resnet()
    try:
        missing, unexpected = net.load_state_dict(load_safetensors(folder / WEIGHTS), strict=False)
    except RuntimeError:
        missing, unexpected = ["(shapes differ)"], []
    if missing or unexpected:
        raise FacesrError(f"{folder / WEIGHTS}: weights do not fit dlib's ResNet")
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval(), config, file_sha256(folder / WEIGHTS)
