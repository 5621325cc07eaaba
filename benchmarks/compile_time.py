"""Where `torch.compile(model)`'s compile time goes, for `revact bench --net`'s graphs.

    python benchmarks/compile_time.py [--net mobilenet_v2] [--acts relu6,acon_c,...]
                                      [--threads 2] [--out benchmarks/results/compile_time.md]

Each graph (the network's own activation, then each revact one) is compiled in a fresh
process by the first training step of ``revact bench --net``'s step (forward,
cross-entropy, backward, SGD), twice: first with an empty Inductor cache shared by the
graphs in order (``cold``: what a first ``revact bench --modes compiled`` pays, later
graphs reusing the kernels earlier ones compiled), then again with that cache filled
(``warm``: any later run). The columns split the cold time with Dynamo's own timers
(``torch._dynamo.utils.compilation_time_metrics``, summed over the forward and backward
graphs): Dynamo's bytecode tracing, AOTAutograd's joint-graph trace and partition,
Inductor's lowering and code generation (Python), and the wait for the C++ compiler
(``async_compile.wait``: the kernels Inductor writes, compiled by worker processes, one
per core by Inductor's default).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

PHASES = {
    "Dynamo trace": ("bytecode_tracing",),
    "AOT trace + partition": ("aot_trace_joint_graph", "min_cut_rematerialization_partition"),
    "Inductor lowering + codegen": ("GraphLowering.run", "GraphLowering.codegen"),
    "C++ compile wait": ("async_compile.wait",),
}


def measure(net: str, act: str, threads: int) -> dict:
    """This process: the first step's seconds and the phases' sums."""
    import torch
    from torch._dynamo.utils import compilation_time_metrics

    from revact.bench.networks import _Step, build_net, net_shape

    torch.set_num_threads(threads)
    model = build_net(net, None if act == "own" else act)
    shape = net_shape(net, None)
    x = torch.randn(*shape)
    y = torch.randint(0, 10, (shape[0],))
    step = _Step(model, x, y, compiled=True)
    start = time.perf_counter()
    step()
    total = time.perf_counter() - start
    phases = {name: sum(sum(compilation_time_metrics.get(k, [])) for k in keys)
              for name, keys in PHASES.items()}
    return {"total": total, **phases}


def run_child(net: str, act: str, threads: int, cache: str) -> dict:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
    out = subprocess.run([sys.executable, __file__, "--child", net, act, str(threads)],
                         env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--net", default="mobilenet_v2")
    parser.add_argument("--acts", default="own,dyrelu_b,acon_c,meta_acon,dyrelu_c",
                        help="comma-separated; 'own' is the network's own activation")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="also write the table to this markdown file")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        net, act, threads = args.child
        print(json.dumps(measure(net, act, int(threads))))
        return

    acts = args.acts.split(",")
    rows = []
    with tempfile.TemporaryDirectory(prefix="revact-inductor-") as cache:
        cold = {}
        for act in acts:
            cold[act] = run_child(args.net, act, args.threads, cache)
            print(f"{act}: cold {cold[act]['total']:.0f} s", file=sys.stderr, flush=True)
        for act in acts:
            warm = run_child(args.net, act, args.threads, cache)
            print(f"{act}: warm {warm['total']:.0f} s", file=sys.stderr, flush=True)
            rows.append((act, cold[act], warm["total"]))

    header = ["graph", "cold s", *PHASES, "warm s"]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for act, c, warm in rows:
        lines.append(f"| {act} | {c['total']:.0f} | "
                     + " | ".join(f"{c[p]:.0f}" for p in PHASES) + f" | {warm:.0f} |")
    lines.append(f"| all | {sum(c['total'] for _, c, _ in rows):.0f} | "
                 + " | ".join(f"{sum(c[p] for _, c, _ in rows):.0f}" for p in PHASES)
                 + f" | {sum(w for _, _, w in rows):.0f} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        command = "python benchmarks/compile_time.py " + " ".join(sys.argv[1:])
        with open(args.out, "w") as f:
            f.write(f"# torch.compile time of the {args.net} training graphs\n\n"
                    f"`{command}` ({args.threads} threads, {os.cpu_count()} cores)\n\n"
                    f"{table}\n")


if __name__ == "__main__":
    main()
