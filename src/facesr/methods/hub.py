"""Models by name: the bundled ones in ``facesr/weights/<name>/`` and any folder written by
``save_pretrained`` (a training checkpoint is one too). Loading prefers the EMA weights."""

from __future__ import annotations

import json
from pathlib import Path

from facesr.errors import FacesrError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
# The model `upscale`, `report` and the API use unless told otherwise: the diffusion model over the regression
# model, at least the regression's PSNR and identity with 6 evaluations (benchmarks/results/sr3-x8-res.md).
DEFAULT_MODEL = "sr3-x8-res"


def resolve_model_dir(name_or_path: str, flag: str = "model") -> Path:
    path = Path(name_or_path)
    if (path / "config.json").is_file():
        return path
    bundled = WEIGHTS_DIR / name_or_path
    if (bundled / "config.json").is_file():
        return bundled
    if path.exists():
        raise FacesrError(f"{path}: not a facesr model folder (no config.json)")
    names = ", ".join(m["name"] for m in bundled_models()) or "none"
    raise FacesrError(f"{flag} {name_or_path}: no such folder or bundled model (bundled: {names})")


def load_model(name_or_path: str, device="cpu", use_ema: bool = True, flag: str = "model"):
    """A bundled model by name, or a save_pretrained folder; ``flag`` names the option in error messages."""
    from facesr.methods.base import load_pretrained  # torch; listing the models needs none

    folder = resolve_model_dir(str(name_or_path), flag)
    model = load_pretrained(folder, device, use_ema)
    if folder.parent == WEIGHTS_DIR:
        model.label = folder.name
    return model


def bundled_models() -> list[dict]:
    """One row per bundled model, read from its config.json alone (no torch)."""
    rows = []
    if not WEIGHTS_DIR.is_dir():
        return rows
    for cfg_path in sorted(WEIGHTS_DIR.glob("*/config.json")):
        config = json.loads(cfg_path.read_text())
        inner = config.get("config", {})
        size_mb = sum(p.stat().st_size for p in cfg_path.parent.glob("*.safetensors")) / 1e6
        hr = inner.get("hr_size", 0)
        scale = inner.get("scale", 1)
        rows.append(
            {
                "name": cfg_path.parent.name,
                "method": config.get("method"),
                "scale": scale,
                "input": f"{hr // scale}x{hr // scale}",
                "output": f"{hr}x{hr}",
                "operator": inner.get("degradation") or inner.get("operator"),
                "identity": _identity_column(inner),
                "size_mb": round(size_mb, 1),
                "sampling": config.get("sampling", {}),
            }
        )
    return rows


def _identity_column(inner: dict) -> str:
    """What the model's condition pulls toward, read from config.json alone: FASR's identity vector, or the
    reference's dlib identity of a RefSR-VAE that reads it (``ref_identity``, ``identity_refine``)."""
    unet = inner.get("unet", {})
    if unet.get("vector_dim"):
        return f"{unet['vector_embedder']} {unet['vector_dim']}-d"
    refine = inner.get("identity_refine")
    if inner.get("ref_identity") or (isinstance(refine, dict) and refine.get("steps")):
        return "dlib (ref)"
    return "-"
