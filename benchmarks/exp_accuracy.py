"""How exact and how fast the native kernels' sigmoid is, in each build of them.

The kernels compute σ(z) = 1 / (1 + exp(-z)) with an exp of their own (a polynomial with
fused multiply-adds in the AVX2 and AVX-512 builds). This measures, for every build this
CPU can run (each in a fresh process: the build is chosen at load):

- the error of σ against float64, in float32 ulps, over 4·10^6 points of [-87, 88]
  (where σ is a normal float32; below it all three flush to 0 alike), read through ACON
  with x = 1, p1 = 1, p2 = 0 (the output is σ(β) exactly), next to PyTorch's own
  ``torch.sigmoid`` and the PyTorch composition 1 / (1 + exp(-z)), whose exp is SLEEF's;
- ACON forward time on a 16×96×56×56 float32 tensor, as a ratio to ``F.silu`` (same
  element count, one exp per element) timed in the same process, on 1 and 2 threads.

    python benchmarks/exp_accuracy.py [--out benchmarks/results/exp_accuracy.md]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

BUILDS = {"highest": {}, "avx2": {"REVACT_CPU_NO_AVX512": "1"},
          "baseline": {"REVACT_CPU_BASELINE": "1"}}


def _ulp_errors(values, exact) -> tuple[float, float]:
    import torch

    exact32 = exact.float()
    ulp = (torch.nextafter(exact32.abs(), torch.tensor(float("inf"))) - exact32.abs()).double()
    err = (values.double() - exact).abs() / ulp
    return float(err.max()), float(err.mean())


def measure() -> dict:
    """This process's build: errors and speed."""
    import torch
    import torch.nn.functional as F
    from native_kernels import median_ms  # this folder's timing helper

    import revact
    from revact.activations.functional import acon

    zf = torch.linspace(-87, 88, 4_000_001)
    exact = torch.sigmoid(zf.double())
    channels = zf.numel()
    one = torch.ones(1, channels, 1)
    with torch.no_grad():
        native = acon(one, torch.ones(1, channels, 1), torch.zeros(1, channels, 1),
                      zf.view(1, channels, 1)).flatten()
    row = {"variant": revact.info()["native"]["variant"],
           "native": _ulp_errors(native, exact),
           "torch.sigmoid": _ulp_errors(torch.sigmoid(zf), exact),
           "1/(1+exp(-z))": _ulp_errors(1 / (1 + torch.exp(-zf)), exact)}
    x = torch.randn(16, 96, 56, 56)
    p1, p2, beta = (torch.randn(1, 96, 1, 1) for _ in range(3))
    for threads in (1, 2):
        torch.set_num_threads(threads)
        with torch.no_grad():
            silu = median_ms(lambda: F.silu(x))
            ours = median_ms(lambda: acon(x, p1, p2, beta))
        row[f"acon/silu {threads}t"] = ours / silu
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="also write the table to this markdown file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure()))
        return
    rows = []
    for env in BUILDS.values():
        done = subprocess.run([sys.executable, __file__, "--child"], env={**os.environ, **env},
                              capture_output=True, text=True, check=True)
        row = json.loads(done.stdout.splitlines()[-1])
        if row["variant"] not in [r["variant"] for r in rows]:
            rows.append(row)
    lines = [
        "| build | σ max / mean ulp: native | torch.sigmoid | 1/(1+exp(-z)) (SLEEF) "
        "| ACON fwd / SiLU, 1 thread | 2 threads |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [f"{r[k][0]:.2f} / {r[k][1]:.3f}" for k in
                 ("native", "torch.sigmoid", "1/(1+exp(-z))")]
        lines.append(f"| {r['variant']} | {' | '.join(cells)} | {r['acon/silu 1t']:.2f} | "
                     f"{r['acon/silu 2t']:.2f} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write("# The native kernels' sigmoid: error and speed per build\n\n"
                    f"`python benchmarks/exp_accuracy.py --out {args.out}`\n\n{table}\n")


if __name__ == "__main__":
    main()
