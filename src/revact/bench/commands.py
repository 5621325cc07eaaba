"""``revact bench``: activation speed and memory against ReLU."""

from __future__ import annotations

import argparse
import sys
import time

DEFAULT = "acon_c,plain_acon_c,meta_acon,dyrelu_b,plain_max_affine,dyrelu_c,silu,mish,gelu"
DEFAULT_SHAPE = (32, 64, 56, 56)
DEFAULT_MODES = "eager,fused,compiled"


def _positive_int(text: str) -> int:
    """An argparse ``type``: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _shape(text: str) -> tuple[int, ...]:
    """``--shape`` (an argparse ``type``): N,C,L or N,C,H,W, every size at least 1."""
    try:
        shape = tuple(int(s) for s in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) not in (3, 4) or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected N,C,L or N,C,H,W (comma-separated, every "
                                         f"size at least 1), e.g. 8,64,56,56; got {text!r}")
    return shape


def _run_net(args: argparse.Namespace) -> int:
    import torch

    from revact.bench.networks import (
        DEFAULT_NET_ACTS,
        NET_INPUT,
        format_net_table,
        net_shape,
        run_net_bench,
    )

    # Options of the activation bench that --net has no use for: refused, not ignored.
    if args.device != "cpu":
        return _error("--net times training steps on the CPU only; drop --device")
    if args.fused or args.compiled:
        return _error("with --net, choose what to time with --modes (e.g. "
                      "--modes eager,fused,compiled), not --fused/--compiled")
    acts = [n.strip() for n in (args.acts or DEFAULT_NET_ACTS).split(",") if n.strip()]
    modes = tuple(m.strip() for m in (args.modes or DEFAULT_MODES).split(",") if m.strip())
    repeats = args.repeats or 5
    started = time.perf_counter()

    def progress(mode: str, rows: list) -> None:  # a line per mode (each takes minutes)
        if sys.stderr.isatty():
            print(f"bench: {mode} done ({modes.index(mode) + 1}/{len(modes)} modes, "
                  f"{time.perf_counter() - started:.0f} s)", file=sys.stderr)

    try:
        shape = net_shape(args.net, args.shape)
        rows = run_net_bench(args.net, acts, repeats, modes, progress=progress, shape=shape)
    except ValueError as e:
        return _error(str(e))
    own = NET_INPUT[args.net][1]
    print(f"{args.net}: one training step (forward, cross-entropy, backward, SGD) on "
          f"{tuple(shape)} float32, cpu, every {own} swapped for the named activation; "
          f"ratios to the network's own {own}, each repeat timing the baseline and every "
          f"variant back to back, median of {repeats} paired ratios; torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads\n")
    print(format_net_table(rows, modes))
    return 0


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _run(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.net:
        return _run_net(args)
    if args.modes is not None:
        return _error("--modes applies to --net; without it use --fused and --compiled")
    from tqdm import tqdm

    from revact.bench.activations import check_device, format_table, run_activation_bench

    args.acts = args.acts or DEFAULT
    args.repeats = args.repeats or 15
    shape = args.shape or DEFAULT_SHAPE
    try:
        check_device(args.device)  # before the progress bar opens
    except ValueError as e:
        return _error(str(e))
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
            return _error(str(e))
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
        "  revact bench --net compact --acts acon_c --modes eager,fused\n"
        "  revact bench --net resnet18 --shape 8,3,64,64 --modes eager",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--acts", default=None,
                        help="comma-separated; options as name:key=value, e.g. dyrelu_b:k=3 "
                             f"(default: {DEFAULT}; with --net: dyrelu_b,acon_c,meta_acon,"
                             "dyrelu_c)")
    parser.add_argument("--shape", type=_shape, default=None, metavar="N,C,H,W",
                        help="input shape, N,C,H,W or N,C,L (default: "
                             f"{','.join(map(str, DEFAULT_SHAPE))}; with --net, N,C,H,W: "
                             "16,3,112,112, 128,1,28,28 for compact)")
    parser.add_argument("--repeats", type=_positive_int, default=None,
                        help="timed runs, at least 1 (default: 15; with --net: 5)")
    parser.add_argument("--net", choices=("mobilenet_v2", "resnet18", "compact"),
                        help="time whole training steps of this network instead (torchvision "
                             "MobileNetV2 / ResNet-18 at 16x3x112x112, or revact's compact "
                             "mbv2 at 128x1x28x28, unless --shape), each activation against "
                             "the network's own, on the CPU")
    parser.add_argument("--modes", default=None,
                        help="with --net: eager, pytorch (eager without the native CPU "
                             "kernels), fused (use_fused_kernels()), compiled "
                             f"(torch.compile(model)) (default: {DEFAULT_MODES})")
    parser.add_argument("--fused", action="store_true",
                        help="also time with use_fused_kernels() (compiles first)")
    parser.add_argument("--compiled", action="store_true",
                        help="also time torch.compile(module) (compiles first)")
    parser.add_argument("--device", default="cpu",
                        help="cpu or cuda[:N] (default: cpu; --net: cpu only)")
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help="torch threads, at least 1 (default: torch's, all cores)")
    parser.set_defaults(func=_run)
