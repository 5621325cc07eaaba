"""The CPU facts behind the activation kernels' design, measured side by side.

    python benchmarks/cpu_primitives.py [--threads N] [--repeats 9]

Each line times one choice the kernels in ``revact.activations.functional`` and
``revact.activations.dyrelu`` make against its alternative, on an activation-sized
tensor (32, 64, 56, 56) float32:

1. a multiply into memory the process has never touched against one into a buffer it
   has (first touch costs page faults; whether a new tensor gets such memory depends on
   the allocator's history, so the kernels overwrite their own temporaries instead);
2. ``torch.where(mask, g, 0)`` against ``g * mask`` (the max-affine backward multiplies);
3. forward + backward of a one-output-channel 1×1 convolution against multiply-and-sum
   (DY-ReLU-C's spatial logits);
4. compiled (Inductor): a reduction alone, one that also returns its bool mask, and one
   that returns it as float (the K = 2 backward keeps a float mask);
5. the matrix products of a hyper-function on 16 samples (Meta-ACON's generator at
   C = 960: (16, 960)·(960, 60)ᵀ and its weight gradient): a fixed cost per call that
   no activation kernel can remove (issue 12's note).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from native_kernels import median_ms


def _sum_masked(x, g, a0, a1):
    return (g * x * (a1 * x > a0 * x)).sum((2, 3))


def _sum_and_bool_mask(x, g, a0, a1):
    wins = a1 * x > a0 * x
    return wins, (g * x * wins).sum((2, 3))


def _sum_and_float_mask(x, g, a0, a1):
    wins = (a1 * x > a0 * x).to(x.dtype)
    return wins, (g * x * wins).sum((2, 3))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: all)")
    p.add_argument("--repeats", type=int, default=9)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    # Allocate and free one block larger than the tensors first: glibc then serves them
    # from recycled heap memory, so every case below except the first-touch one compares
    # arithmetic, not the allocator's history.
    torch.empty(7 * 2**20).fill_(0)  # 28 MiB: above the tensors, below glibc's 32 MiB cap
    x = torch.randn(32, 64, 56, 56)
    g, out = torch.randn_like(x), torch.empty_like(x)
    mask = torch.rand_like(x) > 0.5
    w = torch.randn(64, requires_grad=True)
    xg = x.clone().requires_grad_()
    grad_z = torch.randn(32, 56, 56)
    a0, a1 = torch.randn(32, 64, 1, 1), torch.randn(32, 64, 1, 1)

    def conv_fwd_bwd():
        xg.grad = None
        F.conv2d(xg, w.view(1, 64, 1, 1)).squeeze(1).backward(grad_z)

    def mul_sum_fwd_bwd():
        xg.grad = None
        (xg * w.view(1, 64, 1, 1)).sum(1).backward(grad_z)

    kept = []  # new tensors stay alive, so each gets memory never touched before

    def into_untouched():
        kept.append(torch.mul(x, g, out=torch.empty_like(x)))

    pooled, fc = torch.randn(16, 960), torch.randn(60, 960)
    g_fc = torch.randn(16, 60)
    cases = [
        ("multiply into untouched memory", into_untouched),
        ("multiply into a touched buffer", lambda: torch.mul(x, g, out=out)),
        ("torch.where(mask, g, 0)", lambda: torch.where(mask, g, 0)),
        ("g * mask", lambda: g * mask),
        ("1x1 conv to one channel, fwd+bwd", conv_fwd_bwd),
        ("multiply-and-sum, fwd+bwd", mul_sum_fwd_bwd),
        ("GEMM (16,960)x(960,60)", lambda: pooled @ fc.t()),
        ("GEMM weight grad (60,16)x(16,960)", lambda: g_fc.t() @ pooled),
    ]
    args4 = (x, g, a0, a1)
    for fn in (_sum_masked, _sum_and_bool_mask, _sum_and_float_mask):
        compiled = torch.compile(fn)
        cases.append((f"compiled {fn.__name__.lstrip('_')}", lambda c=compiled: c(*args4)))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"tensor {tuple(x.shape)} float32, median of {args.repeats}")
    for name, fn in cases:
        print(f"  {name:36s} {median_ms(fn, args.repeats):8.3f} ms", flush=True)
        kept.clear()


if __name__ == "__main__":
    main()
