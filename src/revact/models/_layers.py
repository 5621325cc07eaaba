"""Building blocks shared by the reference networks."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

__all__ = ["ActLayer", "make_act", "ConvBnAct"]

# An activation given as a registry name, an nn.Module class, or a factory f(channels=...).
ActLayer = str | type[nn.Module] | Callable[..., nn.Module]


def make_act(act_layer: ActLayer, channels: int) -> nn.Module:
    """A fresh activation module for a ``channels``-wide feature map.

    Every call builds a new instance: adaptive activations (ACON-C, DY-ReLU) carry
    per-channel parameters and must not be shared between layers.
    """
    from revact import create_act

    if isinstance(act_layer, str) or isinstance(act_layer, type):
        return create_act(act_layer, channels=channels)
    return act_layer(channels=channels)


class ConvBnAct(nn.Sequential):
    """Conv2d → BatchNorm2d → activation (or no activation when ``act_layer`` is None)."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        act_layer: ActLayer | None = "relu",
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2,
                      groups=groups, bias=False),
            nn.BatchNorm2d(out_chs),
        ]
        if act_layer is not None:
            layers.append(make_act(act_layer, out_chs))
        super().__init__(*layers)
