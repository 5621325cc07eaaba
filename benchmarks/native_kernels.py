"""The native CPU kernels alone, in both layouts, against ReLU's forward + backward, and
how they scale from one thread to two.

    python benchmarks/native_kernels.py [--threads 2]
    python benchmarks/native_kernels.py --scaling --batch 1 --size 112
    python benchmarks/native_kernels.py --layouts

Calls the ops directly (``torch.ops.revact``) on a (16, 96, 56, 56) float32 tensor (or
``--batch``, ``--size``), as channels-first (N, C, H, W) and as channels-last (N, H, W, C)
memory; ReLU is timed on the same tensor. Medians of 40 calls; compare the ratios, not the
milliseconds. ``--scaling``: each kernel's forward + backward on 2 threads over 1 thread,
the two timed in alternating rounds (median of the per-round ratios); ``--layouts``: each
kernel channels-last over channels-first, the same way.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import revact


def median_ms(fn: Callable[[], object], repeats: int = 40) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _inputs(channels_last: bool, n: int, c: int, h: int, w: int):
    coeff = torch.randn(1, c).expand(n, c)  # per channel, stride 0 over samples
    ab = torch.randn(n, c, 2)
    x, g = torch.randn(n, c, h, w), torch.randn(n, c, h, w)
    if channels_last:  # the kernels take the (N, H, W, C) view
        x, g = x.movedim(1, -1).contiguous(), g.movedim(1, -1).contiguous()
    scale = torch.rand(n, h * w) if channels_last else torch.rand(n, 1, h, w)
    return x, g, coeff, ab, scale


def _kernels(channels_last: bool, n: int, c: int, h: int, w: int,
             passes: tuple[str, ...] = ("forward", "backward")) -> dict[str, Callable]:
    """Each kernel's ``passes`` (forward, backward or both), as one call."""
    ops = torch.ops.revact
    x, g, coeff, ab, scale = _inputs(channels_last, n, c, h, w)
    p2, beta = 0.5 * coeff, coeff.abs()
    calls = {
        "ACON": {"forward": lambda: ops.acon_forward(x, coeff, p2, beta, channels_last),
                 "backward": lambda: ops.acon_backward(g, x, coeff, p2, beta, channels_last)},
        "max-affine": {"forward": lambda: ops.max2_forward(x, ab, ab, None, channels_last),
                       "backward": lambda: ops.max2_backward(g, x, ab, ab, None,
                                                             channels_last)},
        "with DY-ReLU-C's scale": {
            "forward": lambda: ops.max2_forward(x, ab, ab, scale, channels_last),
            "backward": lambda: ops.max2_backward(g, x, ab, ab, scale, channels_last)},
    }

    def run(steps: dict[str, Callable]) -> Callable[[], None]:
        def call() -> None:
            for part in passes:
                steps[part]()
        return call

    return {name: run(steps) for name, steps in calls.items()}


def _paired(fns: dict[str, tuple[Callable, Callable]], setup: Callable[[int], None],
            rounds: int = 15) -> str:
    """Per kernel: the median over alternating rounds of time(second) / time(first);
    ``setup(i)`` runs before the i-th of the pair is timed."""
    parts = []
    for name, pair in fns.items():
        per_round = []
        for _ in range(rounds):
            times = []
            for i, fn in enumerate(pair):
                setup(i)
                times.append(median_ms(fn, repeats=5))
            per_round.append(times[1] / times[0])
        parts.append(f"{name} {statistics.median(per_round):.2f}")
    return ", ".join(parts)


def scaling(channels_last: bool, n: int, c: int, h: int, w: int) -> str:
    """Each kernel's time on 2 threads over its time on 1, in alternating rounds."""
    kernels = _kernels(channels_last, n, c, h, w)
    text = _paired({k: (f, f) for k, f in kernels.items()},
                   lambda i: torch.set_num_threads(i + 1))
    layout = "channels-last " if channels_last else "channels-first"
    return f"{layout} ({n}, {c}, {h}, {w}): 2 threads / 1 thread: {text}"


def layouts(threads: int, n: int, c: int, h: int, w: int) -> str:
    """Each kernel's time channels-last over its time channels-first, alternating: forward
    and backward together, then each alone."""
    lines = []
    for passes in (("forward", "backward"), ("forward",), ("backward",)):
        first = _kernels(False, n, c, h, w, passes)
        last = _kernels(True, n, c, h, w, passes)
        text = _paired({k: (first[k], last[k]) for k in first}, lambda i: None)
        lines.append(f"({n}, {c}, {h}, {w}), {threads} threads, {' + '.join(passes)}: "
                     f"channels-last / channels-first: {text}")
    return "\n".join(lines)


def ratios(channels_last: bool, n: int = 16, c: int = 96, h: int = 56, w: int = 56) -> str:
    x, g, *_ = _inputs(channels_last, n, c, h, w)
    relu = median_ms(lambda: torch.relu(x)) + median_ms(
        lambda: torch.ops.aten.threshold_backward(g, x, 0))
    parts = [f"{name} {median_ms(fn) / relu:.2f}x"
             for name, fn in _kernels(channels_last, n, c, h, w).items()]
    layout = "channels-last " if channels_last else "channels-first"
    return f"{layout}: ReLU fwd+bwd {relu:.2f} ms; " + ", ".join(parts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--channels", type=int, default=96)
    p.add_argument("--size", type=int, default=56, help="H = W")
    p.add_argument("--scaling", action="store_true",
                   help="2 threads against 1 instead of the kernels against ReLU")
    p.add_argument("--layouts", action="store_true",
                   help="channels-last against channels-first instead")
    args = p.parse_args()
    if not revact.native_kernels_available():
        raise SystemExit("the native kernels are not built (see README: install)")
    shape = (args.batch, args.channels, args.size, args.size)
    torch.set_num_threads(args.threads)
    if args.layouts:
        print(layouts(args.threads, *shape))
        return
    for channels_last in (False, True):
        print(scaling(channels_last, *shape) if args.scaling else ratios(channels_last, *shape),
              flush=True)


if __name__ == "__main__":
    main()
