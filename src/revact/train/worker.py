"""One training run in its own process:
``python -m revact.train.worker CONFIG.json [--resume] [--out DIR]``.

``revact compare`` runs every (activation, seed) pair through this, on this machine or on a
Ray node (:mod:`revact.train.backends`), so that each run's peak memory is its own
(``ru_maxrss`` is per process and never goes down) and so that a crash or kill loses one
run, not the comparison. ``--out`` overrides the config's output folder (a Ray node that
does not see the driver's folder works in one of its own).

Exit status: 0 done, 2 usage, 3 unusable checkpoint, 4 data not found; the last line of the
output is then ``error: ...``, one line (the node and the driver report it).
"""

from __future__ import annotations

import json
import sys

from revact.train.checkpoint import CheckpointError
from revact.train.config import TrainConfig
from revact.train.engine import train


def main(argv: list[str] | None = None) -> int:
    from revact.data import DataNotFoundError

    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m revact.train.worker CONFIG.json [--resume] [--out DIR]",
              file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        cfg = TrainConfig.from_dict(json.load(f))
    rest = argv[1:]
    if "--out" in rest:
        cfg.out = rest[rest.index("--out") + 1]
    try:
        train(cfg, resume="--resume" in rest)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except DataNotFoundError as e:
        print(str(e), file=sys.stderr)
        print(f"error: {e.summary}", file=sys.stderr, flush=True)
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main())
