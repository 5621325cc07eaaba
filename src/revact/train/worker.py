"""One training run in its own process: ``python -m revact.train.worker CONFIG.json [--resume]``.

``revact compare`` runs every (activation, seed) pair through this so that each run's peak
memory is its own (``ru_maxrss`` is per process and never goes down) and so that a crash or
kill loses one run, not the comparison.
"""

from __future__ import annotations

import json
import sys

from revact.train.checkpoint import CheckpointError
from revact.train.config import TrainConfig
from revact.train.engine import train


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m revact.train.worker CONFIG.json [--resume]", file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        cfg = TrainConfig.from_dict(json.load(f))
    try:
        train(cfg, resume="--resume" in argv[1:])
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
