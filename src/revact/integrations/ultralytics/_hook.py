"""Register revact with Ultralytics as soon as both are imported, in either order.

``import revact`` calls :func:`register_when_imported`. Ultralytics checkpoints pickle whole
modules, so loading one that holds revact modules imports revact: from then on the YAML
parser knows revact's names, including when Ultralytics rebuilds the model from the YAML
stored in the checkpoint. When Ultralytics is imported after revact, a one-shot import hook
registers right after ``ultralytics.nn.tasks`` has run. Nothing here imports Ultralytics.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

_TASKS = "ultralytics.nn.tasks"


def _register() -> None:
    from revact.integrations.ultralytics import register

    register()


class _RegisteringLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _register()


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Finds ``ultralytics.nn.tasks`` through the other finders and wraps its loader."""

    def find_spec(self, fullname, path, target=None):  # noqa: ANN001 - importlib's signature
        if fullname != _TASKS:
            return None
        sys.meta_path.remove(self)  # one shot; also keeps the lookup below from recursing
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader)
        return spec


def register_when_imported() -> None:
    """Register now if Ultralytics' YAML parser is loaded, else right after it loads."""
    if _TASKS in sys.modules:
        _register()
    elif not any(isinstance(f, _RegisterAfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())
