"""Swap the activations of any model for revact ones, one new module per call site.

A model's activation modules are not a list of call sites. torchvision's ``Bottleneck``
owns one ``ReLU`` and calls it three times, on two different channel counts; Ultralytics'
``Conv`` blocks all hold the *same* ``SiLU`` object (``Conv.default_act``). A channel-aware
activation (ACON, DY-ReLU) needs one instance per call site, with that site's channel
count. :func:`swap_activations` finds the call sites with one traced forward pass:

* module pre-hooks keep a stack of running modules, so each call of an activation knows
  its *caller* (the innermost running module); a call is attributed to the registration
  ``parent.name`` whose parent is the caller, and a call from anywhere else is an error;
* forward hooks remember which module produced each tensor, so an activation whose input
  came from a ``Linear`` or a channels-last ``LayerNorm`` (ConvNeXt blocks, transformer MLPs)
  gets its channels from the last axis;
* a registration called ``k > 1`` times per forward of its parent becomes a
  :class:`CallSites` holding ``k`` activations, used in call order. The call count that
  picks the site is kept per thread and per running forward of the parent, never on the
  module, so one swapped model can serve several threads at once.
"""

from __future__ import annotations

import fnmatch
import inspect
import itertools
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from revact.activations.channels_last import ChannelsLast, create_channels_last_act
from revact.activations.create_act import act_spec, create_act
from revact.integrations.resolve import first_conv, input_error

__all__ = ["CallSites", "SwapReport", "SwapRow", "swap_activations", "DEFAULT_TARGETS"]

#: Nonlinearities replaced by default. Sigmoid, Tanh and Hardsigmoid are left alone: in
#: squeeze-excitation and attention blocks they are gates, not activations.
DEFAULT_TARGETS: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Hardswish, nn.LeakyReLU, nn.Mish, nn.ELU,
    nn.PReLU, nn.Softplus, nn.CELU, nn.SELU,
)
# timm builds some activations from its own classes (timm.layers.activations*); they are
# matched by name so that timm need not be imported.
_TIMM_TARGETS = frozenset({
    "Swish", "SwishMe", "Mish", "MishMe", "HardSwish", "HardSwishMe", "HardMish",
    "HardMishMe", "GELU", "GELUTanh", "QuickGELU",
})

PathFilter = str | Sequence[str] | Callable[[str, nn.Module], bool]
Match = type | tuple | PathFilter


class _RunningParents(threading.local):
    """The call counts of the :class:`CallSites` whose parent is running, in this thread.

    ``counts[id(sites)]`` holds one count per forward of the parent now running in this
    thread, innermost last: a parent that runs itself again inside its forward (directly or
    through a child) gets a count of its own for that inner forward, which ends before the
    outer one goes on. The counts used to be one attribute of the module, reset by the
    parent's pre-hook; two threads running one model then reset and advanced each other's
    counts, which raised spurious mismatch errors or, worse, silently sent a call to another
    site's activation. A thread-local stack per module needs no lock and nothing that
    deep-copies or pickles with the model. Stacks are deleted when they empty, so an ``id``
    is only ever looked up while its module is alive and running.
    """

    def __init__(self) -> None:  # run once per thread, on its first use
        self.counts: dict[int, list[int]] = {}


_RUNNING = _RunningParents()


class CallSites(nn.Module):
    r"""One activation per call, for a module its parent calls several times per forward.

    The ``i``-th call within one forward of the parent goes to ``sites[i]``. The parent's
    forward pre-hook starts a count for that forward and its forward hook ends and checks
    it, so a forward that makes a different number of calls than the traced one fails
    loudly instead of mixing up the sites. The count belongs to the thread and to the
    parent's forward that is running (not to the module), so threads may share the model,
    and a parent's forward re-run by ``torch.utils.checkpoint`` in the backward pass counts
    afresh. A call from outside a forward of the parent (e.g. a checkpoint around only
    *part* of the parent's forward, re-run without the parent) is an error: it cannot tell
    which site it is.

    Args:
        sites: the activations, in call order.
        path: where this module sits in the model, for error messages.
        parent: the parent's class name, for error messages.

    Example::

        >>> model = torchvision.models.resnet50()
        >>> swap_activations(model, "acon_c")
        >>> [site.channels for site in model.layer1[0].relu.sites]   # after bn1, bn2, the sum
        [64, 64, 256]
    """

    def __init__(self, sites: Sequence[nn.Module], path: str, parent: str = "its parent") -> None:
        super().__init__()
        self.sites = nn.ModuleList(sites)
        self.path = path
        self.parent = parent

    def _mismatch(self, calls: str) -> RuntimeError:
        return RuntimeError(
            f"{self.path!r} was traced as called {len(self.sites)} times per forward of "
            f"{self.parent}, but this forward called it {calls} times. Its call sites were "
            "given one activation each, in call order; that is only sound when the number "
            "of calls does not depend on the input or on train/eval mode."
        )

    def forward(self, x: Tensor) -> Tensor:
        counts = _RUNNING.counts.get(id(self))
        if not counts:
            raise RuntimeError(
                f"{self.path!r} holds one activation per call within a forward of "
                f"{self.parent}, but was called outside one (directly, or by a "
                "torch.utils.checkpoint around only part of that forward, re-run in the "
                "backward pass without it), so its call site is unknown. Call the parent "
                "module, or checkpoint all of it."
            )
        i = counts[-1]
        if i >= len(self.sites):
            raise self._mismatch("more than " + str(len(self.sites)))
        counts[-1] = i + 1
        return self.sites[i](x)

    def extra_repr(self) -> str:
        return f"path={self.path!r}"


# The parent's hooks are instances of top-level classes, not closures, so that the model
# still pickles (torch.save of the whole model) and deep-copies (EMA copies); they find
# their CallSites by attribute name, which stays right in any copy. (The class names are
# kept from when the count lived on the module: whole models pickled then still load.)
class _CallSitesHook:
    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)

    def _sites(self, module: nn.Module) -> Iterator[CallSites]:
        for name in self.names:
            sites = module._modules.get(name)
            if isinstance(sites, CallSites):  # unless replaced again since
                yield sites


class _ResetCallSites(_CallSitesHook):
    """Pre-hook: a fresh count, at 0, for this forward of the parent in this thread."""

    def __call__(self, module: nn.Module, args: Any) -> None:
        for sites in self._sites(module):
            _RUNNING.counts.setdefault(id(sites), []).append(0)


class _CheckCallSites(_CallSitesHook):
    """Forward hook, registered with ``always_call=True``: ends this forward's count and,
    unless the forward raised, checks it.

    It must run even when the forward raised, or the count would stay on the stack, and an
    outer forward of the same parent would then use it. ``torch.utils.checkpoint`` (non-
    reentrant) raises on purpose inside the re-run forward once it has recomputed what it
    needs. Torch passes ``output=None`` then; the check is skipped so that the exception
    that is on its way out is not masked.
    """

    def __call__(self, module: nn.Module, args: Any, output: Any) -> None:
        raising = output is None and sys.exc_info()[0] is not None
        error = None
        for sites in self._sites(module):
            counts = _RUNNING.counts.get(id(sites))
            if not counts:  # the pre-hook never ran: an earlier pre-hook raised
                continue
            calls = counts.pop()
            if not counts:
                del _RUNNING.counts[id(sites)]
            if error is None and not raising and calls != len(sites.sites):
                error = sites._mismatch(str(calls))  # raised once every count is ended
        if error is not None:
            raise error


@dataclass(frozen=True)
class SwapRow:
    """One replaced call site.

    Attributes:
        path: where the new activation lives (``layer1.0.relu.sites.2`` for the third
            call of a module called several times).
        old: the replaced module, as printed by ``repr``.
        new: the new activation's class (``ChannelsLast(DyReLUB)`` when wrapped).
        channels: the channel count it was built for.
        axis: the channel axis of its input: ``1`` or ``-1`` (channels last).
        module: the new activation itself.
    """

    path: str
    old: str
    new: str
    channels: int
    axis: int
    module: nn.Module = field(repr=False, compare=False)


@dataclass
class SwapReport:
    """What :func:`swap_activations` replaced: one :class:`SwapRow` per call site.

    Iterable and sized over its rows; ``str(report)`` is an aligned table.
    """

    rows: list[SwapRow]
    modules: int

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[SwapRow]:
        return iter(self.rows)

    def __getitem__(self, i: int) -> SwapRow:
        return self.rows[i]

    def __str__(self) -> str:
        header = ("path", "old", "new", "channels", "axis")
        cells = [header] + [(r.path, r.old, r.new, str(r.channels), str(r.axis)) for r in self]
        widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
        right = {3, 4}  # numbers

        def line(row: Sequence[str]) -> str:
            return "  ".join(
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()

        lines = [line(header), line(["-" * w for w in widths])]
        lines += [line(row) for row in cells[1:]]
        lines.append(f"{len(self)} call sites in {self.modules} modules replaced")
        return "\n".join(lines)


class _UnresolvedCall(RuntimeError):
    """A call site that the tracing pass cannot resolve."""


@dataclass(frozen=True)
class _Slot:
    """A registration ``parent.<name>`` of a target; a shared parent gives it several paths."""

    parent: nn.Module
    name: str
    paths: tuple[str, ...]
    selected: bool


@dataclass(frozen=True)
class _Call:
    target: nn.Module
    caller: nn.Module | None
    invocation: int          # which forward of the caller
    channels: int
    axis: int


def swap_activations(
    model: nn.Module,
    act: str | type[nn.Module],
    *,
    match: Match | None = None,
    exclude: PathFilter | None = None,
    relu_init: bool = False,
    sample: Tensor | tuple | dict | None = None,
    **act_kwargs: Any,
) -> SwapReport:
    r"""Replace the activations of ``model``, in place, by ``create_act(act, channels=...)``.

    Every *call site* gets its own new activation, built for the channel count it sees:
    a module called three times by its parent becomes a :class:`CallSites` of three, and
    a module shared by many parents (Ultralytics' ``Conv.default_act``) becomes one per
    parent. Call sites are found by one forward pass on ``sample``, in eval mode under
    ``torch.no_grad()``; each module's train/eval mode is restored afterwards. Input
    produced by ``nn.Linear`` or a channels-last ``nn.LayerNorm``, and 2-D input ``(N, C)``,
    has its channels on the last axis: channel-aware activations are then wrapped by
    :func:`~revact.activations.channels_last.create_channels_last_act`.

    Args:
        model: any ``nn.Module``; modified in place.
        act: the new activation: a registry name (``'dyrelu_b'``) or a module class.
        match: which modules to replace. Default: the usual nonlinearities
            (:data:`DEFAULT_TARGETS` and timm's own versions of them), not the gates
            Sigmoid, Tanh, Hardsigmoid. A class or tuple of classes selects by type; a
            glob string (or list of them) selects the default nonlinearities whose path
            matches (``'layer4.*'``); a callable ``(path, module) -> bool`` selects freely.
        exclude: paths to leave alone: glob string(s) or a callable ``(path, module) -> bool``.
        relu_init: build each new activation to start as exactly ReLU (DY-ReLU's
            ``relu_init=True``), so that a model whose ReLUs are replaced computes the same
            outputs as before the swap.
        sample: the input of the tracing forward pass: a tensor, a tuple of positional
            arguments or a dict of keyword arguments. Default: ``(1, C, 64, 64)`` (one 64
            per spatial axis of the first convolution) with ``C`` its ``in_channels``.
        **act_kwargs: passed to every new activation (e.g. ``reduction=8``).

    Returns:
        A :class:`SwapReport` of what was replaced where.

    Raises:
        ValueError: unknown activation, ``relu_init`` with an activation that has no such
            option, no module to replace, a sample the model rejects.
        RuntimeError: a call site that cannot be resolved (an activation called by a
            module that does not own it, a module never called by the sample, or one
            whose calls vary between forwards of its parent); nothing is replaced then.

    Example::

        >>> model = torchvision.models.resnet50()
        >>> report = swap_activations(model, "dyrelu_b", relu_init=True)
        >>> len(report)                    # 17 ReLU modules, 49 call sites
        49
        >>> print(report)                  # path, old, new, channels, axis
    """
    cls = _activation_class(act)
    if "channels" in act_kwargs:
        raise TypeError("swap_activations finds the channel count of each call site itself: "
                        "do not pass channels=")
    if relu_init:
        if "relu_init" not in inspect.signature(cls).parameters:
            raise ValueError(
                f"relu_init=True needs an activation that can start as ReLU (dyrelu_a, "
                f"dyrelu_b, dyrelu_c); {cls.__name__} has no relu_init option"
            )
        act_kwargs["relu_init"] = True
    selects = _selector(match, exclude)

    slots, targets = _find_slots(model, selects)
    if not targets:
        kinds = sorted({type(m).__name__ for m in model.modules() if not m._modules})
        raise ValueError(
            f"no module of {type(model).__name__} matches match={_describe(match)}"
            f"{'' if exclude is None else f' and exclude={exclude!r}'}; its leaf module "
            f"types are: {', '.join(kinds)}"
        )
    if sample is None:
        sample = _default_sample(model)
    calls = _trace(model, sample, targets)
    sites = _resolve(model, slots, calls)

    if relu_init:
        not_relu = sorted({type(s.parent._modules[s.name]).__name__ for s in sites
                           if not isinstance(s.parent._modules[s.name], nn.ReLU)})
        if not_relu:
            warnings.warn(
                f"relu_init=True starts the new activations as ReLU, but {', '.join(not_relu)} "
                "modules are replaced too: the model's outputs change there",
                stacklevel=2,
            )

    rows = []
    for slot, specs in sites.items():
        old = slot.parent._modules[slot.name]
        new = [_build(act, channels, axis, act_kwargs) for channels, axis in specs]
        path = slot.paths[0]
        if len(new) == 1:
            replacement, paths = new[0], [path]
        else:
            replacement = CallSites(new, path, type(slot.parent).__name__)
            paths = [f"{path}.sites.{i}" for i in range(len(new))]
        device, dtype = _placement(old, slot.parent, model)
        setattr(slot.parent, slot.name,
                replacement.to(device=device, dtype=dtype).train(old.training))
        rows += [
            SwapRow(p, repr(old).split("\n")[0], _class_name(m), c, a, m)
            for p, m, (c, a) in zip(paths, new, specs, strict=True)
        ]
    _install_hooks(sites)
    return SwapReport(rows, len(sites))


def _activation_class(act: str | type[nn.Module]) -> type[nn.Module]:
    if isinstance(act, str):
        return act_spec(act).cls  # unknown names raise with close matches
    if isinstance(act, type) and issubclass(act, nn.Module):
        return act
    raise TypeError(
        f"act must be an activation name or an nn.Module subclass, got {type(act).__name__}: "
        f"{act!r}"
    )


def _is_default_target(module: nn.Module) -> bool:
    if isinstance(module, DEFAULT_TARGETS):
        return True
    cls = type(module)
    return cls.__module__.startswith("timm.layers.activations") and cls.__name__ in _TIMM_TARGETS


def _path_filter(spec: PathFilter, what: str) -> Callable[[str, nn.Module], bool]:
    if callable(spec):
        return spec
    globs = [spec] if isinstance(spec, str) else list(spec)
    if not globs or not all(isinstance(g, str) for g in globs):
        raise TypeError(
            f"{what} must be a glob string, a list of them or a callable (path, module) -> "
            f"bool, got {spec!r}"
        )
    return lambda path, module: any(fnmatch.fnmatchcase(path, g) for g in globs)


def _selector(match: Match | None, exclude: PathFilter | None) -> Callable[[str, nn.Module], bool]:
    if match is None:
        matches = lambda path, module: _is_default_target(module)  # noqa: E731
    elif isinstance(match, type) or (
        isinstance(match, (tuple, list)) and match and all(isinstance(m, type) for m in match)
    ):
        classes = match if isinstance(match, type) else tuple(match)
        matches = lambda path, module: isinstance(module, classes)  # noqa: E731
    else:
        on_path = _path_filter(match, "match")
        if callable(match):
            matches = on_path
        else:
            matches = lambda path, module: _is_default_target(module) and on_path(path, module)  # noqa: E731
    if exclude is None:
        return matches
    excluded = _path_filter(exclude, "exclude")
    return lambda path, module: matches(path, module) and not excluded(path, module)


def _describe(match: Match | None) -> str:
    if match is None:
        return "<default nonlinearities: " + ", ".join(c.__name__ for c in DEFAULT_TARGETS) + ">"
    return repr(match)


def _is_revact(module: nn.Module) -> bool:
    # Activations already swapped in (and their insides, e.g. DY-ReLU's hyper-function)
    # are never targets, so swapping twice touches only what is left.
    return isinstance(module, CallSites) or type(module).__module__.startswith(
        "revact.activations")


def _find_slots(
    model: nn.Module, selects: Callable[[str, nn.Module], bool]
) -> tuple[dict[tuple[int, str], _Slot], set[nn.Module]]:
    """Every registration of every selected module, keyed by (id(parent), name).

    Walks ``_modules`` directly: ``named_modules()`` and ``named_children()`` skip a module
    already seen, which is exactly the sharing that matters here.
    """
    edges: list[tuple[nn.Module, str, nn.Module, str, bool]] = []

    def walk(module: nn.Module, prefix: str, ancestors: tuple[int, ...]) -> None:
        for name, child in module._modules.items():
            if child is None or id(child) in ancestors:
                continue
            path = f"{prefix}.{name}" if prefix else name
            selected = not _is_revact(child) and selects(path, child)
            edges.append((module, name, child, path, selected))
            if not selected and not _is_revact(child):
                walk(child, path, (*ancestors, id(child)))

    walk(model, "", (id(model),))
    targets = {child for _, _, child, _, selected in edges if selected}
    slots: dict[tuple[int, str], _Slot] = {}
    for parent, name, child, path, selected in edges:
        if child not in targets:
            continue
        key = (id(parent), name)
        if key in slots:
            old = slots[key]
            slots[key] = _Slot(parent, name, (*old.paths, path), old.selected or selected)
        else:
            slots[key] = _Slot(parent, name, (path,), selected)
    return slots, targets


def _default_sample(model: nn.Module) -> Tensor:
    conv = first_conv(model)
    if conv is None:
        raise ValueError(
            f"cannot guess an input for {type(model).__name__}: it has no convolution; pass "
            "sample=<an input tensor the model accepts>"
        )
    spatial = (64,) * (conv.weight.dim() - 2)
    return torch.zeros(1, conv.in_channels, *spatial, device=conv.weight.device,
                       dtype=conv.weight.dtype)


class _Tracer:
    """Forward hooks for the tracing pass: the running-module stack, the calls of the
    targets, and the channel axis of every tensor a module returned."""

    def __init__(self, targets: set[nn.Module]) -> None:
        self.targets = targets
        self.stack: list[tuple[nn.Module, int]] = []
        self.invocations = itertools.count()
        self.calls: list[_Call] = []
        # id(tensor) -> (tensor, axis); the tensor is held so that its id is not reused.
        self.axes: dict[int, tuple[Tensor, int | None]] = {}

    def pre(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if module in self.targets:
            caller, invocation = self.stack[-1] if self.stack else (None, -1)
            x = args[0] if args else next(iter(kwargs.values()), None)
            channels, axis = self._channels(module, caller, x)
            self.calls.append(_Call(module, caller, invocation, channels, axis))
        self.stack.append((module, next(self.invocations)))

    def post(self, module: nn.Module, args: tuple, output: Any) -> None:
        self.stack.pop()
        outputs = output if isinstance(output, (tuple, list)) else (output,)
        source = args[0] if args and isinstance(args[0], Tensor) else None
        for y in outputs:
            if isinstance(y, Tensor):
                axis = _output_axis(module, y)
                if axis is None:
                    if id(y) in self.axes:  # a child produced it (or it was changed in place)
                        continue
                    # Shape-preserving modules (dropout, activations, scales) keep the
                    # input's layout; a Permute or a reshape does not.
                    if source is not None and source.shape == y.shape:
                        axis = self.axes.get(id(source), (None, None))[1]
                self.axes[id(y)] = (y, axis)

    def _channels(self, module: nn.Module, caller: nn.Module | None, x: Any) -> tuple[int, int]:
        if not isinstance(x, Tensor) or x.dim() < 2:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise _UnresolvedCall(
                f"a {type(module).__name__} called by {type(caller).__name__} got input "
                f"{got}; swap_activations needs a tensor of shape (N, C, ...) or (N, ..., C)"
            )
        axis = self.axes.get(id(x), (None, None))[1]
        if x.dim() == 2 or axis == -1:
            return x.shape[-1], -1
        return x.shape[1], 1


def _output_axis(module: nn.Module, y: Tensor) -> int | None:
    """The channel axis of ``y`` as returned by ``module``; None when the module's type says
    nothing about it (then it keeps the axis of the module's input)."""
    if isinstance(module, nn.Linear):
        return -1
    if isinstance(module, nn.LayerNorm):
        if type(module).forward is nn.LayerNorm.forward:
            return -1
        # Subclasses such as torchvision's LayerNorm2d permute to normalise channels-first
        # input; tell them apart by where the normalised size sits.
        c = module.normalized_shape[-1]
        return -1 if y.shape[-1] == c and (y.dim() < 3 or y.shape[1] != c) else 1
    if isinstance(module, (nn.modules.conv._ConvNd, nn.modules.batchnorm._NormBase,
                           nn.GroupNorm)):
        return 1
    return None


def _trace(model: nn.Module, sample: Tensor | tuple | dict, targets: set[nn.Module]) -> list[_Call]:
    tracer = _Tracer(targets)
    modes = {m: m.training for m in model.modules()}
    handles = []
    for m in model.modules():
        handles.append(m.register_forward_pre_hook(tracer.pre, with_kwargs=True))
        handles.append(m.register_forward_hook(tracer.post))
    try:
        model.eval()
        with torch.no_grad():
            try:
                if isinstance(sample, dict):
                    model(**sample)
                elif isinstance(sample, (tuple, list)):
                    model(*sample)
                else:
                    model(sample)
            except _UnresolvedCall:
                raise
            except Exception as e:  # the model rejected the sample
                raise _sample_error(model, sample, e) from e
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training
    return tracer.calls


def _sample_error(model: nn.Module, sample: Any, error: Exception) -> ValueError:
    advice = "Pass sample=<an input the model accepts>."
    if isinstance(sample, Tensor):  # what the first convolution takes, as the commands say
        return ValueError(f"{input_error(model, sample.shape, error, 'sample')}. {advice}")
    return ValueError(f"the tracing forward pass of {type(model).__name__} failed on a sample "
                      f"of type {type(sample).__name__}. {advice} ({error})")


def _resolve(
    model: nn.Module,
    slots: dict[tuple[int, str], _Slot],
    calls: list[_Call],
) -> dict[_Slot, list[tuple[int, int]]]:
    """The (channels, axis) of each call site of each selected slot, in call order."""
    names = {}
    for path, m in model.named_modules():
        names.setdefault(m, path or f"<{type(model).__name__}>")

    def who(module: nn.Module | None) -> str:
        if module is None:
            return "outside the model"
        return f"{names.get(module, '<outside the model>')!r} ({type(module).__name__})"

    by_target: dict[nn.Module, list[_Slot]] = {}
    for slot in slots.values():
        by_target.setdefault(slot.parent._modules[slot.name], []).append(slot)
    per_slot: dict[_Slot, dict[int, list[tuple[int, int]]]] = {}
    for call in calls:
        owners = [s for s in by_target[call.target] if s.parent is call.caller]
        if len(owners) != 1:
            paths = ", ".join(repr(p) for s in by_target[call.target] for p in s.paths)
            why = ("registered under several names in its caller" if owners
                   else f"called by {who(call.caller)}, which does not own it")
            raise RuntimeError(
                f"cannot tell the call sites of {paths} ({type(call.target).__name__}) apart: "
                f"it is {why}. Replacing it would leave some of its calls on the old module. "
                "Exclude it with exclude=..., or give each user its own module."
            )
        if owners[0].selected:
            per_slot.setdefault(owners[0], {}).setdefault(call.invocation, []).append(
                (call.channels, call.axis))

    sites: dict[_Slot, list[tuple[int, int]]] = {}
    uncalled = []
    for slot in slots.values():
        if not slot.selected:
            continue
        if slot not in per_slot:
            uncalled.append(slot.paths[0])
            continue
        sequences = list(per_slot[slot].values())
        if any(s != sequences[0] for s in sequences):
            raise RuntimeError(
                f"{slot.paths[0]!r} is called differently in different forwards of its parent "
                f"{who(slot.parent)} (calls as (channels, axis): {sequences}); its call sites "
                "cannot be given one activation each"
            )
        sites[slot] = sequences[0]
    if uncalled:
        raise RuntimeError(
            f"{', '.join(map(repr, uncalled))} never ran in the forward pass on the sample, "
            "so their channel counts are unknown. Pass a sample that reaches them, or "
            "leave them out with exclude=..."
        )
    return sites


def _build(act: str | type[nn.Module], channels: int, axis: int, kwargs: dict) -> nn.Module:
    if axis == -1:
        return create_channels_last_act(act, channels, **kwargs)
    return create_act(act, channels=channels, **kwargs)


def _placement(*modules: nn.Module) -> tuple[torch.device | None, torch.dtype | None]:
    """Device and floating dtype of the first parameter or buffer found in ``modules``."""
    for m in modules:
        for t in itertools.chain(m.parameters(), m.buffers()):
            return t.device, (t.dtype if t.is_floating_point() else None)
    return None, None


def _class_name(module: nn.Module) -> str:
    if isinstance(module, ChannelsLast):
        return f"ChannelsLast({type(module.act).__name__})"
    return type(module).__name__


def _install_hooks(sites: dict[_Slot, list[tuple[int, int]]]) -> None:
    by_parent: dict[nn.Module, list[str]] = {}
    for slot, specs in sites.items():
        if len(specs) > 1:
            by_parent.setdefault(slot.parent, []).append(slot.name)
    for parent, names in by_parent.items():
        # First among the parent's pre-hooks, so that a later one that raises still finds
        # the count started that the always-called forward hook ends.
        parent.register_forward_pre_hook(_ResetCallSites(names), prepend=True)
        parent.register_forward_hook(_CheckCallSites(names), always_call=True)
