"""The native CPU kernels (``src/revact/csrc``), for the cases they cover.

They compute :func:`~revact.activations.functional.acon` and the K = 2
:func:`~revact.activations.functional.max_affine` in one pass each way, with the
coefficient-gradient sums in the same loop. They cover what networks run most: a
contiguous channels-first CPU tensor in float32 or float64, with coefficients per
channel, per sample, per sample and channel, or shared (``(n|1, c|1, 1, ...)``), and
DY-ReLU-C's per-position scale ``(N, 1, *spatial)``. Everything else (other devices and
dtypes, autocast, channels-last or token layouts, per-position coefficients, K ≠ 2,
differentiating the kernels themselves, tracing, ONNX export, ``torch.compile``) goes
to the PyTorch bodies, which give the same numbers.

Each entry returns ``None`` when its inputs are not a case it covers.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

_DTYPES = (torch.float32, torch.float64)
_state: dict[str, bool | None] = {"loaded": None, "enabled": True}


def _load() -> bool:
    if _state["loaded"] is None:
        library = next(Path(__file__).resolve().parents[1].glob("_C.*"), None)
        try:
            if library is None:
                raise OSError("revact/_C was not built")
            torch.ops.load_library(str(library))
            _state["loaded"] = True
        except (OSError, RuntimeError) as error:
            # Built for another torch, or not built: the PyTorch bodies still work.
            if library is not None:
                warnings.warn(f"revact: native CPU kernels not loaded ({error}); using the "
                              "PyTorch versions", RuntimeWarning, stacklevel=3)
            _state["loaded"] = False
    return bool(_state["loaded"])


def available() -> bool:
    """Whether the native CPU kernels were built and load."""
    return _load()


@contextlib.contextmanager
def enabled(flag: bool) -> Iterator[None]:
    """Use the native kernels where they apply (``flag=True``) or nowhere."""
    previous, _state["enabled"] = _state["enabled"], flag
    try:
        yield
    finally:
        _state["enabled"] = previous


def _usable(x: Tensor, *coeffs: Tensor | None) -> bool:
    if not _state["enabled"] or x.device.type != "cpu" or x.dtype not in _DTYPES:
        return False
    if x.dim() < 2 or not x.is_contiguous():
        return False
    if any(c is not None and (c.dtype != x.dtype or c.device != x.device) for c in coeffs):
        return False
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
        return False
    # The ops have no autograd formula: with grad mode on (create_graph=True) a
    # differentiable input must go through PyTorch operations.
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, *coeffs)):
        return False
    return _load()


def _rows(coeff: Tensor, x: Tensor) -> Tensor | None:
    """``coeff`` as a contiguous (N, C) tensor, if it is constant over ``x``'s spatial
    axes and broadcasts against ``x``; else ``None``."""
    if coeff.dim() > x.dim():
        return None
    shape = (1,) * (x.dim() - coeff.dim()) + tuple(coeff.shape)
    if any(d != 1 for d in shape[2:]) or shape[0] not in (1, x.shape[0]) or \
            shape[1] not in (1, x.shape[1]):
        return None
    return coeff.reshape(shape[:2]).expand(x.shape[0], x.shape[1]).contiguous()


def _per_row_grad(sums: Tensor, x: Tensor, shape: torch.Size) -> Tensor:
    """An (N, C[, K]) sum reduced to a coefficient's ``shape``."""
    extra = sums.shape[2:]
    full = sums.view(x.shape[0], x.shape[1], *([1] * (x.dim() - 2)), *extra)
    return full.sum_to_size(shape)


def _flat(x: Tensor) -> Tensor:
    return x.view(x.shape[0], x.shape[1], -1)


def _acon_rows(x: Tensor, p1: Tensor, p2: Tensor, beta: Tensor):
    dp = p1 - p2
    rows = [_rows(c, x) for c in (p2, dp, beta * dp)]
    return None if any(r is None for r in rows) else rows


def acon_forward(x: Tensor, p1: Tensor, p2: Tensor, beta: Tensor) -> Tensor | None:
    if not _usable(x, p1, p2, beta) or (rows := _acon_rows(x, p1, p2, beta)) is None:
        return None
    return torch.ops.revact.acon_forward(_flat(x), *rows).view_as(x)


def acon_backward(grad: Tensor, x: Tensor, p1: Tensor, p2: Tensor, beta: Tensor):
    if not _usable(x, p1, p2, beta) or grad.dtype != x.dtype or \
            (rows := _acon_rows(x, p1, p2, beta)) is None:
        return None
    g_x, s_dd, s_x, s_ds = torch.ops.revact.acon_backward(
        _flat(grad.contiguous()), _flat(x), *rows)
    dp = rows[1]
    return (g_x.view_as(x), _per_row_grad(s_dd, x, p1.shape),
            _per_row_grad(s_x - s_dd, x, p2.shape),
            _per_row_grad(s_ds * (dp * dp), x, beta.shape))


def _max2_rows(x: Tensor, a: Tensor, b: Tensor, scale: Tensor | None):
    if a.shape[-1] != 2:
        return None
    a0, b0 = a[..., 0], b[..., 0]
    rows = [_rows(c, x) for c in (a0, b0, a[..., 1] - a0, b[..., 1] - b0)]
    if any(r is None for r in rows):
        return None
    if scale is not None:
        if tuple(scale.shape) != (x.shape[0], 1, *x.shape[2:]):
            return None
        scale = scale.contiguous().view(x.shape[0], -1)
    return [*rows, scale]


def max_affine_forward(x: Tensor, a: Tensor, b: Tensor, scale: Tensor | None) -> Tensor | None:
    if not _usable(x, a, b, scale) or (rows := _max2_rows(x, a, b, scale)) is None:
        return None
    return torch.ops.revact.max2_forward(_flat(x), *rows).view_as(x)


def max_affine_grads(grad: Tensor, x: Tensor, a: Tensor, b: Tensor, scale: Tensor | None):
    if not _usable(x, a, b, scale) or grad.dtype != x.dtype or \
            (rows := _max2_rows(x, a, b, scale)) is None:
        return None
    g_x, s_g, s_gw, s_gx, s_gxw, g_scale = torch.ops.revact.max2_backward(
        _flat(grad.contiguous()), _flat(x), *rows)
    g_a = _per_row_grad(torch.stack([s_gx - s_gxw, s_gxw], -1), x, a.shape)
    g_b = _per_row_grad(torch.stack([s_g - s_gw, s_gw], -1), x, b.shape)
    if scale is not None:
        g_scale = g_scale.view(scale.shape)
    else:
        g_scale = None
    return g_x.view_as(x), g_a, g_b, g_scale
