"""Channel-aware activations on channels-last tensors ``(N, ..., C)``.

ACON and Meta-ACON read channels on axis 1, as convolutions produce them; ConvNeXt-style
blocks, transformer MLPs and classifier heads apply their activation after a ``Linear``,
with channels last: ``(N, H, W, C)``, ``(N, L, C)`` or ``(N, C)``. Every spatial axis plays
the same role for these activations (DY-ReLU pools and softmaxes over all positions,
Meta-ACON averages over them), so the positions are flattened into one axis of tokens.
"""

from __future__ import annotations

import inspect

from torch import Tensor, nn

from revact.activations.create_act import create_act

__all__ = ["ChannelsLast", "create_channels_last_act"]


class ChannelsLast(nn.Module):
    r"""Apply a channel-aware activation to channels-last input.

    The input's positions are flattened to ``L`` tokens; a wrapped module built with
    ``layout='tokens'`` (DY-ReLU) takes ``(N, L, C)`` as is, any other one gets the
    channels-first view ``(N, C, L)``. The output has the input's shape.

    Shape:
        - Input: :math:`(N, *, C)`, any number (including none) of position axes.
        - Output: same shape as the input.

    Example::

        >>> act = ChannelsLast(revact.AconC(96))
        >>> act(torch.randn(2, 7, 7, 96)).shape
        torch.Size([2, 7, 7, 96])
    """

    def __init__(self, act: nn.Module) -> None:
        super().__init__()
        self.act = act

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 2:
            raise ValueError(
                f"ChannelsLast expects input of shape (N, ..., C), got shape {tuple(x.shape)}"
            )
        tokens = x.reshape(x.shape[0], -1, x.shape[-1])
        if getattr(self.act, "layout", None) == "tokens":
            y = self.act(tokens)
        else:
            y = self.act(tokens.transpose(1, 2)).transpose(1, 2)
        return y.reshape(x.shape)


def create_channels_last_act(
    name_or_class: str | type[nn.Module], channels: int, **kwargs
) -> nn.Module:
    """Build an activation for channels-last input of ``channels`` channels.

    Element-wise activations (ReLU, GELU, ...) are returned as they are; channel-aware ones
    are wrapped in :class:`ChannelsLast`, built with ``layout='tokens'`` where they accept it.
    """
    act = create_act(name_or_class, channels=channels, **kwargs)
    if not _is_channel_aware(act):
        return act
    if "layout" in inspect.signature(type(act)).parameters and "layout" not in kwargs:
        act = create_act(name_or_class, channels=channels, layout="tokens", **kwargs)
    return ChannelsLast(act)


def _is_channel_aware(act: nn.Module) -> bool:
    # PReLU with one slope and Swish with a scalar β broadcast over any layout.
    if isinstance(act, nn.PReLU):
        return act.num_parameters > 1
    return getattr(act, "channels", None) is not None
