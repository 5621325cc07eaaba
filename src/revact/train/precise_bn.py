"""Precise BatchNorm: re-estimate every BatchNorm's running statistics on training data.

During training a BatchNorm's running statistics are an exponential average with momentum
0.1: after ``n`` steps ``0.9**n`` of their starting value (mean 0, variance 1) remains, and
they trail the weights, which change every step. After a short schedule that error can be as
large as the true statistics (a feature map whose true variance is 4e-4 still carries
0.9**78 ≈ 2.7e-4 of the initial 1 after 78 steps), and eval-mode accuracy then measures the
statistics, not the network. Re-estimating them on training batches with the final weights
(as ``torch.optim.swa_utils.update_bn`` and "precise BN" do) removes that error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["precise_bn"]


class _Moments:
    """Per-channel count, sum and sum of squares of a BatchNorm's inputs, in float64."""

    def __init__(self, bn: _BatchNorm) -> None:
        shape = bn.running_mean.shape
        device = bn.running_mean.device
        self.sums = torch.zeros(2, *shape, dtype=torch.float64, device=device)
        self.count = torch.zeros((), dtype=torch.float64, device=device)

    def __call__(self, bn: _BatchNorm, args: tuple) -> None:
        x = args[0].detach().to(torch.float64)
        dims = [d for d in range(x.dim()) if d != 1]
        self.sums[0] += x.sum(dims)
        self.sums[1] += x.square().sum(dims)
        self.count += x.numel() / x.shape[1]


@torch.no_grad()
def precise_bn(
    model: nn.Module,
    batches: Iterable[Tensor],
    forward: Callable[[Tensor], object] | None = None,
    all_reduce: Callable[[Tensor], None] | None = None,
) -> int:
    """Set every BatchNorm's running mean and variance to their values over ``batches``.

    The model runs in training mode (each BatchNorm normalises with its batch's statistics,
    as during training, so one pass gives every layer's inputs); each BatchNorm's inputs are
    summed in float64, and its running statistics become their mean and unbiased variance
    over all the images seen: the population statistics, not an average of per-batch ones.
    Afterwards every module is back in the mode it was in, ``num_batches_tracked`` is
    unchanged and the global RNG state too (drop path draws from it in training mode).

    Args:
        model: the network; BatchNorms without running statistics are left alone.
        batches: input batches (already on the model's device and normalised).
        forward: how to run a batch (default ``model``), e.g. under autocast.
        all_reduce: sums a float64 tensor in place across processes (DDP); every process
            then sets the same statistics. Default: a single process.

    Returns:
        The number of BatchNorm layers updated (0 when the model has none; nothing runs then).

    Example::

        >>> precise_bn(model, (x for x, _ in train_loader))
    """
    norms = [m for m in model.modules()
             if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not norms:
        return 0
    modes = {m: m.training for m in model.modules()}
    moments = {bn: _Moments(bn) for bn in norms}
    handles = [bn.register_forward_pre_hook(moments[bn]) for bn in norms]
    tracked = {bn: bn.num_batches_tracked.clone() for bn in norms}
    run = forward or model
    devices = [torch.cuda.current_device()] if torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=devices):
            model.train()
            for x in batches:
                run(x)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training
    for bn in norms:
        mom = moments[bn]
        packed = torch.cat([mom.sums.flatten(), mom.count.view(1)])
        if all_reduce is not None:
            all_reduce(packed)
        n = packed[-1]
        if n < 2:
            raise ValueError(f"precise BN saw {int(n)} value(s) per channel of "
                             f"{type(bn).__name__}; it needs at least 2")
        total, squares = packed[:-1].view(2, -1)
        mean = total / n
        var = (squares - n * mean.square()).clamp_min(0) / (n - 1)
        bn.running_mean.copy_(mean.view_as(bn.running_mean))
        bn.running_var.copy_(var.view_as(bn.running_var))
        bn.num_batches_tracked.copy_(tracked[bn])
    return len(norms)
