"""Leaderboard tables (terminal, Markdown, CSV) and results.json for a comparison.

The PNG plots are drawn by :mod:`revact.plot.training`.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["format_leaderboard", "write_reports"]

_COLUMNS = (
    ("#", None), ("activation", "act"), ("test acc % (mean ± std)", None),
    ("Δ vs baseline [95% CI]", None), ("p (Holm)", None), ("verdict", "verdict"),
    ("params", None),
    ("MMACs (act)", None), ("train img/s", None), ("peak RSS MiB", None),
    ("saved for bwd MiB", None),
)


def _cells(i: int, r: dict, batch: int | None) -> list[str]:
    if r["diff_mean"] is None or r["verdict"] == "baseline":
        diff = "—"
    elif r["diff_ci_low"] is None:
        diff = f"{r['diff_mean']:+.2f}"
    else:
        diff = f"{r['diff_mean']:+.2f} [{r['diff_ci_low']:+.2f}, {r['diff_ci_high']:+.2f}]"
    return [
        str(i), r["act"], f"{r['test_acc_mean']:.2f} ± {r['test_acc_std']:.2f}", diff,
        _p_text(r.get("p_value"), r.get("p_holm")), r["verdict"], f"{r['params']:,}",
        f"{r['macs'] / 1e6:.2f} ({r['act_macs'] / 1e6:.2f})",
        f"{r['train_img_per_s']:.0f}", f"{r['peak_mem_mib']:.0f}",
        f"{r['saved_for_backward_mib']:.1f}",
    ]


def _p_text(p: float | None, p_holm: float | None) -> str:
    """``0.012 (0.048)``: the paired-t p-value and, in brackets, its Holm-adjusted value."""
    if p is None:
        return "—"
    return f"{p:.3g}" + ("" if p_holm is None else f" ({p_holm:.3g})")


def format_leaderboard(results: dict[str, Any], markdown: bool = False) -> str:
    """The leaderboard as an aligned text table, or a Markdown table."""
    heads = [c[0] for c in _COLUMNS]
    rows = [_cells(i + 1, r, None) for i, r in enumerate(results["leaderboard"])]
    if markdown:
        lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(heads)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*heads), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(lines)


def _precise_bn_text(rec: dict[str, Any]) -> str:
    n = rec.get("precise_bn") or 0
    if not n:
        return "BatchNorm statistics as trained (momentum estimates; no precise BN)"
    return (f"precise BatchNorm (every BatchNorm's statistics re-estimated on {n} training "
            "batches before each validation and the test)")


def _notes(results: dict[str, Any]) -> str:
    rec, data, env = results["recipe"], results["data"], results["environment"]
    n = len(results["seeds"])
    k = sum(r.get("p_value") is not None for r in results["leaderboard"])
    wall, jobs = env.get("runs_wall_seconds"), env.get("parallel_runs", 1)
    wall_line = (f"Sum of the {len(results['runs'])} runs' wall times: {wall / 60:.1f} min, "
                 f"with {jobs} run(s) going at once.\n" if wall else "")
    return f"""\
Baseline: **{results['baseline']}**. Seeds: {results['seeds']} (each seed fixes initial weights
and data order, identical across activations). Data: {data['name']} from `{data['source']}`,
train {data['train']}, validation {data['val']}, test {data['test']} images; the test set is
used only for these final numbers.

Recipe (identical for every activation): model `{rec['model']}`, {rec['epochs']} epoch(s),
{rec['opt']} lr {rec['lr']} (cosine, warm-up {rec['warmup_epochs']} epochs), weight decay
{rec['weight_decay']} on conv/linear kernels only (`revact.param_groups`: activation
parameters are not decayed), label smoothing {rec['label_smoothing']}, batch
{rec['batch_size']}, horizontal flips {'on' if rec['augment'] else 'off'}, autocast
{'on' if rec['amp'] else 'off'}, {_precise_bn_text(rec)}.

How to read it:
- **Δ vs baseline** is the mean over seeds of (activation − baseline) test accuracy, paired by
  seed, with a 95% Student-t interval ({n} seeds → {max(n - 1, 0)} degrees of freedom).
- Verdicts are Holm-adjusted over the k = {k} comparisons with the baseline: **p (Holm)** is
  the paired-t p-value and, in brackets, Holm's adjustment of it; **better / worse** when the
  adjusted value is below 0.05, otherwise **within noise**. An interval can exclude 0 while
  the adjusted p-value does not pass: one of k comparisons is expected to by chance.
- **MMACs** per 28×28 image count conv/linear multiply-adds *and* activation maths
  (elementwise cost per output element plus the hyper-function layers of DY-ReLU and
  Meta-ACON); the activation share is in brackets. Rule: `revact.integrations.flops`.
- **train img/s**: training images per second over all epochs (forward, backward, step),
  {env['threads']} CPU thread(s) per run on {env['device']}, {jobs} run(s) at once; runs
  sharing the machine (and other jobs on it) slow each other, so compare ratios.
- **peak RSS**: the training process's resident-set high-water (includes ~0.5 GB for importing
  torch); **saved for bwd**: tensors autograd keeps for one training batch of
  {rec['batch_size']}, measured exactly with saved-tensor hooks (`revact.bench.memory`).

{_scope(results)}{wall_line}"""


def _scope(results: dict[str, Any]) -> str:
    """What a comparison of this length and these intervals can and cannot show."""
    rec = results["recipe"]
    steps = rec["epochs"] * (results["data"]["train"] // rec["batch_size"])
    halves = [(r["diff_ci_high"] - r["diff_ci_low"]) / 2 for r in results["leaderboard"]
              if r.get("diff_ci_low") is not None and r.get("diff_ci_high") is not None]
    text = f"What it can show: each run trained about {steps:,} SGD steps"
    if halves:
        text += (f"; the 95% intervals reach ±{max(halves):.1f} points, so smaller "
                 "differences are not resolved (more seeds narrow them)")
    text += "."
    if steps < 1000:
        text += (" A schedule this short measures how fast each activation starts learning "
                 "more than where it ends (README: \"Which settings for which schedule\").")
    return text + "\n\n"


def write_reports(results: dict[str, Any], out: str | os.PathLike, plots: bool = True) -> None:
    """Write results.json, results.csv, runs.csv, results.md and (optionally) PNG plots."""
    out = Path(out)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    board = results["leaderboard"]
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(board[0]))
        w.writeheader()
        w.writerows(board)
    with open(out / "runs.csv", "w", newline="") as f:
        keys = [k for k in results["runs"][0] if k != "history"]
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(results["runs"])
    images = []
    if plots:
        from revact.plot.training import plot_act_shapes, plot_learning_curves, plot_tradeoffs

        images.append(plot_learning_curves(results, out / "learning_curves.png"))
        images.append(plot_tradeoffs(results, out / "accuracy_vs_cost.png"))
        shapes = plot_act_shapes(results, out, out / "act_shapes.png")
        if shapes:
            images.append(shapes)
    md = [f"# Activation comparison: {results['recipe']['model']} on {results['data']['name']}",
          "", f"Command: `{results['command']}`", "", format_leaderboard(results, True), "",
          _notes(results)]
    md += [f"![{p.stem}]({p.name})" for p in images]
    (out / "results.md").write_text("\n".join(md) + "\n")
