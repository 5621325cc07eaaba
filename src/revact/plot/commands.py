"""``revact plot``: draw activations and their derivatives."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from revact.plot.activations import DEFAULT_ACTS


def _check(args: argparse.Namespace, names: list[str]) -> str | None:
    """What is wrong with the arguments, in one line, or None; before anything is drawn."""
    from revact.activations.create_act import act_spec

    if not names:
        return "--acts names no activation"
    for name in names:
        try:
            act_spec(name)
        except ValueError as e:
            return str(e)
    low, high = args.range
    if not low < high:
        return f"--range MIN MAX needs MIN < MAX, got {low:g} {high:g}"
    if args.channels < 1:
        return f"--channels must be >= 1, got {args.channels}"
    if Path(args.out).is_dir():
        return f"--out {args.out} is a folder; give a PNG path such as {args.out}/acts.png"
    return None


def _run(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.acts.split(",") if n.strip()]
    err = _check(args, names)
    if err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from revact.plot.activations import plot_activations

    low, high = args.range
    try:
        out = plot_activations(names, args.out, low, high, channels=args.channels,
                               seed=args.seed)
    except (OSError, ValueError) as e:  # e.g. a file where the output's folder should be
        print(f"error: cannot write --out {args.out}: {e}", file=sys.stderr)
        return 2
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
