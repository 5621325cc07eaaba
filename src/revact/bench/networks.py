"""Whole-network training steps: each activation as a ratio to the network's own.

One training step is forward, cross-entropy, backward and an SGD step. For every network
the baseline (the network with its own activation: ReLU6 in MobileNetV2, ReLU in
ResNet-18 and in revact's compact ``mbv2``) and each variant (every activation call site
swapped for the named activation) start from the same weights. Within one mode (eager;
``pytorch``, eager with the native CPU kernels bypassed (``use_native_kernels(False)``);
``use_fused_kernels()``; ``torch.compile(model)``) each repeat times the baseline and then
every variant back to back, and the figure is the median of the per-repeat ratios: on a
shared, noisy machine a load change moves both sides of a ratio instead of skewing it.

Memory is measured once per variant, outside the timing:

- *saved*: the bytes autograd keeps for backward in one training forward
  (:func:`revact.bench.memory.saved_tensor_mib`; exact and deterministic);
- *peak*: the highest memory held by tensors during one eager step, from the allocation
  events of ``torch.profiler`` (``profile_memory=True``), above what was held before the
  step (parameters, gradients and the input are not counted).
"""

from __future__ import annotations

import contextlib
import copy
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from revact.activations.create_act import parse_act_string
from revact.activations.functional import use_fused_kernels, use_native_kernels
from revact.bench.memory import peak_step_mib, saved_tensor_mib

NETS = ("mobilenet_v2", "resnet18", "compact")
MODES = ("eager", "pytorch", "fused", "compiled")
DEFAULT_NET_ACTS = "dyrelu_b,acon_c,meta_acon,dyrelu_c"
# (batch, channels, height, width) of each network's default input, and its own activation.
NET_INPUT = {
    "mobilenet_v2": ((16, 3, 112, 112), "relu6"),
    "resnet18": ((16, 3, 112, 112), "relu"),
    "compact": ((128, 1, 28, 28), "relu"),
}


@dataclass
class NetRow:
    """One activation in one network; ratios are to the network's own activation."""

    name: str
    ms: dict[str, float] = field(default_factory=dict)  # median step time per mode
    ratio: dict[str, float] = field(default_factory=dict)  # median paired ratio per mode
    saved_mib: float = 0.0
    peak_mib: float = 0.0
    saved_ratio: float = 1.0
    peak_ratio: float = 1.0


def net_shape(net: str, shape: Sequence[int] | None = None) -> tuple[int, int, int, int]:
    """The input shape a network is timed on: ``shape``, or its default (:data:`NET_INPUT`).

    Raises:
        ValueError: unknown network; ``shape`` not four sizes (N, C, H, W) of at least 1,
            or with other channels than a torchvision network's 3.
    """
    if net not in NETS:
        raise ValueError(f"unknown network {net!r}; choose from {', '.join(NETS)}")
    if shape is None:
        return NET_INPUT[net][0]
    shape = tuple(shape)
    if len(shape) != 4 or not all(isinstance(s, int) and s >= 1 for s in shape):
        raise ValueError(f"a network's input shape is N,C,H,W, every size at least 1; got "
                         f"{','.join(map(str, shape))}")
    if net != "compact" and shape[1] != 3:
        raise ValueError(f"{net} takes 3 input channels (torchvision's), got {shape[1]}")
    return shape


def build_net(net: str, act: str | None, seed: int = 0,
              shape: Sequence[int] | None = None) -> nn.Module:
    """``net`` with its own activation (``act=None``) or with every activation call site
    swapped for ``act`` (a name with optional ``:key=value`` options). The weights the
    variants share with the baseline are the same for the same ``seed``. ``shape`` is the
    input (N, C, H, W; default :data:`NET_INPUT`'s): the compact network takes its channels.

    Raises:
        ValueError: unknown network or activation, or a bad shape (see :func:`net_shape`).
    """
    shape = net_shape(net, shape)
    torch.manual_seed(seed)
    if net == "compact":
        from revact.activations.create_act import create_act
        from revact.models import mbv2

        base = mbv2(in_chans=shape[1])
        if act is None:
            return base
        name, kwargs = parse_act_string(act)
        model = mbv2(in_chans=shape[1],
                     act_layer=lambda channels: create_act(name, channels=channels, **kwargs))
        model.load_state_dict(base.state_dict(), strict=False)  # the shared layers
        return model
    import torchvision

    model = getattr(torchvision.models, net)()
    if act is not None:
        from revact.integrations.swap import swap_activations

        name, kwargs = parse_act_string(act)
        swap_activations(model, name, sample=torch.zeros(1, *shape[1:]), **kwargs)
    return model


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Send what native code writes to file descriptor 2 to the null device meanwhile.

    ``torch.profiler`` (behind :func:`~revact.bench.memory.peak_step_mib`) has its native
    logger (Kineto) print ``profiler_start`` / ``profiler_stop`` lines and, without a GPU,
    ``gpuGetDeviceCount failed``, and c10 warns that blocks allocated before profiling
    started will miss their free events (expected here: the step frees the previous
    gradients). None of it is about the measurement; Python's own ``sys.stderr`` is
    redirected inside ``peak_step_mib`` already, but these bypass it.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _Step:
    """One training step of a model (SGD, cross-entropy on fixed random labels)."""

    def __init__(self, model: nn.Module, x: Tensor, y: Tensor, compiled: bool) -> None:
        self.model = model.train()
        self.run = torch.compile(model) if compiled else model
        self.opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        self.x, self.y = x, y

    def __call__(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        F.cross_entropy(self.run(self.x), self.y).backward()
        self.opt.step()

    def seconds(self) -> float:
        start = time.perf_counter()
        self()
        return time.perf_counter() - start


def run_net_bench(
    net: str,
    acts: list[str],
    repeats: int = 5,
    modes: tuple[str, ...] = MODES,
    warmup: int = 2,
    progress: Callable[[str, list[NetRow]], None] | None = None,
    shape: Sequence[int] | None = None,
) -> list[NetRow]:
    """Rows for the network's own activation and each of ``acts``; see the module docstring.

    ``progress(mode, rows)`` is called as each mode finishes (compiling a mode can take
    minutes), with the rows measured so far. ``shape`` is the input, (N, C, H, W); default:
    :data:`NET_INPUT`'s.

    Raises:
        ValueError: unknown network, mode or activation, ``repeats`` below 1 or
            ``warmup`` below 0, a bad ``shape`` or one the network fails on (before
            anything is timed).
    """
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise ValueError(f"unknown mode(s) {bad}; choose from {', '.join(MODES)}")
    if not modes:
        raise ValueError(f"no mode to time; choose from {', '.join(MODES)}")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be at least 1 and warmup at least 0, got {repeats} "
                         f"and {warmup}")
    shape = net_shape(net, shape)
    own = NET_INPUT[net][1]
    base = build_net(net, None, shape=shape)
    try:
        variants = [build_net(net, a, shape=shape) for a in acts]
    except TypeError as e:  # an option the constructor does not take
        raise ValueError(str(e)) from None
    # The same starting weights per mode: each mode steps its own copies.
    pristine = [base, *variants]
    names = [f"{own} (own)", *acts]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen)
    y = torch.randint(0, 10, (shape[0],), generator=gen)
    rows = [NetRow(n) for n in names]
    for row, model in zip(rows, pristine, strict=True):
        try:
            row.saved_mib = saved_tensor_mib(model, x)
        except (RuntimeError, ValueError) as e:  # e.g. BatchNorm on one value per channel
            lines = str(e).strip().splitlines()
            raise ValueError(f"{net} ({row.name}) failed on a batch of shape {shape}: "
                             f"{lines[0] if lines else type(e).__name__}") from e
        step = _Step(copy.deepcopy(model), x, y, compiled=False)
        step()
        with _native_stderr_silenced():
            row.peak_mib = peak_step_mib(step)
        row.saved_ratio = row.saved_mib / rows[0].saved_mib
        row.peak_ratio = row.peak_mib / rows[0].peak_mib
    for mode in modes:
        steps = [_Step(copy.deepcopy(m), x, y, compiled=mode == "compiled") for m in pristine]
        with use_fused_kernels(mode == "fused"), use_native_kernels(mode != "pytorch"):
            for step in steps:
                for _ in range(warmup):
                    step()
            times: list[list[float]] = [[] for _ in steps]
            for _ in range(repeats):
                for i, step in enumerate(steps):
                    times[i].append(step.seconds())
        for row, t in zip(rows, times, strict=True):
            row.ms[mode] = statistics.median(t) * 1e3
            row.ratio[mode] = statistics.median(a / b for a, b in zip(t, times[0], strict=True))
        if progress:
            progress(mode, rows)
    return rows


def format_net_table(rows: list[NetRow], modes: tuple[str, ...]) -> str:
    """A Markdown table: per mode the step-time ratio and the median step in ms, then
    saved and peak memory with their ratios."""
    heads = {"eager": "eager", "pytorch": "eager, PyTorch ops only",
             "fused": "`use_fused_kernels()`",
             "compiled": "`torch.compile(model)` (vs compiled own)"}
    lines = [
        "| activation | " + " | ".join(f"{heads[m]} × | ms" for m in modes)
        + " | saved for backward MiB | saved × | peak MiB | peak × |",
        "|---|" + "---:|" * (2 * len(modes) + 4),
    ]
    for r in rows:
        cells = " | ".join(f"{r.ratio[m]:.2f} | {r.ms[m]:.0f}" if m in r.ratio else "- | -"
                           for m in modes)
        lines.append(f"| {r.name} | {cells} | {r.saved_mib:.0f} | {r.saved_ratio:.2f} "
                     f"| {r.peak_mib:.0f} | {r.peak_ratio:.2f} |")
    return "\n".join(lines)
