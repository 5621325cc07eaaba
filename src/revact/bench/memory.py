"""Memory measurements: bytes saved for backward, and peak memory.

One place for every "how much memory does this take" figure in revact, its benchmarks and
its tests:

- :func:`saved_tensor_bytes`: the bytes autograd keeps for the backward pass while a forward
  runs, from :func:`torch.autograd.graph.saved_tensors_hooks`. Each storage counts once
  (views and tensors saved twice share one), so the figure is exact and repeatable,
  independent of the allocator's caching; it is the activation memory a training step
  needs, which lean activation kernels reduce.
- :func:`saved_tensor_mib`: the same for one *training* forward of a model, in MiB, on a
  copy of the model (its BatchNorm statistics stay untouched), parameters left out.
- :func:`peak_step_mib`: the highest memory tensors hold while a function runs, above the
  level before it, from ``torch.profiler``'s allocation events.
- :func:`peak_memory_mib`: the process's high-water mark (CUDA allocator, else RSS).
"""

from __future__ import annotations

import contextlib
import copy
import io
import resource
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["saved_tensor_bytes", "saved_tensor_mib", "peak_step_mib", "peak_memory_mib"]


def saved_tensor_bytes(
    fn: Callable[..., Any], *inputs: Any, parameters: bool = True,
) -> int:
    """Bytes autograd saves for backward while ``fn(*inputs)`` runs, each storage once.

    Args:
        fn: a module or any callable; its output (and so its graph) is kept alive until the
            count is done, so no saved storage is freed and its address reused meanwhile.
        inputs: passed to ``fn``; none for a closure such as ``lambda: model(x)``.
        parameters: count the storages of ``fn``'s parameters (when ``fn`` is a module)
            that autograd saves. False leaves them out: they are in memory anyway, and a
            model's activation memory is what remains.

    Example:
        >>> x = torch.randn(4, 16, 10, 10, requires_grad=True)
        >>> saved_tensor_bytes(revact.AconC(16), x) == x.nbytes + 3 * 16 * 4
        True
    """
    skip: set[int] = set()
    if not parameters and isinstance(fn, nn.Module):
        skip = {p.untyped_storage().data_ptr() for p in fn.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        ptr = s.data_ptr()
        if ptr not in skip:
            storages[ptr] = max(storages.get(ptr, 0), s.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*inputs)
    del out  # the graph was alive while counting; now it may go
    return sum(storages.values())


def saved_tensor_mib(model: nn.Module, *inputs: Any) -> float:
    """MiB autograd keeps for the backward of one training forward of ``model``.

    Measured on a deep copy in training mode, so the model's own mode and BatchNorm
    statistics are untouched; parameters are left out (see :func:`saved_tensor_bytes`).
    """
    net = copy.deepcopy(model).train()
    return saved_tensor_bytes(net, *inputs, parameters=False) / 2**20


def peak_step_mib(step: Callable[[], Any]) -> float:
    """MiB held by tensors at the peak of ``step()``, above the level before it, from the
    CPU allocation events of ``torch.profiler`` (``profile_memory=True``).

    What was allocated before the call (parameters, gradients, inputs) is not counted.
    """
    from torch.profiler import ProfilerActivity, profile

    with contextlib.redirect_stderr(io.StringIO()), \
            profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    # Each op's own allocations net of its own frees, plus the frees outside ops
    # ("[memory]" events), in time order.
    events = sorted(
        (e for e in prof.events() if e.self_cpu_memory_usage),
        key=lambda e: e.time_range.start,
    )
    level = peak = 0
    for e in events:
        level += e.self_cpu_memory_usage
        peak = max(peak, level)
    return peak / 2**20


def peak_memory_mib(device: torch.device) -> float:
    """Peak memory of this process: CUDA allocator high-water, else RSS high-water (MiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # ru_maxrss is KiB on Linux, bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (2**20 if sys.platform == "darwin" else 2**10)
