"""Training checkpoints: safetensors and JSON only, written atomically.

A checkpoint is a folder ``checkpoints/step-<N>/`` that is also a loadable model
folder (config.json, model.safetensors, ema.safetensors) plus optimizer.safetensors
and state.json (step, EMA counter, optimizer hyper-parameters, RNG states).
It is written under a temporary name and renamed; ``checkpoints/latest`` names
the newest complete one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from facesr.io.images import atomic_write_text
from facesr.errors import FacesrError
from facesr.io.weights import load_safetensors, save_safetensors


def optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, list]:
    sd = optimizer.state_dict()
    tensors = {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            tensors[f"{idx}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return tensors, sd["param_groups"]


def optimizer_from_tensors(optimizer, tensors: dict, param_groups: list) -> None:
    state: dict = {}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})


def save_checkpoint(run_dir: Path, step: int, model, ema_state: dict, optimizer, extra_state: dict,
                    generator: torch.Generator, experiment: dict, keep: int = 2) -> Path:
    ckpt_root = Path(run_dir) / "checkpoints"
    final = ckpt_root / f"step-{step:08d}"
    tmp = ckpt_root / f".tmp-step-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, ema_state=ema_state, include_raw=True)
    opt_tensors, groups = optimizer_to_tensors(optimizer)
    opt_tensors["rng.generator"] = generator.get_state()
    opt_tensors["rng.torch"] = torch.get_rng_state()
    save_safetensors(opt_tensors, tmp / "optimizer.safetensors")
    state = {
        "step": step,
        "param_groups": groups,
        "numpy_rng": _jsonable(np.random.get_state()),
        "python_rng": _jsonable(random.getstate()),
        "experiment": experiment,
        **extra_state,
    }
    atomic_write_text(tmp / "state.json", json.dumps(state) + "\n")
    return publish_checkpoint(tmp, final, keep)


def publish_checkpoint(tmp: Path, final: Path, keep: int) -> Path:
    """Rename the finished folder ``tmp`` to ``final``, point ``latest`` at it, keep the newest ``keep``."""
    _fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    root = final.parent
    atomic_write_text(root / "latest", final.name + "\n")
    for old in sorted(root.glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = Path(run_dir) / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    path = pointer.parent / pointer.read_text().strip()
    if not (path / "state.json").is_file():
        raise FacesrError(f"{pointer}: names {path.name}, which is missing or incomplete")
    return path


def load_checkpoint(path: Path, model, optimizer, generator: torch.Generator) -> tuple[dict, dict]:
    """Restore weights, optimizer and RNG states; return (state.json, ema tensors). A checkpoint that
    is damaged, or made for another model or optimizer config, is one FacesrError naming it."""
    try:
        state = json.loads((path / "state.json").read_text())
        if not isinstance(state, dict) or not isinstance(state.get("step"), int):
            raise ValueError("no step")
    except (OSError, UnicodeDecodeError, ValueError):
        raise FacesrError(f"{path / 'state.json'}: damaged checkpoint state (not the JSON a checkpoint writes)") from None
    try:
        missing, unexpected = model.load_state_dict(load_safetensors(path / "model.safetensors"), strict=False)
    except RuntimeError:
        missing, unexpected = ["(shapes differ)"], []
    if missing or unexpected:
        raise FacesrError(f"{path}: checkpoint does not match the model config (was the config changed?)")
    tensors = load_safetensors(path / "optimizer.safetensors")
    try:
        generator.set_state(tensors.pop("rng.generator"))
        torch.set_rng_state(tensors.pop("rng.torch"))
        optimizer_from_tensors(optimizer, tensors, state["param_groups"])
        np.random.set_state(_from_jsonable_numpy(state["numpy_rng"]))
        random.setstate(_tuplify(state["python_rng"]))
    except (KeyError, ValueError, TypeError, RuntimeError):
        raise FacesrError(f"{path}: checkpoint does not match the optimizer config or is damaged "
                          "(was optim.lr_scale changed?)") from None
    return state, load_safetensors(path / "ema.safetensors")


def _jsonable(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (tuple, list)):
        return [_jsonable(o) for o in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _tuplify(obj):
    return tuple(_tuplify(o) for o in obj) if isinstance(obj, list) else obj


def _from_jsonable_numpy(state):
    name, keys, pos, has_gauss, cached = state
    return (name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached)


def _fsync_dir(folder: Path) -> None:
    for p in folder.iterdir():
        with open(p, "rb") as fh:
            os.fsync(fh.fileno())
