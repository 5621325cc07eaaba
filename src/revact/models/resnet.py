"""Small CIFAR-style ResNets (He et al., 2016, §4.2) for 28×28 inputs.

Three stages of basic blocks at 16/32/64 channels; depth = 6·n + 2. The activation is a
parameter and replaces every ReLU (after the stem, inside each block and after each
residual sum).
"""

from __future__ import annotations

from torch import Tensor, nn

from revact.models._layers import ActLayer, ConvBnAct, make_act
from revact.models._registry import register_model

__all__ = ["BasicBlock", "ResNet", "resnet8", "resnet14", "resnet20"]


class BasicBlock(nn.Module):
    """Two 3×3 convs with a residual; a 1×1 projection when the shape changes."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, act_layer: ActLayer) -> None:
        super().__init__()
        self.conv1 = ConvBnAct(in_chs, out_chs, 3, stride, act_layer=act_layer)
        self.conv2 = ConvBnAct(out_chs, out_chs, 3, 1, act_layer=None)
        self.shortcut = (
            nn.Identity()
            if stride == 1 and in_chs == out_chs
            else ConvBnAct(in_chs, out_chs, 1, stride, act_layer=None)
        )
        self.act = make_act(act_layer, out_chs)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet.

    Args:
        depth: 6·n + 2 (8, 14, 20, ...).
        num_classes: classifier outputs.
        in_chans: input channels.
        act_layer: activation name, class or factory; a fresh instance per use.
        widths: channels of the three stages.
    """

    def __init__(
        self,
        depth: int = 8,
        num_classes: int = 10,
        in_chans: int = 1,
        act_layer: ActLayer = "relu",
        widths: tuple[int, int, int] = (16, 32, 64),
    ) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"ResNet depth must be 6n+2 (8, 14, 20, ...), got {depth}")
        n = (depth - 2) // 6
        self.stem = ConvBnAct(in_chans, widths[0], 3, act_layer=act_layer)
        layers, chs = [], widths[0]
        for i, w in enumerate(widths):
            for j in range(n):
                layers.append(BasicBlock(chs, w, 2 if i > 0 and j == 0 else 1, act_layer))
                chs = w
        self.blocks = nn.Sequential(*layers)
        self.num_features = chs
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(chs, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.blocks(self.stem(x))).flatten(1))


@register_model
def resnet8(**kwargs) -> ResNet:
    """ResNet-8 (one block per stage, ~78 k params)."""
    return ResNet(depth=8, **kwargs)


@register_model
def resnet14(**kwargs) -> ResNet:
    """ResNet-14 (two blocks per stage)."""
    return ResNet(depth=14, **kwargs)


@register_model
def resnet20(**kwargs) -> ResNet:
    """ResNet-20 (three blocks per stage, ~0.27 M params)."""
    return ResNet(depth=20, **kwargs)
