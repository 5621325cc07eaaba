r"""A RevCol column and the reversible backward that lets a run of columns drop its activations.

Column ``j`` updates the four level states, level 0 first:

.. math::
    c_i \leftarrow \mathrm{level}_i(c_{i-1}^{new}, c_{i+1}^{old}) + \alpha_i \odot c_i^{old}

(level 0 reads the stem output instead of :math:`c_{-1}`; level 3 and the first column have no
up input; the first column has no :math:`c^{old}`). Given the new states, the old ones follow
from level 3 down to 0: :math:`c_i^{old} = (c_i^{new} - \mathrm{level}_i(\cdot)) / \alpha_i`.

:func:`run_segment` runs consecutive columns as one autograd node that saves only the stem output,
the segment's inputs (which are the previous segment's saved outputs: the same storage) and its
last column's outputs. Its backward walks the columns in reverse, reconstructs each column's
inputs, replays each level (same RNG state, same autocast settings, BatchNorm statistics
untouched) and returns the gradients of the inputs *and of the parameters*, which are inputs of
the node; so ``torch.autograd.grad`` and frozen parameters behave as with plain autograd, and no
``.grad`` is written here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from revact.revcol.blocks import ActLayer, Level

__all__ = ["ALPHA_MIN", "clamp_alpha", "Column", "ReconstructionTracker", "run_segment"]

ALPHA_MIN = 1e-3

States = tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None]


def clamp_alpha(alpha: Tensor, min_abs: float = ALPHA_MIN) -> Tensor:
    """Return ``alpha`` with ``|alpha| >= min_abs``, keeping its sign (0 counts as positive).

    The value is exactly ``±min_abs`` where clamped; the gradient passes straight through, as
    with the official in-place clamp of ``alpha.data`` (whose gradient is taken at the clamped
    value and applied to the parameter), but without editing the parameter in place.
    """
    floor = torch.where(alpha < 0, -min_abs, min_abs).to(alpha.dtype)
    # alpha - alpha.detach() is exactly 0 in value and the identity in gradient.
    return torch.where(alpha.abs() < min_abs, floor + (alpha - alpha.detach()), alpha)


class Column(nn.Module):
    """One RevCol column ("subnet"): four levels and the per-channel shortcut scales α.

    Args:
        channels: the four channel counts.
        layers: blocks per level.
        kernel_size: depthwise kernel size.
        first_col: whether this is the first column (no up paths, no previous states).
        dp_rates: drop-path rate of each block of the column, in order.
        act_layer: activation of the ConvNeXt blocks. Default: :class:`~torch.nn.GELU`
    """

    def __init__(
        self,
        channels: Sequence[int],
        layers: Sequence[int],
        kernel_size: int,
        first_col: bool,
        dp_rates: Sequence[float],
        act_layer: ActLayer = nn.GELU,
    ) -> None:
        super().__init__()
        self.first_col = first_col
        for i, c in enumerate(channels):
            setattr(self, f"alpha{i}", nn.Parameter(torch.full((1, c, 1, 1), 0.5)))
        for i in range(4):
            level = Level(i, channels, layers, kernel_size, first_col, dp_rates, act_layer)
            setattr(self, f"level{i}", level)

    def level(self, i: int) -> Level:
        return getattr(self, f"level{i}")

    def raw_alpha(self, i: int) -> nn.Parameter:
        return getattr(self, f"alpha{i}")

    def alpha(self, i: int) -> Tensor:
        """α_i as used in the update: clamped to ``|α| >= 1e-3`` with its sign."""
        return clamp_alpha(self.raw_alpha(i))

    def update(self, i: int, down: Tensor, up: Tensor | None, old: Tensor | None) -> Tensor:
        """New state of level ``i``. The state stays in the parameters' dtype (float32 under
        autocast) so that reconstruction divides full-precision numbers."""
        a = self.alpha(i)
        out = self.level(i)(down, up).to(a.dtype)
        # The first column has no old state; a*0 keeps its α in the graph (zero gradient, as in
        # the official code), so every parameter gets a gradient (DDP needs that).
        return out + a * (0.0 if old is None else old)

    def forward(self, x: Tensor, states: States) -> States:
        """Run the column.

        Args:
            x: stem output :math:`(N, C_0, H/4, W/4)`.
            states: the previous column's ``(c0, c1, c2, c3)``; all ``None`` for the first column.
        """
        new: list[Tensor] = []
        down = x
        for i in range(4):
            up = None if self.first_col or i == 3 else states[i + 1]
            down = self.update(i, down, up, None if self.first_col else states[i])
            new.append(down)
        return tuple(new)


class ReconstructionTracker:
    """Relative errors ``‖rec − exact‖₂ / ‖exact‖₂`` of the states reconstructed in the last
    backward, measured wherever the exact value is known (a segment's saved inputs, or the first
    column's replay). Kept as tensors so the backward does not synchronise with the device."""

    def __init__(self) -> None:
        self.generation = -1
        self.errors: list[Tensor] = []

    def record(self, generation: int, rec: Tensor, exact: Tensor) -> None:
        if generation != self.generation:
            self.generation, self.errors = generation, []
        diff = torch.linalg.vector_norm((rec - exact).float())
        self.errors.append(diff / torch.linalg.vector_norm(exact.float()).clamp_min(1e-30))

    def max_error(self) -> float | None:
        return float(torch.stack(self.errors).max()) if self.errors else None


@dataclass
class _Segment:
    columns: list[Column]
    params: list[nn.Parameter]
    tracker: ReconstructionTracker
    generation: int
    index: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = {id(p): k for k, p in enumerate(self.params)}


def run_segment(
    columns: Sequence[Column],
    x: Tensor,
    states: States,
    tracker: ReconstructionTracker,
    generation: int,
) -> States:
    """Run consecutive ``columns`` as one reversible autograd node.

    Args:
        columns: the columns, in order; ``columns[0].first_col`` iff ``states`` are all ``None``.
        x: stem output.
        states: the previous column's four states, or all ``None``.
        tracker: collects reconstruction errors during backward.
        generation: id of this forward pass (errors of a newer pass replace older ones).

    Returns:
        The last column's four states.
    """
    params = [p for col in columns for p in col.parameters()]
    seg = _Segment(list(columns), params, tracker, generation)
    return _SegmentFunction.apply(seg, x, *states, *params)


def _autocast_state() -> tuple:
    devs = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    modes = tuple((d, torch.is_autocast_enabled(d), torch.get_autocast_dtype(d)) for d in devs)
    return modes, torch.is_autocast_cache_enabled()


@contextlib.contextmanager
def _autocast(state: tuple) -> Iterator[None]:
    """The forward's autocast settings, for replaying a level (gradients are then taken outside
    it, as for plain autograd)."""
    modes, cache = state
    with contextlib.ExitStack() as stack:
        for dev, enabled, dtype in modes:
            stack.enter_context(
                torch.autocast(dev, dtype=dtype, enabled=enabled, cache_enabled=cache)
            )
        yield


@contextlib.contextmanager
def _frozen_running_stats(module: nn.Module) -> Iterator[None]:
    """Replay BatchNorm in training mode (batch statistics) without updating running stats a
    second time: with ``track_running_stats`` off, training-mode BN neither reads nor writes the
    running buffers nor counts the batch."""
    bns = [
        m
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats
    ]
    for m in bns:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in bns:
            m.track_running_stats = True


def _get_rng(device: torch.device | None) -> tuple[Tensor, Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device is not None else None
    return torch.get_rng_state(), cuda


def _set_rng(state: tuple[Tensor, Tensor | None] | None, device: torch.device | None) -> None:
    if state is None:
        return
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def _grad(
    outputs: Sequence[Tensor], grad_outputs: Sequence[Tensor], inputs: Sequence[Tensor | None]
) -> list[Tensor | None]:
    """``torch.autograd.grad`` that skips outputs and inputs outside the graph (frozen parts)."""
    pairs = [(o, g) for o, g in zip(outputs, grad_outputs, strict=True) if o.requires_grad]
    wanted = [k for k, t in enumerate(inputs) if t is not None and t.requires_grad]
    result: list[Tensor | None] = [None] * len(inputs)
    if not pairs or not wanted:
        return result
    got = torch.autograd.grad(
        [o for o, _ in pairs],
        [inputs[k] for k in wanted],
        [g for _, g in pairs],
        allow_unused=True,
    )
    for k, g in zip(wanted, got, strict=True):
        result[k] = g
    return result


def _add(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    # Out of place: autograd may hand back a gradient that aliases another one.
    if a is None:
        return b
    return a if b is None else a + b


def _leaf(t: Tensor | None, requires_grad: bool = True) -> Tensor | None:
    return None if t is None else t.detach().requires_grad_(requires_grad)


class _SegmentFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, seg: _Segment, x: Tensor, *args: Tensor | None) -> States:
        inputs = args[:4]
        device = x.device if x.is_cuda else None
        rng: list[list] = []
        states: States = inputs
        for col in seg.columns:
            col_rng = []
            down = x
            new = []
            for i in range(4):
                # Only modules in training mode draw random numbers (drop path).
                col_rng.append(_get_rng(device) if col.training else None)
                up = None if col.first_col or i == 3 else states[i + 1]
                down = col.update(i, down, up, None if col.first_col else states[i])
                new.append(down)
            rng.append(col_rng)
            states = tuple(new)
        ctx.seg, ctx.rng, ctx.device = seg, rng, device
        ctx.autocast = _autocast_state()
        ctx.has_inputs = inputs[0] is not None
        # The inputs are the previous segment's saved outputs: saving them costs no memory, and
        # they give the exact state at the segment boundary.
        ctx.save_for_backward(x, *states, *(inputs if ctx.has_inputs else ()))
        return states

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads: Tensor) -> tuple:
        seg: _Segment = ctx.seg
        saved = ctx.saved_tensors
        x, new = saved[0], list(saved[1:5])
        exact_inputs = list(saved[5:9]) if ctx.has_inputs else None
        g = list(grads)
        pgrads: list[Tensor | None] = [None] * len(seg.params)
        gx = None
        need_x = ctx.needs_input_grad[1]
        devices = [ctx.device] if ctx.device is not None else []
        with torch.random.fork_rng(devices=devices):
            for k in reversed(range(len(seg.columns))):
                col, rng = seg.columns[k], ctx.rng[k]
                reconstructed = k < len(seg.columns) - 1  # `new` came from the next column
                if col.first_col:
                    gx = _add(gx, _first_column_backward(ctx, col, x, new, g, rng, need_x,
                                                         reconstructed, pgrads))
                    new = g = None
                else:
                    exact = exact_inputs if k == 0 else None
                    new, g, gx_k = _column_backward(ctx, col, x, new, g, exact, rng, need_x,
                                                    pgrads)
                    gx = _add(gx, gx_k)
        g_in = g if ctx.has_inputs else [None] * 4
        return (None, gx if need_x else None, *g_in, *pgrads)


def _param_slots(seg: _Segment, params: Sequence[nn.Parameter]) -> list[int]:
    return [seg.index[id(p)] for p in params]


def _column_backward(
    ctx, col: Column, x: Tensor, new: list, g: list, exact: list | None, rng: list,
    need_x: bool, pgrads: list,
) -> tuple[list, list, Tensor | None]:
    """Backward through one later column, level 3 down to 0. Returns its input states (exact
    ones when known, else reconstructed), their gradients, and the gradient of ``x``."""
    seg: _Segment = ctx.seg
    old: list[Tensor | None] = [None] * 4
    g_old: list[Tensor | None] = [None] * 4
    gx = None
    for i in (3, 2, 1, 0):
        level, alpha = col.level(i), col.raw_alpha(i)
        down = _leaf(x, need_x) if i == 0 else _leaf(new[i - 1])
        up = None if i == 3 else _leaf((exact or old)[i + 1])
        _set_rng(rng[i], ctx.device)
        with torch.enable_grad(), _autocast(ctx.autocast), _frozen_running_stats(level):
            a = col.alpha(i)
            out = level(down, up).to(a.dtype)
        with torch.no_grad():
            rec = (new[i] - out) / a
        if exact is not None:
            seg.tracker.record(seg.generation, rec, exact[i])
            rec = exact[i]
        old[i] = rec
        old_leaf = _leaf(rec)
        with torch.enable_grad():
            y = out + a * old_leaf
        params = [p for p in level.parameters() if p.requires_grad]
        if alpha.requires_grad:
            params.append(alpha)
        got = _grad([y], [g[i]], [down, up, old_leaf, *params])
        del y, out, a
        if i > 0:
            g[i - 1] = _add(g[i - 1], got[0])
        else:
            gx = got[0]
        if i < 3:
            g_old[i + 1] = _add(g_old[i + 1], got[1])
        g_old[i] = _add(g_old[i], got[2])
        for slot, gp in zip(_param_slots(seg, params), got[3:], strict=True):
            pgrads[slot] = _add(pgrads[slot], gp)
        new[i] = g[i] = None  # done with this level: free reconstructed state early
    g_old = [torch.zeros_like(o) if gi is None else gi for o, gi in zip(old, g_old, strict=True)]
    return old, g_old, gx


def _first_column_backward(
    ctx, col: Column, x: Tensor, new: list, g: list, rng: list, need_x: bool,
    reconstructed: bool, pgrads: list,
) -> Tensor | None:
    """Backward through the first column by replaying it from ``x``; where its outputs were
    reconstructed, the replay gives the exact values to measure the reconstruction error."""
    seg: _Segment = ctx.seg
    xl = _leaf(x, need_x)
    outs = []
    down = xl
    with torch.enable_grad(), _autocast(ctx.autocast):
        for i in range(4):
            _set_rng(rng[i], ctx.device)
            with _frozen_running_stats(col.level(i)):
                down = col.update(i, down, None, None)
            outs.append(down)
    if reconstructed:
        for rec, exact in zip(new, outs, strict=True):
            seg.tracker.record(seg.generation, rec, exact.detach())
    params = [p for p in col.parameters() if p.requires_grad]
    got = _grad(outs, g, [xl, *params])
    for slot, gp in zip(_param_slots(seg, params), got[1:], strict=True):
        pgrads[slot] = _add(pgrads[slot], gp)
    return got[0]
