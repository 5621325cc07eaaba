"""Dynamic ReLU ("Dynamic ReLU", ECCV 2020).

DY-ReLU is a maximum of K affine functions whose coefficients are computed from the
input by a small hyper-function:

.. math::
    y_c = \\max_{1 \\le k \\le K} \\big(a_c^k(x)\\,x_c + b_c^k(x)\\big)

Hyper-function: global average pool → Linear(C, C/R) → ReLU → Linear → residuals in
[-1, 1] (``2σ(·) - 1``, or ``2·hardsigmoid(·) - 1`` as in Microsoft's code), then
``a^k = α^k + λ_a Δa^k`` and ``b^k = β^k + λ_b Δb^k`` with α = (1, 0, ...), β = 0,
λ_a = 1, λ_b = 0.5.

- :class:`DyReLUA`: one set of coefficients shared by all channels and positions.
- :class:`DyReLUB`: one set per channel, shared over positions.
- :class:`DyReLUC`: per channel and per position, ``a_{c,h,w} = π_{h,w}·a_c`` with one
  spatial map ``π = min(γ·HW·softmax(z/τ), 1)`` shared by all channels; the softmax
  runs over all positions of each sample.

The piecewise-linear maximum runs through
:func:`revact.activations.functional.max_affine`, which saves only the input and the
coefficients for backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from revact.activations._layout import (
    check_channels,
    check_input,
    check_layout,
    full_precision,
    spatial_dims,
)
from revact.activations.functional import max_affine, spatial_mean

__all__ = ["DyReLUA", "DyReLUB", "DyReLUC"]

_GATES = ("sigmoid", "hard_sigmoid")
# The cache key of the float64 CPU values every other (dtype, device) is converted from.
_EXACT = (torch.float64, torch.device("cpu"))


class _DyReLU(nn.Module):
    # Number of coefficient sets the hyper-function emits: 1 (shared) or C.
    _per_channel: bool

    def __init__(
        self,
        channels: int,
        reduction: int = 4,
        k: int = 2,
        layout: str = "channels_first",
        gate: str = "sigmoid",
        lambda_a: float = 1.0,
        lambda_b: float = 0.5,
        relu_init: bool = False,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.channels = check_channels(channels, name)
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"{name} needs k (number of linear pieces) >= 1, got {k!r}")
        if not isinstance(reduction, int) or reduction < 1:
            raise ValueError(f"{name} needs reduction as a positive int, got {reduction!r}")
        if gate not in _GATES:
            raise ValueError(f"gate must be one of {_GATES}, got {gate!r}")
        self.layout = check_layout(layout)
        self.k, self.reduction, self.gate = k, reduction, gate
        self.coeff_channels = self.channels if self._per_channel else 1
        hidden = max(1, self.channels // reduction)
        self.fc1 = nn.Linear(self.channels, hidden)
        self.fc2 = nn.Linear(hidden, 2 * k * self.coeff_channels)
        self._set_ranges(lambda_a, lambda_b)
        if relu_init:
            nn.init.zeros_(self.fc2.weight)
            nn.init.zeros_(self.fc2.bias)

    def _set_ranges(self, lambda_a: float, lambda_b: float) -> None:
        # α = (1, 0, ..., 0): at zero residuals the first piece is the identity, the
        # rest are zero, so the module is ReLU. a = α + λ_a·(2g - 1) and b = λ_b·(2g - 1)
        # of the gate g are one affine map, offset + slope·g, over (a, b) stacked: one
        # operation (and one autograd node) per call instead of eight.
        # Offset and slope are laid out as the hyper-function's output, (C', 2, K) flat: the
        # map is then a plain row-broadcast (N, C'·2K) × (C'·2K), several times cheaper
        # forward and backward than broadcasting (2, K) into (N, C', 2, K).
        # λ are kept as Python floats. Offset and slope are derived from them once in
        # float64 on the CPU (exact: they are the floats themselves), then per dtype and
        # device on use (_affine_map). They are not buffers: .to(), .double(), state_dict
        # and pickles do not carry them.
        self._ranges = (float(lambda_a), float(lambda_b))
        la, lb = self._ranges
        offset = [[1.0 - la] + [-la] * (self.k - 1), [-lb] * self.k]
        slope = [[2 * la] * self.k, [2 * lb] * self.k]
        exact = tuple(torch.tensor([rows] * self.coeff_channels, dtype=torch.float64,
                                   device="cpu").flatten() for rows in (offset, slope))
        self._affine_cache = {_EXACT: exact}
        # The parameters' own case now, so that a first call under torch.jit.trace or
        # torch.compile finds its tensors ready.
        self._affine_map(self.fc1.weight.dtype, self.fc1.weight.device)

    def _affine_map(self, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
        """(offset, slope), each (C'·2·K,), in ``dtype`` on ``device``, converted once from
        the float64 values and cached per (dtype, device): a float64 module uses them as
        they are, a float32 one their float32 rounding, as a tensor built from the floats
        would be."""
        key = (dtype, device)
        found = self._affine_cache.get(key)
        if found is None:
            exact = self._affine_cache[_EXACT]
            found = self._affine_cache[key] = tuple(t.to(device=device, dtype=dtype)
                                                    for t in exact)
        return found

    def __setstate__(self, state: dict) -> None:
        # A module pickled (e.g. in an Ultralytics checkpoint) by a revact that kept offset
        # and slope as non-persistent buffers: drop those, derive the cache from λ.
        super().__setstate__(state)
        for name in ("_offset", "_slope"):
            self._buffers.pop(name, None)
        if "_affine_cache" not in self.__dict__:
            self._set_ranges(*self._ranges)

    @property
    def lambda_a(self) -> float:
        """λ_a, the range of the slopes' residuals (settable)."""
        return self._ranges[0]

    @lambda_a.setter
    def lambda_a(self, value: float) -> None:
        self._set_ranges(value, self._ranges[1])

    @property
    def lambda_b(self) -> float:
        """λ_b, the range of the intercepts' residuals (settable)."""
        return self._ranges[1]

    @lambda_b.setter
    def lambda_b(self, value: float) -> None:
        self._set_ranges(self._ranges[0], value)

    def _check(self, x: Tensor) -> None:
        check_input(x, self.channels, self.layout, type(self).__name__)

    def coefficients(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Slopes ``a`` and intercepts ``b`` for ``x``, each of shape (N, C', K).

        ``C' = 1`` for DY-ReLU-A and ``C`` otherwise; already normalised,
        ``a = α + λ_a·Δa`` and ``b = λ_b·Δb``.
        """
        self._check(x)
        with full_precision(x):
            pooled = spatial_mean(x, spatial_dims(x, self.layout), self.fc1.weight.dtype)
            theta = self.fc2(F.relu(self.fc1(pooled)))
        gate = torch.sigmoid(theta) if self.gate == "sigmoid" else F.hardsigmoid(theta)
        offset, slope = self._affine_map(gate.dtype, gate.device)
        ab = torch.addcmul(offset, gate, slope).view(x.shape[0], self.coeff_channels, 2, self.k)
        return ab[:, :, 0], ab[:, :, 1]

    @staticmethod
    def _broadcast(coeff: Tensor, x: Tensor) -> Tensor:
        """(N, C', K) → a shape that broadcasts against channels-first ``x`` with K last."""
        n, c, k = coeff.shape
        return coeff.view(n, c, *([1] * (x.dim() - 2)), k)

    def _scale(self, x: Tensor) -> Tensor | None:
        """The per-position scale for channels-first maths, or ``None``."""
        return None

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.coefficients(x)
        scale = self._scale(x)
        # Tokens (N, L, C): the same maths on the channels-first view (N, C, L), which
        # the native kernels run as channels-last.
        xc = x.transpose(1, 2) if self.layout == "tokens" else x
        y = max_affine(xc, self._broadcast(a, xc), self._broadcast(b, xc), scale)
        return y.transpose(1, 2) if self.layout == "tokens" else y

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, reduction={self.reduction}, k={self.k}, "
                f"layout={self.layout!r}, gate={self.gate!r}")


class DyReLUA(_DyReLU):
    r"""DY-ReLU-A: coefficients shared by all channels and positions.

    .. math::
        y_c = \max_k\big(a^k(x)\,x_c + b^k(x)\big)

    Args:
        channels: number of channels C.
        reduction: bottleneck ratio R of the hyper-function. Default: 4
        k: number of linear pieces K. Default: 2
        layout: ``'channels_first'`` for :math:`(N, C, L)` / :math:`(N, C, H, W)`, or
            ``'tokens'`` for :math:`(N, L, C)`. Default: ``'channels_first'``
        gate: ``'sigmoid'`` (paper) or ``'hard_sigmoid'`` (Microsoft's code) for the
            residuals. Default: ``'sigmoid'``
        lambda_a, lambda_b: residual ranges λ_a, λ_b. Default: 1.0, 0.5
        relu_init: zero the last layer of the hyper-function so the module is exactly
            ReLU at construction (for swapping into pre-trained networks). Default: False

    Shape:
        - Input: :math:`(N, C, L)`, :math:`(N, C, H, W)` or, with ``layout='tokens'``,
          :math:`(N, L, C)`.
        - Output: same shape as the input.

    Example::

        >>> m = DyReLUA(32)
        >>> y = m(torch.randn(4, 32, 14, 14))
        >>> a, b = m.coefficients(torch.randn(4, 32, 14, 14))   # each (4, 1, 2)
    """

    _per_channel = False


class DyReLUB(_DyReLU):
    r"""DY-ReLU-B: one set of coefficients per channel, shared over positions.

    .. math::
        y_c = \max_k\big(a_c^k(x)\,x_c + b_c^k(x)\big)

    The paper's default DY-ReLU (ImageNet MobileNetV2 ×1.0: 72.0 → 76.2 top-1).

    Args: as :class:`DyReLUA`.

    Shape:
        - Input: :math:`(N, C, L)`, :math:`(N, C, H, W)` or, with ``layout='tokens'``,
          :math:`(N, L, C)`.
        - Output: same shape as the input.

    Example::

        >>> m = DyReLUB(32)
        >>> y = m(torch.randn(4, 32, 14, 14))
        >>> a, b = m.coefficients(torch.randn(4, 32, 14, 14))   # each (4, 32, 2)
    """

    _per_channel = True


class DyReLUC(_DyReLU):
    r"""DY-ReLU-C: coefficients per channel and per position.

    .. math::
        y_{c,p} = \max_k\big(\pi_p\,a_c^k(x)\,x_{c,p} + \pi_p\,b_c^k(x)\big), \qquad
        \pi = \min\big(\gamma\cdot P\cdot\mathrm{softmax}_p(z / \tau),\ 1\big)

    where ``p`` runs over all ``P`` positions (``H·W``, or ``L``) of a sample and
    ``z`` is a 1×1 projection of ``x`` to one channel. One map π is shared by all
    channels.

    Args:
        tau: softmax temperature τ. Default: 10
        gamma: γ. Default: 1/3 (the paper's), or 1.0 with ``relu_init=True`` so that the
            uniform attention at construction gives π = 1 and the module is exactly ReLU.
        Others as :class:`DyReLUA`; ``relu_init`` also zeroes the spatial projection.

    Shape:
        - Input: :math:`(N, C, L)`, :math:`(N, C, H, W)` or, with ``layout='tokens'``,
          :math:`(N, L, C)`.
        - Output: same shape as the input.

    Example::

        >>> m = DyReLUC(32)
        >>> x = torch.randn(4, 32, 28, 28)
        >>> y = m(x)
        >>> m.spatial_attention(x).shape
        torch.Size([4, 1, 28, 28])
    """

    _per_channel = True

    def __init__(
        self,
        channels: int,
        reduction: int = 4,
        k: int = 2,
        layout: str = "channels_first",
        gate: str = "sigmoid",
        lambda_a: float = 1.0,
        lambda_b: float = 0.5,
        relu_init: bool = False,
        tau: float = 10.0,
        gamma: float | None = None,
    ) -> None:
        super().__init__(channels, reduction, k, layout, gate, lambda_a, lambda_b, relu_init)
        if tau <= 0:
            raise ValueError(f"tau must be positive, got {tau!r}")
        self.tau = float(tau)
        self.gamma = float(gamma if gamma is not None else (1.0 if relu_init else 1 / 3))
        self.spatial = nn.Linear(self.channels, 1)
        if relu_init:
            nn.init.zeros_(self.spatial.weight)
            nn.init.zeros_(self.spatial.bias)

    def _spatial_logits(self, x: Tensor) -> Tensor:
        """z of shape (N, P): the 1×1 projection to one channel, positions flattened."""
        if self.layout == "tokens":
            return self.spatial(x).flatten(1)
        # Σ_c w_c·x_c as multiply and sum: it saves only x (which the activation keeps
        # anyway) and on CPU runs forward + backward about 5× faster than the equivalent
        # one-output-channel 1×1 convolution (benchmarks/cpu_primitives.py).
        weight = self.spatial.weight.view(1, self.channels, *([1] * (x.dim() - 2)))
        return (x * weight).sum(1).flatten(1) + self.spatial.bias

    def spatial_attention(self, x: Tensor) -> Tensor:
        """π of shape (N, 1, *spatial) with values in [0, 1], shared by all channels.

        For ``layout='tokens'`` the spatial axis is L, so the shape is (N, 1, L).
        """
        self._check(x)
        z = self._spatial_logits(x)
        positions = z.shape[1]
        pi = (self.gamma * positions * torch.softmax(z / self.tau, dim=1)).clamp(max=1.0)
        spatial = x.shape[1:-1] if self.layout == "tokens" else x.shape[2:]
        return pi.view(x.shape[0], 1, *spatial)

    def _scale(self, x: Tensor) -> Tensor:
        return self.spatial_attention(x)  # (N, 1, *positions): channels-first already

    def extra_repr(self) -> str:
        return super().extra_repr() + f", tau={self.tau}, gamma={self.gamma:.4g}"
