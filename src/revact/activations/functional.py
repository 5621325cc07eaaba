"""Memory-lean kernels behind the adaptive activations.

Two element-wise maps cover every adaptive activation of the library:

* :func:`acon` — the smooth maximum of ACON,
  ``y = (p1 - p2)·x·σ(β·(p1 - p2)·x) + p2·x``. Swish (``p1=1, p2=0``), ACON-A/B/C and
  Meta-ACON are all this map with different coefficient tensors.
* :func:`max_affine` — the piecewise-linear maximum of DY-ReLU,
  ``y = s·max_k(a_k·x + b_k)``, with an optional non-negative spatial scale ``s``
  (DY-ReLU-C; ``max_k(s·a_k·x + s·b_k) = s·max_k(a_k·x + b_k)`` because ``s ≥ 0``).

Plain autograd would keep several full-size intermediates per call (σ, products, the
K stacked branches). The custom :class:`torch.autograd.Function` s here keep only the
input and the small coefficient tensors and recompute the rest in backward, so an
activation costs one input-sized tensor of saved memory, as ReLU does.

Coefficients broadcast against ``x`` (per-channel ``(1, C, 1, 1)``, per-sample
``(N, C, 1, 1)``, or full size); their gradients are reduced back to their own shape.
Under autocast the maths runs in the promoted dtype of the inputs and the output is
cast back to ``x.dtype``, so a bfloat16 activation stays bfloat16.

When no gradient is needed (inference, ``torch.no_grad``, ONNX export, tracing) the
same forward maths runs without the autograd Function.

Three implementations of each body give the same numbers:

* native CPU kernels (``src/revact/csrc``, built at install), one pass each way with the
  coefficient-gradient sums in the same loop, used wherever they apply
  (:mod:`revact.activations._native` lists the cases: contiguous channels-first float32
  / float64 CPU tensors with per-channel or per-sample coefficients cover the networks);
  :func:`use_native_kernels` turns them off, for comparisons;
* ``torch.compile``-d PyTorch bodies under :func:`use_fused_kernels` (Inductor fuses each
  into one pass; for GPUs and the cases the native kernels leave out);
* the PyTorch bodies below, eager, for everything else.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from revact.activations import _native
from revact.activations._layout import check_floating

__all__ = [
    "acon",
    "max_affine",
    "spatial_mean",
    "use_fused_kernels",
    "fused_kernels_enabled",
    "use_native_kernels",
    "native_kernels_available",
]


def _result_dtype(*tensors: Tensor | None) -> torch.dtype:
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        if t is not None:
            dtype = torch.promote_types(dtype, t.dtype)
    return dtype


class _Ops:
    """Element-wise steps that write into their first operand when that is safe.

    On CPU a fresh activation-sized tensor often lands in memory the process has not
    touched, whose page faults cost more than the arithmetic (a multiply into such memory
    takes 3-4× one into a touched buffer: benchmarks/cpu_primitives.py),
    so the kernels below overwrite their own temporaries. Only with grad mode off: with
    it on (``create_graph=True``, tracing) autograd records the steps, and double
    backward needs them out of place. Never while ``torch.jit.trace`` records: its
    default check re-traces under ``torch.no_grad()`` and compares the two graphs, which
    must then not differ in ``mul`` against ``mul_``.
    """

    def __init__(self) -> None:
        inplace = not torch.is_grad_enabled() and not torch.jit.is_tracing()
        self.mul = Tensor.mul_ if inplace else Tensor.mul
        self.add = Tensor.add_ if inplace else Tensor.add
        self.sub = Tensor.sub_ if inplace else Tensor.sub
        self.addcmul = Tensor.addcmul_ if inplace else Tensor.addcmul
        self.sigmoid = Tensor.sigmoid_ if inplace else Tensor.sigmoid
        self.clamp_min = Tensor.clamp_min_ if inplace else Tensor.clamp_min
        self.relu = Tensor.relu_ if inplace else Tensor.relu
        # t > 0 as 0/1 in t's dtype, in t's buffer.
        self.positive = (lambda t: t.gt_(0)) if inplace else (lambda t: (t > 0).to(t.dtype))
        self.inplace = inplace

    def into(self, out: Tensor, fn: Callable, *args: Tensor) -> Tensor:
        """``fn(*args)`` written into ``out`` (a temporary the caller is done with, of the
        result's shape and dtype), or a new tensor when writing in place is not safe."""
        return fn(*args, out=out) if self.inplace else fn(*args)


def _sum_to(t: Tensor, shape: torch.Size) -> Tensor:
    """``t`` summed down to ``shape``; a copy when no sum is needed, because the kernels
    go on to overwrite ``t``'s buffer."""
    return t.clone() if t.shape == shape else t.sum_to_size(shape)


def _constant_over_sum(c: Tensor, shape: torch.Size, ndim: int) -> bool:
    """Whether ``c`` is constant along every axis that summing an ``ndim``-D tensor down
    to ``shape`` removes, so that ``Σ(t·c) = (Σt)·c`` and the product can follow the
    (much smaller) sum."""
    cs = (1,) * (ndim - c.dim()) + tuple(c.shape)
    ss = (1,) * (ndim - len(shape)) + tuple(shape)
    return all(cd == 1 or sd != 1 for cd, sd in zip(cs, ss, strict=True))


# --------------------------------------------------------------------------- ACON


def _acon_forward(x: Tensor, p1: Tensor, p2: Tensor, beta: Tensor) -> Tensor:
    dtype = _result_dtype(x, p1, p2, beta)
    xc, p1, p2, beta, op = x.to(dtype), p1.to(dtype), p2.to(dtype), beta.to(dtype), _Ops()
    dp = p1 - p2
    # y = x·(p2 + dp·σ(β·dp·x)): one activation-sized buffer, four passes over it.
    y = op.sigmoid((beta * dp) * xc)
    if op.inplace and y.shape == torch.broadcast_shapes(y.shape, p2.shape, dp.shape):
        y = op.into(y, torch.addcmul, p2, y, dp)
    else:  # p2 or dp has a larger shape than y: out of place
        y = torch.addcmul(p2, y, dp)
    return op.mul(y, xc).to(x.dtype)


def _acon_backward(
    grad: Tensor, x: Tensor, p1: Tensor, p2: Tensor, beta: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    dtype = _result_dtype(x, p1, p2, beta)
    xc, g, op = x.to(dtype), grad.to(dtype), _Ops()
    # Products of coefficients in the working dtype too (0-d tensors do not promote).
    p1, p2, beta = p1.to(dtype), p2.to(dtype), beta.to(dtype)
    # With d = (p1 - p2)·x and z = β·d: dy/dd = σ(z) + z·σ'(z), dy/dβ = d²·σ'(z).
    # Three activation-sized buffers (z, s, g_ds), each reused once it is spent.
    dp = p1 - p2
    z = (beta * dp) * xc
    s = torch.sigmoid(z)
    # g·σ'(z) = g·s·(1 - s) in one native pass.
    g_ds = torch.ops.aten.sigmoid_backward(g, s) if x.shape == g.shape else \
        op.mul(op.mul(torch.rsub(s, 1), s), g)
    g_dd = op.addcmul(op.mul(s, g), z, g_ds)  # g·dy/dd, in s's buffer
    # Reduce inside the kernel, so a fused build never materialises full-size grads.
    # dp² after the sum when it is constant over the summed axes (per-channel ACON).
    g_ds_x2 = op.mul(op.mul(g_ds, xc), xc)
    if _constant_over_sum(dp, beta.shape, g_ds_x2.dim()):
        g_beta = _sum_to(g_ds_x2, beta.shape) * (dp * dp)
    else:
        g_beta = _sum_to(op.mul(g_ds_x2, dp * dp), beta.shape)
    g_dd_x = op.into(z, torch.mul, g_dd, xc) if z.shape == g_dd.shape else g_dd * xc
    g_p1 = _sum_to(g_dd_x, p1.shape)
    g_x_x = op.into(g_ds_x2, torch.mul, g, xc) if g_ds_x2.shape == g.shape else g * xc
    g_p2 = _sum_to(op.sub(g_x_x, g_dd_x), p2.shape)  # dy/dp2 = x - dy/dp1
    g_x = op.addcmul(op.mul(g_dd, dp), g, p2)
    return g_x, g_p1, g_p2, g_beta


def acon(x: Tensor, p1: Tensor, p2: Tensor, beta: Tensor) -> Tensor:
    r"""ACON smooth maximum :math:`(p_1 - p_2)x\,\sigma(\beta(p_1 - p_2)x) + p_2 x`.

    Args:
        x: input of any shape.
        p1, p2, beta: tensors broadcastable to ``x`` (scalars as 0-d or 1-element tensors).

    Returns:
        A tensor of the shape and dtype of ``x``.

    Raises:
        TypeError: ``x`` is not a floating-point tensor.
    """
    check_floating(x, "acon")
    if _needs_autograd(x, p1, p2, beta):  # (False while exporting)
        out = _traced_native(_native.acon_forward, x, p1, p2, beta)
        return _AconFunction.apply(x, p1, p2, beta) if out is None else out
    if torch.onnx.is_in_onnx_export() and all(t.dtype == x.dtype for t in (p1, p2, beta)):
        return _acon_graph(x, p1, p2, beta)
    return _ACON_FORWARD(x, p1, p2, beta)


def _acon_graph(x: Tensor, p1: Tensor, p2: Tensor, beta: Tensor) -> Tensor:
    """ACON as an ONNX export records it: the coefficient products depend on parameters
    only (folded into constants by the exporter), leaving five activation-sized operations,
    x·(p2 + dp·σ(β·dp·x)), with no dtype casts and no ``addcmul`` scale. (A TorchScript
    trace keeps the eager body: it must give the eager module's bits.)"""
    dp = p1 - p2
    return x * (p2 + dp * torch.sigmoid((beta * dp) * x))


# --------------------------------------------------------------------- max-affine


def _max_affine_forward(x: Tensor, a: Tensor, b: Tensor, scale: Tensor | None) -> Tensor:
    dtype = _result_dtype(x, a, b, scale)
    xc, op = x.to(dtype), _Ops()
    # (len(range(...)): a trace takes K as a constant this way, without a check.)
    if len(range(a.shape[-1])) == 2:
        # max(a0·x + b0, a1·x + b1) = a0·x + b0 + relu((a1 - a0)·x + (b1 - b0)): one
        # activation-sized buffer instead of two; the backward's winner test is the
        # sign of the same difference.
        y = _max2_from_difference(_max2_difference(xc, a, b), xc, a, b, op)
        if scale is not None:
            y = op.mul(y, scale)
        return y.to(x.dtype)
    y = torch.addcmul(b[..., 0], a[..., 0], xc)
    for k in range(1, a.shape[-1]):
        # clamp_min against a tensor is maximum, with an in-place form.
        y = op.clamp_min(y, torch.addcmul(b[..., k], a[..., k], xc))
    if scale is not None:
        y = op.mul(y, scale)
    return y.to(x.dtype)


def _max_affine_backward(
    grad: Tensor, x: Tensor, a: Tensor, b: Tensor, scale: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    native = _native.max_affine_grads(grad, x, a, b, scale)
    if native is not None:  # the scale's gradient too, in the same pass
        return native
    dtype = _result_dtype(x, a, b, scale)
    xc, g = x.to(dtype), grad.to(dtype)
    if scale is not None and _fused:
        # Two compiled kernels, not one: fused with the per-channel sums, the channel sum
        # for the scale and the broadcast g·s make Inductor's loop nest 5× slower (torch
        # 2.14). Eager, one body shares the recomputed branches instead.
        g_scale = _MAX_AFFINE_SCALE_GRAD.pytorch(g, xc, a, b, scale)
        g_x, g_a, g_b, _ = _MAX_AFFINE_GRADS.pytorch(g * scale, xc, a, b, None)
        return g_x, g_a, g_b, g_scale
    return _MAX_AFFINE_GRADS.pytorch(g, xc, a, b, scale)


def _max2_difference(x: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``(a1 - a0)·x + (b1 - b0)``: branch 1 of the K = 2 maximum wins where it is > 0."""
    return torch.addcmul(b[..., 1] - b[..., 0], a[..., 1] - a[..., 0], x)


def _max2_from_difference(u: Tensor, x: Tensor, a: Tensor, b: Tensor, op: _Ops) -> Tensor:
    """``max(a0·x + b0, a1·x + b1) = relu(u) + b0 + a0·x`` from ``u`` (which it may
    overwrite), in this order: the native kernels follow it, so that infinite and NaN
    inputs give the same results."""
    a0, b0 = a[..., 0], b[..., 0]
    y = op.relu(u)
    if op.inplace and y.shape == torch.broadcast_shapes(y.shape, a0.shape, b0.shape):
        return op.addcmul(op.add(y, b0), a0, x)
    return torch.addcmul(y + b0, a0, x)


def _max_affine_scale_grad(g: Tensor, x: Tensor, a: Tensor, b: Tensor, scale: Tensor) -> Tensor:
    return _sum_to(_Ops().mul(_max_affine_forward(x, a, b, None), g), scale.shape)


def _max_affine_grads(
    g: Tensor, x: Tensor, a: Tensor, b: Tensor, scale: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Gradients for x, a, b and the scale of ``scale·max_k(a_k·x + b_k)``."""
    if a.shape[-1] == 2:
        return _max2_grads(g, x, a, b, scale)
    # Recompute which branch won; ties go to the lowest k, as in the forward maximum.
    op, shape = _Ops(), a.shape[:-1]
    best = torch.addcmul(b[..., 0], a[..., 0], x)
    # The winner's index as a float: Inductor's CPU code writes small integer and bool
    # tensors slowly (see _max2_grads), and eager masked_fill_ is 2-4× slower than
    # this max, correct because branches come in increasing k.
    winner = torch.zeros_like(best)
    for k in range(1, a.shape[-1]):
        branch = torch.addcmul(b[..., k], a[..., k], x)
        winner = op.clamp_min(winner, (branch > best) * float(k))
        best = op.clamp_min(best, branch)
    g_scale = None
    if scale is not None:  # Σ g·max_k, from the maximum just recomputed
        g, g_scale = g * scale, _sum_to(op.mul(best, g), scale.shape)
    g_x, g_a, g_b = None, [], []
    for k in range(a.shape[-1]):
        g_k = g * (winner == k)  # for finite g torch.where(..., g, 0), at half the time
        g_b.append(_sum_to(g_k, shape))
        g_x = g_k * a[..., k] if g_x is None else op.addcmul(g_x, g_k, a[..., k])
        g_a.append(_sum_to(op.mul(g_k, x), shape))
    return g_x, torch.stack(g_a, -1), torch.stack(g_b, -1), g_scale


def _max2_grads(
    g: Tensor, x: Tensor, a: Tensor, b: Tensor, scale: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """The K = 2 default, with one 0/1 mask. Branch 1 wins where (a1 - a0)·x + (b1 - b0) > 0,
    as in the forward; ties (and NaN) go to k = 0. The native kernels follow these
    operations in this order."""
    a0, a1 = a[..., 0], a[..., 1]
    op, shape = _Ops(), a0.shape
    da = a1 - a0
    u = _max2_difference(x, a, b)
    g_scale = None
    if scale is None:
        wins = op.positive(u)  # in u's buffer; it becomes g·a_winner
    else:
        # A float mask, converted once: multiplying by a bool tensor converts it again on
        # every use (eager), and under torch.compile(model) Inductor keeps this mask for
        # a later kernel, where its CPU code writes a bool tensor over 10× slower than a
        # float one (torch 2.14; benchmarks/cpu_primitives.py).
        wins = (u > 0).to(g.dtype)
        # Σ g·max_k, from the maximum recomputed as the forward does (in u's buffer).
        g_scale = _sum_to(op.mul(_max2_from_difference(u, x, a, b, op), g), scale.shape)
        g = g * scale
    # The k = 0 terms are the totals minus the k = 1 terms, element by element: subtracting
    # the sums instead would cancel an extreme term (x = 1e38) against itself and lose
    # every other term of the sum.
    gx = g * x
    g1x = gx * wins
    g1x_sum, g0x_sum = _sum_to(g1x, shape), _sum_to(op.sub(gx, g1x), shape)
    g1 = op.mul(wins, g)  # for finite g torch.where(wins, g, 0), at half the time on CPU
    g1_sum, g0_sum = _sum_to(g1, shape), _sum_to(g - g1, shape)
    if g1.shape == torch.broadcast_shapes(g1.shape, da.shape, g.shape, a0.shape):
        g_x = op.addcmul(op.mul(g1, da), g, a0)  # g·a_winner, in the mask's buffer
    else:
        g_x = torch.addcmul(g1 * da, g, a0)
    g_a = torch.stack([g0x_sum, g1x_sum], -1)
    g_b = torch.stack([g0_sum, g1_sum], -1)
    return g_x, g_a, g_b, g_scale


def max_affine(x: Tensor, a: Tensor, b: Tensor, scale: Tensor | None = None) -> Tensor:
    r"""DY-ReLU's maximum of K affine maps, :math:`s\cdot\max_k(a_k x + b_k)`.

    Args:
        x: input of any shape.
        a, b: slopes and intercepts of shape ``(*B, K)`` where ``B`` broadcasts to
            ``x.shape`` (e.g. ``(N, C, 1, 1, K)`` for per-channel coefficients).
        scale: optional non-negative tensor broadcastable to ``x`` (DY-ReLU-C's
            spatial attention). Non-negativity is what lets it factor out of the max.

    Returns:
        A tensor of the shape and dtype of ``x``.

    Raises:
        TypeError: ``x`` is not a floating-point tensor.
        ValueError: ``a`` and ``b`` differ in shape.
    """
    check_floating(x, "max_affine")
    if not torch.jit.is_tracing() and a.shape != b.shape:  # a trace would keep no check
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    if _needs_autograd(x, a, b, scale):  # (False while exporting)
        out = _traced_native(_native.max_affine_forward, x, a, b, scale)
        return _MaxAffineFunction.apply(x, a, b, scale) if out is None else out
    if torch.onnx.is_in_onnx_export() and all(
            t is None or t.dtype == x.dtype for t in (a, b, scale)):
        return _max_affine_graph(x, a, b, scale)
    return _MAX_AFFINE_FORWARD(x, a, b, scale)


def _max_affine_graph(x: Tensor, a: Tensor, b: Tensor, scale: Tensor | None) -> Tensor:
    """The max-affine map as an ONNX export records it: plain multiplies and adds (no
    ``addcmul``, whose scale of 1 would be a multiply over the whole activation, and no
    dtype casts); K = 2 as a0·x + b0 + relu(da·x + db), the coefficient differences being
    small tensors."""
    a0, b0 = a[..., 0], b[..., 0]
    if len(range(a.shape[-1])) == 2:  # (len(range(...)): K a constant of the trace)
        y = a0 * x + b0 + torch.relu((a[..., 1] - a0) * x + (b[..., 1] - b0))
    else:
        y = a0 * x + b0
        for k in range(1, a.shape[-1]):
            y = torch.maximum(y, a[..., k] * x + b[..., k])
    return y if scale is None else y * scale


# ------------------------------------------------------------------ pooling


class _SpatialMean(torch.autograd.Function):
    """``x.mean(dims)`` whose gradient is a broadcast view instead of a full-size tensor.

    The hyper-functions pool the activation's own input, so that input gets two
    gradients: the kernel's and the pool's. Autograd's mean backward writes the pool's
    out at full size and then adds the two into a third buffer; a broadcast view is
    added into the kernel's gradient in place, saving two full passes per call site.
    """

    @staticmethod
    def forward(ctx, x: Tensor, dims: tuple[int, ...], dtype: torch.dtype | None) -> Tensor:
        ctx.shape, ctx.dims, ctx.x_dtype = x.shape, dims, x.dtype
        ctx.count = math.prod(x.shape[d] for d in dims)
        return x.mean(dim=dims, dtype=dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        for d in sorted(ctx.dims):
            grad = grad.unsqueeze(d)
        return (grad / ctx.count).to(ctx.x_dtype).expand(ctx.shape), None, None


def spatial_mean(x: Tensor, dims: tuple[int, ...], dtype: torch.dtype | None = None) -> Tensor:
    """``x.mean(dim=dims, dtype=dtype)`` (``dims`` non-negative), with a backward that
    returns a broadcast view; the hyper-functions' global pool."""
    if dtype == x.dtype:  # (an ONNX export would record a cast of the whole input)
        dtype = None
    if _needs_autograd(x) and not _native.is_compiling():
        return _SpatialMean.apply(x, tuple(dims), dtype)
    return x.mean(dim=dims, dtype=dtype)


# ------------------------------------------------------------------ dispatching


class _Kernel:
    """One kernel body: its native CPU version where that covers the inputs (``native``
    returns ``None`` where it does not), else its PyTorch version, eager or, under
    :func:`use_fused_kernels`, ``torch.compile``-d as a whole."""

    def __init__(self, body: Callable, native: Callable | None = None) -> None:
        self.body = body
        self.native = native
        self._compiled: Callable | None = None

    def pytorch(self, *args: Tensor | None):
        """The PyTorch body: eager, or compiled under :func:`use_fused_kernels`."""
        # Inside an outer torch.compile the eager bodies are traced (and fused) anyway.
        if not _fused or _native.is_compiling():
            return self.body(*args)
        if self._compiled is None:
            self._compiled = torch.compile(self.body, dynamic=True)
        return self._compiled(*args)

    def __call__(self, *args: Tensor | None):
        out = None if self.native is None else self.native(*args)
        return self.pytorch(*args) if out is None else out


_ACON_FORWARD = _Kernel(_acon_forward, _native.acon_forward)
_ACON_BACKWARD = _Kernel(_acon_backward, _native.acon_backward)
_MAX_AFFINE_FORWARD = _Kernel(_max_affine_forward, _native.max_affine_forward)
# The max-affine backward (_max_affine_backward) tries the native kernel itself, then
# composes these two.
_MAX_AFFINE_GRADS = _Kernel(_max_affine_grads)
_MAX_AFFINE_SCALE_GRAD = _Kernel(_max_affine_scale_grad)
_fused = False


def _input_grads(ctx, inputs: tuple, grads: tuple) -> tuple:
    """One gradient per input, in that input's dtype, where autograd wants one.
    (``inputs``: ``ctx.saved_tensors``, unpacked once: under non-reentrant checkpointing
    a second unpacking is an error.)"""
    return tuple(g.to(t.dtype) if need else None for g, t, need in
                 zip(grads, inputs, ctx.needs_input_grad, strict=True))


class _AconFunction(torch.autograd.Function):
    """:func:`acon` saving only its inputs; the backward recomputes everything else."""

    @staticmethod
    def forward(ctx, x: Tensor, p1: Tensor, p2: Tensor, beta: Tensor) -> Tensor:
        ctx.save_for_backward(x, p1, p2, beta)
        return _ACON_FORWARD(x, p1, p2, beta)

    @staticmethod
    def backward(ctx, grad: Tensor):
        inputs = ctx.saved_tensors
        return _input_grads(ctx, inputs, _ACON_BACKWARD(grad, *inputs))


class _MaxAffineFunction(torch.autograd.Function):
    """:func:`max_affine` saving only its inputs; the backward recomputes everything
    else."""

    @staticmethod
    def forward(ctx, x: Tensor, a: Tensor, b: Tensor, scale: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, a, b, scale)
        return _MAX_AFFINE_FORWARD(x, a, b, scale)

    @staticmethod
    def backward(ctx, grad: Tensor):
        inputs = ctx.saved_tensors
        return _input_grads(ctx, inputs, _max_affine_backward(grad, *inputs))


def _traced_native(forward: Callable, *args: Tensor | None) -> Tensor | None:
    """Under torch.compile, the native forward op with its registered autograd formula,
    where it covers the inputs; else ``None``. (A graph with revact's custom Functions in
    it is one AOTAutograd does not cache: every later run would trace it again.)"""
    if not _native.is_compiling():
        return None
    return forward(*args, differentiable=True)


def _needs_autograd(*tensors: Tensor | None) -> bool:
    if not torch.is_grad_enabled():
        return False
    if torch.onnx.is_in_onnx_export() or torch.jit.is_tracing():
        return False
    return any(t is not None and t.requires_grad for t in tensors)


def native_kernels_available() -> bool:
    """Whether revact's native CPU kernels were built (at install) and load."""
    return _native.available()


@contextlib.contextmanager
def use_native_kernels(enabled: bool = True) -> Iterator[None]:
    """Use (the default) or bypass the native CPU kernels inside this block.

    Bypassed, the same maths runs as PyTorch operations (or, under
    :func:`use_fused_kernels`, as their compiled versions); for measuring what the
    kernels buy and for testing one implementation against the other. The switch is
    process-wide, like :func:`use_fused_kernels`: threads share it.

    Example::

        >>> with use_native_kernels(False):
        ...     y = acon(x, p1, p2, beta)   # PyTorch operations only
    """
    with _native.enabled(enabled):
        yield


def fused_kernels_enabled() -> bool:
    """Whether :func:`use_fused_kernels` is in effect."""
    return _fused


@contextlib.contextmanager
def use_fused_kernels(enabled: bool = True) -> Iterator[None]:
    """Run the activation kernels ``torch.compile``-d (fused) inside this block.

    The first call per input rank compiles (seconds); later calls run one fused pass
    over the tensor for the forward and one for the backward. Results equal the
    eager kernels up to floating-point rounding. Where the native CPU kernels apply
    they still run (they are one pass already, and faster than Inductor's code).

    Example::

        >>> with use_fused_kernels():
        ...     loss = model(images).sum()
        ...     loss.backward()
    """
    global _fused
    previous, _fused = _fused, enabled
    try:
        yield
    finally:
        _fused = previous
