"""The native CPU kernels (``src/revact/csrc``), for the cases they cover.

They compute :func:`~revact.activations.functional.acon` and the K = 2
:func:`~revact.activations.functional.max_affine` in one pass each way, with the
coefficient-gradient sums in the same loop. They cover what networks run: a float32 or
float64 CPU tensor laid out channels-first (contiguous ``(N, C, *)``) or channels-last
(``(N, C, *)`` whose ``(N, *, C)`` view is contiguous: channels-last feature maps, and
DY-ReLU's and :class:`~revact.activations.channels_last.ChannelsLast`'s tokens), with
coefficients per channel, per sample, per sample and channel, or shared
(``(n|1, c|1, 1, ...)``), and DY-ReLU-C's per-position scale ``(N, 1, *spatial)``.
Everything else (other devices and dtypes, autocast, other strides, per-position
coefficients, K ≠ 2, differentiating the kernels themselves, tracing, ONNX export) goes
to the PyTorch bodies, which give the same numbers. Under ``torch.compile`` the ops enter
the graph as calls Inductor leaves alone (their shapes come from the fake kernels
registered below).

Each entry returns ``None`` when its inputs are not a case it covers.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import Tensor

_DTYPES = (torch.float32, torch.float64)
_state: dict[str, bool | None] = {"loaded": None, "enabled": True, "compilable": False}


def _load() -> bool:
    if _state["loaded"] is None:
        library = next(Path(__file__).resolve().parents[1].glob("_C.*"), None)
        try:
            if library is None:
                raise OSError("revact/_C was not built")
            torch.ops.load_library(str(library))
            _state["compilable"] = _register_fakes()
            _state["loaded"] = True
        except (OSError, RuntimeError) as error:
            # Built for another torch, or not built: the PyTorch bodies still work.
            if library is not None:
                warnings.warn(f"revact: native CPU kernels not loaded ({error}); using the "
                              "PyTorch versions", RuntimeWarning, stacklevel=3)
            _state["loaded"] = False
    return bool(_state["loaded"])


def _register_fakes() -> bool:
    """Output shapes for torch.compile's fake tensors: each op allocates its outputs.
    Returns whether this torch can take them (``register_fake`` is torch ≥ 2.4; with an
    older one the ops stay out of compiled graphs)."""
    fake = getattr(torch.library, "register_fake", None)
    if fake is None:
        return False

    def rows(x: Tensor, channels_last: bool, *trailing: int) -> Tensor:
        return x.new_empty(x.shape[0], x.shape[-1 if channels_last else 1], *trailing)

    fake("revact::acon_forward")(lambda x, p1, p2, beta, cl: torch.empty_like(x))
    fake("revact::acon_backward")(lambda grad, x, p1, p2, beta, cl: (
        torch.empty_like(x), rows(x, cl), rows(x, cl), rows(x, cl)))
    fake("revact::max2_forward")(lambda x, a, b, scale, cl: torch.empty_like(x))
    fake("revact::max2_backward")(lambda grad, x, a, b, scale, cl: (
        torch.empty_like(x), rows(x, cl, 2), rows(x, cl, 2),
        x.new_empty(0) if scale is None else torch.empty_like(scale)))
    return True


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
    if x.dim() < 2:
        return False
    if any(c is not None and (c.dtype != x.dtype or c.device != x.device) for c in coeffs):
        return False
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return False
    if torch.compiler.is_compiling() and not _state["compilable"]:
        return False
    # The ops have no autograd formula: with grad mode on (create_graph=True) a
    # differentiable input must go through PyTorch operations.
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, *coeffs)):
        return False
    return _load()


def _rows(coeff: Tensor, x: Tensor, trailing: int = 0) -> Tensor | None:
    """``coeff`` as an (N, C, *trailing dims) view, if it is constant over ``x``'s
    spatial axes and broadcasts against ``x``; else ``None``."""
    lead = coeff.dim() - trailing
    if lead > x.dim() or lead < 0:
        return None
    shape = (1,) * (x.dim() - lead) + tuple(coeff.shape)
    rows, spatial, tail = shape[:2], shape[2:x.dim()], shape[x.dim():]
    if any(d != 1 for d in spatial) or rows[0] not in (1, x.shape[0]) or \
            rows[1] not in (1, x.shape[1]):
        return None
    return coeff.reshape(*rows, *tail).expand(x.shape[0], x.shape[1], *tail)


def _reduced(grad: Tensor, x: Tensor, shape: torch.Size) -> Tensor:
    """An (N, C[, K]) gradient summed to a coefficient's ``shape``."""
    full = grad.view(x.shape[0], x.shape[1], *([1] * (x.dim() - 2)), *grad.shape[2:])
    return full.sum_to_size(shape)


def _kernel_view(x: Tensor) -> tuple[Tensor, bool] | None:
    """``x`` as the kernels take it: itself when contiguous (channels first), or its
    contiguous (N, *, C) view (channels-last feature maps, transposed tokens), with the
    channels-last flag; ``None`` for any other layout."""
    if x.is_contiguous():
        return x, False
    moved = x.movedim(1, -1)
    return (moved, True) if moved.is_contiguous() else None


def _call(op: Callable, x: Tensor, coeffs: tuple, rows: list | None,
          grad: Tensor | None = None):
    """``op`` on ``x`` in the kernels' layout, the result back in ``x``'s layout; ``None``
    when the coefficients (``rows``) or the layout are not a native case. With ``grad``:
    the backward, whose (N, C[, 2]) coefficient gradients come back summed to each of
    ``coeffs``' shapes; trailing outputs (DY-ReLU-C's scale gradient) pass as they are."""
    view = _kernel_view(x)
    if rows is None or view is None:
        return None
    xk, channels_last = view

    def back(t: Tensor) -> Tensor:
        # Detached: autograd would take a view made inside the custom Function for one
        # and forbid modifying the result in place.
        return t.movedim(-1, 1).detach() if channels_last else t

    if grad is None:
        return back(op(xk, *rows, channels_last))
    grad = (grad.movedim(1, -1) if channels_last else grad).contiguous()
    g_x, *g_coeffs = op(grad, xk, *rows, channels_last)
    summed = [_reduced(g, x, c.shape) for g, c in zip(g_coeffs, coeffs, strict=False)]
    return back(g_x), *summed, *g_coeffs[len(coeffs):]


def _acon_rows(x: Tensor, *coeffs: Tensor) -> list[Tensor] | None:
    rows = [_rows(c, x) for c in coeffs]
    return None if any(r is None for r in rows) else rows


def acon_forward(x: Tensor, p1: Tensor, p2: Tensor, beta: Tensor) -> Tensor | None:
    if not _usable(x, p1, p2, beta):
        return None
    return _call(torch.ops.revact.acon_forward, x, (), _acon_rows(x, p1, p2, beta))


def acon_backward(grad: Tensor, x: Tensor, p1: Tensor, p2: Tensor, beta: Tensor):
    if not _usable(x, p1, p2, beta) or grad.dtype != x.dtype:
        return None
    return _call(torch.ops.revact.acon_backward, x, (p1, p2, beta),
                 _acon_rows(x, p1, p2, beta), grad)


def _max2_rows(x: Tensor, a: Tensor, b: Tensor, scale: Tensor | None) -> list | None:
    # a and b have one shape: max_affine checks it before anything runs.
    if a.shape[-1] != 2:
        return None
    if scale is not None and (scale.shape != (x.shape[0], 1, *x.shape[2:])
                              or not scale.is_contiguous()):
        return None
    rows = [_rows(a, x, 1), _rows(b, x, 1)]
    return None if any(r is None for r in rows) else [*rows, scale]


def max_affine_forward(x: Tensor, a: Tensor, b: Tensor, scale: Tensor | None) -> Tensor | None:
    if not _usable(x, a, b, scale):
        return None
    return _call(torch.ops.revact.max2_forward, x, (), _max2_rows(x, a, b, scale))


def max_affine_grads(grad: Tensor, x: Tensor, a: Tensor, b: Tensor, scale: Tensor | None):
    """Gradients for x, a, b and the scale (``None`` without one)."""
    if not _usable(x, a, b, scale) or grad.dtype != x.dtype:
        return None
    out = _call(torch.ops.revact.max2_backward, x, (a, b), _max2_rows(x, a, b, scale), grad)
    return None if out is None else (*out[:3], None if scale is None else out[3])


# Loaded with the package (a dlopen, milliseconds): torch.compile cannot trace the load
# (a graph break, or an error with fullgraph=True), and a model may be compiled before
# anything ran eagerly.
_load()
