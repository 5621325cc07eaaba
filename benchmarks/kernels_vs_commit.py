"""Time the activation kernels against their version at an older commit, side by side.

    python benchmarks/kernels_vs_commit.py c27a4ce [--threads 1] [--repeats 9]

Loads ``src/revact/activations/functional.py`` as it was at the commit (via ``git show``)
next to the installed one, and times ``acon`` and ``max_affine`` forward + backward on
the same tensors, alternating old and new in every repeat. Prints the median of the
per-repeat new/old ratios (load changes on a shared machine move both sides).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import revact.activations.functional as current

ROOT = Path(__file__).resolve().parent.parent


def load_at(commit: str):
    source = subprocess.run(
        ["git", "show", f"{commit}:src/revact/activations/functional.py"],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "functional_old.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("functional_old", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("commit")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--shape", default="32,64,56,56")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    old = load_at(args.commit)
    n, c, h, w = (int(s) for s in args.shape.split(","))

    def param(*shape):
        return torch.randn(shape).requires_grad_()

    x = param(n, c, h, w)
    grad = torch.ones_like(x)
    p1, p2, beta = param(1, c, 1, 1), param(1, c, 1, 1), torch.ones(1, c, 1, 1).requires_grad_()
    beta_per_sample = torch.rand(n, c, 1, 1).requires_grad_()
    a, b = param(n, c, 1, 1, 2), param(n, c, 1, 1, 2)
    scale = torch.rand(n, 1, h, w).requires_grad_()
    cases = {
        "acon, per-channel beta (ACON-C)": lambda f: f.acon(x, p1, p2, beta),
        "acon, per-sample beta (Meta-ACON)": lambda f: f.acon(x, p1, p2, beta_per_sample),
        "max_affine K=2 (DY-ReLU-B)": lambda f: f.max_affine(x, a, b),
        "max_affine K=2 + scale (DY-ReLU-C)": lambda f: f.max_affine(x, a, b, scale),
    }

    def seconds(run, kernels) -> float:
        x.grad = None
        start = time.perf_counter()
        run(kernels).backward(grad)
        return time.perf_counter() - start

    print(f"forward+backward on {(n, c, h, w)}, {args.threads} thread(s), "
          f"median of {args.repeats}, {args.commit} vs working tree")
    for name, run in cases.items():
        for _ in range(2):
            seconds(run, old), seconds(run, current)
        pairs = [(seconds(run, old), seconds(run, current)) for _ in range(args.repeats)]
        print(f"  {name:36s} old {statistics.median(o for o, _ in pairs) * 1e3:6.1f} ms  "
              f"new {statistics.median(t for _, t in pairs) * 1e3:6.1f} ms  "
              f"new/old {statistics.median(t / o for o, t in pairs):.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
