"""RevCol: Reversible Column Networks (Cai et al., ICLR 2023)."""

from __future__ import annotations

import operator
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from revact.revcol.blocks import ActLayer, Classifier, Decoder, LayerNorm2d, SimDecoder
from revact.revcol.reversible import Column, ReconstructionTracker, States, run_segment

__all__ = ["RevCol", "MEMORY_MODES", "MIN_INPUT_SIZE"]

MEMORY_MODES = ("none", "column", "full")

#: Smallest input side: the stem (stride 4) and three stride-2 downsamplings leave 1 pixel.
MIN_INPUT_SIZE = 32


def _as_int(value: Any) -> int | None:
    """``value`` as an int, or None when it is not integral (a bool, 64.5, "64")."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _int_arg(name: str, value: Any, minimum: int) -> int:
    v = _as_int(value)
    if v is None or v < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return v


def _level_args(name: str, values: Any, minimum: int, meaning: str) -> tuple[int, ...]:
    """Four ints >= ``minimum``, one per level."""
    try:
        got = tuple(map(_as_int, values))
    except TypeError:  # not iterable
        got = ()
    if len(got) != 4 or any(v is None or v < minimum for v in got):
        raise ValueError(
            f"{name} must be four ints >= {minimum} ({meaning}, one per level), got {values!r}"
        )
    return got


class RevCol(nn.Module):
    r"""Reversible column network: a 4×4 patch stem, then ``num_subnet`` columns of four levels
    (strides 4, 8, 16, 32) linked by reversible connections.

    Module names and parameter shapes equal the official release's, so its checkpoints load with
    ``strict=True`` (with the same ``num_classes`` and ``inter_supv``).

    Args:
        channels: channels of the four levels.
        layers: ConvNeXt blocks per level.
        num_subnet: number of columns.
        num_classes: classes of the classifier head(s). Default: 1000
        drop_path: stochastic depth rate, rising linearly over the blocks of a column (the same
            in every column). Default: 0.0
        kernel_size: depthwise kernel size of the blocks. Default: 3
        inter_supv: intermediate supervision: a classifier after every ``num_subnet // 4``
            columns and reconstruction decoders on the first three (needs ``num_subnet``
            divisible by 4). Default: ``False``
        head_init_scale: multiplies the weight and bias of every classifier's last Linear at
            initialisation. Default: 1.0
        memory: what is kept for backward in training mode:

            - ``'none'``: plain autograd, every activation kept.
            - ``'column'``: each column is one reversible node keeping its four outputs (the
              official behaviour). Its inputs are the previous column's kept outputs, so the
              backward uses them directly: gradients carry no reconstruction error.
            - ``'full'``: only the last column's outputs are kept (and those of every
              ``keep_every``-th column, and of the columns read by intermediate heads); the
              other columns are reconstructed going backward. Memory no longer grows with the
              number of columns; the reconstruction error compounds as about
              :math:`(1/\alpha)^{m}` over ``m`` reconstructed columns.

            Default: ``'column'``
        keep_every: with ``memory='full'``, keep the outputs of every ``keep_every``-th column
            to bound the compounding error. Default: ``None`` (only the last)
        features_only: return the maps ``[c0, c1, c2, c3]`` (selected by ``out_indices``) of the
            last column instead of logits; no head is built. Default: ``False``
        out_indices: levels returned when ``features_only``. Default: ``(0, 1, 2, 3)``
        in_chans: input channels. Default: 3
        pad_small_inputs: zero-pad inputs smaller than 32 pixels on a side, equally on both
            sides, up to 32 (e.g. 28×28 Fashion-MNIST) instead of raising. Padding rather than
            resizing keeps every pixel as it is; feature maps then include the border.
            Default: ``False``
        act_layer: activation of every ConvNeXt block of the columns, as a registry name
            (``'dyrelu_b'``, ``'acon_c'``, see :func:`revact.list_acts`) or an ``nn.Module``
            class, as ``act_layer`` in timm. A fresh instance per block; channel-aware ones
            are applied to the blocks' channels-last tensors (DY-ReLU in its ``'tokens'``
            layout, ACON through a transpose) and add their parameters under
            ``subnet{j}.level{i}.blocks.{b}.act``. The reconstruction decoders of
            ``inter_supv`` keep GELU: they are training-only auxiliary heads, and keeping them
            fixed keeps their official keys. Default: :class:`~torch.nn.GELU` (official)

    Forward returns:
        - ``features_only``: a list of maps at strides 4, 8, 16, 32 (for the chosen levels).
        - otherwise, without ``inter_supv``: logits :math:`(N, \text{num\_classes})`.
        - with ``inter_supv`` in training mode: ``(logits, reconstructions)``: a list of four
          logits (after every ``num_subnet // 4`` columns, the last one final) and a list of
          three images :math:`(N, \text{in\_chans}, H, W)` (logits of the de-normalised input,
          for :class:`~revact.revcol.RevColLoss`); in eval mode only the final logits.

    The custom backward is used only when it is needed: in training mode, with gradients
    enabled, when something before or inside the columns requires grad. Under autocast the
    column states stay in the parameters' dtype (float32).

    Examples::

        >>> model = RevCol((8, 16, 32, 64), (1, 1, 1, 1), 4, num_classes=10, memory="full")
        >>> logits = model(torch.randn(2, 3, 64, 64))
        >>> logits.sum().backward()
        >>> model.last_reconstruction_error  # largest relative error of that backward
    """

    def __init__(
        self,
        channels: Sequence[int],
        layers: Sequence[int],
        num_subnet: int,
        num_classes: int = 1000,
        drop_path: float = 0.0,
        kernel_size: int = 3,
        inter_supv: bool = False,
        head_init_scale: float = 1.0,
        memory: str = "column",
        keep_every: int | None = None,
        features_only: bool = False,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        in_chans: int = 3,
        act_layer: ActLayer = nn.GELU,
        pad_small_inputs: bool = False,
    ) -> None:
        super().__init__()
        channels = _level_args("channels", channels, 1, "channels")
        # A level may have no blocks (fusion only), as in the official code; a column may not.
        layers = _level_args("layers", layers, 0, "blocks")
        if sum(layers) == 0:
            raise ValueError(f"layers must give at least one block in total, got {layers}")
        num_subnet = _int_arg("num_subnet", num_subnet, 1)
        in_chans = _int_arg("in_chans", in_chans, 1)
        if not features_only:  # no head is built otherwise
            num_classes = _int_arg("num_classes", num_classes, 1)
        k = _as_int(kernel_size)
        if k is None or k < 1 or k % 2 == 0:
            # "Same" padding of (k - 1) // 2 keeps the map size, and so the residual, only
            # for odd kernels.
            raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")
        if not 0.0 <= drop_path < 1.0:
            # The last block of every column gets the full rate: 1 would drop it in every
            # training step and keep it at inference.
            raise ValueError(f"drop_path must be in [0, 1), got {drop_path!r}")
        if inter_supv and features_only:
            raise ValueError("inter_supv and features_only exclude each other")
        if inter_supv and num_subnet % 4:
            raise ValueError(f"inter_supv needs num_subnet divisible by 4, got {num_subnet}")
        out_indices = tuple(int(i) for i in out_indices)
        if not out_indices or any(i not in range(4) for i in out_indices):
            raise ValueError(f"out_indices must be levels in 0..3, got {out_indices}")
        self.channels, self.layers, self.num_subnet = channels, layers, num_subnet
        self.num_classes, self.inter_supv, self.in_chans = num_classes, inter_supv, in_chans
        self.features_only, self.out_indices = features_only, out_indices
        self.pad_small_inputs = pad_small_inputs
        self.num_features = channels[-1]

        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, channels[0], kernel_size=4, stride=4), LayerNorm2d(channels[0])
        )
        n = sum(layers)
        # Plain Python (no tensor) so the model can be built on the meta device.
        dp_rates = [drop_path * k / (n - 1) if n > 1 else 0.0 for k in range(n)]
        for j in range(num_subnet):
            column = Column(channels, layers, kernel_size, j == 0, dp_rates, act_layer)
            self.add_module(f"subnet{j}", column)

        if features_only:
            pass
        elif not inter_supv:
            self.cls = Classifier(channels[-1], num_classes)
        else:
            self.cls_blocks = nn.ModuleList(
                Classifier(channels[-1], num_classes) for _ in range(4)
            )
            if num_classes <= 1000:
                decoders = (Decoder(channels[::-1], out_chans=in_chans) for _ in range(3))
            else:
                decoders = (SimDecoder(channels[-1], 32, out_chans=in_chans) for _ in range(3))
            self.decoder_blocks = nn.ModuleList(decoders)

        self.apply(self._init_weights)
        for head in self._heads():
            head.classifier[1].weight.data.mul_(head_init_scale)
            head.classifier[1].bias.data.mul_(head_init_scale)

        #: Channels and reduction of each returned map, known without a forward pass.
        self.feature_info: list[dict[str, Any]] = [
            dict(num_chs=channels[i], reduction=4 * 2**i, module=f"subnet{num_subnet - 1}.level{i}")
            for i in out_indices
        ]
        self._tracker = ReconstructionTracker()
        self._generation = 0
        self.memory, self.keep_every = "none", None
        self.set_memory(memory, keep_every)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    def _heads(self) -> list[Classifier]:
        if hasattr(self, "cls"):
            return [self.cls]
        return list(getattr(self, "cls_blocks", []))

    def set_memory(self, mode: str, keep_every: int | None = None) -> RevCol:
        """Choose what is kept for backward (see the class docstring); returns ``self``.

        Args:
            mode: ``'none'``, ``'column'`` or ``'full'``.
            keep_every: with ``'full'``, keep every ``keep_every``-th column's outputs.
        """
        if mode not in MEMORY_MODES:
            raise ValueError(f"memory must be one of {MEMORY_MODES}, got {mode!r}")
        if keep_every is not None:
            if mode != "full":
                raise ValueError("keep_every applies to memory='full' only")
            if int(keep_every) < 1:
                raise ValueError(f"keep_every must be >= 1, got {keep_every}")
            keep_every = int(keep_every)
        self.memory, self.keep_every = mode, keep_every
        return self

    @property
    def last_reconstruction_error(self) -> float | None:
        """Largest relative error ``‖rec − exact‖ / ‖exact‖`` of a reconstructed column state in
        the last reversible backward, measured where the exact state is known (kept column
        outputs, first column); ``None`` before any. In ``'column'`` mode it is the one-column
        error that the official backward would carry (ours uses the kept states instead)."""
        return self._tracker.max_error()

    def extra_repr(self) -> str:
        keep = f", keep_every={self.keep_every}" if self.keep_every else ""
        return f"num_subnet={self.num_subnet}, memory={self.memory!r}{keep}"

    # ----------------------------------------------------------------------------- forward

    def _column(self, j: int) -> Column:
        return getattr(self, f"subnet{j}")

    def _tap_columns(self) -> dict[int, int]:
        """Column index → head index for intermediate supervision."""
        interval = self.num_subnet // 4
        return {(h + 1) * interval - 1: h for h in range(4)}

    def _segments(self, taps: Sequence[int]) -> list[tuple[int, int]]:
        n = self.num_subnet
        if self.memory == "full":
            m = self.keep_every or n
            ends = {j for j in range(n) if (j + 1) % m == 0} | {n - 1} | set(taps)
        else:
            ends = set(range(n))
        segments, start = [], 0
        for end in sorted(ends):
            segments.append((start, end))
            start = end + 1
        return segments

    def _use_reversible(self, x: Tensor) -> bool:
        if self.memory == "none" or not self.training or not torch.is_grad_enabled():
            return False
        if x.requires_grad:
            return True
        return any(p.requires_grad for j in range(self.num_subnet)
                   for p in self._column(j).parameters())

    def _fit_input(self, x: Tensor) -> Tensor:
        """``x`` padded to the 32-pixel minimum where allowed; an error where not."""
        h, w = x.shape[-2:]
        if torch.jit.is_tracing():
            # The TorchScript tracer (ONNX export) records H and W as tensors, and comparing
            # them below would warn (TracerWarning) that the branch and the pad widths are
            # fixed to the traced size. That is benign: the graph only keeps them for the
            # traced H and W, and revact.export_onnx makes only the batch axis dynamic, so
            # every input the file accepts has that size. (An export with dynamic H and W
            # of a model that pads must trace at the smallest size it will run on.)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                h, w = int(h), int(w)
        if h >= MIN_INPUT_SIZE and w >= MIN_INPUT_SIZE:
            return x
        if not self.pad_small_inputs:
            raise ValueError(
                f"RevCol needs inputs of at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} pixels "
                f"(stride 32 at level 3), got {h}x{w}; build it with pad_small_inputs=True "
                f"to zero-pad smaller ones"
            )
        ph, pw = max(MIN_INPUT_SIZE - h, 0), max(MIN_INPUT_SIZE - w, 0)
        return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))

    def _run_columns(
        self, x: Tensor, on_tap: Callable[[int, Tensor], None] | None = None
    ) -> States:
        x = self.stem(self._fit_input(x))
        taps = self._tap_columns() if on_tap is not None else {}
        reversible = self._use_reversible(x)
        if reversible:
            self._generation += 1
        states: States = (None, None, None, None)
        for start, end in self._segments(list(taps)):
            cols = [self._column(j) for j in range(start, end + 1)]
            if reversible:
                states = run_segment(cols, x, states, self._tracker, self._generation)
            else:
                for col in cols:
                    states = col(x, states)
            if end in taps:
                on_tap(taps[end], states[3])
        return states

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """The last column's four maps ``[c0, c1, c2, c3]`` at strides 4, 8, 16, 32."""
        return list(self._run_columns(x))

    def forward(self, x: Tensor) -> Any:
        if self.features_only:
            feats = self.forward_features(x)
            return [feats[i] for i in self.out_indices]
        if not self.inter_supv:
            return self.cls(self._run_columns(x)[3])
        if not self.training:
            return self.cls_blocks[-1](self._run_columns(x)[3])
        return self.forward_supervised(x)

    def forward_supervised(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Outputs of intermediate supervision (needs ``inter_supv``): four logits and three
        reconstructions of the input's size."""
        if not self.inter_supv:
            raise RuntimeError("forward_supervised needs inter_supv=True")
        logits: list[Tensor] = []
        images: list[Tensor] = []
        fitted = self._fit_input(x)
        size = fitted.shape[-2:]

        def tap(h: int, c3: Tensor) -> None:
            logits.append(self.cls_blocks[h](c3))
            if h < 3:
                img = self.decoder_blocks[h](c3)
                if img.shape[-2:] != size:  # inputs not divisible by 32
                    img = F.interpolate(img, size=size, mode="bilinear", align_corners=False)
                images.append(img)

        self._run_columns(fitted, tap)
        if fitted is not x:  # padded: cut the reconstructions back to the image (centred)
            (h, w), (ph, pw) = x.shape[-2:], size
            top, left = (ph - h) // 2, (pw - w) // 2
            images = [img[..., top:top + h, left:left + w] for img in images]
        return logits, images
