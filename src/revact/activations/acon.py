"""Swish and the ACON family ("Activate or Not: Learning Customized Activation", CVPR 2021).

ACON is the smooth maximum of two linear functions,
``S_β(η_a, η_b) = (η_a - η_b)·σ(β(η_a - η_b)) + η_b``:

============  ==================  ================================================
module        (η_a, η_b)          learnable
============  ==================  ================================================
Swish         (x, 0)              β fixed, or learned (scalar or per channel)
AconA         (x, 0)              β per channel
AconB         (x, p·x)            p, β per channel
AconC         (p1·x, p2·x)        p1, p2, β per channel
MetaAcon      (p1·x, p2·x)        p1, p2 per channel; β = G(x) from the input
============  ==================  ================================================

All run through :func:`revact.activations.functional.acon`, which saves only the
input for backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from revact.activations._layout import (
    check_channels,
    check_floating,
    check_input,
    full_precision,
    per_channel,
    spatial_dims,
)
from revact.activations.functional import acon, spatial_mean

__all__ = ["Swish", "AconA", "AconB", "AconC", "MetaAcon", "MetaAconC"]


def _channel_param(channels: int, init: str) -> nn.Parameter:
    shape = (1, channels, 1, 1)
    value = {"ones": torch.ones, "zeros": torch.zeros, "randn": torch.randn}[init](shape)
    return nn.Parameter(value)


INITS = ("paper", "swish")
"""Starts of ACON-C and Meta-ACON: ``'paper'`` draws p1, p2 from a standard normal (the
official code), ``'swish'`` sets p1 = 1, p2 = 0 (and ACON-C's β = 1): x·σ(βx) per channel."""


def _p1_p2(channels: int, init: str, owner: str) -> tuple[nn.Parameter, nn.Parameter]:
    if init not in INITS:
        raise ValueError(f"{owner} init must be one of {INITS}, got {init!r}")
    # Drawn in both cases, so a network built from one seed has the same weights outside
    # the activations whichever start they take: the two differ in p1, p2 only.
    p1 = _channel_param(channels, "randn")
    p2 = _channel_param(channels, "randn")
    if init == "swish":
        with torch.no_grad():
            p1.fill_(1.0)
            p2.zero_()
    return p1, p2


class _ChannelwiseAcon(nn.Module):
    """Shared input checks for the per-channel ACON modules."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = check_channels(channels, type(self).__name__)

    def _check(self, x: Tensor) -> None:
        check_input(x, self.channels, "channels_first", type(self).__name__)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


class Swish(nn.Module):
    r"""Swish: :math:`\text{Swish}(x) = x\cdot\sigma(\beta x)`.

    With ``beta=1`` and nothing learned it is :class:`torch.nn.SiLU` (and runs as it).

    Args:
        beta: the value of β (the initial value when learned). Default: 1.0
        learnable: ``False`` keeps β fixed; ``'scalar'`` learns one β; ``'channel'``
            learns one β per channel (needs ``channels``); ``True`` picks ``'channel'``
            when ``channels`` is given, else ``'scalar'``. Default: ``False``
        channels: number of channels C, for a per-channel β.

    Shape:
        - Input: :math:`(*)` for a fixed or scalar β; :math:`(N, C, *)` for a per-channel β.
        - Output: same shape as the input.

    Examples::

        >>> m = Swish(beta=1.5)
        >>> y = m(torch.randn(2, 8, 4, 4))
        >>> m = Swish(learnable=True, channels=8)   # one β per channel
    """

    def __init__(
        self, beta: float = 1.0, learnable: bool | str = False, channels: int | None = None
    ) -> None:
        super().__init__()
        if learnable is True:
            learnable = "channel" if channels is not None else "scalar"
        if learnable not in (False, "scalar", "channel"):
            raise ValueError(
                f"learnable must be False, True, 'scalar' or 'channel', got {learnable!r}"
            )
        self.learnable = learnable
        self.channels = channels
        if learnable == "channel":
            self.channels = check_channels(channels, "Swish(learnable='channel')")
            self.beta = nn.Parameter(torch.full((1, self.channels, 1, 1), float(beta)))
        elif learnable == "scalar":
            self.beta = nn.Parameter(torch.tensor(float(beta)))
        else:
            self.beta = float(beta)

    def forward(self, x: Tensor) -> Tensor:
        if self.learnable != "channel":  # the per-channel form checks in check_input
            check_floating(x, type(self).__name__)
        if not self.learnable:
            if self.beta == 0.0:
                return 0.5 * x
            # x·σ(βx) = silu(βx)/β: one native kernel instead of three.
            return F.silu(x) if self.beta == 1.0 else F.silu(self.beta * x) / self.beta
        beta = self.beta
        if self.learnable == "channel":
            owner = "Swish(learnable='channel')" if type(self) is Swish else type(self).__name__
            check_input(x, self.channels, "channels_first", owner)
            beta = per_channel(beta, x)
        one = torch.ones((), dtype=x.dtype, device=x.device)
        return acon(x, one, torch.zeros_like(one), beta)

    def extra_repr(self) -> str:
        if not self.learnable:
            return f"beta={self.beta}"
        return f"learnable={self.learnable!r}, channels={self.channels}"


class AconA(Swish):
    r"""ACON-A: :math:`x\cdot\sigma(\beta x)` with one learned β per channel.

    ACON-A is Swish read as the smooth maximum of ``x`` and ``0``.

    Args:
        channels: number of channels C.
        beta: initial β. Default: 1.0

    Shape:
        - Input: :math:`(N, C, L)` or :math:`(N, C, H, W)`.
        - Output: same shape as the input.

    Example::

        >>> y = AconA(16)(torch.randn(2, 16, 8, 8))
    """

    def __init__(self, channels: int, beta: float = 1.0) -> None:
        super().__init__(beta=beta, learnable="channel", channels=channels)


class AconB(_ChannelwiseAcon):
    r"""ACON-B: smooth maximum of ``x`` and ``p·x``.

    .. math::
        \text{AconB}(x) = (1 - p)x\cdot\sigma(\beta(1 - p)x) + p x

    Args:
        channels: number of channels C.

    Parameters ``p`` (initialised to 0, so it starts as Swish) and ``beta`` (ones),
    each of shape ``(1, C, 1, 1)``.

    Shape:
        - Input: :math:`(N, C, L)` or :math:`(N, C, H, W)`.
        - Output: same shape as the input.

    Example::

        >>> y = AconB(16)(torch.randn(2, 16, 8, 8))
    """

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        self.p = _channel_param(self.channels, "zeros")
        self.beta = _channel_param(self.channels, "ones")

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        one = torch.ones((), dtype=self.p.dtype, device=x.device)
        return acon(x, one, per_channel(self.p, x), per_channel(self.beta, x))


class AconC(_ChannelwiseAcon):
    r"""ACON-C: smooth maximum of ``p1·x`` and ``p2·x``.

    .. math::
        \text{AconC}(x) = (p_1 - p_2)x\cdot\sigma(\beta(p_1 - p_2)x) + p_2 x

    Its derivative tends to ``p1`` as ``x → +∞`` and ``p2`` as ``x → -∞``; β sets how
    sharply it switches between them.

    Args:
        channels: number of channels C.
        init: ``'paper'`` (default): p1, p2 standard normal, as in the official release;
            many channels then start as a decreasing or nearly linear function, which
            costs short schedules accuracy. ``'swish'``: p1 = 1, p2 = 0, so the module
            starts as exactly x·σ(x) (SiLU) and learns away from it; the choice for
            short schedules and for swapping into a trained network.

    Parameters ``p1``, ``p2`` and ``beta`` (ones), each of shape ``(1, C, 1, 1)``: the
    official names and shapes, so released checkpoints load with ``strict=True``.

    Shape:
        - Input: :math:`(N, C, L)` or :math:`(N, C, H, W)`.
        - Output: same shape as the input.

    Examples::

        >>> y = AconC(16)(torch.randn(2, 16, 8, 8))
        >>> m = AconC(16, init="swish")   # == nn.SiLU() until trained
    """

    def __init__(self, channels: int, init: str = "paper") -> None:
        super().__init__(channels)
        self.p1, self.p2 = _p1_p2(self.channels, init, "AconC")
        self.beta = _channel_param(self.channels, "ones")
        self.init = init

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return acon(x, per_channel(self.p1, x), per_channel(self.p2, x),
                    per_channel(self.beta, x))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, init={self.init!r}"


class MetaAcon(_ChannelwiseAcon):
    r"""Meta-ACON: ACON-C whose β is generated from the input, ``β = G(x)``.

    .. math::
        \text{MetaAcon}(x) = (p_1 - p_2)x\cdot\sigma(G(x)(p_1 - p_2)x) + p_2 x

    Three designs of ``G``:

    - ``'channel'`` (default): :math:`\beta_c = \sigma(W_1 W_2\,\text{mean}_{h,w}\,x)`,
      implemented as in the official release: ``fc1`` = 1×1 conv C → max(r, C // r),
      ``bn1``, ``fc2`` = 1×1 conv back to C, ``bn2``, sigmoid (no ReLU in between).
      Names and shapes match the official checkpoints.
    - ``'layer'``: :math:`\beta = \sigma(\sum_{c,h,w} x)`, one β per sample.
    - ``'pixel'``: :math:`\beta_{c,h,w} = \sigma(x_{c,h,w})`.

    Batch size 1 in training: the official G crashes there, because BatchNorm cannot
    take batch statistics of one value per channel. Here, a training-mode forward
    with a single sample normalises with the running statistics instead (as in eval)
    and leaves them unchanged; larger batches use and update batch statistics as usual.

    Non-finite input in training mode: as with every torch BatchNorm layer, a
    training-mode forward whose input holds a NaN or an infinity writes NaN into G's
    running statistics (``bn1``, ``bn2``), and from then on every eval-mode output is
    NaN. This is deliberate: in a network the BatchNorm layers before this one take the
    same batch and are poisoned alike, so a guard here alone would not save the model,
    and checking finiteness on every call would stall each CUDA step on a host sync.
    Stop training on a non-finite loss; to recover a module, reload a checkpoint or call
    ``bn.reset_running_stats()`` on ``bn1`` and ``bn2`` (then re-estimate them on data).
    In eval mode a non-finite sample affects only its own output.

    Tracing: ``torch.jit.trace`` works in eval mode (the export case). A training-mode
    trace records the batch-size-1 branch above for the batch size it was traced with.

    Args:
        channels: number of channels C.
        r: reduction ratio of G's bottleneck. Default: 16
        generator: ``'channel'``, ``'layer'`` or ``'pixel'``. Default: ``'channel'``
        init: ``'paper'`` (p1, p2 standard normal, the official code) or ``'swish'``
            (p1 = 1, p2 = 0: x·σ(G(x)·x) at the start), as for :class:`AconC`.
            Default: ``'paper'``

    Shape:
        - Input: :math:`(N, C, L)` or :math:`(N, C, H, W)`.
        - Output: same shape as the input.

    Example::

        >>> m = MetaAcon(64)
        >>> y = m(torch.randn(8, 64, 14, 14))
    """

    GENERATORS = ("channel", "layer", "pixel")

    def __init__(
        self, channels: int, r: int = 16, generator: str = "channel", init: str = "paper"
    ) -> None:
        super().__init__(channels)
        if generator not in self.GENERATORS:
            raise ValueError(f"generator must be one of {self.GENERATORS}, got {generator!r}")
        self.generator = generator
        self.r = r
        if generator == "channel":
            hidden = max(r, self.channels // r)
            self.fc1 = nn.Conv2d(self.channels, hidden, kernel_size=1, bias=True)
            self.bn1 = nn.BatchNorm2d(hidden)
            self.fc2 = nn.Conv2d(hidden, self.channels, kernel_size=1, bias=True)
            self.bn2 = nn.BatchNorm2d(self.channels)
        self.p1, self.p2 = _p1_p2(self.channels, init, "MetaAcon")
        self.init = init

    def _batch_norm(self, bn: nn.BatchNorm2d, t: Tensor) -> Tensor:
        if self.training and t.shape[0] == 1:
            return F.batch_norm(t, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                                training=False, eps=bn.eps)
        return bn(t)

    def beta(self, x: Tensor) -> Tensor:
        """G(x): β broadcastable to ``x``."""
        self._check(x)
        if self.generator == "pixel":
            return torch.sigmoid(x)
        pool = spatial_dims(x, "channels_first")
        if self.generator == "layer":
            return torch.sigmoid(x.sum(dim=(1, *pool), keepdim=True))
        with full_precision(x):
            m = spatial_mean(x, pool, self.fc1.weight.dtype)
            h = self._batch_norm(self.bn1, self._fc(self.fc1, m))
            g = self._batch_norm(self.bn2, self._fc(self.fc2, h.flatten(1)))
        return torch.sigmoid(g).view(x.shape[0], self.channels, *([1] * (x.dim() - 2)))

    @staticmethod
    def _fc(conv: nn.Conv2d, t: Tensor) -> Tensor:
        """A 1×1 conv on (N, C_in) as a matrix product: on 1×1 maps the conv kernels'
        fixed cost dominates (milliseconds per call); the result is (N, C_out, 1, 1)."""
        return F.linear(t, conv.weight.flatten(1), conv.bias)[..., None, None]

    def forward(self, x: Tensor) -> Tensor:
        beta = self.beta(x)
        return acon(x, per_channel(self.p1, x), per_channel(self.p2, x), beta)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, r={self.r}, generator={self.generator!r}, "
                f"init={self.init!r}")


MetaAconC = MetaAcon
