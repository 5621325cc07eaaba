"""``revact list``: the table of registered activations."""

from __future__ import annotations

import argparse

_EXAMPLE_CHANNELS = 64


def _learnable(name: str) -> str:
    """Names of the learnable parameters and their count at 64 channels."""
    from revact.activations.create_act import act_spec

    spec = act_spec(name)
    module = spec.build(_EXAMPLE_CHANNELS if spec.channel_arg else None)
    names = dict.fromkeys(n.split(".")[0] for n, _ in module.named_parameters())
    count = sum(p.numel() for p in module.parameters())
    if not names:
        return "-"
    return f"{', '.join(names)} ({count} @ C={_EXAMPLE_CHANNELS})"


def rows() -> list[tuple[str, str, str, str]]:
    """(name, family, needs channels, learnable parameters) for every activation."""
    from revact.activations.create_act import act_spec, list_acts

    return [
        (name, act_spec(name).family, "yes" if act_spec(name).needs_channels else "no",
         _learnable(name))
        for name in list_acts()
    ]


def _run(args: argparse.Namespace) -> int:
    table = rows()
    header = ("name", "family", "needs channels", "learnable parameters")
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    for i, row in enumerate([header, *table]):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "list",
        help="list every activation with its family and learnable parameters",
        description="List the registered activations. Build one in Python with "
        "revact.create_act(NAME, channels=C); channel-aware ones need C.",
    )
    parser.set_defaults(func=_run)
