"""Inductor (CPU) writes a bool tensor far slower than a float one: a reproduction.

    python benchmarks/inductor_bool_store.py

Why revact cares: compiled as a whole, DY-ReLU's K = 2 backward had Inductor keep its
branch mask for a later kernel; as a bool it made ``torch.compile(model)`` 5× slower than
with a float mask (see ``revact.activations.functional._max2_grads``).
"""

from __future__ import annotations

import statistics
import time

import torch


def mask_and_sum(x, g, a0, a1):
    wins = a1 * x > a0 * x
    return wins, (g * x * wins).sum((2, 3))


def float_mask_and_sum(x, g, a0, a1):
    wins = (a1 * x > a0 * x).to(x.dtype)
    return wins, (g * x * wins).sum((2, 3))


def sum_only(x, g, a0, a1):
    return (g * x * (a1 * x > a0 * x)).sum((2, 3))


def median_ms(fn, *args, repeats: int = 9) -> float:
    for _ in range(3):
        fn(*args)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    x = torch.randn(32, 64, 56, 56)
    args = (x, torch.randn_like(x), torch.randn(32, 64, 1, 1), torch.randn(32, 64, 1, 1))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, x {tuple(x.shape)}")
    for fn in (sum_only, mask_and_sum, float_mask_and_sum):
        print(f"  compiled {fn.__name__:20s} {median_ms(torch.compile(fn), *args):6.1f} ms")


if __name__ == "__main__":
    main()
