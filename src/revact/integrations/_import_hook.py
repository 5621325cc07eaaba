"""Run a function right after a module is first imported, without importing it.

``import revact`` registers its models and layers with timm and Ultralytics this way: at once
when they are already imported, otherwise from a one-shot import hook that runs the
registration when their module has finished executing. revact never imports them itself.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["call_after_import"]


def call_after_import(module: str, callback: Callable[[], object]) -> None:
    """Call ``callback`` now if ``module`` is imported, else right after its first import.

    The callback runs inside someone else's ``import``: a failure is reported as a warning,
    never raised, so a release of the other package that revact does not fit stays usable.
    """
    if module in sys.modules:
        _call_quietly(module, callback)
    elif not any(isinstance(f, _AfterImport) and f.key == (module, callback)
                 for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(module, callback))


def _call_quietly(module: str, callback: Callable[[], object]) -> None:
    try:
        callback()
    except Exception as e:  # noqa: BLE001 - reported, never raised (see call_after_import)
        warnings.warn(f"revact could not register with {module}: {e!r}", stacklevel=3)


class _CallbackLoader(importlib.abc.Loader):
    """The module's own loader, followed by the callback."""

    def __init__(self, loader: importlib.abc.Loader, module: str,
                 callback: Callable[[], object]) -> None:
        self._loader, self._module, self._callback = loader, module, callback

    def __getattr__(self, name: str) -> Any:  # is_package, get_resource_reader, ...
        return getattr(self._loader, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _call_quietly(self._module, self._callback)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds the module through the other finders and wraps its loader (one shot)."""

    def __init__(self, module: str, callback: Callable[[], object]) -> None:
        self.key = (module, callback)

    def find_spec(self, fullname, path, target=None):  # noqa: ANN001 - importlib's signature
        module, callback = self.key
        if fullname != module:
            return None
        sys.meta_path.remove(self)  # one shot; also keeps the lookup below from recursing
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None:
            spec.loader = _CallbackLoader(spec.loader, module, callback)
        return spec
