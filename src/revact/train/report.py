"""Leaderboard tables (terminal, Markdown, CSV), results.json and plots for a comparison."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["format_leaderboard", "write_reports", "plot_learning_curves", "plot_act_shapes"]

_COLUMNS = (
    ("#", None), ("activation", "act"), ("test acc % (mean ± std)", None),
    ("Δ vs baseline [95% CI]", None), ("verdict", "verdict"), ("params", None),
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
        r["verdict"], f"{r['params']:,}", f"{r['macs'] / 1e6:.2f} ({r['act_macs'] / 1e6:.2f})",
        f"{r['train_img_per_s']:.0f}", f"{r['peak_mem_mib']:.0f}",
        f"{r['saved_for_backward_mib']:.1f}",
    ]


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


def _notes(results: dict[str, Any]) -> str:
    rec, data, env = results["recipe"], results["data"], results["environment"]
    n = len(results["seeds"])
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
{'on' if rec['amp'] else 'off'}.

How to read it:
- **Δ vs baseline** is the mean over seeds of (activation − baseline) test accuracy, paired by
  seed, with a 95% Student-t interval ({n} seeds → {max(n - 1, 0)} degrees of freedom).
  **better / worse** when the interval excludes 0, otherwise **within noise**.
- **MMACs** per 28×28 image count conv/linear multiply-adds *and* activation maths
  (elementwise cost per output element plus the hyper-function layers of DY-ReLU and
  Meta-ACON); the activation share is in brackets. Rule: `revact.integrations.flops`.
- **train img/s**: training images per second over all epochs (forward, backward, step),
  {env['threads']} CPU thread(s) per run on {env['device']}, {jobs} run(s) at once; runs
  sharing the machine (and other jobs on it) slow each other, so compare ratios.
- **peak RSS**: the training process's resident-set high-water (includes ~0.5 GB for importing
  torch); **saved for bwd**: tensors autograd keeps for one training batch of
  {rec['batch_size']}, measured exactly with saved-tensor hooks.

{wall_line}"""


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


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(results: dict[str, Any], path: Path) -> Path:
    """Validation accuracy and training loss per epoch, mean over seeds (band: min–max)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for act in results["acts"]:
        hs = [r["history"] for r in results["runs"] if r["act"] == act]
        if not hs:
            continue
        n = min(len(h) for h in hs)
        ep = list(range(1, n + 1))
        for ax, key in zip(axes, ("val_acc", "train_loss"), strict=True):
            ys = [[h[i][key] for h in hs] for i in range(n)]
            mean = [sum(y) / len(y) for y in ys]
            (line,) = ax.plot(ep, mean, marker="o", ms=3, label=act)
            ax.fill_between(ep, [min(y) for y in ys], [max(y) for y in ys],
                            color=line.get_color(), alpha=0.15)
    axes[0].set(title="validation accuracy", xlabel="epoch", ylabel="%")
    axes[1].set(title="training loss (label-smoothed)", xlabel="epoch", ylabel="loss")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_tradeoffs(results: dict[str, Any], path: Path) -> Path:
    """Test accuracy (mean ± std) against MACs and against training throughput."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for r in results["leaderboard"]:
        for ax, x in zip(axes, (r["macs"] / 1e6, r["train_img_per_s"]), strict=True):
            ax.errorbar(x, r["test_acc_mean"], yerr=r["test_acc_std"], fmt="o", capsize=3)
            ax.annotate(r["act"], (x, r["test_acc_mean"]), fontsize=8,
                        xytext=(4, 4), textcoords="offset points")
    axes[0].set(xlabel="MMACs per image (activation maths included)", ylabel="test accuracy %")
    axes[1].set(xlabel="training images / s", ylabel="test accuracy %")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle("accuracy vs cost (error bars: std over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def learned_shapes(run_dir: Path, layers: int = 3, channels: int = 4, points: int = 161):
    """Evaluate a trained run's adaptive activation modules on a 1-D grid.

    The grid x ∈ [−4, 4] is laid along one spatial axis of a (1, C, points, 1) input, the
    same grid in every channel. Static-parameter activations (ACON-C) show their learned
    curve exactly; input-conditioned ones (Meta-ACON, DY-ReLU) show their response to this
    input (whose per-channel mean is 0), one realisation of a family of curves.

    Returns:
        ``{layer name: (x, [y per channel])}`` for the first, middle and last adaptive
        layers, or ``{}`` when the activation has no parameters.
    """
    import torch

    from revact.activations.channels_last import ChannelsLast
    from revact.models import create_model
    from revact.train.checkpoint import load_checkpoint, model_args

    state = load_checkpoint(run_dir / "checkpoint.pt")
    cfg = state["config"]
    model = create_model(cfg["model"], act_layer=cfg["act"], **model_args(state))
    model.load_state_dict(state["model"])
    model.eval()
    acts = [(n, m) for n, m in model.named_modules()
            # A ChannelsLast wrapper's inner activation is listed on its own.
            if type(m).__module__.startswith("revact.activations")
            and not isinstance(m, ChannelsLast)
            and any(True for _ in m.parameters(recurse=True))]
    if not acts:
        return {}
    picks = sorted({0, len(acts) // 2, len(acts) - 1})[:layers]
    x = torch.linspace(-4, 4, points)
    shapes = {}
    with torch.no_grad():
        for i in picks:
            name, m = acts[i]
            c = getattr(m, "channels", None) or next(m.parameters()).shape[1]
            inp = x.view(1, 1, points, 1).expand(1, c, points, 1).contiguous()
            y = m(inp)[0, :channels, :, 0]
            shapes[f"{name} (C={c})"] = (x.tolist(), y.tolist())
    return shapes


def plot_act_shapes(results: dict[str, Any], out: Path, path: Path) -> Path | None:
    """Learned activation shapes at a few layers, one row per adaptive activation."""
    rows = []
    seed = results["seeds"][0]
    for act in results["acts"]:
        run = next((r for r in results["runs"] if r["act"] == act and r["seed"] == seed), None)
        if run is None:
            continue
        shapes = learned_shapes(out / run["dir"])
        if shapes:
            rows.append((act, shapes))
    if not rows:
        return None
    plt = _plt()
    ncol = max(len(s) for _, s in rows)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(3.6 * ncol, 2.8 * len(rows)),
                             squeeze=False)
    for i, (act, shapes) in enumerate(rows):
        for j, (layer, (x, ys)) in enumerate(shapes.items()):
            ax = axes[i][j]
            ax.plot(x, [max(v, 0) for v in x], "k:", lw=1, label="ReLU")
            for k, y in enumerate(ys):
                ax.plot(x, y, lw=1.3, label=f"ch {k}")
            ax.set_title(f"{act}: {layer}", fontsize=8)
            ax.grid(alpha=0.3)
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
        for j in range(len(shapes), ncol):
            axes[i][j].axis("off")
    fig.suptitle(f"learned activation shapes (seed {seed}; grid input, 4 channels per layer)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
