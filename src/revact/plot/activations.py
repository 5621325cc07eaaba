"""Curves of activations and their derivatives, as seed 003 draws them."""

from __future__ import annotations

from pathlib import Path

import torch

from revact.activations.create_act import act_spec

DEFAULT_ACTS = ("relu", "leaky_relu", "elu", "silu", "mish", "gelu", "acon_c", "meta_acon",
                "dyrelu_b", "dyrelu_c")


def activation_curves(
    name: str, low: float = -5.0, high: float = 5.0, points: int = 801, channels: int = 8,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x, f(x), f'(x))`` on a grid for one activation.

    Channel-aware activations are built with ``channels`` channels at their default
    initialisation (seeded), and fed the sample input ``(1, C, points)`` in which every
    channel holds the grid; the curve is channel 0's response. For DY-ReLU the
    coefficients therefore depend on this sample input, as they would in a network.

    ``f'`` is the slope of the drawn curve (central differences): autograd would add
    the dependence of input-conditioned coefficients on the whole sample, which is not
    what a derivative plot of an activation shows.
    """
    if not low < high:
        raise ValueError(f"range must have low < high, got ({low}, {high})")
    spec = act_spec(name)
    torch.manual_seed(seed)
    module = spec.build(channels if spec.channel_arg else None).eval()
    grid = torch.linspace(low, high, points, dtype=torch.float64)
    with torch.no_grad():
        y = module.double()(grid.expand(1, channels, points))[0, 0]
    (slope,) = torch.gradient(y, spacing=(grid,))
    return grid, y, slope


def plot_activations(
    names: list[str] | tuple[str, ...] = DEFAULT_ACTS,
    out: str | Path = "activations.png",
    low: float = -5.0,
    high: float = 5.0,
    channels: int = 8,
    seed: int = 0,
) -> Path:
    """Draw each activation (left) and its derivative (right) into a PNG at ``out``."""
    # Figure directly (no pyplot): the caller's matplotlib backend is left as it was.
    from matplotlib.figure import Figure

    curves = {n: activation_curves(n, low, high, channels=channels, seed=seed) for n in names}
    fig = Figure(figsize=(13, 5.5))
    ax_f, ax_d = fig.subplots(1, 2)
    for name, (x, y, dy) in curves.items():
        style = "--" if act_spec(name).family != "classic" else "-"
        ax_f.plot(x, y, style, label=name, linewidth=1.6)
        ax_d.plot(x, dy, style, label=name, linewidth=1.6)
    for ax, title in ((ax_f, "f(x)"), (ax_d, "f'(x)")):
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.axvline(0, color="grey", linewidth=0.6)
        ax.set_title(title)
        ax.set_xlabel("x")
        ax.grid(alpha=0.3)
    ax_d.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9)
    fig.suptitle(f"Activations (dashed: adaptive, default initialisation, seed {seed}, "
                 f"channel 0 of {channels})")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out
