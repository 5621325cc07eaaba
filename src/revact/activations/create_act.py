"""Name → activation registry, in the manner of timm's ``create_act``.

Every activation is reachable by name (``create_act('acon_c', channels=64)``) or by
class (``create_act(AconC, channels=64)``). Functions ``torch.nn`` already has map to
the ``torch.nn`` class itself.
"""

from __future__ import annotations

import ast
import difflib
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from revact._names import normalise_name
from revact.activations._layout import check_channels
from revact.activations.acon import AconA, AconB, AconC, MetaAcon, Swish
from revact.activations.dyrelu import DyReLUA, DyReLUB, DyReLUC

__all__ = ["ActSpec", "create_act", "get_act_layer", "list_acts", "act_spec", "parse_act_string"]


@dataclass(frozen=True)
class ActSpec:
    """How to build one registered activation.

    Attributes:
        name: registry name.
        cls: the module class built.
        family: ``'classic'``, ``'acon'`` or ``'dyrelu'``.
        needs_channels: building it without ``channels`` is an error.
        channel_arg: the constructor argument that receives ``channels`` (None: ignored).
        defaults: keyword arguments applied before the caller's.
    """

    name: str
    cls: type[nn.Module]
    family: str
    needs_channels: bool = False
    channel_arg: str | None = None
    defaults: dict = field(default_factory=dict)

    def build(self, channels: int | None = None, **kwargs) -> nn.Module:
        if self.needs_channels and channels is None:
            raise ValueError(
                f"activation {self.name!r} is channel-aware: pass channels=<number of "
                f"input channels>, e.g. create_act({self.name!r}, channels=64)"
            )
        if channels is not None:
            check_channels(channels, f"activation {self.name!r}")
        args = {**self.defaults, **kwargs}
        if channels is not None and self.channel_arg is not None:
            args[self.channel_arg] = channels
        return self.cls(**args)


def _specs() -> dict[str, ActSpec]:
    classic = [
        ("sigmoid", nn.Sigmoid, {}),
        ("logsigmoid", nn.LogSigmoid, {}),
        ("tanh", nn.Tanh, {}),
        ("relu", nn.ReLU, {}),
        ("relu6", nn.ReLU6, {}),
        ("leaky_relu", nn.LeakyReLU, {}),
        ("elu", nn.ELU, {}),
        ("softplus", nn.Softplus, {}),
        ("silu", nn.SiLU, {}),
        ("mish", nn.Mish, {}),
        ("gelu", nn.GELU, {}),
        ("gelu_tanh", nn.GELU, {"approximate": "tanh"}),
        ("hard_swish", nn.Hardswish, {}),
        ("hard_sigmoid", nn.Hardsigmoid, {}),
    ]
    specs = [ActSpec(name, cls, "classic", defaults=d) for name, cls, d in classic]
    specs += [
        # One slope per channel when channels are given, one shared slope otherwise.
        ActSpec("prelu", nn.PReLU, "classic", channel_arg="num_parameters"),
        ActSpec("swish", Swish, "acon", channel_arg="channels"),
        ActSpec("acon_a", AconA, "acon", True, "channels"),
        ActSpec("acon_b", AconB, "acon", True, "channels"),
        ActSpec("acon_c", AconC, "acon", True, "channels"),
        ActSpec("meta_acon", MetaAcon, "acon", True, "channels"),
        ActSpec("dyrelu_a", DyReLUA, "dyrelu", True, "channels"),
        ActSpec("dyrelu_b", DyReLUB, "dyrelu", True, "channels"),
        ActSpec("dyrelu_c", DyReLUC, "dyrelu", True, "channels"),
    ]
    return {s.name: s for s in specs}


_REGISTRY = _specs()
# Classes registered under one name only, so a class finds its spec. nn.GELU has
# two names; the class alone means the exact (erf) form.
_BY_CLASS = {s.cls: s for s in reversed(_REGISTRY.values())}


def list_acts(family: str | None = None) -> list[str]:
    """Registered activation names, optionally of one family ('classic', 'acon', 'dyrelu')."""
    return [n for n, s in _REGISTRY.items() if family is None or s.family == family]


def parse_act_string(text: str) -> tuple[str, dict[str, Any]]:
    """``'dyrelu_b:k=3:reduction=8'`` -> ``('dyrelu_b', {'k': 3, 'reduction': 8})``.

    An activation string is a registry name, optionally followed by ``:key=value``
    constructor options. Values are Python literals where they parse as one (``3``,
    ``0.5``, ``True``) and strings otherwise (``init=swish``). The name is normalised
    (case, ``-``); the options are kept as written.

    Raises:
        ValueError: an option is not ``key=value``.
    """
    name, *options = text.strip().split(":")
    kwargs: dict[str, Any] = {}
    for option in options:
        key, sep, value = option.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"activation option {option!r} in {text!r} is not key=value "
                             "(example: acon_c:init=swish)")
        try:
            kwargs[key] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            kwargs[key] = value.strip()
    return normalise_name(name), kwargs


def act_spec(name: str) -> ActSpec:
    """The :class:`ActSpec` registered under ``name`` (options after ``:`` are ignored);
    ``ValueError`` with close matches."""
    key = parse_act_string(name)[0]
    if key in _REGISTRY:
        return _REGISTRY[key]
    close = difflib.get_close_matches(key, _REGISTRY, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(
        f"unknown activation {name!r}.{hint} Known: {', '.join(_REGISTRY)}"
    )


def get_act_layer(name_or_class: str | type[nn.Module]) -> Callable[..., nn.Module]:
    """A factory ``f(channels=None, **kwargs) -> nn.Module`` for an activation.

    The ``act_layer=`` argument of model builders accepts what this returns, so a model
    can take either a name or a class.
    """
    return functools.partial(create_act, name_or_class)


def create_act(
    name_or_class: str | type[nn.Module], channels: int | None = None, **kwargs
) -> nn.Module:
    """Build an activation module by registry name or class.

    Args:
        name_or_class: a name from :func:`list_acts` (case and ``-``/``_`` insensitive),
            optionally with constructor options as ``:key=value`` (``'acon_c:init=swish'``,
            ``'dyrelu_c:relu_init=True'``; see :func:`parse_act_string`), or an
            ``nn.Module`` subclass. Keyword arguments win over options in the string.
        channels: number of input channels; required by channel-aware activations
            (ACON-A/B/C, Meta-ACON, DY-ReLU), optional for PReLU and Swish.
        **kwargs: passed to the constructor (e.g. ``k=3`` for DY-ReLU, ``negative_slope``
            for LeakyReLU).

    Raises:
        ValueError: unknown name (close matches are listed), an option the activation
            does not take, or a channel-aware activation without ``channels``.

    Example::

        >>> create_act("dyrelu_b", channels=64, reduction=8)
        DyReLUB(channels=64, reduction=8, k=2, ...)
        >>> create_act("acon_c:init=swish", channels=64)   # starts as x·σ(x)
        AconC(channels=64, init='swish')
    """
    if isinstance(name_or_class, str):
        name, options = parse_act_string(name_or_class)
        spec = act_spec(name)
        if not options:
            return spec.build(channels, **kwargs)
        try:
            return spec.build(channels, **{**options, **kwargs})
        except TypeError as e:  # an option the constructor does not take
            raise ValueError(f"activation {name_or_class!r}: {e}") from None
    if isinstance(name_or_class, type) and issubclass(name_or_class, nn.Module):
        spec = _BY_CLASS.get(name_or_class)
        if spec is not None:
            return spec.build(channels, **kwargs)
        if channels is not None and "channels" in inspect.signature(name_or_class).parameters:
            kwargs["channels"] = channels
        return name_or_class(**kwargs)
    raise TypeError(
        "create_act expects an activation name or an nn.Module subclass, "
        f"got {type(name_or_class).__name__}: {name_or_class!r}"
    )
