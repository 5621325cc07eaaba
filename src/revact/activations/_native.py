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

The ops are ``torch.ops.revact.{acon,max2}_{forward,backward}``, defined in C++
(``TORCH_LIBRARY``); here they get their fake kernels and autograd formulas
(``torch.library.register_fake`` / ``register_autograd``), so each is a complete PyTorch
op (``torch.library.opcheck`` passes). The backward ops are not differentiable: a double
backward through them raises (revact's own functions send ``create_graph=True`` to the
PyTorch bodies).

Loading: setup.py writes ``_native_build.json`` beside the library, with the torch (and
C++ ABI) it compiled against, or why it built nothing. The library is loaded only under
that torch (another torch's library fails to load, or worse): otherwise, or when the build
failed, revact warns once (:class:`NativeKernelsWarning`, one line with the command that
rebuilds the kernels) and runs the PyTorch bodies. :func:`status` (``revact info``) says
which.

Each entry returns ``None`` when its inputs are not a case it covers.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.machinery
import json
import shlex
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import Tensor

try:
    from torch.compiler import is_compiling
except ImportError:  # torch < 2.3
    from torch._dynamo import is_compiling

_DTYPES = (torch.float32, torch.float64)
_PACKAGE = Path(__file__).resolve().parents[1]
RECORD_NAME = "_native_build.json"  # written by setup.py
_state: dict = {"loaded": None, "enabled": True, "compilable": False, "reason": None,
                "variant": None}


class NativeKernelsWarning(RuntimeWarning):
    """revact's native CPU kernels are not used: not built, or built for another torch."""


def library_path() -> Path | None:
    """The kernels' library for this Python (``revact/_C.<suffix>``), if it is there."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = _PACKAGE / f"_C{suffix}"
        if path.is_file():
            return path
    return None


def build_record() -> dict | None:
    """What setup.py recorded about the build (``revact/_native_build.json``), if
    anything."""
    try:
        record = json.loads((_PACKAGE / RECORD_NAME).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _release(version: str | None) -> str | None:
    """A torch version without its local label: ``2.14.1+cu130`` -> ``2.14.1`` (CPU and
    CUDA builds of one release share the C++ API the kernels use)."""
    return None if version is None else version.split("+")[0]


def rebuild_command(record: dict | None = None) -> str:
    """The command that rebuilds the kernels against the running torch."""
    record = build_record() if record is None else record
    source = (record or {}).get("source_dir")
    editable = bool((record or {}).get("editable"))
    checkout = _PACKAGE.parents[1]  # src/revact -> the checkout, for a source tree
    if not (source and Path(source, "setup.py").is_file()) and \
            (checkout / "setup.py").is_file() and (checkout / "src" / "revact").is_dir():
        source, editable = str(checkout), True
    pip = f"{shlex.quote(sys.executable)} -m pip install --no-build-isolation --no-deps"
    if source and Path(source, "setup.py").is_file():
        if editable:
            return f"{pip} -e {shlex.quote(source)}"
        return f"{pip} --force-reinstall {shlex.quote(source)}"
    return f"{pip} --force-reinstall --no-cache-dir <revact's source: a checkout or sdist>"


def _unusable_reason(library: Path | None, record: dict | None) -> str | None:
    """Why the library must not be loaded under this torch; ``None`` when it may."""
    if record is not None and not record.get("built", False):
        return f"not built: {record.get('reason') or 'no reason recorded'}"
    if library is None:
        if record is None:
            return "not built (no library and no build record beside revact)"
        return "the build record says built, but the library is missing"
    if record is None:
        return (f"{library.name} has no build record (built by an older revact?), so "
                "which torch it was built for is unknown")
    built, running = _release(record.get("torch")), _release(torch.__version__)
    built_abi = record.get("cxx11_abi")
    running_abi = bool(torch._C._GLIBCXX_USE_CXX11_ABI)
    if built != running or (built_abi is not None and bool(built_abi) != running_abi):
        return (f"built for torch {built} (C++11 ABI {int(bool(built_abi))}), running "
                f"torch {running} (C++11 ABI {int(running_abi)})")
    return None


def _load() -> bool:
    if _state["loaded"] is None:
        _state["loaded"] = False
        library, record = library_path(), build_record()
        reason = _unusable_reason(library, record)
        if reason is None:
            try:
                torch.ops.load_library(str(library))
                _state["variant"] = _variant(library)
                _state["compilable"] = _register()
                _state["loaded"] = True
            except (OSError, RuntimeError) as error:
                first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
                reason = f"{library.name} did not load ({first_line})"
        if reason is not None:
            _state["reason"] = reason
            warnings.warn(f"revact: native CPU kernels not used: {reason}. Running the "
                          "PyTorch versions (same results, slower). To rebuild them: "
                          f"{rebuild_command(record)}", NativeKernelsWarning, stacklevel=2)
    return bool(_state["loaded"])


def _variant(library: Path) -> str | None:
    """The build of the kernels that runs: ``avx512``, ``avx2``, or ``baseline (why)``."""
    try:
        function = ctypes.CDLL(str(library)).revact_cpu_variant
    except (OSError, AttributeError):
        return None
    function.restype = ctypes.c_char_p
    return function().decode()


def _register() -> bool:
    """The ops' fake kernels (output shapes for torch.compile's fake tensors: each op
    allocates its outputs) and autograd formulas. Returns whether this torch takes them
    (``register_fake`` and ``register_autograd`` are torch ≥ 2.4; with an older one the
    ops stay out of compiled graphs and have no autograd formula of their own)."""
    fake = getattr(torch.library, "register_fake", None)
    autograd = getattr(torch.library, "register_autograd", None)
    if fake is None or autograd is None:
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

    autograd("revact::acon_forward", _acon_forward_vjp, setup_context=_save_inputs)
    autograd("revact::max2_forward", _max2_forward_vjp, setup_context=_save_inputs)
    autograd("revact::acon_backward", _not_differentiable)
    autograd("revact::max2_backward", _not_differentiable)
    return True


def _save_inputs(ctx, inputs: tuple, output: Tensor) -> None:
    """setup_context of the forward ops: the tensors (all but ``channels_last``)."""
    ctx.save_for_backward(*inputs[:-1])
    ctx.channels_last = inputs[-1]


def _acon_forward_vjp(ctx, grad: Tensor):
    x, p1, p2, beta = ctx.saved_tensors
    grads = torch.ops.revact.acon_backward(grad.contiguous(), x, p1, p2, beta,
                                           ctx.channels_last)
    return *grads, None


def _max2_forward_vjp(ctx, grad: Tensor):
    x, a, b, scale = ctx.saved_tensors
    g_x, g_a, g_b, g_scale = torch.ops.revact.max2_backward(grad.contiguous(), x, a, b,
                                                           scale, ctx.channels_last)
    return g_x, g_a, g_b, None if scale is None else g_scale, None


def _not_differentiable(ctx, *grads):
    raise RuntimeError("revact: the native kernels' backward ops have no derivative of their "
                       "own (revact's functions send create_graph=True through the PyTorch "
                       "versions instead)")


def status() -> dict:
    """The kernels' state, for ``revact.info()``: whether the library is built and loaded,
    the build that runs (``variant``: ``avx512``, ``avx2``, or ``baseline (why)``), whether
    :func:`~revact.activations.functional.use_native_kernels` lets them run, why they
    do not (``reason``), whether compiled graphs keep them, and the build record."""
    _load()
    return {
        "library": None if library_path() is None else str(library_path()),
        "loaded": bool(_state["loaded"]),
        "enabled": bool(_state["enabled"]),
        "variant": _state["variant"],
        "reason": _state["reason"],
        "compilable": bool(_state["compilable"]),
        "rebuild": None if _state["loaded"] else rebuild_command(),
        "build": build_record(),
    }


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


def _usable(x: Tensor, *coeffs: Tensor | None, differentiable: bool = False) -> bool:
    if not _state["enabled"] or x.device.type != "cpu" or x.dtype not in _DTYPES:
        return False
    if x.dim() < 2:
        return False
    if any(c is not None and (c.dtype != x.dtype or c.device != x.device) for c in coeffs):
        return False
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return False
    if is_compiling() and not _state["compilable"]:
        return False
    # The backward ops have no derivative: with grad mode on (create_graph=True) a
    # differentiable input must go through PyTorch operations. (A differentiable forward
    # call records the forward op's registered formula instead.)
    if not differentiable and torch.is_grad_enabled() and \
            any(t is not None and t.requires_grad for t in (x, *coeffs)):
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


# Below the Autograd dispatch key: where revact calls the ops, no gradient is recorded (its
# autograd.Functions own the graph), so the registered Python autograd kernel would only
# pass the call on, for several microseconds per call.
_BELOW_AUTOGRAD = getattr(torch._C, "_AutoDispatchBelowAutograd", contextlib.nullcontext)


def _dispatch(op: Callable, *args):
    """``op(*args)`` past its autograd kernel; a plain call while torch.compile traces."""
    if is_compiling():
        return op(*args)
    with _BELOW_AUTOGRAD():
        return op(*args)


def _call(op: Callable, x: Tensor, coeffs: tuple, rows: list | None,
          grad: Tensor | None = None, differentiable: bool = False):
    """``op`` on ``x`` in the kernels' layout, the result back in ``x``'s layout; ``None``
    when the coefficients (``rows``) or the layout are not a native case. With ``grad``:
    the backward, whose (N, C[, 2]) coefficient gradients come back summed to each of
    ``coeffs``' shapes; trailing outputs (DY-ReLU-C's scale gradient) pass as they are.
    ``differentiable``: a forward recorded by autograd (the op's registered formula)."""
    view = _kernel_view(x)
    if rows is None or view is None:
        return None
    xk, channels_last = view

    def back(t: Tensor) -> Tensor:
        if not channels_last:
            return t
        # Inside revact's custom Functions, detached: autograd would take a view made
        # there for one and forbid modifying the result in place.
        return t.movedim(-1, 1) if differentiable else t.movedim(-1, 1).detach()

    if grad is None:
        return back(op(xk, *rows, channels_last) if differentiable else
                    _dispatch(op, xk, *rows, channels_last))
    grad = (grad.movedim(1, -1) if channels_last else grad).contiguous()
    g_x, *g_coeffs = _dispatch(op, grad, xk, *rows, channels_last)
    summed = [_reduced(g, x, c.shape) for g, c in zip(g_coeffs, coeffs, strict=False)]
    return back(g_x), *summed, *g_coeffs[len(coeffs):]


def _acon_rows(x: Tensor, *coeffs: Tensor) -> list[Tensor] | None:
    rows = [_rows(c, x) for c in coeffs]
    return None if any(r is None for r in rows) else rows


def acon_forward(x: Tensor, p1: Tensor, p2: Tensor, beta: Tensor,
                 differentiable: bool = False) -> Tensor | None:
    if not _usable(x, p1, p2, beta, differentiable=differentiable):
        return None
    return _call(torch.ops.revact.acon_forward, x, (), _acon_rows(x, p1, p2, beta),
                 differentiable=differentiable)


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


def max_affine_forward(x: Tensor, a: Tensor, b: Tensor, scale: Tensor | None,
                       differentiable: bool = False) -> Tensor | None:
    if not _usable(x, a, b, scale, differentiable=differentiable):
        return None
    return _call(torch.ops.revact.max2_forward, x, (), _max2_rows(x, a, b, scale),
                 differentiable=differentiable)


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
