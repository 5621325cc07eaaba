"""The demo comparison on a Ray cluster of two 1-CPU nodes against two local jobs.

Starts a two-node Ray cluster on this machine (loopback only, one CPU each), runs
``revact compare`` (the demo's recipe unless other options are passed through) with
``--backend ray`` on it and with ``--backend local --jobs 2`` (into
``OUT/runs/{ray,local}``), checks that every run's numbers agree, and writes both wall
times and their ratio to ``OUT/results.md``.

    python benchmarks/ray_vs_local.py --out runs/ray_vs_local
    python benchmarks/ray_vs_local.py --out /tmp/rl -- --quick --acts relu,silu --seeds 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# A driver resolves a loopback address to the machine's IP unless Ray is told it runs on
# one machine (read when Ray is imported).
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def _compare(out: Path, extra: list[str], env: dict[str, str]) -> float:
    revact = str(Path(sys.executable).parent / "revact")
    t0 = time.perf_counter()
    subprocess.run([revact, "compare", "--out", str(out), *extra], env=env, check=True)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/ray_vs_local"))
    p.add_argument("compare_args", nargs="*", help="after --: options for revact compare")
    args = p.parse_args()
    os.environ.update(LOOPBACK)
    from ray.cluster_utils import Cluster

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args.out.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        cluster.wait_for_nodes()
        ray_s = _compare(args.out / "runs" / "ray", [*args.compare_args, "--backend", "ray",
                                                     "--address", cluster.address], env)
    finally:
        cluster.shutdown()
    local_s = _compare(args.out / "runs" / "local", [*args.compare_args, "--jobs", "2"], env)
    runs = {}
    for kind in ("ray", "local"):
        res = json.loads((args.out / "runs" / kind / "results.json").read_text())
        runs[kind] = {(r["act"], r["seed"]): r["test_acc"] for r in res["runs"]}
    same = runs["ray"] == runs["local"]
    text = (f"`python benchmarks/ray_vs_local.py {' '.join(sys.argv[1:])}` on {os.cpu_count()} "
            f"cores\n\n| backend | wall s |\n|---|---:|\n"
            f"| ray, 2 nodes x 1 CPU (cluster start not counted) | {ray_s:.0f} |\n"
            f"| local, --jobs 2 | {local_s:.0f} |\n\nray / local: {ray_s / local_s:.2f}; "
            f"{len(runs['ray'])} runs, test accuracies "
            f"{'identical' if same else 'DIFFERENT'} run for run.\n")
    (args.out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
