"""RevCol as the backbone of torchvision's detectors (Faster R-CNN, RetinaNet, FCOS, ...).

:func:`revcol_fpn_backbone` puts torchvision's :class:`~torchvision.ops.FeaturePyramidNetwork`
on the last column's maps; the result has the ``out_channels`` attribute and the
``OrderedDict`` output that ``torchvision.models.detection`` expects, with torchvision's map
names (``'0'``, ``'1'``, ... then ``'pool'`` or ``'p6'``, ``'p7'``), so the detectors' default
anchors and RoI poolers fit.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.ops.feature_pyramid_network import (
    ExtraFPNBlock,
    FeaturePyramidNetwork,
    LastLevelMaxPool,
    LastLevelP6P7,
)

from revact.revcol import VARIANTS, RevCol

__all__ = ["RevColFPN", "revcol_fpn_backbone"]

#: Backbone keys of an official checkpoint; the rest are classification heads and decoders.
_BACKBONE_PREFIXES = ("stem.", "subnet")


class RevColFPN(nn.Module):
    """A RevCol followed by a feature pyramid network.

    Args:
        body: the RevCol; its classifier head, if it has one, is not used.
        returned_layers: RevCol levels fed to the FPN (0–3: strides 4, 8, 16, 32).
        out_channels: channels of every FPN map.
        extra_blocks: torchvision's extra FPN block (``LastLevelMaxPool``, ``LastLevelP6P7``)
            or ``None``.
        norm_layer: normalisation of the FPN's convolutions. Default: ``None``

    Shape:
        - Input: :math:`(N, C_{in}, H, W)`, any size RevCol takes.
        - Output: ``OrderedDict`` of :math:`(N, \\text{out\\_channels}, H_i, W_i)` maps, named
          ``'0'``, ``'1'``, ... for the returned levels, then the extra block's names.

    Example::

        >>> body = RevCol((16, 32, 64, 128), (1, 1, 1, 1), 2, features_only=True)
        >>> fpn = RevColFPN(body, (1, 2, 3), 64, LastLevelP6P7(64, 64))
        >>> {k: tuple(v.shape) for k, v in fpn(torch.randn(1, 3, 128, 128)).items()}
        {'0': (1, 64, 16, 16), '1': (1, 64, 8, 8), '2': (1, 64, 4, 4), 'p6': (1, 64, 2, 2),
         'p7': (1, 64, 1, 1)}
    """

    def __init__(
        self,
        body: RevCol,
        returned_layers: Sequence[int],
        out_channels: int,
        extra_blocks: ExtraFPNBlock | None = None,
        norm_layer: Callable[..., nn.Module] | None = None,
    ) -> None:
        super().__init__()
        returned_layers = tuple(int(i) for i in returned_layers)
        if not returned_layers or any(i not in range(4) for i in returned_layers) or list(
            returned_layers
        ) != sorted(set(returned_layers)):
            raise ValueError(f"returned_layers must be increasing levels in 0..3, "
                             f"got {returned_layers}")
        self.body = body
        self.returned_layers = returned_layers
        self.fpn = FeaturePyramidNetwork(
            [body.channels[i] for i in returned_layers], out_channels, extra_blocks, norm_layer
        )
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        feats = self.body.forward_features(x)
        # Named by position, as torchvision's BackboneWithFPN does: the default RoI pooler of
        # Faster R-CNN reads '0'..'3'.
        return self.fpn(OrderedDict((str(k), feats[i]) for k, i in enumerate(self.returned_layers)))


def _load_backbone_weights(body: RevCol, checkpoint: str | os.PathLike) -> None:
    """Load the stem and columns of an official (``{"model": state_dict}``) or plain RevCol
    checkpoint into ``body``; heads and decoders in the file are left out."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state = state.get("model", state)
    state = {k: v for k, v in state.items() if k.startswith(_BACKBONE_PREFIXES)}
    result = body.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if k.startswith(_BACKBONE_PREFIXES)]
    if missing or result.unexpected_keys:
        raise RuntimeError(f"{os.fspath(checkpoint)} does not fit this RevCol: missing "
                           f"{missing[:5]}, unexpected {result.unexpected_keys[:5]}")


def _freeze_columns(body: RevCol, trainable_columns: int) -> None:
    if not 0 <= trainable_columns <= body.num_subnet:
        raise ValueError(f"trainable_columns must be in 0..{body.num_subnet}, "
                         f"got {trainable_columns}")
    frozen = [body.stem] if trainable_columns < body.num_subnet else []
    frozen += [getattr(body, f"subnet{j}") for j in range(body.num_subnet - trainable_columns)]
    for module in frozen:
        module.requires_grad_(False)


def revcol_fpn_backbone(
    backbone: str | RevCol,
    *,
    checkpoint: str | os.PathLike | None = None,
    trainable_columns: int | None = None,
    returned_layers: Sequence[int] | None = None,
    extra_blocks: str | ExtraFPNBlock = "maxpool",
    out_channels: int = 256,
    act_layer: Any = None,
    norm_layer: Callable[..., nn.Module] | None = None,
    **kwargs: Any,
) -> RevColFPN:
    """A RevCol + FPN backbone for ``torchvision.models.detection``.

    Args:
        backbone: a published size (``'revcol_tiny'`` … ``'revcol_xlarge'``), built without a
            head, or a :class:`~revact.revcol.RevCol` used as it is (build it with
            ``features_only=True`` to leave out an unused head).
        checkpoint: an official RevCol checkpoint (``{"model": state_dict}``, e.g. the
            released ImageNet weights) or a plain state dict file, whose stem and columns are
            loaded. Default: ``None``
        trainable_columns: train only the last this many columns; the stem and the earlier
            columns are frozen (the stem too unless all columns train). Default: ``None``
            (all train)
        returned_layers: RevCol levels (0–3 for strides 4–32) fed to the FPN. Default:
            ``(0, 1, 2, 3)`` with ``'maxpool'``, ``(1, 2, 3)`` with ``'p6p7'``
        extra_blocks: ``'maxpool'`` (``LastLevelMaxPool``: P2–P6, for Faster/Mask R-CNN),
            ``'p6p7'`` (``LastLevelP6P7`` on P5: P3–P7, for RetinaNet and FCOS), or any
            ``ExtraFPNBlock``. Default: ``'maxpool'``
        out_channels: channels of every FPN map. Default: 256
        act_layer: activation of RevCol's blocks (a :func:`revact.list_acts` name or a class),
            for a published size. Default: ``None`` (GELU, as published)
        norm_layer: normalisation of the FPN's convolutions. Default: ``None``
        **kwargs: more :class:`~revact.revcol.RevCol` arguments for a published size
            (``drop_path``, ``memory``, ...).

    Example::

        >>> from torchvision.models.detection import FCOS, FasterRCNN
        >>> detector = FasterRCNN(revcol_fpn_backbone("revcol_tiny"), num_classes=91)
        >>> small = RevCol((16, 32, 64, 128), (1, 1, 1, 1), 2, features_only=True)
        >>> detector = FCOS(revcol_fpn_backbone(small, extra_blocks="p6p7", out_channels=64),
        ...                 num_classes=10)
    """
    if isinstance(backbone, RevCol):
        if act_layer is not None or kwargs:
            raise ValueError("act_layer and RevCol arguments apply to a published size only; "
                             "give them to the RevCol you pass")
        body = backbone
    else:
        variant = backbone.removeprefix("revcol_")
        if variant not in VARIANTS:
            raise ValueError(f"unknown RevCol {backbone!r}; one of "
                             f"{[f'revcol_{v}' for v in VARIANTS]} or a RevCol")
        if act_layer is not None:
            kwargs["act_layer"] = act_layer
        body = VARIANTS[variant].build(features_only=True, **kwargs)
    if checkpoint is not None:
        _load_backbone_weights(body, checkpoint)
    if trainable_columns is not None:
        _freeze_columns(body, trainable_columns)

    if extra_blocks == "maxpool":
        extra_blocks, default_layers = LastLevelMaxPool(), (0, 1, 2, 3)
    elif extra_blocks == "p6p7":
        extra_blocks, default_layers = LastLevelP6P7(out_channels, out_channels), (1, 2, 3)
    elif isinstance(extra_blocks, ExtraFPNBlock):
        default_layers = (0, 1, 2, 3)
    else:
        raise ValueError(f"extra_blocks must be 'maxpool', 'p6p7' or an ExtraFPNBlock, "
                         f"got {extra_blocks!r}")
    return RevColFPN(body, returned_layers or default_layers, out_channels, extra_blocks,
                     norm_layer)
