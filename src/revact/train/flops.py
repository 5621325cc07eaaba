"""A small MAC counter that does count activation maths.

thop, fvcore and ``FlopCounterMode`` count elementwise activations as free, which hides what
DY-ReLU's hyper-function and ACON's gates cost. The rule used here, per image:

* ``Conv2d``: output elements × (in_channels / groups) × kernel area; ``Linear``: output
  elements × in_features. Hyper-functions built from these modules (DY-ReLU's FCs, Meta-ACON's
  1×1 convs, DY-ReLU-C's spatial conv) are counted by the same hooks; a conv/linear inside
  an activation that is applied functionally (its hook never fires, e.g. Meta-ACON's 1×1
  convs run as matrix products on the pooled vector) counts its weight size once per image,
  or once per spatial position when it projects to a single output (DY-ReLU-C's spatial
  map, run as a functional 1×1 conv).
* Activation modules: output elements × an elementwise cost from :data:`ELEMENTWISE_COST`,
  in multiply-add equivalents (a compare, multiply, add or a ``max`` counts 1; ``exp``,
  ``log1p``, ``tanh`` and a division count 1 each as well, so σ(x) = 1/(1+e^{−x}) costs 2).
  Adaptive activations also pay 1 per input element for their global pooling (DY-ReLU,
  Meta-ACON) and DY-ReLU-C a further 2 per element for scaling its coefficients by the
  spatial map.
* BatchNorm, pooling in the backbone, residual adds and dropout are not counted (BatchNorm
  folds into the conv at inference); unknown activation classes cost 1.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ELEMENTWISE_COST", "count_macs"]

# Per output element, multiply-add equivalents (see module docstring).
ELEMENTWISE_COST: dict[str, float] = {
    "ReLU": 1, "ReLU6": 2, "LeakyReLU": 2, "PReLU": 2, "Hardtanh": 2,
    "Sigmoid": 2, "LogSigmoid": 3, "Tanh": 2, "Softplus": 2, "ELU": 3,
    "Hardswish": 3, "Hardsigmoid": 2,
    "SiLU": 3,  # x·σ(x)
    "Swish": 4, "AconA": 4,  # x·σ(βx)
    "Mish": 5,  # x·tanh(softplus(x))
    "GELU": 7,  # tanh form: x³, fma, tanh, 1+, two muls
    "AconB": 7, "AconC": 7,  # (p1−p2)x, β·, σ (2), ·, p2·x +
    "MetaAcon": 8, "MetaAconC": 8,  # ACON-C + pooling for β
    "DyReLUA": 5, "DyReLUB": 5,  # K=2 pieces: 2 multiply-adds + max, + pooling
    "DyReLUC": 7,  # B + spatial scaling of a and b
}


def _conv_hook(m: nn.Conv2d, inp, out) -> float:
    k = m.kernel_size[0] * m.kernel_size[1]
    return out.numel() * (m.in_channels // m.groups) * k


def _linear_hook(m: nn.Linear, inp, out) -> float:
    return out.numel() * m.in_features


def _act_hook(m: nn.Module, inp, out) -> float:
    return out.numel() * ELEMENTWISE_COST.get(type(m).__name__, 1)


@torch.no_grad()
def count_macs(
    model: nn.Module, input_size: tuple[int, ...], act_types: tuple[type, ...] | None = None
) -> dict[str, float]:
    """Multiply-accumulates for one image, split into layers and activation maths.

    Args:
        model: the network; evaluated once in eval mode on a batch of 2 (then halved, so
            BatchNorm-containing hyper-functions work).
        input_size: ``(C, H, W)`` of one image.
        act_types: classes counted as activations; by default every class named in
            :data:`ELEMENTWISE_COST` plus anything from ``revact.activations``.

    Returns:
        ``{'macs': total, 'layer_macs': conv+linear, 'act_macs': activation elementwise}``.
    """
    counts = {"layer": 0.0, "act": 0.0}
    handles = []
    fired: set[int] = set()
    positions: dict[int, float] = {}  # activation module → spatial positions per image

    def is_act(m: nn.Module) -> bool:
        if act_types is not None:
            return isinstance(m, act_types)
        mod = type(m).__module__
        return type(m).__name__ in ELEMENTWISE_COST or mod.startswith("revact.activations") or (
            mod == "torch.nn.modules.activation")

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fn, key = _conv_hook, "layer"
        elif isinstance(m, nn.Linear):
            fn, key = _linear_hook, "layer"
        elif is_act(m):
            fn, key = _act_hook, "act"
        else:
            continue
        def hook(mod, i, o, fn=fn, key=key):
            fired.add(id(mod))
            counts[key] += fn(mod, i, o)
            if key == "act" and o.dim() > 2:
                positions[id(mod)] = o[0].numel() / o.shape[1]

        handles.append(m.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
        model(torch.zeros(2, *input_size, device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    # Hyper-function layers used through their weights only: once per image, on the
    # pooled vector (x2 for the batch of 2 divided out below).
    for m in model.modules():
        if is_act(m):
            for sub in m.modules():
                if isinstance(sub, nn.Conv2d | nn.Linear) and id(sub) not in fired:
                    per_position = sub.weight.shape[0] == 1
                    reps = positions.get(id(m), 1.0) if per_position else 1.0
                    counts["layer"] += 2 * sub.weight.numel() * reps
    layer, act = counts["layer"] / 2, counts["act"] / 2
    return {"macs": layer + act, "layer_macs": layer, "act_macs": act}


def saved_tensor_mib(model: nn.Module, x: torch.Tensor) -> float:
    """MiB that autograd keeps for the backward pass of one training forward on ``x``.

    This is the activation memory a training step needs (what lean activation kernels save),
    measured exactly and independent of allocator caching, unlike a process's RSS. Tensors
    that share storage (views, parameters) are counted once; parameters are excluded.
    Runs on a deep copy so the model's BatchNorm statistics are not touched.
    """
    import copy

    net = copy.deepcopy(model).train()
    params = {p.untyped_storage().data_ptr() for p in net.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            seen[ptr] = max(seen.get(ptr, 0), t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = net(x)
    out.float().sum().backward()
    return sum(seen.values()) / 2**20
