"""Saving and loading models: a folder with config.json plus safetensors.

``model.safetensors`` holds the raw weights and ``ema.safetensors`` the EMA
weights; a folder may hold either or both. Loading prefers EMA weights.
Bundled models live in ``facesr/weights/<name>/`` inside the package.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import torch

from facesr.data.io import atomic_write_text, default_file_mode
from facesr.errors import FacesrError

METHODS = {
    "sr3": "facesr.models.sr3:SR3",
    "score-sde": "facesr.models.score_sr:ScoreSR",
    "regression": "facesr.models.regression:RegressionSR",
    "refsr-vae": "facesr.models.refsr_vae:RefSRVAE",
}
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def method_class(method: str):
    if method not in METHODS:
        raise FacesrError(f"unknown method {method!r}; known: {sorted(METHODS)}")
    module, name = METHODS[method].split(":")
    return getattr(importlib.import_module(module), name)


def save_safetensors(tensors: dict, path: Path, metadata: dict | None = None) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    os.chmod(tmp, default_file_mode())  # safetensors creates 0600 files
    os.replace(tmp, path)


def load_safetensors(path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise FacesrError(f"{path}: cannot read weights ({exc})") from None


def save_pretrained(model, folder, ema_state: dict | None = None, include_raw: bool = True, card: dict | None = None,
                    sampling: dict | None = None):
    """Write config.json, model.safetensors (if include_raw) and ema.safetensors (if given).

    ``sampling``: the recommended sampling recipe (sampler, steps, eta, strength, samples).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"format": "pt"}
    for name, tensors in (("model.safetensors", model.state_dict() if include_raw else None), ("ema.safetensors", ema_state)):
        if tensors is not None:
            save_safetensors(tensors, folder / name, meta)
        else:
            (folder / name).unlink(missing_ok=True)  # the folder holds exactly what was saved
    config = dict(model.config_dict())
    from facesr import __version__

    config["facesr_version"] = __version__
    if card:
        config["card"] = card
    sampling = sampling or getattr(model, "sampling", None)
    if sampling:
        config["sampling"] = sampling
    atomic_write_text(folder / "config.json", json.dumps(config, indent=2) + "\n")


def resolve_model_dir(name_or_path: str, flag: str = "--model") -> Path:
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


def load_model(name_or_path: str, device="cpu", use_ema: bool = True, flag: str = "--model"):
    """A bundled model by name, or a save_pretrained folder; ``flag`` names the option in error messages."""
    folder = resolve_model_dir(name_or_path, flag)
    try:
        config = json.loads((folder / "config.json").read_text())
    except json.JSONDecodeError as exc:
        raise FacesrError(f"{folder / 'config.json'}: not valid JSON ({exc.msg})") from None
    cls = method_class(config.get("method", "?"))
    model = cls.from_config_dict(config, str(folder / "config.json"))
    candidates = ["ema.safetensors", "model.safetensors"] if use_ema else ["model.safetensors", "ema.safetensors"]
    weights = next((folder / c for c in candidates if (folder / c).is_file()), None)
    if weights is None:
        raise FacesrError(f"{folder}: no model.safetensors or ema.safetensors")
    state = load_safetensors(weights)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise FacesrError(
            f"{weights}: weights do not match config.json "
            f"(missing {len(missing)}, unexpected {len(unexpected)}, e.g. {(missing or unexpected)[0]})"
        )
    model.source = str(folder)
    model.card = config.get("card", {})
    model.sampling = config.get("sampling", {})
    return model.to(device).eval()


def bundled_models() -> list[dict]:
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
                "identity": (f"{inner['unet']['vector_embedder']} {inner['unet']['vector_dim']}-d"
                             if inner.get("unet", {}).get("vector_dim") else "-"),
                "size_mb": round(size_mb, 1),
                "sampling": config.get("sampling", {}),
            }
        )
    return rows


class PretrainedMixin:
    """save_pretrained / from_pretrained for models that define config_dict()."""

    @property
    def condition_frames(self) -> int:
        """LR frames stacked as the condition of one output (multi-frame SR); 1 for single-image models."""
        return getattr(getattr(self.cfg, "unet", None), "cond_images", 1)

    def save_pretrained(self, folder, ema_state=None, include_raw=True, card=None, sampling=None):
        save_pretrained(self, folder, ema_state, include_raw, card, sampling)

    @classmethod
    def from_pretrained(cls, folder, device="cpu", use_ema=True):
        model = load_model(str(folder), device, use_ema)
        if not isinstance(model, cls):
            raise FacesrError(f"{folder}: holds a {model.method} model, not {cls.method}")
        return model


def tensor_dict(model: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
