"""Where a whole-network training step spends its time, per op and per module.

    python benchmarks/net_profile.py [--net mobilenet_v2] [--acts relu6,dyrelu_b,acon_c]
                                     [--steps 3] [--top 15] [--threads 2]

One training step (forward, cross-entropy, backward, SGD) of ``revact bench --net``'s
networks, under ``torch.profiler`` after two warm-up steps, ``--steps`` steps profiled.
Two views:

1. per module, forward: every leaf module's forward is wrapped in a ``record_function``
   named after its class (``fwd::Conv2d``, ``fwd::DyReLUB``; the hyper-function's Linear
   layers are inside it, so ``fwd::DyReLUB`` includes them and they are also listed
   alone as ``fwd::Linear``); backward: the autograd nodes grouped by what they belong to
   (convolution, batch norm, the activation kernels ``_AconFunction`` and
   ``_MaxAffineFunction``, the rest);
2. the top ops by self CPU time.

Times are ms per step. Ratios between rows of one run travel; absolute figures on this
shared machine do not.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

from revact.bench.networks import NET_INPUT, _Step, build_net

# Backward autograd nodes -> category, by substring of the node name.
BWD_GROUPS = (
    ("ConvolutionBackward", "conv"),
    ("NativeBatchNormBackward", "batch norm"),
    ("BatchNormBackward", "batch norm"),
    ("HardtanhBackward", "own activation"),
    ("ReluBackward", "own activation / hyper ReLU"),
    ("_MaxAffineFunctionBackward", "revact kernel (max_affine / acon)"),
    ("_AconFunctionBackward", "revact kernel (max_affine / acon)"),
    ("MeanBackward", "hyper-function: pooling"),
    ("AddmmBackward", "hyper-function: linear"),
    ("MmBackward", "hyper-function: linear"),
    ("SigmoidBackward", "hyper-function: gate"),
    ("AccumulateGrad", "accumulate grad"),
)


def _hooks(model: nn.Module) -> list:
    handles = []
    stack: list = []

    def pre(module, args):
        rf = record_function(f"fwd::{type(module).__name__}")
        rf.__enter__()
        stack.append(rf)

    def post(module, args, out):
        stack.pop().__exit__(None, None, None)

    for m in model.modules():
        if m is model or isinstance(m, nn.Sequential):
            continue
        handles.append(m.register_forward_pre_hook(pre))
        handles.append(m.register_forward_hook(post))
    return handles


def profile_step(net: str, act: str | None, steps: int):
    shape, _ = NET_INPUT[net]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen)
    y = torch.randint(0, 10, (shape[0],), generator=gen)
    model = build_net(net, act)
    step = _Step(model, x, y, compiled=False)
    step()
    step()
    handles = _hooks(model)
    with contextlib.redirect_stderr(io.StringIO()), \
            profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            with record_function("step"):
                step()
    for h in handles:
        h.remove()
    return prof


def summarise(prof, steps: int, top: int) -> str:
    avg = prof.key_averages()
    total = next(e.cpu_time_total for e in avg if e.key == "step") / 1e3 / steps
    fwd = sorted(((e.key, e.cpu_time_total / 1e3 / steps, e.count // steps) for e in avg
                  if e.key.startswith("fwd::")), key=lambda r: -r[1])
    bwd: dict[str, float] = collections.defaultdict(float)
    bwd_total = 0.0
    for e in avg:
        if e.key.startswith("autograd::engine::evaluate_function: "):
            node = e.key.split(": ", 1)[1]
            group = next((g for s, g in BWD_GROUPS if s in node), f"other ({node})")
            bwd[group] += e.cpu_time_total / 1e3 / steps
            bwd_total += e.cpu_time_total / 1e3 / steps
    opt = next((e.cpu_time_total for e in avg if e.key.startswith("Optimizer.step")), 0)
    lines = [f"step {total:.0f} ms; backward (autograd nodes) {bwd_total:.0f} ms; "
             f"optimizer {opt / 1e3 / steps:.0f} ms", "",
             "| forward, module | ms/step | calls/step |", "|---|---:|---:|"]
    lines += [f"| {k[5:]} | {t:.1f} | {c} |" for k, t, c in fwd]
    lines += ["", "| backward, group | ms/step |", "|---|---:|"]
    lines += [f"| {g} | {t:.1f} |" for g, t in sorted(bwd.items(), key=lambda r: -r[1])]
    lines += ["", "| op (self CPU) | ms/step | calls/step |", "|---|---:|---:|"]
    ops = sorted((e for e in avg if e.key.startswith("aten::")),
                 key=lambda e: -e.self_cpu_time_total)[:top]
    lines += [f"| {e.key} | {e.self_cpu_time_total / 1e3 / steps:.1f} | {e.count // steps} |"
              for e in ops]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--net", default="mobilenet_v2", choices=tuple(NET_INPUT))
    p.add_argument("--acts", default="own,dyrelu_b,acon_c")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for act in args.acts.split(","):
        prof = profile_step(args.net, None if act == "own" else act, args.steps)
        print(f"\n### {args.net}, {act}\n")
        print(summarise(prof, args.steps, args.top))


if __name__ == "__main__":
    main()
