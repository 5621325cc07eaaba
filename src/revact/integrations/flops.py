"""Multiply-accumulate counts that include the activations' own maths.

thop, fvcore and ``FlopCounterMode`` count element-wise activations as free, which hides what
DY-ReLU's hyper-function and ACON's gates cost. :func:`count_flops` counts them, on any model
(revact's, torchvision's, timm's, Ultralytics', models changed by
:func:`~revact.integrations.swap.swap_activations`), and :func:`thop_custom_ops` /
:func:`register_thop_rules` teach thop the same rules.

**MACs, not FLOPs.** Every number here is in multiply-accumulates (MACs, "MAdds" in the
DY-ReLU and MobileNet papers). thop's and Ultralytics' "GFLOPs" and ``FlopCounterMode`` are
FLOPs = 2 × MACs. All counts are per image (the model runs once on a batch of one, or on
the batch given as ``inputs``, whose totals are divided by its size).

Rules, per call of each module (a module called three times is counted three times; a module
shared by several parents is counted once per call):

* *Layers.* ``ConvNd``: output elements × (in_channels / groups) × kernel volume;
  ``ConvTransposeNd``: input elements × (out_channels / groups) × kernel volume; ``Linear``:
  output elements × in_features. Biases are free. The same products run functionally
  (``F.linear``, ``F.convNd``, ``matmul``/``bmm``/``@``, ``F.scaled_dot_product_attention``)
  outside any counted module are counted too, as thop does; ``einsum`` is not.
* *Element-wise maths.* One unit per primitive step: an add, a multiply, a fused
  multiply-add (so ``a·x + b`` costs 1, like one MAC of a conv), a compare / max / min,
  an ``exp``, ``tanh`` or ``log``. σ(x) = 1/(1+e^{−x}) costs 2 (the exp, and the add and
  reciprocal as one step). Classic activations cost :data:`ELEMENTWISE_COST` per output
  element (unknown ones 1). Maths on parameters alone (ACON's p1 − p2, DY-ReLU's α) is free:
  it folds into constants at inference.
* *Adaptive activations* (:data:`ACTIVATION_RULES`), with ``P`` positions (H·W, or L),
  ``C`` channels, ``K`` pieces and ``N`` images per call:

  - ACON-B/C: per element β·Δp·x, σ (2), ·Δp + p2, ·x: 5. Swish / ACON-A: βx, σ (2), ·x: 4.
  - Meta-ACON: ACON-C's 5 per element plus its generator. ``'channel'`` (the default): the
    mean (1 per element), two FCs run functionally as matrix products (C·h + h·C per
    image, layer MACs), σ on the C values (2 each) and β·Δp (1 per channel); ``'layer'``:
    the sum (1 per element), one σ, β·Δp per channel; ``'pixel'``: σ(x) and β·Δp per
    element (3). BatchNorm in the generator is free.
  - DY-ReLU: per element the mean (1) and the max of K affine maps (K fused multiply-adds
    and K − 1 maxima); per image ``fc1``/``fc2`` (counted as ``Linear`` modules), ReLU on the
    hidden units (1 each) and 4 per coefficient on the 2·K·C' gate outputs (σ 2, 2g − 1, then
    the λ scaling with α). DY-ReLU-C adds its spatial projection (C per position, a layer
    cost), a softmax with temperature, γ·P scaling and clamp (6 per position) and the
    scaling of the output by π (1 per element).

* BatchNorm (folds into the conv at inference), pooling, upsampling, residual adds, dropout
  and softmax/attention normalisation are not counted.

:class:`FlopReport` keeps the layer MACs (every conv/linear, including those inside
activations' hyper-functions), the element-wise activation MACs and the hyper-function share,
so an activation's whole cost is ``act_macs + hyper_macs``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from revact.activations.acon import AconB, AconC, MetaAcon, Swish
from revact.activations.dyrelu import DyReLUC, _DyReLU

__all__ = [
    "ACTIVATION_RULES",
    "ELEMENTWISE_COST",
    "activation_rule",
    "FlopReport",
    "FlopRow",
    "count_flops",
    "count_macs",
    "register_thop_rules",
    "thop_custom_ops",
]

#: Per output element, in the units of the module docstring, by class name (so that timm's
#: own classes such as ``GELUTanh`` or ``HardSwishMe`` are found without importing timm).
ELEMENTWISE_COST: dict[str, float] = {
    "ReLU": 1, "ReLU6": 2, "LeakyReLU": 2, "PReLU": 2, "Hardtanh": 2, "Threshold": 1,
    "Sigmoid": 2, "LogSigmoid": 3, "Tanh": 2, "Softplus": 2, "ELU": 3, "CELU": 3, "SELU": 4,
    "Hardswish": 3, "HardSwish": 3, "HardSwishMe": 3, "Hardsigmoid": 2, "HardSigmoid": 2,
    "SiLU": 3, "SwishMe": 3,  # x·σ(x)
    "Swish": 4, "AconA": 4, "QuickGELU": 4,  # x·σ(βx)
    "Mish": 5, "MishMe": 5, "HardMish": 4,  # x·tanh(softplus(x))
    "GELU": 7, "GELUTanh": 7,  # tanh form: x³, fma, tanh, 1+, two muls
}

# torch.nn.modules.activation also holds modules that are not element-wise activations.
_NOT_ACTIVATIONS = (nn.MultiheadAttention, nn.Softmax, nn.Softmin, nn.LogSoftmax, nn.Softmax2d)

# (layer MACs the module computes without a hookable module, element-wise MACs), per call.
Rule = Callable[[nn.Module, Tensor, Tensor], tuple[float, float]]


def _shape(m: nn.Module, x: Tensor) -> tuple[int, int, int]:
    """(images N, channels C, positions P) of a channel-aware activation's input."""
    n = x.shape[0]
    return n, m.channels, x.numel() // (n * m.channels)


def _acon_rule(m: nn.Module, x: Tensor, y: Tensor) -> tuple[float, float]:
    return 0.0, 5.0 * y.numel()


def _meta_acon_rule(m: MetaAcon, x: Tensor, y: Tensor) -> tuple[float, float]:
    n, c, _ = _shape(m, x)
    if m.generator == "pixel":  # σ(x) and β·Δp per element
        return 0.0, 8.0 * y.numel()
    betas = c if m.generator == "channel" else 1
    per_image = 2 * betas + c  # σ on the generated values, β·Δp per channel
    layers = 2 * n * m.fc1.weight.shape[:2].numel() if m.generator == "channel" else 0.0
    return layers, 6.0 * y.numel() + n * per_image  # ACON-C's 5 and the mean or sum


def _dyrelu_rule(m: _DyReLU, x: Tensor, y: Tensor) -> tuple[float, float]:
    n, c, p = _shape(m, x)
    elementwise = (1 + 2 * m.k - 1) * y.numel()  # mean, K fused multiply-adds, K − 1 maxima
    per_image = m.fc1.out_features + 4 * m.fc2.out_features  # ReLU, gate maths
    layers = 0.0
    if isinstance(m, DyReLUC):
        elementwise += y.numel() + 6 * n * p  # scaling by π; softmax, γ·P, clamp
        if m.layout != "tokens":  # tokens run the projection as a Linear module (hooked)
            layers = n * p * c
    return layers, elementwise + n * per_image


def _swish_rule(m: Swish, x: Tensor, y: Tensor) -> tuple[float, float]:
    return 0.0, 4.0 * y.numel()


#: Counting rules of revact's adaptive activations, by class (subclasses included).
ACTIVATION_RULES: dict[type[nn.Module], Rule] = {
    _DyReLU: _dyrelu_rule,
    MetaAcon: _meta_acon_rule,
    AconB: _acon_rule,
    AconC: _acon_rule,
    Swish: _swish_rule,  # and AconA
}


def _elementwise_rule(m: nn.Module, x: Tensor, y: Tensor) -> tuple[float, float]:
    return 0.0, float(y.numel() * ELEMENTWISE_COST.get(type(m).__name__, 1))


def activation_rule(m: nn.Module) -> Rule | None:
    """The counting rule of an activation module, or None for anything else."""
    for cls in type(m).__mro__:
        if cls in ACTIVATION_RULES:
            return ACTIVATION_RULES[cls]
    if isinstance(m, _NOT_ACTIVATIONS):
        return None
    if type(m).__name__ in ELEMENTWISE_COST or type(m).__module__ == nn.ReLU.__module__:
        return _elementwise_rule
    return None


def _layer_macs(m: nn.Module, x: Tensor, y: Tensor) -> float:
    if isinstance(m, nn.Linear):
        return float(y.numel() * m.in_features)
    kernel = math.prod(m.kernel_size)
    if m.transposed:
        return float(x.numel() * (m.out_channels // m.groups) * kernel)
    return float(y.numel() * (m.in_channels // m.groups) * kernel)


def _functional_macs(func: Callable, args: tuple, kwargs: dict, y: Any) -> float:
    """MACs of a functional product (see the module docstring), 0 for anything else."""
    if not isinstance(y, Tensor):
        return 0.0
    if func in (F.conv1d, F.conv2d, F.conv3d):
        weight = args[1] if len(args) > 1 else kwargs["weight"]
        return float(y.numel() * weight.shape[1:].numel())
    if func is F.scaled_dot_product_attention:
        q, k, v = (*args, *(kwargs.get(n) for n in ("query", "key", "value")[len(args):]))[:3]
        return float(y.numel() // v.shape[-1] * k.shape[-2] * (q.shape[-1] + v.shape[-1]))
    if func in _PRODUCTS:
        a = args[0] if args else kwargs["input"]
        return float(y.numel() * a.shape[-1])
    return 0.0


_PRODUCTS = (F.linear, torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__,
             torch.bmm, torch.Tensor.bmm)


@dataclass(frozen=True)
class FlopRow:
    """One counted module: where it sits, what it is, and its MACs summed over its calls."""

    name: str
    type: str
    calls: int
    layer_macs: float
    act_macs: float
    in_activation: bool  # part of an activation's hyper-function

    @property
    def macs(self) -> float:
        return self.layer_macs + self.act_macs


@dataclass(frozen=True)
class FlopReport:
    """MACs per image of one model at one input size.

    Attributes:
        macs: the total, ``layer_macs + act_macs``.
        layer_macs: every conv/linear/matrix product, those inside activations included.
        act_macs: element-wise maths of the activations (pooling and gates included).
        hyper_macs: the part of ``layer_macs`` computed inside activations (DY-ReLU's FCs,
            Meta-ACON's generator); an activation's whole cost is ``act_macs + hyper_macs``.
        rows: the per-module breakdown, in first-call order.
        input_size: the per-image input shape counted.
    """

    macs: float
    layer_macs: float
    act_macs: float
    hyper_macs: float
    rows: tuple[FlopRow, ...]
    input_size: tuple[int, ...]

    @property
    def flops(self) -> float:
        """FLOPs = 2 × MACs, the unit of thop's and Ultralytics' "GFLOPs"."""
        return 2 * self.macs

    def as_dict(self) -> dict[str, float]:
        """The totals, for JSON records: ``macs``, ``layer_macs``, ``act_macs``, ``hyper_macs``."""
        return {"macs": self.macs, "layer_macs": self.layer_macs, "act_macs": self.act_macs,
                "hyper_macs": self.hyper_macs}

    def summary(self) -> str:
        """One line: total MACs and GFLOPs, and the layer / activation / hyper-function split."""
        share = 100 * (self.act_macs + self.hyper_macs) / self.macs if self.macs else 0.0
        size = "x".join(map(str, self.input_size))
        return (f"{self.macs / 1e6:,.2f} MMACs ({self.flops / 1e9:.3f} GFLOPs = 2 x MACs) per "
                f"{size} input: layers {self.layer_macs / 1e6:,.2f}M, activation maths "
                f"{self.act_macs / 1e6:,.2f}M, hyper-functions {self.hyper_macs / 1e6:,.2f}M "
                f"(activations {share:.1f}% of the total)")

    def table(self) -> str:
        """The per-module breakdown as a fixed-width table, then the summary line."""
        head = ("module", "type", "calls", "layer MMACs", "act MMACs")
        lines = [(r.name + (" *" if r.in_activation else ""), r.type, str(r.calls),
                  f"{r.layer_macs / 1e6:.4f}", f"{r.act_macs / 1e6:.4f}") for r in self.rows]
        widths = [max(len(row[i]) for row in (head, *lines)) for i in range(len(head))]
        fmt = "  ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths))
        out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
        out += [fmt.format(*row) for row in lines]
        out += ["(* inside an activation's hyper-function)", self.summary()]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.summary()


class _Counter(torch.overrides.TorchFunctionMode):
    """Hooks every module of a model once; counts per call, into per-module rows.

    A stack of running modules (pre/post hooks on all of them) tells which module a
    functional product belongs to and whether it runs inside an activation; products inside
    a counted module (``nn.Linear`` calls ``F.linear``, a rule covers its module's own
    functional layers) are not counted twice.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.names = {m: name or type(m).__name__ for name, m in model.named_modules()}
        self.stack: list[nn.Module] = []
        self.counted_depth = 0  # counted modules running now
        self.act_depth = 0  # activations running now
        self.rows: dict[nn.Module, list] = {}
        self.handles: list[torch.utils.hooks.RemovableHandle] = []
        for m in self.names:
            self.handles.append(m.register_forward_pre_hook(self._enter))
            self.handles.append(m.register_forward_hook(self._leave, always_call=True))

    def _kind(self, m: nn.Module) -> str | None:
        if isinstance(m, nn.Linear | nn.modules.conv._ConvNd):
            return "layer"
        return "act" if activation_rule(m) is not None else None

    def _enter(self, m: nn.Module, args: Any) -> None:
        self.stack.append(m)
        kind = self._kind(m)
        self.counted_depth += kind is not None
        self.act_depth += kind == "act"

    def _leave(self, m: nn.Module, args: Any, out: Any) -> None:
        self.stack.pop()
        kind = self._kind(m)
        self.counted_depth -= kind is not None
        self.act_depth -= kind == "act"
        if kind is None or not args or not isinstance(out, Tensor):
            return
        if kind == "layer":
            self._add(m, _layer_macs(m, args[0], out), 0.0, calls=1)
        else:
            self._add(m, *activation_rule(m)(m, args[0], out), calls=1, own_activation=True)

    def _add(self, m: nn.Module, layers: float, act: float, calls: int,
             own_activation: bool = False) -> None:
        # Layers run inside an activation (its FCs, or its own functional ones) are its
        # hyper-function.
        hyper = layers if own_activation or self.act_depth > 0 else 0.0
        row = self.rows.setdefault(m, [0, 0.0, 0.0, 0.0])
        for i, value in enumerate((calls, layers, act, hyper)):
            row[i] += value

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        y = func(*args, **kwargs)
        if not self.counted_depth and self.stack:
            macs = _functional_macs(func, args, kwargs, y)
            if macs:
                self._add(self.stack[-1], macs, 0.0, calls=0)
        return y

    def report(self, input_size: tuple[int, ...], images: int = 1) -> FlopReport:
        """The counts divided by ``images``, the batch size they were counted on."""
        rows = tuple(FlopRow(self.names[m], type(m).__name__, int(calls), layers / images,
                             act / images, hyper > 0)
                     for m, (calls, layers, act, hyper) in self.rows.items())
        layer = sum(r.layer_macs for r in rows)
        act = sum(r.act_macs for r in rows)
        hyper = sum(row[3] for row in self.rows.values()) / images
        return FlopReport(layer + act, layer, act, hyper, rows, input_size)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


@torch.no_grad()
def count_flops(
    model: nn.Module, input_size: Sequence[int] | None = None, inputs: Any = None
) -> FlopReport:
    """Count one image's MACs, activation maths included (rules: this module's docstring).

    Args:
        model: any ``nn.Module``; run once in eval mode, its modes restored afterwards.
        input_size: shape of one input without the batch axis, e.g. ``(3, 224, 224)``
            (positive whole numbers); the model runs on a batch of one.
        inputs: instead of ``input_size``, the positional input(s) of a batch: a tensor, or
            a tuple whose first item is a tensor with the batch axis first. A batch of N
            images is counted once and every figure divided by N, so the report is per
            image whatever the batch size (every rule is a sum over images).

    Returns:
        A :class:`FlopReport` per image; ``print(report.table())`` shows the per-module
        breakdown.

    Raises:
        TypeError: ``input_size`` is not a sequence of whole numbers (a tensor belongs in
            ``inputs``), or ``inputs`` holds no tensor first.
        ValueError: both or neither of ``input_size`` and ``inputs``; a size below 1; an
            empty batch; or the model failed on the input (the message says what its first
            convolution takes, e.g. when ``input_size`` includes the batch axis).

    Example::

        >>> report = revact.count_flops(torchvision.models.mobilenet_v2(), (3, 224, 224))
        >>> report.macs / 1e6, report.flops / 1e9      # MMACs, GFLOPs
    """
    if (input_size is None) == (inputs is None):
        raise ValueError("count_flops needs exactly one of input_size and inputs")
    if inputs is None:
        input_size = _check_input_size(input_size)
        p = next(model.parameters(), None)
        device = p.device if p is not None else None
        dtype = p.dtype if p is not None and p.is_floating_point() else None
        inputs = torch.zeros(1, *input_size, device=device, dtype=dtype)
        given = f"input_size={input_size} (one image's shape, without the batch axis)"
    else:
        given = "inputs"
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    first = inputs[0] if inputs else None
    if not isinstance(first, Tensor):
        raise TypeError(f"inputs must be a tensor, or a tuple whose first item is a tensor, "
                        f"with the batch axis first; got {type(first).__name__} first")
    if first.dim() < 1 or first.shape[0] < 1:
        raise ValueError(f"inputs needs a batch axis first with at least one image; got a "
                         f"tensor of shape {tuple(first.shape)}")
    images = first.shape[0]
    if input_size is None:
        input_size = tuple(first.shape[1:])
    modes = {m: m.training for m in model.modules()}
    counter = _Counter(model)
    try:
        model.eval()
        with counter:
            model(*inputs)
    except (RuntimeError, ValueError, AssertionError, IndexError, TypeError) as e:
        from revact.integrations.resolve import input_error

        raise input_error(model, first.shape, e, given) from e
    finally:
        counter.remove()
        for m, training in modes.items():
            m.training = training
    return counter.report(tuple(input_size), images)


def _check_input_size(input_size: Any) -> tuple[int, ...]:
    """``input_size`` as a tuple of positive ints, or a TypeError / ValueError saying why not."""
    expected = "input_size is one image's shape without the batch axis, e.g. (3, 224, 224)"
    if isinstance(input_size, Tensor):
        raise TypeError(f"{expected}; got a tensor (pass a batch of images as inputs=)")
    if isinstance(input_size, (str, bytes)) or not isinstance(input_size, Sequence):
        raise TypeError(f"{expected}; got {type(input_size).__name__} {input_size!r}")
    try:
        size = tuple(operator.index(s) for s in input_size)  # ints only: no 3.5, no "3"
    except TypeError:
        raise TypeError(f"{expected}, in whole numbers; got {tuple(input_size)!r}") from None
    if not size or min(size) < 1:
        raise ValueError(f"{expected}, every size at least 1; got {size!r}")
    return size


def count_macs(model: nn.Module, input_size: Sequence[int]) -> dict[str, float]:
    """:func:`count_flops`'s totals as a dict, the form stored in training records."""
    return count_flops(model, input_size).as_dict()


# ------------------------------------------------------------------ thop


def _thop_rule(rule: Rule) -> Callable[[nn.Module, tuple, Tensor], None]:
    def count(m: nn.Module, args: tuple, y: Tensor) -> None:
        m.total_ops += sum(rule(m, args[0], y))

    count.__qualname__ = f"revact:{rule.__name__}"
    return count


def _torch_activation_classes() -> Iterable[type[nn.Module]]:
    for obj in vars(nn.modules.activation).values():
        if (isinstance(obj, type) and issubclass(obj, nn.Module)
                and obj.__name__ in ELEMENTWISE_COST and not issubclass(obj, _NOT_ACTIVATIONS)):
            yield obj


def thop_custom_ops(classics: bool = True) -> dict[type[nn.Module], Callable]:
    """thop ``custom_ops`` that count activations as :func:`count_flops` does.

    ``thop.profile(model, inputs=(x,), custom_ops=thop_custom_ops())`` then agrees with
    ``count_flops`` on convs, linears, functional products and activations. It still adds
    what thop counts and revact does not: BatchNorm/LayerNorm (2 or 4 per element),
    average pooling, upsampling, softmax. Add ``{nn.BatchNorm2d: thop.profile.zero_ops}``
    and the like to compare like for like. thop's totals are MACs too.

    Args:
        classics: also replace thop's zero rules for torch's own activations (ReLU, SiLU,
            ...) so that a baseline pays for its activation as the adaptive ones do.
            timm's own activation classes are not covered (thop resolves rules by class).
    """
    ops = {cls: _thop_rule(rule) for cls, rule in ACTIVATION_RULES.items()}
    if classics:
        ops |= {cls: _thop_rule(_elementwise_rule) for cls in _torch_activation_classes()}
    return ops


def register_thop_rules(classics: bool = False) -> None:
    """Add revact's rules to thop's global table, for callers that pass no ``custom_ops``.

    Ultralytics' ``get_flops`` (``model.info()``, the training log's GFLOPs) calls
    ``thop.profile`` without ``custom_ops``; after this call it counts revact's activations.
    By default torch's own activations keep thop's zero rule, so stock models report the
    GFLOPs everyone quotes; ``classics=True`` counts them too (a like-for-like baseline).
    """
    import importlib

    # ``thop.profile`` is the function; its module holds the table the rules are looked up in.
    table = importlib.import_module("thop.profile").register_hooks
    table.update(thop_custom_ops(classics=classics))
