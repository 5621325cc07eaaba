"""RevCol: the reversible column backbone (Cai et al., "Reversible Column Networks", ICLR 2023).

Every published size, the official checkpoint layout, memory-saving reversible backward with
exact ``torch.autograd.grad`` support, any input size ≥ 32, multi-scale features and
intermediate supervision with its loss.
"""

from revact.revcol.loss import RevColLoss
from revact.revcol.model import MEMORY_MODES, RevCol
from revact.revcol.variants import (
    VARIANTS,
    RevColVariant,
    revcol_base,
    revcol_large,
    revcol_small,
    revcol_tiny,
    revcol_xlarge,
)

__all__ = [
    "MEMORY_MODES",
    "VARIANTS",
    "RevCol",
    "RevColLoss",
    "RevColVariant",
    "revcol_base",
    "revcol_large",
    "revcol_small",
    "revcol_tiny",
    "revcol_xlarge",
]
