"""revact inside Ultralytics YOLO (8.4.x), with no edits to Ultralytics' source.

Three lines replace the usual page of hand edits to ``tasks.py``::

    import revact                                   # registers revact's names with Ultralytics
    from ultralytics import YOLO
    YOLO(revact.integrations.ultralytics.model_cfg("yolov8n-dyrelu_b.yaml")).train(data=...)

or, from a shell, ``revact yolo train model=yolov8n-dyrelu_b.yaml data=...``.

What :func:`register` makes available by name in model YAMLs:

- every revact activation class (``AconC``, ``MetaAcon``, ``DyReLUB``, ...) as a layer;
- :class:`ChannelAct` as the ``activation:`` value: each Conv gets its own activation,
  sized to its channels;
- :class:`RevColBackbone`, whose four maps Ultralytics' ``Index`` rows pick for the neck.

Importing revact registers automatically, as soon as Ultralytics' ``tasks`` module is
loaded too; checkpoints holding revact modules import revact when they are unpickled, so
``YOLO("best.pt")``, retraining from it and DDP workers work in processes that never
import revact themselves. With ``REVACT_NO_IMPORT_HOOKS=1`` in the environment nothing is
registered at import: call :func:`register` before building a model from a YAML that uses
revact's names (``revact yolo``, ``revact flops`` and ``revact export`` call it).

Use :class:`DetectionTrainer` (``trainer=`` of ``YOLO.train``; ``revact yolo train`` does)
to keep weight decay off the activations' parameters and to keep activations swapped into
a loaded model when it is retrained.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from torch import nn

from revact.activations import acon, dyrelu
from revact.integrations.flops import register_thop_rules
from revact.integrations.ultralytics import source_model
from revact.integrations.ultralytics.layers import (
    ChannelAct,
    RevColBackbone,
    conv_out_channels,
    resolve_pending_act,
)

__all__ = [
    "ChannelAct",
    "DetectionTrainer",
    "RevColBackbone",
    "conv_out_channels",
    "count_revact_modules",
    "list_cfgs",
    "model_cfg",
    "register",
    "yaml_names",
]

CFG_DIR = Path(__file__).with_name("cfg")

_hook_handle: Any = None


def yaml_names() -> dict[str, object]:
    """The names :func:`register` adds to Ultralytics' YAML namespace, and what they mean."""
    classes = [getattr(mod, n) for mod in (acon, dyrelu) for n in mod.__all__]
    names: dict[str, object] = {c.__name__: c for c in classes}
    names["MetaAconC"] = acon.MetaAconC
    names["ChannelAct"] = ChannelAct
    names["RevColBackbone"] = RevColBackbone
    return names


def register() -> None:
    """Make revact's layers usable by name in Ultralytics model YAMLs. Idempotent.

    Ultralytics' ``parse_model`` resolves a layer name in the globals of
    ``ultralytics.nn.tasks`` and evaluates the ``activation:`` value there; those globals
    are its only lookup, so the names are set there. Also installs a module-registration
    hook that sizes :class:`ChannelAct` placeholders when they are assigned to a Conv, and
    gives thop (behind Ultralytics' printed GFLOPs) counting rules for revact's activations,
    which it would otherwise count as free (:func:`revact.integrations.flops.register_thop_rules`),
    and two default callbacks that keep activations swapped into a model from being lost
    when it is trained (:mod:`revact.integrations.ultralytics.source_model`).

    Raises:
        RuntimeError: a name is already bound there to something else (an Ultralytics
            release that added a layer of the same name).
    """
    global _hook_handle
    import ultralytics.nn.tasks as tasks

    for name, obj in yaml_names().items():
        current = tasks.__dict__.get(name, obj)
        if current is not obj:
            raise RuntimeError(
                f"ultralytics.nn.tasks already defines {name!r} ({current!r}); revact would "
                f"shadow it with {obj!r}. Please report this with your Ultralytics version."
            )
        setattr(tasks, name, obj)
    if _hook_handle is None:
        _hook_handle = nn.modules.module.register_module_module_registration_hook(
            resolve_pending_act
        )
        register_thop_rules()
        source_model.install()


def list_cfgs() -> list[str]:
    """Model YAMLs shipped with revact (a scale letter may be added: yolov8n-acon_c.yaml)."""
    return sorted(p.name for p in CFG_DIR.glob("*.yaml"))


def model_cfg(name: str | Path) -> str:
    """Path of a shipped model YAML, or ``name`` unchanged when it is not one of them.

    Accepts Ultralytics' scale convention: ``yolov8n-dyrelu_b.yaml`` is
    ``yolov8-dyrelu_b.yaml`` at scale ``n`` (Ultralytics reads the scale from the file name,
    so the returned path keeps it).
    """
    text = str(name)
    if Path(text).parent != Path(".") or not text.endswith((".yaml", ".yml")):
        return text
    unscaled = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", text)
    if (CFG_DIR / unscaled).is_file() or (CFG_DIR / text).is_file():
        return str(CFG_DIR / text)
    return text


def count_revact_modules(model: nn.Module) -> Counter[str]:
    """How many modules of each revact class ``model`` holds (shared instances once per use)."""
    return Counter(
        type(m).__name__
        for _, m in model.named_modules(remove_duplicate=False)
        if type(m).__module__.startswith("revact.")
    )


def __getattr__(name: str) -> Any:
    # The trainer subclasses Ultralytics' trainer: import it (and Ultralytics) only on use.
    if name == "DetectionTrainer":
        from revact.integrations.ultralytics.trainer import DetectionTrainer

        return DetectionTrainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

