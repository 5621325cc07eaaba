"""Building blocks of RevCol: norms, the ConvNeXt block, fusion, levels, heads and decoders.

Module and attribute names follow the official release (megvii-research/RevCol), so that its
checkpoints load with ``strict=True``; only the computation is ours.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from revact.activations.channels_last import create_channels_last_act

#: An activation as a registry name (``'dyrelu_b'``) or an ``nn.Module`` class.
ActLayer = str | type[nn.Module]

__all__ = [
    "ActLayer",
    "LayerNorm2d",
    "DropPath",
    "ConvNeXtBlock",
    "UpSample",
    "Fusion",
    "Level",
    "Classifier",
    "Decoder",
    "SimDecoder",
]


class LayerNorm2d(nn.LayerNorm):
    r"""LayerNorm over the channel dimension of an :math:`(N, C, H, W)` tensor.

    Same parameters (``weight``, ``bias`` of shape :math:`(C,)`) as the official
    ``LayerNorm(data_format="channels_first")``; computed with :func:`torch.nn.functional.
    layer_norm` on a channels-last view, which saves only the input, mean and rstd for backward.

    Args:
        num_channels: number of channels C.
        eps: added to the variance. Default: 1e-6
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__(num_channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample with probability ``p``.

    Draws from the default generator of the input's device, so a replay that restores the RNG
    state draws the same mask. The same draw and maths as :func:`torchvision.ops.
    stochastic_depth` (``mode='row'``), kept here because importing ``torchvision.ops`` would
    add seconds to ``import revact`` for four lines.

    Args:
        p: drop probability in [0, 1]; 1 drops every sample. Default: 0.0
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"drop probability must be in [0, 1], got {p}")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        # p = 1: the mask is all zeros; rescaling it would be 0/0.
        return x * (mask.div_(keep) if keep > 0.0 else mask)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ConvNeXtBlock(nn.Module):
    r"""ConvNeXt block: depthwise conv → LayerNorm → Linear → activation → Linear → layer
    scale → drop path, added to the input.

    Args:
        dim: channels in and out.
        hidden_dim: width of the inverted bottleneck (4·dim in the columns, dim in decoders).
        kernel_size: depthwise kernel size. Default: 3
        layer_scale_init: initial value of ``gamma``; 0 disables layer scale. Default: 1e-6
        drop_path: stochastic depth rate. Default: 0.0
        act_layer: activation between the two Linear layers, as a registry name or class. It
            sees the channels-last tensor :math:`(N, H, W, \text{hidden\_dim})`: channel-aware
            ones (DY-ReLU, ACON) are built for that layout by
            :func:`~revact.activations.channels_last.create_channels_last_act`. Default:
            :class:`~torch.nn.GELU`

    Shape:
        - Input: :math:`(N, C, H, W)`; output: same shape.
    """

    def __init__(
        self,
        dim: int,
        hidden_dim: int,
        kernel_size: int = 3,
        layer_scale_init: float = 1e-6,
        drop_path: float = 0.0,
        act_layer: ActLayer = nn.GELU,
    ) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(
            dim, dim, kernel_size, padding=(kernel_size - 1) // 2, groups=dim
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, hidden_dim)
        self.act = create_channels_last_act(act_layer, hidden_dim)
        self.pwconv2 = nn.Linear(hidden_dim, dim)
        self.gamma = (
            nn.Parameter(torch.full((dim,), layer_scale_init)) if layer_scale_init > 0 else None
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)  # Linear layers act on channels-last
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        if self.gamma is not None:
            y = self.gamma * y
        return x + self.drop_path(y.permute(0, 3, 1, 2))


class UpSample(nn.Module):
    """Up path of a fusion: Linear(C_{i+1} → C_i) + LayerNorm on channels-last, then nearest
    resize to the target map's size.

    The official code upsamples by a fixed 2×, which only fits inputs divisible by 32; resizing
    to the size of the map it is added to fits every input size and equals 2× when that fits.

    Args:
        in_channels: channels of the coarser map.
        out_channels: channels of the target map.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.channel_reschedule = nn.Sequential(
            nn.Linear(in_channels, out_channels), nn.LayerNorm(out_channels, eps=1e-6)
        )

    def forward(self, x: Tensor, size: Sequence[int]) -> Tensor:
        x = self.channel_reschedule(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return F.interpolate(x, size=tuple(size), mode="nearest")


class Fusion(nn.Module):
    """Input of level ``level``: down path from this column's finer map plus, except in the first
    column and at level 3, the up path from the previous column's coarser map.

    Args:
        level: level index 0..3.
        channels: the four channel counts.
        first_col: whether this is the first column (no up path).
    """

    def __init__(self, level: int, channels: Sequence[int], first_col: bool) -> None:
        super().__init__()
        self.level = level
        if level > 0:
            # Stride-2 2x2 conv floors odd sizes (7 -> 3); the up path resizes to whatever the
            # down path produced, so both always agree.
            self.down = nn.Sequential(
                nn.Conv2d(channels[level - 1], channels[level], kernel_size=2, stride=2),
                LayerNorm2d(channels[level]),
            )
        else:
            self.down = nn.Identity()
        self.up = (
            UpSample(channels[level + 1], channels[level])
            if not first_col and level < 3
            else None
        )

    def forward(self, c_down: Tensor, c_up: Tensor | None = None) -> Tensor:
        x = self.down(c_down)
        if self.up is not None:
            if c_up is None:
                raise ValueError(f"level {self.level} of a later column needs the up input")
            x = self.up(c_up, x.shape[-2:]) + x
        return x


class Level(nn.Module):
    """One level of a column: :class:`Fusion` followed by a stack of ConvNeXt blocks.

    Args:
        level: level index 0..3.
        channels: the four channel counts.
        layers: blocks per level.
        kernel_size: depthwise kernel size.
        first_col: whether this is the first column.
        dp_rates: drop-path rate of every block of a column, in order (``sum(layers)`` values).
        act_layer: activation of the ConvNeXt blocks. Default: :class:`~torch.nn.GELU`
    """

    def __init__(
        self,
        level: int,
        channels: Sequence[int],
        layers: Sequence[int],
        kernel_size: int,
        first_col: bool,
        dp_rates: Sequence[float],
        act_layer: ActLayer = nn.GELU,
    ) -> None:
        super().__init__()
        start = sum(layers[:level])
        c = channels[level]
        self.fusion = Fusion(level, channels, first_col)
        self.blocks = nn.Sequential(
            *(
                ConvNeXtBlock(c, 4 * c, kernel_size, 1e-6, dp_rates[start + b], act_layer)
                for b in range(layers[level])
            )
        )

    def forward(self, c_down: Tensor, c_up: Tensor | None = None) -> Tensor:
        return self.blocks(self.fusion(c_down, c_up))


class Classifier(nn.Module):
    """Global average pool → LayerNorm → Linear.

    Args:
        in_channels: channels of the last map.
        num_classes: number of classes.
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.classifier = nn.Sequential(
            nn.LayerNorm(in_channels, eps=1e-6), nn.Linear(in_channels, num_classes)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(x.mean((-2, -1)))


class Decoder(nn.Module):
    """Reconstruction decoder of intermediate supervision (used for ≤ 1000 classes).

    Three stages of 1×1 conv + LayerNorm + GELU, bilinear 2× upsample and a ConvNeXt block
    (hidden width = channels, kernel 3), walking the channels from C3 down to C0; then a 1×1
    conv to 16·out_chans channels and PixelShuffle(4). From stride 32 to stride 1.

    Args:
        dims: channels from coarse to fine, ``(C3, C2, C1, C0)``.
        depths: blocks per stage (the first entry is unused, as in the official code).
        out_chans: channels of the reconstructed image. Default: 3
    """

    def __init__(
        self, dims: Sequence[int], depths: Sequence[int] = (1, 1, 1, 1), out_chans: int = 3
    ) -> None:
        super().__init__()
        self.proj_layers = nn.ModuleList()
        self.normal_layers = nn.ModuleList()
        for i in range(1, len(dims)):
            self.proj_layers.append(
                nn.Sequential(nn.Conv2d(dims[i - 1], dims[i], 1), LayerNorm2d(dims[i]), nn.GELU())
            )
            self.normal_layers.append(
                nn.Sequential(*(ConvNeXtBlock(dims[i], dims[i], 3) for _ in range(depths[i])))
            )
        self.projback = nn.Sequential(nn.Conv2d(dims[-1], 16 * out_chans, 1), nn.PixelShuffle(4))

    def forward(self, x: Tensor) -> Tensor:
        for proj, blocks in zip(self.proj_layers, self.normal_layers, strict=True):
            x = F.interpolate(proj(x), scale_factor=2.0, mode="bilinear", align_corners=True)
            x = blocks(x)
        return self.projback(x)


class SimDecoder(nn.Module):
    """Reconstruction decoder used for more than 1000 classes: LayerNorm, 1×1 conv and
    PixelShuffle(stride).

    Args:
        in_channels: channels of the last map.
        stride: total stride of the map. Default: 32
        out_chans: channels of the reconstructed image. Default: 3
    """

    def __init__(self, in_channels: int, stride: int = 32, out_chans: int = 3) -> None:
        super().__init__()
        self.projback = nn.Sequential(
            LayerNorm2d(in_channels),
            nn.Conv2d(in_channels, stride**2 * out_chans, 1),
            nn.PixelShuffle(stride),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.projback(x)
