"""Plots people would rather look at than read."""

from revact.plot.activations import activation_curves, plot_activations
from revact.plot.training import (
    learned_shapes,
    plot_act_shapes,
    plot_learning_curves,
    plot_tradeoffs,
)

__all__ = ["activation_curves", "plot_activations", "learned_shapes", "plot_act_shapes",
           "plot_learning_curves", "plot_tradeoffs"]
