"""Speed and memory of activations, as ratios to ReLU measured in the same run.

Each activation runs forward + backward on one tensor, ``repeats`` times after warm-up,
each time right after a ``torch.relu`` forward + backward on the same tensor; the figure
is the median of those paired ratios (this machine is shared and noisy: absolute times
mean little, ratios taken side by side travel).
Saved memory is exact: the bytes autograd keeps for backward, each storage once, over
the input's bytes.

Two "plain autograd" baselines show what the lean kernels buy: the same formulas
written with ordinary tensor operations, as the widely copied snippets do.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from revact.activations.create_act import act_spec, create_act, parse_act_string
from revact.activations.functional import use_fused_kernels
from revact.bench.memory import saved_tensor_bytes


class PlainAconC(nn.Module):
    """ACON-C with plain autograd (keeps every intermediate)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.p1 = nn.Parameter(torch.randn(1, channels, 1, 1))
        self.p2 = nn.Parameter(torch.randn(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.ones(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        d = self.p1 * x - self.p2 * x
        return d * torch.sigmoid(self.beta * d) + self.p2 * x


class PlainMaxAffine(nn.Module):
    """DY-ReLU-B's maximum by broadcasting to K branches (coefficients as parameters)."""

    def __init__(self, channels: int, k: int = 2) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.rand(1, channels, 1, 1, k))
        self.b = nn.Parameter(torch.rand(1, channels, 1, 1, k))

    def forward(self, x: Tensor) -> Tensor:
        return (x.unsqueeze(-1) * self.a + self.b).amax(-1)


BASELINES: dict[str, Callable[..., nn.Module]] = {
    "plain_acon_c": PlainAconC,
    "plain_max_affine": PlainMaxAffine,
}


@dataclass
class BenchRow:
    name: str
    ms: float
    vs_relu: float
    saved_vs_input: float
    fused_vs_relu: float | None = None
    compiled_vs_relu: float | None = None


def _fwd_bwd_seconds(fn: Callable[[Tensor], Tensor], x: Tensor, grad: Tensor) -> float:
    x.grad = None
    start = time.perf_counter()
    fn(x).backward(grad)
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def time_fwd_bwd(fn: Callable[[Tensor], Tensor], x: Tensor, repeats: int, warmup: int = 2) -> float:
    """Median seconds of one forward + backward."""
    grad = torch.ones_like(x)
    for _ in range(warmup):
        _fwd_bwd_seconds(fn, x, grad)
    return statistics.median(_fwd_bwd_seconds(fn, x, grad) for _ in range(repeats))


def time_vs_relu(
    fn: Callable[[Tensor], Tensor], x: Tensor, repeats: int, warmup: int = 2
) -> tuple[float, float]:
    """(median seconds of ``fn``, median ratio to ``torch.relu``) of one forward + backward.

    Each repeat times ReLU right before ``fn``, so a load change on a shared machine
    moves both sides of a ratio instead of skewing it.
    """
    grad = torch.ones_like(x)
    for _ in range(warmup):
        _fwd_bwd_seconds(fn, x, grad)
    pairs = [(_fwd_bwd_seconds(torch.relu, x, grad), _fwd_bwd_seconds(fn, x, grad))
             for _ in range(repeats)]
    return (statistics.median(t for _, t in pairs),
            statistics.median(t / base for base, t in pairs))


def build(spec: str, channels: int) -> nn.Module | Callable[[Tensor], Tensor]:
    """The module for ``spec`` (a name, optionally with ``:key=value`` options).

    Raises:
        ValueError: unknown name or bad option (the message says which).
    """
    name, kwargs = parse_act_string(spec)
    try:
        if name in BASELINES:
            return BASELINES[name](channels, **kwargs)
        return create_act(name, channels=channels, **kwargs)
    except TypeError as e:  # an option the constructor does not take
        raise ValueError(f"{spec!r}: {e}") from None


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``: the CPU, or a CUDA device this machine has.

    Raises:
        ValueError: not a device name, not cpu or cuda, or CUDA (that index) unavailable.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be cpu or cuda[:N], got {device!r}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda[:N], got {device!r}")
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {device!r}: CUDA is not available here "
                             f"(torch.cuda.is_available() is False); use cpu")
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device {device!r}: this machine has {count} CUDA device(s)")
    return dev


def run_activation_bench(
    names: list[str],
    shape: tuple[int, ...] = (32, 64, 56, 56),
    repeats: int = 15,
    fused: bool = False,
    compiled: bool = False,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> list[BenchRow]:
    """Time and measure each activation against ReLU; see the module docstring.

    ``progress`` is called with each activation's name once its row is done.

    Raises:
        ValueError: a bad name or option, a shape that is not N,C,L or N,C,H,W of sizes
            at least 1, ``repeats`` below 1, or a device this machine lacks, before
            anything is timed.
    """
    shape = tuple(shape)
    if len(shape) not in (3, 4) or not all(isinstance(n, int) and n >= 1 for n in shape):
        raise ValueError(f"shape must be N,C,L or N,C,H,W, every size at least 1; got {shape}")
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    device = check_device(device)
    modules = [build(name, shape[1]).to(device) for name in names]
    x = torch.randn(shape, device=device, requires_grad=True)
    relu_s = time_fwd_bwd(torch.relu, x, repeats)
    relu_saved = saved_tensor_bytes(torch.relu, x) / x.nbytes
    rows = [BenchRow("relu (torch)", relu_s * 1e3, 1.0, relu_saved)]
    for name, module in zip(names, modules, strict=True):
        seconds, ratio = time_vs_relu(module, x, repeats)
        row = BenchRow(name, seconds * 1e3, ratio, saved_tensor_bytes(module, x) / x.nbytes)
        # Only the adaptive families run through the fusable kernels.
        base_name = parse_act_string(name)[0]
        if fused and base_name not in BASELINES and act_spec(base_name).family != "classic":
            with use_fused_kernels():
                row.fused_vs_relu = time_vs_relu(module, x, repeats, warmup=3)[1]
        if compiled:
            row.compiled_vs_relu = time_vs_relu(torch.compile(module), x, repeats, 3)[1]
        rows.append(row)
        if progress:
            progress(name)
    return rows


def format_table(rows: list[BenchRow]) -> str:
    """A Markdown table of the rows."""
    lines = ["| activation | fwd+bwd ms | × ReLU | × ReLU, fused kernels | "
             "× ReLU, torch.compile(module) | saved for backward, × input |",
             "|---|---:|---:|---:|---:|---:|"]

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    for r in rows:
        lines.append(f"| {r.name} | {r.ms:.1f} | {r.vs_relu:.2f} | {ratio(r.fused_vs_relu)} | "
                     f"{ratio(r.compiled_vs_relu)} | {r.saved_vs_input:.2f} |")
    return "\n".join(lines)
