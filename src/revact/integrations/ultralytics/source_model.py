"""Which model a ``YOLO.train()`` call was made on, so that swapped activations are not lost.

Ultralytics' trainer never receives the model ``YOLO.train()`` was called on when that model
was built from a YAML (it rebuilds from the YAML's path), and Ultralytics' own trainer
rebuilds even a loaded checkpoint from the YAML inside it. Activations swapped in with
:func:`revact.swap_activations` are not in either YAML, so both turn them back into SiLU
without a word. A callback that runs as the trainer is constructed (inside ``YOLO.train``)
finds the calling ``YOLO`` object on the stack and remembers its model for that trainer:
revact's :class:`~revact.integrations.ultralytics.DetectionTrainer` then trains that model
itself, and any other trainer gets a one-line warning naming the fix.
"""

from __future__ import annotations

import sys
import warnings
import weakref

from torch import nn

__all__ = ["install", "source_model", "LostActivationsWarning"]

# trainer -> the model YOLO.train() was called on; weak both ways (a trainer is pickled
# for DDP workers, so nothing is stored on it).
_SOURCES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_STACK_DEPTH = 12  # callback <- run_callbacks <- trainer __init__ (<- subclasses) <- train


class LostActivationsWarning(UserWarning):
    """Ultralytics' trainer dropped revact modules the model being trained had."""


def _remember_source(trainer) -> None:  # noqa: ANN001 - Ultralytics' trainer
    from ultralytics.engine.model import Model

    frame = sys._getframe(1)
    for _ in range(_STACK_DEPTH):
        if frame is None:
            return
        owner = frame.f_locals.get("self")
        if isinstance(owner, Model) and frame.f_code.co_name == "train":
            if isinstance(owner.model, nn.Module):
                _SOURCES[trainer] = weakref.ref(owner.model)
            return
        frame = frame.f_back


def source_model(trainer) -> nn.Module | None:  # noqa: ANN001
    """The model ``YOLO.train()`` was called on for ``trainer``, if it is still alive."""
    ref = _SOURCES.get(trainer)
    return ref() if ref is not None else None


def _warn_if_lost(trainer) -> None:  # noqa: ANN001
    from revact.integrations.ultralytics import count_revact_modules

    source = source_model(trainer)
    if source is None or not isinstance(trainer.model, nn.Module):
        return
    had, has = count_revact_modules(source), count_revact_modules(trainer.model)
    lost = {k: n - has[k] for k, n in had.items() if has[k] < n}
    if lost:
        from ultralytics.utils import LOGGER

        msg = (f"revact: {type(trainer).__name__} rebuilt the model from its YAML and dropped "
               f"revact modules the YAML does not describe ({lost}); they train as SiLU. Pass "
               "trainer=revact.integrations.ultralytics.DetectionTrainer (revact yolo train "
               "does), or put the activation in the YAML (activation: ChannelAct(...)).")
        LOGGER.warning(msg)
        warnings.warn(msg, LostActivationsWarning, stacklevel=2)


def install() -> None:
    """Add the two callbacks to Ultralytics' defaults, which every new model copies. Idempotent."""
    from ultralytics.utils.callbacks.base import default_callbacks

    for event, fn in (("on_pretrain_routine_start", _remember_source),
                      ("on_pretrain_routine_end", _warn_if_lost)):
        if fn not in default_callbacks[event]:
            default_callbacks[event].append(fn)
