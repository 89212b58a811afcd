"""Typed, serialisable configs: dataclasses to and from plain JSON dicts.

``from_dict`` checks every value against its field's annotation (JSON types: a bool is
true/false, an int is a whole number and not a bool, a float is any finite number, a
tuple is a list, checked element by element; ``X | None`` also takes null) and names the
file and the dotted key of a bad value: ``configs/x.json: optim.batch_size: expected an
integer, got 2.5``. A config class's ``__post_init__`` raises ``ConfigValueError(key,
problem)`` for a value out of range, which ``from_dict`` locates the same way.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path

from facesr.errors import FacesrError


class ConfigValueError(FacesrError):
    """A config value that is out of range: ``key`` (relative to its dataclass) and the problem."""

    def __init__(self, key: str, problem: str):
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


def finite(value) -> bool:
    """A real, finite number (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def at_least(cfg, name: str, low) -> None:
    """ConfigValueError unless the field ``name`` of ``cfg`` is a finite number >= ``low``."""
    value = getattr(cfg, name)
    if not finite(value) or value < low:
        raise ConfigValueError(name, f"must be at least {low}, got {value!r}")


def show(value) -> str:
    """A value as it would read in the JSON file, shortened."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def _place(where: str, key: str) -> str:
    return f"{where}: {key}" if key else where


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def from_dict(cls, data: dict, where: str = "config", key: str = ""):
    """Build dataclass ``cls`` from ``data``; unknown keys and values of the wrong type are an error.

    ``where`` names the file (or other source) in error messages, ``key`` the dotted place of
    ``data`` inside it ("" for the top level)."""
    if not isinstance(data, dict):
        raise FacesrError(f"{_place(where, key)}: expected an object, got {show(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = set(data) - set(fields)
    if unknown:
        raise FacesrError(f"{_place(where, key)}: unknown key(s) {sorted(unknown)}; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(hints[name], value, where, _join(key, name))
    try:
        return cls(**kwargs)
    except ConfigValueError as exc:
        raise FacesrError(f"{where}: {_join(key, exc.key)}: {exc.problem}") from None
    except (TypeError, ValueError, FacesrError) as exc:
        raise FacesrError(f"{_place(where, key)}: {exc}") from None


_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "an object",
          list: "a list", tuple: "a list"}


def _describe(hint) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        names = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(names + (["null"] if type(None) in args else []))
    if dataclasses.is_dataclass(hint):
        return "an object"
    if origin is tuple or origin is list:
        args = typing.get_args(hint)
        if origin is tuple and args and args[-1] is not Ellipsis:
            items = {_describe(a) for a in args}
            what = _plural(items.pop()) if len(items) == 1 else "items"
            return f"a list of {len(args)} {what}"
        return f"a list of {_plural(_describe(args[0]))}" if args else "a list"
    return _NAMES.get(origin or hint, getattr(hint, "__name__", str(hint)))


def _plural(name: str) -> str:
    return {"an integer": "integers", "a number": "numbers", "a string": "strings", "an object": "objects",
            "true or false": "booleans"}.get(name, "items")


class _Mismatch(Exception):
    """A value of the wrong type (internal: ``_convert`` turns it into a located FacesrError)."""


def _convert(hint, value, where: str, key: str):
    try:
        return _check(hint, value, where, key)
    except _Mismatch:
        raise FacesrError(f"{where}: {key}: expected {_describe(hint)}, got {show(value)}") from None


def _check(hint, value, where: str, key: str):
    """``value`` as the type ``hint`` asks for; _Mismatch if it is of another type. Nested values
    (list items, dataclasses) raise their own located FacesrError."""
    origin = typing.get_origin(hint)
    if hint is typing.Any or isinstance(hint, typing.TypeVar):
        return value
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise _Mismatch
        return from_dict(hint, value, where, key)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None:
            if type(None) in args:
                return None
            raise _Mismatch
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check(arg, value, where, key)
            except _Mismatch:
                pass
        raise _Mismatch
    if hint is bool:
        if not isinstance(value, bool):
            raise _Mismatch
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Mismatch
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Mismatch
        if not math.isfinite(value):
            raise FacesrError(f"{where}: {key}: expected a finite number, got {show(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _Mismatch
        return value
    if origin is tuple or origin is list or hint in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        args = typing.get_args(hint)
        if not args:
            items = list(value)
        elif origin is tuple and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise _Mismatch
            items = [_convert(a, v, where, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value))]
        else:
            items = [_convert(args[0], v, where, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin or hint) is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        args = typing.get_args(hint)
        if not args:
            return value
        return {_convert(args[0], k, where, key): _convert(args[1], v, where, _join(key, str(k)))
                for k, v in value.items()}
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
