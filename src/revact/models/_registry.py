"""Name → model builder registry for the reference networks."""

from __future__ import annotations

import difflib
from collections.abc import Callable

from torch import nn

from revact._names import normalise_name

__all__ = ["register_model", "create_model", "list_models"]

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a builder under its function name (timm style)."""
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """Names accepted by :func:`create_model` and ``--model``."""
    return sorted(_MODELS)


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered reference network.

    Args:
        name: one of :func:`list_models`.
        **kwargs: forwarded to the builder, e.g. ``act_layer='dyrelu_b'``, ``num_classes=10``,
            ``in_chans=1``.

    Raises:
        ValueError: unknown name; the message lists the valid ones.
    """
    key = normalise_name(name)
    if key not in _MODELS:
        close = difflib.get_close_matches(key, _MODELS, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown model {name!r}.{hint} Known: {', '.join(list_models())}")
    return _MODELS[key](**kwargs)
