"""``revact compare``: the same network, recipe and seeds for every activation.

Each (activation, seed) run is a separate process (see :mod:`revact.train.worker`) writing
into ``OUT/runs/<act>/seed<k>/``, started on this machine or on a Ray cluster
(:mod:`revact.train.backends`). A comparison that is interrupted can be started again with
the same command: finished runs are reused (when their recipe matches) and a run that was
cut off resumes from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from revact.train.backends import Backend, Job, JobResult, LocalBackend
from revact.train.config import TrainConfig, saved_recipe_value
from revact.train.results import CompareRun, RunResult
from revact.train.stats import holm, paired_ci, paired_p_value, verdict

__all__ = ["default_jobs", "plan_runs", "run_compare", "summarize", "check_out_recipe",
           "recipe_tag"]


def _shared_recipe(cfg: TrainConfig) -> dict:
    """The recipe every run of a comparison shares (all but activation and seed)."""
    return {k: v for k, v in cfg.recipe().items() if k not in ("act", "seed")}


def recipe_tag(cfg: TrainConfig, preset: str = "") -> str:
    """A folder name for a comparison: readable, and different for any other recipe.

    ``compare-full-resnet14-3ep-1a2b3c``: preset, model, epochs and a hash of the whole
    shared recipe. The same command gives the same name, so re-running it reuses and
    resumes its runs.
    """
    digest = hashlib.sha256(json.dumps(_shared_recipe(cfg), sort_keys=True).encode())
    parts = ["compare", preset, cfg.model, f"{cfg.epochs}ep", digest.hexdigest()[:6]]
    return "-".join(p for p in parts if p)


def check_out_recipe(out: str | os.PathLike, base: TrainConfig) -> None:
    """Refuse a comparison folder that holds runs of another recipe, before anything runs.

    Their checkpoints could not be resumed and their results would be mixed with the new
    ones; this says so once, with what differs and what to do.

    Raises:
        ValueError: a run under ``out/runs`` was made with a different recipe.
    """
    want = _shared_recipe(base)
    for path in sorted(Path(out).glob("runs/*/seed*/config.json")):
        try:
            saved = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        diff = [f"{k} {saved_recipe_value(saved, k)!r} there, {v!r} now"
                for k, v in want.items() if saved_recipe_value(saved, k) != v]
        if diff:
            raise ValueError(
                f"{out} holds a comparison with another recipe ({'; '.join(diff)}). "
                f"Give another --out for this one, or delete {out} to replace it"
            )


def _run_dir(out: Path, act: str, seed: int) -> Path:
    # 'acon_c:init=swish' -> runs/acon_c+init=swish: ':' is not allowed in Windows paths.
    return out / "runs" / act.replace(":", "+") / f"seed{seed}"


def _finished(run_dir: Path, cfg: TrainConfig) -> RunResult | None:
    """The result of a finished run of this recipe in ``run_dir``, or None."""
    path = run_dir / "metrics.json"
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    saved = metrics.get("config") or {}
    if any(saved_recipe_value(saved, k) != v for k, v in cfg.recipe().items()):
        return None
    return RunResult.from_dict(metrics)


def _job(cfg: TrainConfig, run_dir: Path, act: str, seed: int) -> Job:
    """The training process of one run, for any backend: its config.json is written here
    (and sent along to a node that does not see this folder)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = json.dumps(cfg.to_dict(), indent=2)
    (run_dir / "config.json").write_text(config)
    return Job(
        key=(act, seed), label=f"{act} seed {seed}", folder=run_dir,
        argv=["-m", "revact.train.worker", "{dir}/config.json", "--out", "{dir}"],
        files={"config.json": config}, collect=("metrics.json",), log="train.log",
        resume=("checkpoint.pt", "--resume"), threads=cfg.threads or 1,
        gpus=1 if cfg.device.startswith("cuda") else 0,
    )


def _failure(r: JobResult, backend: Backend) -> str:
    act, seed = r.job.key
    if backend.name == "local":
        return (f"run {act} seed {seed} failed (exit {r.rc}); log "
                f"{r.job.folder / r.job.log}:\n{r.log_tail}")
    return f"{act} seed {seed} on {r.node}: {r.error or f'exit {r.rc}'}"


def _read_node(run_dir: Path) -> str | None:
    """Where a finished run ran (``node.txt``; None for runs from before it was written)."""
    path = run_dir / "node.txt"
    if not path.is_file():
        return None
    return path.read_text().strip() or None


def default_jobs(threads: int | None, device: str = "cpu") -> int:
    """On CPU, as many runs at once as there are cores for their threads (at least one);
    on a GPU one, as runs would share it."""
    from revact.train.engine import _resolve_device

    if _resolve_device(device).type != "cpu":
        return 1
    return max(1, (os.cpu_count() or 1) // max(1, threads or 1))


def plan_runs(acts: list[str], seeds: list[int], jobs: int) -> list[tuple[str, int]]:
    """The (activation, seed) runs, seed-major, after checking what ``run_compare`` takes.

    Raises:
        ValueError: no activations or seeds, one listed twice (two runs would write into
            one folder at once), or ``jobs`` below 1.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    for kind, values in (("activation", acts), ("seed", seeds)):
        if not values:
            raise ValueError(f"no {kind}s given")
        if len(set(values)) != len(values):
            raise ValueError(f"each {kind} may appear once, got {values}")
    return [(act, seed) for seed in seeds for act in acts]


def run_compare(
    acts: list[str], seeds: list[int], base: TrainConfig, out: str | os.PathLike,
    plots: bool = True, command: str | None = None, jobs: int = 1,
    backend: Backend | None = None,
) -> dict[str, Any]:
    """Train every activation with every seed, then write the leaderboard and plots.

    Runs start seed-major (all activations for seed 0, then seed 1, ...), so a comparison cut
    short still has paired results for the seeds it finished. Each run is its own process,
    started by ``backend``: by default :class:`~revact.train.backends.LocalBackend`, ``jobs``
    at once on this machine; a :class:`~revact.train.backends.RayBackend` (started) spreads
    them over a Ray cluster. Results keep the seed-major order whatever order runs finish
    in, and each run's ``node`` says where it ran.

    Returns:
        The results dictionary written to ``OUT/results.json``.

    Raises:
        ValueError: see :func:`plan_runs`; also ``out`` is a file or holds runs of
            another recipe (:func:`check_out_recipe`).
        RuntimeError: a run failed. Locally the message gives the tail of its log, queued
            runs are not started and running ones are stopped (a re-run resumes them from
            their last epoch's checkpoint), as on an interrupt. On Ray the other runs go on
            and the message lists every failed run with its node, after the rest finished
            (a re-run reuses them).
    """
    from revact.train.checkpoint import check_out_dir

    plan = plan_runs(acts, seeds, jobs)
    out = check_out_dir(out)
    check_out_recipe(out, base)
    out.mkdir(parents=True, exist_ok=True)
    backend = backend or LocalBackend(jobs)
    width = len(str(len(plan)))
    t_start = time.perf_counter()
    result_of: dict[tuple[str, int], RunResult] = {}
    node_of: dict[tuple[str, int], str | None] = {}
    todo: list[Job] = []
    failed: list[str] = []

    def report(act: str, seed: int, result: RunResult, took: str) -> None:
        n = len(result_of) + len(failed)
        backend.echo(f"[{n:>{width}}/{len(plan)}] {act:<12} seed {seed}  "
                     f"test {result.test_acc:6.2f}%  val {result.val_acc:6.2f}%  "
                     f"{result.train_img_per_s:6.0f} img/s  ({took})")

    for act, seed in plan:
        run_dir = _run_dir(out, act, seed)
        cfg = replace(base, act=act, seed=seed, out=str(run_dir), progress=False)
        result = _finished(run_dir, cfg)
        if result is None:
            todo.append(_job(cfg, run_dir, act, seed))
            continue
        result_of[act, seed] = result
        node_of[act, seed] = _read_node(run_dir)
        report(act, seed, result, "reused")
    # Closing it stops what still runs: on a failure that ends the comparison, an interrupt.
    with contextlib.closing(backend.run(todo, root=out)) as finished:
        for r in finished:
            act, seed = r.job.key
            run_dir = r.job.folder
            cfg = replace(base, act=act, seed=seed, out=str(run_dir), progress=False)
            result = _finished(run_dir, cfg) if r.rc == 0 else None
            if result is None:
                msg = _failure(r, backend)
                if not backend.keep_going:
                    raise RuntimeError(msg)
                failed.append(msg)
                backend.echo(f"[{len(result_of) + len(failed):>{width}}/{len(plan)}] "
                             f"{act:<12} seed {seed}  FAILED: {msg}")
                continue
            (run_dir / "wall_seconds.txt").write_text(f"{r.seconds:.1f}\n")
            (run_dir / "node.txt").write_text(f"{r.node}\n")
            result_of[act, seed] = result
            node_of[act, seed] = r.node
            took = f"{r.seconds:.0f}s" + (f" on {r.node}" if backend.name != "local" else "")
            report(act, seed, result, took)
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {len(plan)} runs failed (the {len(result_of)} others are kept "
            f"in {out}/runs; the same command reuses them and runs these again):\n  "
            + "\n  ".join(failed))
    runs: list[CompareRun] = []
    for act, seed in plan:
        run_dir = _run_dir(out, act, seed)
        wall = run_dir / "wall_seconds.txt"
        runs.append(CompareRun.from_result(
            act, seed, str(run_dir.relative_to(out)),
            float(wall.read_text()) if wall.is_file() else None, result_of[act, seed],
            node=node_of[act, seed]))
    last = result_of[plan[-1]]
    data_info = last.data
    env_info = {"device": last.device, "threads": last.threads, "torch": last.torch,
                "peak_mem_kind": last.peak_mem_kind}
    _recount_macs(runs, out, data_info)
    gpus = 1 if base.device.startswith("cuda") else 0
    results = {
        "command": command or "",
        "baseline": acts[0],
        "acts": acts,
        "seeds": seeds,
        "recipe": _shared_recipe(base),
        "data": data_info,
        "environment": {**env_info, "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
                        # Whole comparison (each run's process, from start to exit), and this
                        # invocation alone (small when runs were reused).
                        "runs_wall_seconds": _total([r.wall_seconds for r in runs]),
                        "invocation_seconds": time.perf_counter() - t_start,
                        # Runs at once: their img/s share the machine's memory bandwidth.
                        "parallel_runs": backend.parallel(base.threads or 1, gpus),
                        "backend": backend.name,
                        "nodes": sorted({n for n in node_of.values() if n})},
        "leaderboard": summarize(runs, acts),
        "runs": [r.to_dict() for r in runs],
    }
    from revact.train.report import write_reports

    write_reports(results, out, plots=plots)
    return results


def _recount_macs(runs: list[CompareRun], out: Path, data_info: dict) -> None:
    """Count MACs here, with this revact's counting rule, rather than trusting the runs.

    MACs depend on the network and activation only; recounting keeps a comparison whose
    runs were reused from an older revact consistent with the documented rule.
    """
    from revact.integrations.flops import count_macs
    from revact.models import create_model

    cache: dict[str, dict] = {}
    for r in runs:
        if r.act not in cache:
            # From the run's config and data, not its checkpoint: a comparison's finished
            # runs can be moved (or committed) without their checkpoints and still report.
            model_name = json.loads((out / r.dir / "config.json").read_text())["model"]
            args = {"num_classes": data_info["num_classes"], "in_chans": data_info["in_chans"]}
            size = data_info.get("image_size", 28)
            model = create_model(model_name, act_layer=r.act, **args)
            cache[r.act] = count_macs(model, (args["in_chans"], size, size))
        r.macs, r.layer_macs, r.act_macs = (
            cache[r.act][k] for k in ("macs", "layer_macs", "act_macs"))


def _total(xs: list[float | None]) -> float | None:
    return None if any(x is None for x in xs) else sum(xs)


def _mean_std(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    sd = (sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5 if len(xs) > 1 else 0.0
    return m, sd


def summarize(runs: list[CompareRun | dict], acts: list[str]) -> list[dict]:
    """One leaderboard row per activation, best mean test accuracy first.

    ``runs`` are :class:`CompareRun` records or their dictionaries (``results.json``).
    The difference to the baseline (``acts[0]``) is paired by seed: only seeds present for
    both enter it. Each row has its paired-t ``p_value`` and ``p_holm``, Holm-adjusted over
    the k rows compared with the baseline; the verdict is read from ``p_holm``.
    """
    runs = [r if isinstance(r, CompareRun) else CompareRun.from_dict(r) for r in runs]
    by_act = {a: {r.seed: r for r in runs if r.act == a} for a in acts}
    base = by_act[acts[0]]
    rows = []
    for act in acts:
        rs = by_act[act]
        if not rs:
            continue
        accs = [r.test_acc for r in rs.values()]
        mean, std = _mean_std(accs)
        common = sorted(set(rs) & set(base))
        pairs = [rs[s].test_acc for s in common], [base[s].test_acc for s in common]
        ci = paired_ci(*pairs)
        first = next(iter(rs.values()))
        rows.append({
            "act": act,
            "seeds": len(rs),
            "test_acc_mean": mean,
            "test_acc_std": std,
            "diff_mean": ci["mean"],
            "diff_ci_low": ci["low"],
            "diff_ci_high": ci["high"],
            "p_value": None if act == acts[0] else paired_p_value(*pairs),
            "p_holm": None,
            "verdict": "baseline" if act == acts[0] else None,
            "_ci": ci,
            "val_acc_mean": _mean_std([r.val_acc for r in rs.values()])[0],
            "params": first.params,
            "macs": first.macs,
            "act_macs": first.act_macs,
            "train_img_per_s": _mean_std([r.train_img_per_s for r in rs.values()])[0],
            "peak_mem_mib": max(r.peak_mem_mib for r in rs.values()),
            "saved_for_backward_mib": first.saved_for_backward_mib,
        })
    for row, p_holm in zip(rows, holm([r["p_value"] for r in rows]), strict=True):
        ci = row.pop("_ci")
        if row["act"] != acts[0]:
            row["p_holm"] = p_holm
            row["verdict"] = verdict(ci, p_holm)
    rows.sort(key=lambda r: -r["test_acc_mean"])
    return rows
