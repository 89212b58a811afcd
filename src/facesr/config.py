"""Typed, serialisable configs: dataclasses to and from plain JSON dicts."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path

from facesr.errors import FacesrError


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def from_dict(cls, data: dict, where: str = "config"):
    """Build dataclass ``cls`` from ``data``; unknown keys are an error, not ignored."""
    if not isinstance(data, dict):
        raise FacesrError(f"{where}: expected an object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise FacesrError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(hints[name], value, f"{where}.{name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, FacesrError) as exc:
        raise FacesrError(f"{where}: {exc}") from None


def _convert(hint, value, where):
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, where)
    if origin is tuple:
        return tuple(value)
    if hint is float and isinstance(value, int):
        return float(value)
    return value


def load_json(path: str | Path) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FacesrError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise FacesrError(f"{path}: is a folder, not a JSON file") from None
    except UnicodeDecodeError:
        raise FacesrError(f"{path}: not a text file") from None
    except json.JSONDecodeError as exc:
        raise FacesrError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except OSError as exc:
        raise FacesrError(f"{path}: cannot read ({exc.strerror})") from None
