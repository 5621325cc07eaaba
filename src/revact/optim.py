"""Optimizer parameter groups that keep weight decay off activation parameters."""

from __future__ import annotations

from torch import nn

__all__ = ["param_groups", "decays"]


def decays(name: str, param: nn.Parameter) -> bool:
    """Whether a parameter should carry weight decay.

    The official ACON recipe decays only parameters named ``weight`` with more than
    one dimension: convolution and linear kernels. Everything else (biases, norm
    scales, ACON's ``p1``/``p2``/``beta``, Swish's β, RevCol's α, layer scales) is
    shape, not capacity; decaying it pulls ACON towards a linear function, and the
    replications that did so saw no gain.
    """
    return name.rsplit(".", 1)[-1] == "weight" and param.ndim > 1


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split ``model``'s trainable parameters into a decayed and a non-decayed group.

    Args:
        model: any module.
        weight_decay: the decay for convolution and linear kernels.

    Returns:
        Parameter groups for any ``torch.optim`` optimizer: ``{'params', 'weight_decay'}``
        dicts, empty groups left out.

    Example::

        >>> opt = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-3)
    """
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (decay if decays(name, param) else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]
