"""A compact MobileNetV2 for 28×28 inputs, the main case of the DY-ReLU and ACON papers.

The layout follows Sandler et al. (inverted residuals, linear bottlenecks) with fewer,
narrower stages and a stride-2 stem (28 → 14 → 7 → 4), so that a full Fashion-MNIST epoch
takes about a minute on one CPU core with ReLU. The activation is
a parameter: it replaces ReLU6 after the stem, every expansion and every depthwise conv, and
in the head, which is where the papers put DY-ReLU / Meta-ACON.
"""

from __future__ import annotations

from torch import Tensor, nn

from revact.models._layers import ActLayer, ConvBnAct
from revact.models._registry import register_model

__all__ = ["InvertedResidual", "MobileNetV2", "mbv2", "mbv2_tiny"]


def _divisible(v: float, divisor: int = 8) -> int:
    # Channel counts rounded to multiples of 8, as in the original, never below 90%.
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class InvertedResidual(nn.Module):
    """1×1 expand → 3×3 depthwise → 1×1 linear projection, residual when shapes match."""

    def __init__(
        self, in_chs: int, out_chs: int, stride: int, expand_ratio: float, act_layer: ActLayer
    ) -> None:
        super().__init__()
        mid = int(round(in_chs * expand_ratio))
        self.use_res = stride == 1 and in_chs == out_chs
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBnAct(in_chs, mid, 1, act_layer=act_layer))
        layers += [
            ConvBnAct(mid, mid, 3, stride, groups=mid, act_layer=act_layer),
            ConvBnAct(mid, out_chs, 1, act_layer=None),  # linear bottleneck
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        return x + out if self.use_res else out


class MobileNetV2(nn.Module):
    """MobileNetV2 sized for small images.

    Args:
        num_classes: classifier outputs.
        in_chans: input channels (1 for Fashion-MNIST).
        act_layer: activation name, class or factory; a fresh instance per layer.
        width_mult: channel multiplier.
        cfg: rows ``(expand_ratio, channels, repeats, stride)``.
        stem_chs: stem width (before ``width_mult``).
        stem_stride: stride of the stem conv.
        head_chs: width of the last 1×1 conv.
        drop_rate: dropout before the classifier.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 1,
        act_layer: ActLayer = "relu",
        width_mult: float = 1.0,
        cfg: tuple[tuple[float, int, int, int], ...] = (
            (1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 1), (4, 64, 2, 2), (4, 96, 1, 1)
        ),
        stem_chs: int = 16,
        stem_stride: int = 2,
        head_chs: int = 256,
        drop_rate: float = 0.1,
    ) -> None:
        super().__init__()
        chs = _divisible(stem_chs * width_mult)
        self.stem = ConvBnAct(in_chans, chs, 3, stem_stride, act_layer=act_layer)
        blocks = []
        for t, c, n, s in cfg:
            out = _divisible(c * width_mult)
            for i in range(n):
                blocks.append(InvertedResidual(chs, out, s if i == 0 else 1, t, act_layer))
                chs = out
        self.blocks = nn.Sequential(*blocks)
        self.num_features = head_chs
        self.head = ConvBnAct(chs, head_chs, 1, act_layer=act_layer)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(head_chs, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.classifier.weight, 0, 0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(self.stem(x)))

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.forward_features(x)).flatten(1)
        return self.classifier(self.drop(x))


@register_model
def mbv2(**kwargs) -> MobileNetV2:
    """Compact MobileNetV2 (~0.2 M params, ~5 M MACs at 28×28): the comparison default."""
    return MobileNetV2(**kwargs)


@register_model
def mbv2_tiny(**kwargs) -> MobileNetV2:
    """Half-width MobileNetV2, for smoke tests."""
    kwargs.setdefault("width_mult", 0.5)
    kwargs.setdefault("head_chs", 128)
    return MobileNetV2(**kwargs)
