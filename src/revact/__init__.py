"""revact: drop-in upgrades for vision networks.

Activations (classic, ACON / Meta-ACON, DY-ReLU A/B/C) usable by name or class,
the RevCol reversible-column backbone, and tools to compare them fairly.
"""

from revact.activations import (
    AconA,
    AconB,
    AconC,
    DyReLUA,
    DyReLUB,
    DyReLUC,
    MetaAcon,
    MetaAconC,
    Swish,
    create_act,
    get_act_layer,
    list_acts,
)
from revact.integrations.swap import CallSites, SwapReport, swap_activations
from revact.integrations.ultralytics._hook import register_when_imported
from revact.optim import param_groups
from revact.revcol import (
    RevCol,
    RevColLoss,
    revcol_base,
    revcol_large,
    revcol_small,
    revcol_tiny,
    revcol_xlarge,
)

__version__ = "0.1.0"

# Ultralytics' YAML parser learns revact's names as soon as both packages are imported
# (imports nothing itself; see revact.integrations.ultralytics).
register_when_imported()

__all__ = [
    "AconA",
    "AconB",
    "AconC",
    "DyReLUA",
    "DyReLUB",
    "DyReLUC",
    "MetaAcon",
    "MetaAconC",
    "Swish",
    "create_act",
    "get_act_layer",
    "list_acts",
    "param_groups",
    "swap_activations",
    "SwapReport",
    "CallSites",
    "RevCol",
    "RevColLoss",
    "revcol_tiny",
    "revcol_small",
    "revcol_base",
    "revcol_large",
    "revcol_xlarge",
]
