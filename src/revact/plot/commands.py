"""``revact plot``: draw activations and their derivatives."""

from __future__ import annotations

import argparse

from revact.plot.activations import DEFAULT_ACTS


def _run(args: argparse.Namespace) -> int:
    from revact.plot.activations import plot_activations

    names = [n for n in args.acts.split(",") if n]
    low, high = args.range
    out = plot_activations(names, args.out, low, high, channels=args.channels, seed=args.seed)
    print(f"wrote {out}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plot",
        help="plot activations and their derivatives to a PNG",
        description="Plot activations (left) and their derivatives (right). Adaptive "
        "activations are drawn at their default initialisation, for a sample input whose "
        "channels all hold the x grid.",
        epilog="examples:\n  revact plot\n  revact plot --acts relu,silu,acon_c --range -3 3 "
        "--out acts.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--acts", default=",".join(DEFAULT_ACTS),
                        help="comma-separated names from `revact list` (default: %(default)s)")
    parser.add_argument("--range", nargs=2, type=float, default=(-5.0, 5.0),
                        metavar=("MIN", "MAX"), help="x range (default: -5 5)")
    parser.add_argument("--out", default="activations.png", help="PNG path (default: %(default)s)")
    parser.add_argument("--channels", type=int, default=8,
                        help="channels of the adaptive activations (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of their initialisation (default: %(default)s)")
    parser.set_defaults(func=_run)
