"""RevCol memory modes: bytes saved for backward, training-step time, and gradient error under
bfloat16 autocast. Prints markdown tables.

    .venv/bin/python benchmarks/revcol_memory.py                 # tiny channels, 64x64, batch 4
    .venv/bin/python benchmarks/revcol_memory.py --columns 4 8   # fewer columns

Saved bytes are counted by :func:`revact.bench.memory.saved_tensor_bytes` during the forward,
each storage once (exact and repeatable), leaving out the parameters that autograd saves (they
are in memory anyway). The step
time is the median of forward + loss + backward (the optimizer update is the same in every
mode and left out). Layer scale is set to U(0.5, 1) so the blocks matter (at their 1e-6 init
a column is close to the identity and every error looks small).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from torch import Tensor

from revact.bench.memory import saved_tensor_bytes
from revact.revcol import RevCol


def build(channels, layers, columns, memory, keep_every=None, alpha=None, seed=0) -> RevCol:
    torch.manual_seed(seed)
    model = RevCol(channels, layers, columns, num_classes=10, memory=memory,
                   keep_every=keep_every)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.uniform_(0.5, 1.0)
            elif alpha is not None and ".alpha" in name:
                p.fill_(alpha)
    return model.train()


def loss_of(logits: Tensor) -> Tensor:
    return torch.nn.functional.cross_entropy(logits.float(), torch.arange(logits.shape[0]) % 10)


def step_time(model: RevCol, x: Tensor, repeats: int) -> float:
    times = []
    for i in range(repeats + 1):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        loss_of(model(x)).backward()
        if i:  # the first run warms up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def gradient_errors(channels, layers, columns, x, alpha) -> dict[str, tuple[float, float]]:
    """(error of all gradients, largest error of an α gradient) vs a float32 'none' reference."""

    def grads(mode, autocast):
        model = build(channels, layers, columns, mode, alpha=alpha)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = loss_of(model(x))
        names = [n for n, _ in model.named_parameters()]
        return names, torch.autograd.grad(loss, list(model.parameters()))

    names, ref = grads("none", False)
    result = {}
    for mode in ("none", "column", "full"):
        _, got = grads(mode, True)
        diff = torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(got, ref, strict=True)))
        total = torch.sqrt(sum((b**2).sum() for b in ref))
        alpha_errs = [
            float((a - b).norm() / b.norm())
            for n, a, b in zip(names, got, ref, strict=True)
            if ".alpha" in n and not n.startswith("subnet0.")  # the first column's are 0
        ]
        result[mode] = (float(diff / total), max(alpha_errs))
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--channels", type=int, nargs=4, default=[64, 128, 256, 512])
    p.add_argument("--layers", type=int, nargs=4, default=[2, 2, 4, 2])
    p.add_argument("--columns", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1 is the steadiest on a shared machine)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    channels, layers = tuple(args.channels), tuple(args.layers)

    torch.manual_seed(1)
    x = torch.randn(args.batch, 3, args.size, args.size)
    print(f"RevCol channels {channels}, blocks {layers}, input {args.batch}x3x{args.size}x"
          f"{args.size}, float32, CPU, {args.threads} thread(s), torch {torch.__version__}\n")
    print("| columns | memory | saved for backward (MiB) | train step fwd+bwd (s) "
          "| params (M) | largest reconstruction error |")
    print("|---|---|---|---|---|---|")
    for n in args.columns:
        modes = [("none", None), ("column", None), ("full", None)]
        if n > 4:
            modes.append(("full", 4))
        for mode, keep in modes:
            model = build(channels, layers, n, mode, keep_every=keep)
            mib = saved_tensor_bytes(model, x, parameters=False) / 2**20
            sec = step_time(model, x, args.repeats)
            err = model.last_reconstruction_error
            params = sum(q.numel() for q in model.parameters()) / 1e6
            err_s = "–" if err is None else f"{err:.1e}"
            label = mode if keep is None else f"{mode}, keep_every={keep}"
            print(f"| {n} | {label} | {mib:.2f} | {sec:.3f} | {params:.1f} | {err_s} |")
            sys.stdout.flush()
            del model
    print("\nReconstruction error: largest ‖rec − exact‖/‖exact‖ of a column state in the last "
          "backward. In 'column' mode it is only measured (the one-column error the official "
          "backward carries); our backward uses the kept states instead.")

    n = args.columns[0]
    print(f"\nGradient error under bfloat16 autocast vs the float32 'none' reference ({n} "
          "columns; relative L2 error of all parameter gradients / largest of one α "
          "gradient):\n")
    print("| α | none | column | full | column ≤ 2× none |")
    print("|---|---|---|---|---|")
    for alpha in (0.5, 0.1):
        e = gradient_errors(channels, layers, n, x, alpha)
        ok = "yes" if e["column"][0] <= 2 * e["none"][0] else "NO"
        cells = " | ".join(f"{e[m][0]:.2e} / {e[m][1]:.2e}" for m in ("none", "column", "full"))
        print(f"| {alpha} | {cells} | {ok} |")


if __name__ == "__main__":
    main()
