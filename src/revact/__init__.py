"""revact: drop-in upgrades for vision networks.

Activations (classic, ACON / Meta-ACON, DY-ReLU A/B/C) usable by name or class,
the RevCol reversible-column backbone, and tools to compare them fairly.

Importing revact registers it with timm and Ultralytics once they are imported (never
importing them itself): a one-shot ``sys.meta_path`` finder waits for each, and
Ultralytics' registration adds a global module-registration hook. Set
``REVACT_NO_IMPORT_HOOKS=1`` to install nothing at import; then call
``revact.integrations.ultralytics.register()`` and ``revact.integrations.timm.register()``
yourself.
"""

import os as _os

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
from revact.activations._native import NativeKernelsWarning
from revact.activations.functional import (
    native_kernels_available,
    use_fused_kernels,
    use_native_kernels,
)
from revact.integrations import timm as _timm
from revact.integrations import ultralytics as _ultralytics
from revact.integrations._import_hook import call_after_import as _call_after_import
from revact.integrations.flops import FlopReport, count_flops
from revact.integrations.onnx import export_onnx
from revact.integrations.swap import CallSites, SwapReport, swap_activations
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
from revact.sysinfo import info

__version__ = "0.1.0"

# As soon as both packages are imported (revact imports neither): Ultralytics' YAML parser
# learns revact's layer names, timm learns revcol_tiny ... revcol_xlarge. Opt out with
# REVACT_NO_IMPORT_HOOKS=1 (any value but "", "0", "false", "no").
if _os.environ.get("REVACT_NO_IMPORT_HOOKS", "").strip().lower() in ("", "0", "false", "no"):
    _call_after_import("ultralytics.nn.tasks", _ultralytics.register)
    _call_after_import("timm", _timm.register)

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
    "use_fused_kernels",
    "use_native_kernels",
    "native_kernels_available",
    "NativeKernelsWarning",
    "info",
    "param_groups",
    "swap_activations",
    "count_flops",
    "FlopReport",
    "SwapReport",
    "CallSites",
    "export_onnx",
    "RevCol",
    "RevColLoss",
    "revcol_tiny",
    "revcol_small",
    "revcol_base",
    "revcol_large",
    "revcol_xlarge",
]
