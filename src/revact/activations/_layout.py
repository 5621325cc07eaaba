"""Input checks and shapes shared by the channel-aware activations."""

from __future__ import annotations

import torch
from torch import Tensor

LAYOUTS = ("channels_first", "tokens")


def check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    return layout


def check_floating(x: Tensor, owner: str) -> None:
    """Raise a ``TypeError`` unless ``x`` is a floating-point tensor.

    The kernels compute in the promoted dtype and cast the result back to ``x.dtype``;
    for an integer input that would silently truncate (torch's own SiLU and GELU refuse
    integer tensors as well).
    """
    if not x.is_floating_point():
        raise TypeError(
            f"{owner} expects a floating-point tensor (float32, float64, float16 or "
            f"bfloat16), got dtype {x.dtype}; convert it first, e.g. x.float()"
        )


def check_input(x: Tensor, channels: int, layout: str, owner: str) -> None:
    """Raise a ``TypeError`` for non-floating input and a ``ValueError`` naming what was
    expected when the shape does not fit.

    ``channels_first`` accepts ``(N, C, L)`` and ``(N, C, H, W)``; ``tokens`` accepts
    ``(N, L, C)``. While ``torch.jit.trace`` records, the channel count is not compared:
    the trace could not keep the check (it would only warn that it is constant), and the
    traced weights fix the channel count anyway.
    """
    check_floating(x, owner)
    if layout == "channels_first":
        if x.dim() not in (3, 4):
            raise ValueError(
                f"{owner} expects input of shape (N, C, L) or (N, C, H, W), "
                f"got a {x.dim()}-D tensor of shape {tuple(x.shape)}"
            )
        got = x.shape[1]
    else:
        if x.dim() != 3:
            raise ValueError(
                f"{owner} with layout='tokens' expects input of shape (N, L, C), "
                f"got a {x.dim()}-D tensor of shape {tuple(x.shape)}"
            )
        got = x.shape[-1]
    if not torch.jit.is_tracing() and got != channels:
        raise ValueError(
            f"{owner} was built for {channels} channels but the input has {got} "
            f"(shape {tuple(x.shape)}, layout={layout!r})"
        )


def spatial_dims(x: Tensor, layout: str) -> tuple[int, ...]:
    """The axes a global average pool reduces over."""
    return tuple(range(2, x.dim())) if layout == "channels_first" else (1,)


def per_channel(p: Tensor, x: Tensor) -> Tensor:
    """View a ``(1, C, 1, 1)`` parameter so it broadcasts against channels-first ``x``."""
    if p.dim() == x.dim():  # 4-d x: the parameter as it is (a view is an autograd node)
        return p
    return p.view(1, -1, *([1] * (x.dim() - 2)))


def check_channels(channels: object, owner: str) -> int:
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"{owner} needs channels as a positive int, got {channels!r}")
    return channels


def full_precision(x: Tensor) -> torch.autocast:
    """Autocast off, for the tiny hyper-networks that generate coefficients.

    They cost O(N·C) and feed every output element, so they run in float32 even when
    the surrounding network runs in bfloat16/float16 (where their BatchNorm over a few
    samples otherwise amplifies rounding error into the gradients).
    """
    return torch.autocast(x.device.type, enabled=False)
