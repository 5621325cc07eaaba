"""Plots of a comparison's results: learning curves, accuracy against cost, learned shapes.

Drawn on :class:`matplotlib.figure.Figure` directly, without pyplot: no global backend is
chosen or changed, so calling these from a notebook or a thread leaves the caller's
matplotlib as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_learning_curves", "plot_tradeoffs", "plot_act_shapes", "learned_shapes"]


def _figure(**kw):
    from matplotlib.figure import Figure

    return Figure(**kw)


def _band(values: list[list[float]]) -> tuple[list[float], list[float], list[float]]:
    """Per epoch: mean, and mean ± one standard deviation over seeds (0 with one seed)."""
    mean, low, high = [], [], []
    for ys in values:
        m = sum(ys) / len(ys)
        sd = (sum((y - m) ** 2 for y in ys) / (len(ys) - 1)) ** 0.5 if len(ys) > 1 else 0.0
        mean.append(m)
        low.append(m - sd)
        high.append(m + sd)
    return mean, low, high


def plot_learning_curves(results: dict[str, Any], path: Path) -> Path:
    """Per epoch, for every activation, mean over seeds with a ± 1 std band: validation
    accuracy, its difference to the baseline paired by seed (does a gap close or open?),
    and the training loss."""
    fig = _figure(figsize=(16, 4.4))
    axes = fig.subplots(1, 3)
    baseline = results.get("baseline", results["acts"][0])
    base = {r["seed"]: r["history"] for r in results["runs"] if r["act"] == baseline}
    styles = ("-", "--", ":", "-.")
    for n_act, act in enumerate(results["acts"]):
        runs = [r for r in results["runs"] if r["act"] == act and r["history"]]
        if not runs:
            continue
        n = min(len(r["history"]) for r in runs)
        ep = list(range(1, n + 1))
        paired = [r for r in runs if len(base.get(r["seed"], ())) >= n]
        series = [
            [[r["history"][i]["val_acc"] for r in runs] for i in range(n)],
            [[r["history"][i]["val_acc"] - base[r["seed"]][i]["val_acc"] for r in paired]
             for i in range(n)] if paired else None,
            [[r["history"][i]["train_loss"] for r in runs] for i in range(n)],
        ]
        color = None
        for ax, values in zip(axes, series, strict=True):
            if values is None:
                continue
            mean, low, high = _band(values)
            (line,) = ax.plot(ep, mean, marker="o", ms=3, color=color, label=act,
                              linestyle=styles[n_act // 10 % len(styles)])
            color = line.get_color()
            ax.fill_between(ep, low, high, color=color, alpha=0.12)
    axes[0].set(title="validation accuracy", xlabel="epoch", ylabel="%")
    axes[1].set(title=f"Δ validation accuracy vs {baseline} (paired by seed)",
                xlabel="epoch", ylabel="points")
    axes[1].axhline(0.0, color="black", lw=0.8)
    axes[2].set(title="training loss (label-smoothed)", xlabel="epoch", ylabel="loss")
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle(f"mean over {len(results['seeds'])} seed(s); bands: ± 1 std over seeds",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_tradeoffs(results: dict[str, Any], path: Path) -> Path:
    """Test accuracy (mean ± std) against MACs and against training throughput."""
    fig = _figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
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
    return Path(path)


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

    state = load_checkpoint(Path(run_dir) / "checkpoint.pt")
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
    """Learned activation shapes at a few layers, one row per adaptive activation.

    ``out`` is the comparison folder the runs' ``dir`` entries are relative to; returns
    None (and writes nothing) when no activation of the comparison has parameters, or no
    run's checkpoint is there (results committed or copied without them).
    """
    rows = []
    seed = results["seeds"][0]
    for act in results["acts"]:
        run = next((r for r in results["runs"] if r["act"] == act and r["seed"] == seed), None)
        if run is None or not (Path(out) / run["dir"] / "checkpoint.pt").is_file():
            continue
        shapes = learned_shapes(Path(out) / run["dir"])
        if shapes:
            rows.append((act, shapes))
    if not rows:
        return None
    ncol = max(len(s) for _, s in rows)
    fig = _figure(figsize=(3.6 * ncol, 2.8 * len(rows)))
    axes = fig.subplots(len(rows), ncol, squeeze=False)
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
    return Path(path)
