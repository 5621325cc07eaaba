"""RevCol in the model registry: the published sizes, and ``revcol_nano`` for 28×28 data.

The published builders are registered as they are (``create_model('revcol_tiny')`` is
``revact.revcol_tiny()``), so they keep the official defaults: 1000 classes, 3 input
channels, GELU, inputs of at least 32×32. ``revcol_nano`` is sized for the comparison
harness: Fashion-MNIST through ``revact train/compare --model revcol_nano``.
"""

from __future__ import annotations

from typing import Any

from revact.models._registry import register_model
from revact.revcol import (
    RevCol,
    revcol_base,
    revcol_large,
    revcol_small,
    revcol_tiny,
    revcol_xlarge,
)

__all__ = ["revcol_nano"]

for _builder in (revcol_tiny, revcol_small, revcol_base, revcol_large, revcol_xlarge):
    register_model(_builder)


@register_model
def revcol_nano(**kwargs: Any) -> RevCol:
    """RevCol-Nano: channels 16-128, one block per level, 4 columns; 0.92M params (10 classes).

    Defaults for Fashion-MNIST: 10 classes, 1 input channel, no drop path, and
    ``pad_small_inputs=True``: a 28×28 image is zero-padded to 32×32, which the four strides
    need (see :class:`~revact.revcol.RevCol`); padding keeps every pixel as it is, where a
    resize would blur them. Four columns are the fewest that ``inter_supv`` allows. Keyword
    arguments (``act_layer``, ``num_classes``, ``in_chans``, ``memory``, ...) go to
    :class:`~revact.revcol.RevCol`.
    """
    defaults = dict(num_classes=10, in_chans=1, drop_path=0.0, pad_small_inputs=True)
    return RevCol((16, 32, 64, 128), (1, 1, 1, 1), 4, **(defaults | kwargs))
