"""Tensors on disk: safetensors only (no pickles), written atomically with the usual file mode."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from facesr.errors import FacesrError
from facesr.io.images import TEMP_PREFIX, default_file_mode


def file_sha256(path) -> str:
    """The sha256 of a file's bytes (weights provenance, judge checks, cache keys)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_safetensors(tensors: dict, path, metadata: dict | None = None) -> None:
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(f"{TEMP_PREFIX}{path.name}")
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
        os.chmod(tmp, default_file_mode())  # safetensors creates 0600 files
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_safetensors(path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise FacesrError(f"{path}: cannot read weights ({exc})") from None
