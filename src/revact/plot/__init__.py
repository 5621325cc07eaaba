"""Plots people would rather look at than read."""

from revact.plot.activations import activation_curves, plot_activations

__all__ = ["activation_curves", "plot_activations"]
