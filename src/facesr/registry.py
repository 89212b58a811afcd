"""Small registries: a name -> a class, function or spec, filled where each thing is defined.

Nothing is scanned at import time. A registry imports the defining modules only when a name is
looked up or the names are listed: either a fixed list of ``modules``, or a ``package`` whose
module for name ``a-b`` is ``<package>.a_b`` (one file per entry, e.g. ``facesr.methods``).
"""

from __future__ import annotations

import importlib
import pkgutil

from facesr.errors import FacesrError


class Registry:
    def __init__(self, kind: str, modules: tuple[str, ...] = (), package: str | None = None):
        self.kind, self.modules, self.package = kind, tuple(modules), package
        self._items: dict[str, object] = {}

    def register(self, name: str, obj=None):
        """``registry.register(name, obj)``, or ``@registry.register(name)`` on a class or function."""
        if obj is not None:
            return self._add(name, obj)
        return lambda target: self._add(name, target)

    def _add(self, name: str, obj):
        if name in self._items and self._items[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = obj
        return obj

    def _import_all(self) -> None:
        for module in self.modules:
            importlib.import_module(module)
        if self.package:
            pkg = importlib.import_module(self.package)
            for info in pkgutil.iter_modules(pkg.__path__):
                if not info.name.startswith("_"):
                    importlib.import_module(f"{self.package}.{info.name}")

    def get(self, name: str):
        if name not in self._items:
            if self.package and name.replace("-", "_").isidentifier():
                try:
                    importlib.import_module(f"{self.package}.{name.replace('-', '_')}")
                except ModuleNotFoundError:
                    pass
            if name not in self._items:
                self._import_all()
        if name not in self._items:
            raise FacesrError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self.names())}")
        return self._items[name]

    def names(self) -> list[str]:
        self._import_all()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        try:
            self.get(name)
        except FacesrError:
            return False
        return True
