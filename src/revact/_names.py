"""How revact spells the names it looks up (activations, models): one rule for every registry."""

from __future__ import annotations

__all__ = ["normalise_name"]


def normalise_name(name: str) -> str:
    """``' ACON-C '`` → ``'acon_c'``: surrounding spaces dropped, lower case, ``-`` as ``_``.

    :func:`revact.create_act`, :func:`revact.models.create_model`, the commands' ``--act``
    and ``--model`` and the model names of ``revact flops`` / ``revact export`` all accept
    any spelling this maps to a registered name.
    """
    return name.strip().lower().replace("-", "_")
