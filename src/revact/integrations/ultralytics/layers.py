"""Layers for Ultralytics model YAMLs: per-Conv activations and the RevCol backbone.

Nothing here imports Ultralytics: these are plain PyTorch modules and descriptors, made
visible to Ultralytics' YAML parser by :func:`revact.integrations.ultralytics.register`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from revact.activations.create_act import act_spec, create_act
from revact.revcol.variants import VARIANTS, RevColVariant

__all__ = ["ChannelAct", "RevColBackbone", "conv_out_channels"]


def conv_out_channels(conv: nn.Module) -> int:
    """Output channels of an Ultralytics ``Conv``-like module (its BatchNorm's, or its conv's)."""
    bn = getattr(conv, "bn", None)
    if isinstance(bn, nn.modules.batchnorm._BatchNorm):
        return bn.num_features
    inner = getattr(conv, "conv", None)
    if isinstance(inner, nn.Conv2d):
        return inner.out_channels
    raise TypeError(
        f"ChannelAct sizes an activation from its module's 'bn' (BatchNorm) or 'conv' "
        f"(Conv2d); {type(conv).__name__} has neither"
    )


class ChannelAct:
    """An Ultralytics ``activation:`` value that gives every Conv its own activation.

    Ultralytics evaluates a model YAML's ``activation:`` key and stores the result as the
    class attribute ``Conv.default_act``; every Conv then runs ``self.act =
    self.default_act``, so a plain module there is *one* instance shared by all convs, and a
    channel-aware activation cannot be sized. As a descriptor, ``ChannelAct`` builds a new
    activation each time a Conv reads ``default_act``, sized to that Conv's output channels
    (its BatchNorm is built before the activation is read).

    Read from the class itself (old-style SPPF rows do ``cv1.act = Conv.default_act``) it
    returns a placeholder that :func:`~revact.integrations.ultralytics.register`'s module
    registration hook replaces, on assignment, by an activation sized to the module it is
    assigned to.

    Args:
        act: an activation name from :func:`revact.list_acts` or an ``nn.Module`` class.
        **kwargs: passed to :func:`revact.create_act` (e.g. ``k=3``, ``reduction=8``).

    Example (model YAML)::

        activation: ChannelAct("dyrelu_b")      # or ChannelAct("meta_acon", r=8)
    """

    def __init__(self, act: str | type[nn.Module], **kwargs) -> None:
        if isinstance(act, str):
            act_spec(act)  # unknown names fail here, while the YAML is parsed
        elif not (isinstance(act, type) and issubclass(act, nn.Module)):
            raise TypeError(
                f"ChannelAct expects an activation name or an nn.Module class, got {act!r}"
            )
        self.act, self.kwargs = act, kwargs

    def build(self, channels: int) -> nn.Module:
        return create_act(self.act, channels=channels, **self.kwargs)

    def __get__(self, conv: nn.Module | None, owner: type) -> nn.Module:
        if conv is None:
            return PendingChannelAct(self)
        return self.build(conv_out_channels(conv))

    def __repr__(self) -> str:
        args = [repr(self.act if isinstance(self.act, str) else self.act.__name__)]
        args += [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"ChannelAct({', '.join(args)})"


class PendingChannelAct(nn.Module):
    """Stands for a :class:`ChannelAct` activation until it is assigned to a Conv."""

    def __init__(self, spec: ChannelAct) -> None:
        super().__init__()
        self.spec = spec

    def forward(self, x: Tensor) -> Tensor:
        raise RuntimeError(
            f"{self.spec!r} was read from the Conv class and never assigned to a Conv, so it "
            "has no channel count; call revact.integrations.ultralytics.register() before "
            "building the model"
        )


def resolve_pending_act(parent: nn.Module, name: str, child: nn.Module) -> nn.Module | None:
    """Module-registration hook: a placeholder assigned to a Conv becomes a sized activation."""
    if isinstance(child, PendingChannelAct):
        return child.spec.build(conv_out_channels(parent))
    return None


def _variant(variant: str | Mapping[str, Any]) -> RevColVariant:
    if isinstance(variant, Mapping):
        keys = {"channels", "layers", "columns"}
        if set(variant) != keys:
            raise ValueError(
                f"a custom RevCol variant needs exactly the keys {sorted(keys)}, "
                f"got {sorted(variant)}"
            )
        return RevColVariant(variant["channels"], variant["layers"], variant["columns"])
    if variant not in VARIANTS:
        raise ValueError(
            f"unknown RevCol variant {variant!r}; known: {', '.join(VARIANTS)}, or a mapping "
            "{channels: [...], layers: [...], columns: n}"
        )
    return VARIANTS[variant]


class RevColBackbone(nn.Module):
    r"""RevCol as the first layer of an Ultralytics model: returns its four feature maps.

    Ultralytics' own ``Index`` rows then pick the maps that the neck uses, with their
    (known, unscaled) channel counts::

        backbone:
          - [-1, 1, RevColBackbone, [tiny]]   # 0: [c0, c1, c2, c3] at strides 4, 8, 16, 32
          - [0, 1, Index, [128, 1]]           # 1: P3/8
          - [0, 1, Index, [256, 2]]           # 2: P4/16
          - [0, 1, Index, [512, 3]]           # 3: P5/32

    Args:
        variant: a published size (``tiny``, ``small``, ``base``, ``large``, ``xlarge``), or
            a mapping ``{channels: [..4..], layers: [..4..], columns: n}`` for a custom one
            (drop path 0 unless given).
        act: the ConvNeXt blocks' activation (name or class). Default: GELU, as published.
        memory: RevCol's memory mode (``'none'``, ``'column'``, ``'full'``). Default:
            ``'none'``, as the authors used it for detection (fastest).
        drop_path: stochastic depth rate. Default: the variant's published rate.
        in_chans: input channels. Default: 3

    Shape:
        - Input: :math:`(N, C_{in}, H, W)`, :math:`H, W \ge 32`.
        - Output: four maps :math:`(N, C_i, H_i, W_i)` at strides 4, 8, 16, 32.
    """

    def __init__(
        self,
        variant: str | Mapping[str, Any] = "tiny",
        act: str | type[nn.Module] | None = None,
        memory: str = "none",
        drop_path: float | None = None,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        extra = {} if act is None else {"act_layer": act}
        if drop_path is not None:
            extra["drop_path"] = drop_path
        self.variant = variant
        self.body = _variant(variant).build(memory=memory, features_only=True,
                                            in_chans=in_chans, **extra)

    @property
    def width_list(self) -> Sequence[int]:
        """Channels of the four maps (strides 4, 8, 16, 32)."""
        return self.body.channels

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.body(x)

    def extra_repr(self) -> str:
        return f"variant={self.variant!r}"
