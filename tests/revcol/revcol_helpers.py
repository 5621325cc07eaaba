"""Small RevCol configurations and helpers shared by the RevCol tests (imported by name:
pytest puts this folder on sys.path)."""

from __future__ import annotations

import torch

from revact.bench.memory import saved_tensor_bytes as saved_bytes  # noqa: F401 (RevCol tests)
from revact.revcol import RevCol

CHANNELS = (8, 16, 32, 64)
LAYERS = (1, 1, 1, 1)


def make_model(num_subnet: int = 4, dtype: torch.dtype = torch.float64, seed: int = 0,
               alpha: float | None = None, **kwargs) -> RevCol:
    """A small RevCol with layer scale raised to O(1), so every block matters in the checks."""
    torch.manual_seed(seed)
    kwargs.setdefault("num_classes", 10)
    model = RevCol(CHANNELS, LAYERS, num_subnet, **kwargs).to(dtype)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.uniform_(0.5, 1.0)
            elif alpha is not None and ".alpha" in name:
                p.fill_(alpha)
    return model.train()


def rel_err(a: torch.Tensor | None, b: torch.Tensor | None, floor: float = 0.0) -> float:
    """‖a − b‖ / max(‖b‖, floor) (0 when both are zero)."""
    assert (a is None) == (b is None), "one gradient is None and the other is not"
    if a is None:
        return 0.0
    den = max(float(b.double().norm()), floor)
    num = float((a.double() - b.double()).norm())
    return num / den if den > 0 else num


def max_rel_err(grads_a, grads_b, floor: float = 0.0) -> float:
    return max(rel_err(a, b, floor) for a, b in zip(grads_a, grads_b, strict=True))


def grads_of(model: RevCol, x: torch.Tensor, loss_fn=None) -> tuple:
    """Gradients of a scalar loss w.r.t. the input and every parameter, by autograd.grad."""
    out = model(x)
    loss = loss_fn(out) if loss_fn else _default_loss(out)
    params = [p for p in model.parameters() if p.requires_grad]
    wrt = ([x] if x.requires_grad else []) + params
    return torch.autograd.grad(loss, wrt, allow_unused=True)


def _default_loss(out):
    if isinstance(out, list | tuple):
        return sum(_default_loss(o) for o in out)
    # A fixed, non-trivial weighting so every output element matters differently.
    w = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    return (out * w).sum() + out.square().sum()


def graph_names(out) -> set[str]:
    """Names of every autograd node reachable from ``out``."""
    outs = out if isinstance(out, list | tuple) else [out]
    todo = [o.grad_fn for o in outs if o.grad_fn is not None]
    seen, names = set(), set()
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.add(type(fn).__name__)
        todo.extend(f for f, _ in fn.next_functions)
    return names


def image(h: int = 64, w: int | None = None, dtype: torch.dtype = torch.float64,
          requires_grad: bool = True) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, h, w or h, generator=g, dtype=dtype)
    return x.requires_grad_(requires_grad)
