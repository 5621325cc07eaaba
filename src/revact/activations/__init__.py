"""Activations: classic ones from ``torch.nn``, ACON / Meta-ACON and DY-ReLU."""

from revact.activations.acon import AconA, AconB, AconC, MetaAcon, MetaAconC, Swish
from revact.activations.create_act import ActSpec, act_spec, create_act, get_act_layer, list_acts
from revact.activations.dyrelu import DyReLUA, DyReLUB, DyReLUC
from revact.activations.functional import (
    native_kernels_available,
    use_fused_kernels,
    use_native_kernels,
)

__all__ = [
    "ActSpec",
    "AconA",
    "AconB",
    "AconC",
    "DyReLUA",
    "DyReLUB",
    "DyReLUC",
    "MetaAcon",
    "MetaAconC",
    "Swish",
    "act_spec",
    "create_act",
    "get_act_layer",
    "list_acts",
    "native_kernels_available",
    "use_fused_kernels",
    "use_native_kernels",
]
