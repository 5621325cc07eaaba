"""The native CPU kernels alone, in both layouts, against ReLU's forward + backward.

    python benchmarks/native_kernels.py [--threads 2]

Calls the ops directly (``torch.ops.revact``) on a (16, 96, 56, 56) float32 tensor, as
channels-first (N, C, H, W) and as channels-last (N, H, W, C) memory; ReLU is timed on the
same tensor. Medians of 40 calls; compare the ratios, not the milliseconds.
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


def ratios(channels_last: bool, n: int = 16, c: int = 96, h: int = 56, w: int = 56) -> str:
    ops = torch.ops.revact
    coeff = torch.randn(1, c).expand(n, c)  # per channel, stride 0 over samples
    ab = torch.randn(n, c, 2)
    x, g = torch.randn(n, c, h, w), torch.randn(n, c, h, w)
    if channels_last:  # the kernels take the (N, H, W, C) view
        x, g = x.movedim(1, -1).contiguous(), g.movedim(1, -1).contiguous()
    scale = torch.rand(n, h * w) if channels_last else torch.rand(n, 1, h, w)
    relu = median_ms(lambda: torch.relu(x)) + median_ms(
        lambda: torch.ops.aten.threshold_backward(g, x, 0))
    acon = median_ms(lambda: ops.acon_forward(x, coeff, 0.5 * coeff, coeff.abs(),
                                              channels_last)) + median_ms(
        lambda: ops.acon_backward(g, x, coeff, 0.5 * coeff, coeff.abs(), channels_last))
    max2 = median_ms(lambda: ops.max2_forward(x, ab, ab, None, channels_last)) + median_ms(
        lambda: ops.max2_backward(g, x, ab, ab, None, channels_last))
    scaled = median_ms(lambda: ops.max2_forward(x, ab, ab, scale, channels_last)) + \
        median_ms(lambda: ops.max2_backward(g, x, ab, ab, scale, channels_last))
    layout = "channels-last " if channels_last else "channels-first"
    return (f"{layout}: ReLU fwd+bwd {relu:.2f} ms; ACON {acon / relu:.2f}x, "
            f"max-affine {max2 / relu:.2f}x, with DY-ReLU-C's scale {scaled / relu:.2f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if not revact.native_kernels_available():
        raise SystemExit("the native kernels are not built (see README: install)")
    for channels_last in (False, True):
        print(ratios(channels_last), flush=True)


if __name__ == "__main__":
    main()
