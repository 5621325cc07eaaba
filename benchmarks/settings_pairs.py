"""Paired effects of start options and precise BatchNorm, from two `revact compare` folders.

Reads the results.json of a comparison run without precise BN and one with it (same
activations, seeds and recipe otherwise) and prints, paired by seed with 95% t-intervals:
each activation's change from precise BN, and each start option against its paper default
(``acon_c:init=swish`` vs ``acon_c``, ``dyrelu_c:relu_init=True`` vs ``dyrelu_c``, ...).

    python benchmarks/settings_pairs.py benchmarks/results/settings_short/nopbn \
        benchmarks/results/settings_short/pbn
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from revact.train.stats import paired_ci


def _accuracies(folder: Path) -> tuple[list[str], list[int], dict[tuple[str, int], float]]:
    results = json.loads((folder / "results.json").read_text())
    acc = {(r["act"], r["seed"]): r["test_acc"] for r in results["runs"]}
    return results["acts"], results["seeds"], acc


def _line(label: str, a: list[float], b: list[float]) -> str:
    ci = paired_ci(a, b)
    return (f"{label:<48} {sum(a) / len(a):6.2f} vs {sum(b) / len(b):6.2f}  "
            f"{ci['mean']:+6.2f} [{ci['low']:+.2f}, {ci['high']:+.2f}]")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("without", type=Path, help="comparison folder without precise BN")
    p.add_argument("with_", metavar="with", type=Path, help="the same with precise BN")
    args = p.parse_args()
    acts, seeds, off = _accuracies(args.without)
    _, _, on = _accuracies(args.with_)
    print("precise BN: with vs without, test acc % (mean over seeds), paired diff [95% CI]")
    for act in acts:
        print(_line(act, [on[act, s] for s in seeds], [off[act, s] for s in seeds]))
    print("\nstart option vs paper start, test acc %, paired diff [95% CI]")
    for alt in (a for a in acts if ":" in a):
        base = alt.split(":")[0]
        if base in acts:
            for name, acc in (("no precise BN", off), ("precise BN", on)):
                print(_line(f"{alt} vs {base} ({name})", [acc[alt, s] for s in seeds],
                            [acc[base, s] for s in seeds]))


if __name__ == "__main__":
    main()
