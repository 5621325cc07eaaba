"""The ``revact`` command line.

Each sub-command lives beside the code it drives, in a module that exposes
``add_parser(subparsers)``; the parser it adds sets ``func`` to a callable taking
the parsed arguments and returning an exit code. Heavy imports stay inside those
callables so that ``revact --help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Order is the order shown in ``revact --help``.
_COMMAND_MODULES = (
    "revact.activations.commands",
    "revact.plot.commands",
    "revact.train.commands",
    "revact.data.commands",
    "revact.integrations.ultralytics.commands",
    "revact.integrations.flops_commands",
    "revact.integrations.onnx_commands",
    "revact.bench.commands",
    "revact.sysinfo_commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="revact",
        description="Drop-in activations (DY-ReLU, ACON, Meta-ACON, classics) and the RevCol "
        "backbone for vision networks, with fair comparisons and benchmarks.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
