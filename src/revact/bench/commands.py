"""``revact bench``: activation speed and memory against ReLU."""

from __future__ import annotations

import argparse
import sys

DEFAULT = "acon_c,plain_acon_c,meta_acon,dyrelu_b,plain_max_affine,dyrelu_c,silu,mish,gelu"


def _run_net(args: argparse.Namespace) -> int:
    import torch

    from revact.bench.networks import (
        DEFAULT_NET_ACTS,
        NET_INPUT,
        format_net_table,
        run_net_bench,
    )

    acts = [n.strip() for n in (args.acts or DEFAULT_NET_ACTS).split(",") if n.strip()]
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    repeats = args.repeats or 5

    def partial(mode: str, rows: list) -> None:  # a table per finished mode, on stderr
        print(f"bench: {mode} done\n{format_net_table(rows, modes)}", file=sys.stderr)

    try:
        rows = run_net_bench(args.net, acts, repeats, modes, progress=partial)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    shape, own = NET_INPUT[args.net]
    print(f"\n{args.net}: one training step (forward, cross-entropy, backward, SGD) on "
          f"{tuple(shape)} float32, cpu, every {own} swapped for the named activation; "
          f"ratios to the network's own {own}, each repeat timing the baseline and every "
          f"variant back to back, median of {repeats} paired ratios; torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads\n")
    print(format_net_table(rows, modes))
    return 0


def _run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from revact.bench.activations import format_table, run_activation_bench

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.net:
        return _run_net(args)
    args.acts = args.acts or DEFAULT
    args.repeats = args.repeats or 15
    shape = tuple(int(s) for s in args.shape.split(","))
    if len(shape) not in (3, 4):
        raise SystemExit(f"--shape needs N,C,L or N,C,H,W, got {args.shape!r}")
    names = [n.strip() for n in args.acts.split(",") if n.strip()]
    with tqdm(total=len(names), desc="bench", unit="act") as bar:
        def step(name: str) -> None:
            bar.set_postfix_str(name)
            bar.update()

        try:
            rows = run_activation_bench(names, shape, args.repeats, args.fused, args.compiled,
                                        args.device, step)
        except ValueError as e:  # e.g. a bad name or option, checked before any timing
            bar.close()
            print(f"error: {e}", file=sys.stderr)
            return 2
    print(f"\nforward+backward on {tuple(shape)} float32, {args.device}, each repeat paired "
          f"with ReLU, median of {args.repeats}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads\n")
    print(format_table(rows))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="time activations (forward+backward) and count their saved memory vs ReLU",
        description="Forward+backward time and memory saved for backward of each activation, "
        "as ratios to torch.relu measured in the same run. plain_acon_c and "
        "plain_max_affine are the same formulas with plain autograd, for contrast.",
        epilog="examples:\n  revact bench\n  revact bench --acts acon_c,dyrelu_b --fused\n"
        "  revact bench --acts dyrelu_b,dyrelu_b:k=3,meta_acon:generator=pixel --compiled\n"
        "  revact bench --shape 8,64,56,56 --repeats 5\n"
        "  revact bench --net mobilenet_v2 --threads 2   # whole training steps vs ReLU6\n"
        "  revact bench --net compact --acts acon_c --modes eager,fused",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--acts", default=None,
                        help="comma-separated; options as name:key=value, e.g. dyrelu_b:k=3 "
                             f"(default: {DEFAULT}; with --net: dyrelu_b,acon_c,meta_acon,"
                             "dyrelu_c)")
    parser.add_argument("--shape", default="32,64,56,56", help="input shape (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=0,
                        help="timed runs (default: 15; with --net: 5)")
    parser.add_argument("--net", choices=("mobilenet_v2", "resnet18", "compact"),
                        help="time whole training steps of this network instead (torchvision "
                             "MobileNetV2 / ResNet-18 at 16x3x112x112, or revact's compact "
                             "mbv2 at 128x1x28x28), each activation against the network's own")
    parser.add_argument("--modes", default="eager,fused,compiled",
                        help="with --net: eager, pytorch (eager without the native CPU "
                             "kernels), fused (use_fused_kernels()), compiled "
                             "(torch.compile(model)) (default: %(default)s)")
    parser.add_argument("--fused", action="store_true",
                        help="also time with use_fused_kernels() (compiles first)")
    parser.add_argument("--compiled", action="store_true",
                        help="also time torch.compile(module) (compiles first)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: all)")
    parser.set_defaults(func=_run)
