"""RevCol in timm: ``timm.create_model('revcol_tiny', ...)`` once revact and timm are imported.

``import revact`` runs :func:`register` through
:func:`~revact.integrations._import_hook.call_after_import`: at once when timm is already
imported, otherwise right after it is, so ``import revact`` never imports timm itself
(unless ``REVACT_NO_IMPORT_HOOKS=1``: then call :func:`register` yourself). The
registered models are :class:`RevColTimm`, a :class:`~revact.revcol.RevCol` with timm's
model interface and the official checkpoint keys, so timm's features (``features_only``,
``pretrained``, ``pretrained_cfg_overlay=dict(file=...)``, ``num_classes`` changes,
``in_chans`` adaptation, ``checkpoint_path``) work on it.

Example::

    >>> import revact, timm
    >>> timm.list_models("revcol*")
    ['revcol_base', 'revcol_large', 'revcol_small', 'revcol_tiny', 'revcol_xlarge']
    >>> backbone = timm.create_model("revcol_tiny", features_only=True, out_indices=(1, 2, 3))
    >>> backbone.feature_info.channels(), backbone.feature_info.reduction()
    ([128, 256, 512], [8, 16, 32])
    >>> model = timm.create_model(  # an official release file, {"model": state_dict}
    ...     "revcol_tiny", pretrained=True, pretrained_cfg_overlay=dict(file="revcol_tiny_1k.pth"))
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from revact.revcol import VARIANTS, RevCol

__all__ = ["RevColTimm", "checkpoint_filter_fn", "register"]

_NUM_LEVELS = 4
_GITHUB = "https://github.com/megvii-research/RevCol/releases/download/checkpoint/"


def _cfg(url: str = "", **kwargs: Any) -> dict[str, Any]:
    # ConvNeXt's evaluation settings, which the official RevCol code inherits.
    return dict(
        url=url, num_classes=1000, input_size=(3, 224, 224), pool_size=(7, 7), crop_pct=0.875,
        interpolation="bicubic", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
        first_conv="stem.0", classifier="cls.classifier.1", license="apache-2.0",
        paper_ids="arXiv:2212.11696",
    ) | kwargs


def _cfg_384(url: str) -> dict[str, Any]:
    return _cfg(url, input_size=(3, 384, 384), pool_size=(12, 12), crop_pct=1.0)


#: Pretrained configs as ``'arch.tag'``: the official release's weights (RevCol-XL was not
#: released); the first tag with weights is each model's default.
_CFGS: dict[str, dict[str, Any]] = {
    "revcol_tiny.in1k": _cfg(_GITHUB + "revcol_tiny_1k.pth"),
    "revcol_small.in1k": _cfg(_GITHUB + "revcol_small_1k.pth"),
    "revcol_base.in22k_ft_in1k": _cfg(_GITHUB + "revcol_base_22k_1kft_224.pth"),
    "revcol_base.in22k_ft_in1k_384": _cfg_384(_GITHUB + "revcol_base_22k_1kft_384.pth"),
    "revcol_base.in1k": _cfg(_GITHUB + "revcol_base_1k.pth"),
    "revcol_large.in22k_ft_in1k": _cfg(_GITHUB + "revcol_large_22k_1kft_224.pth"),
    "revcol_large.in22k_ft_in1k_384": _cfg_384(_GITHUB + "revcol_large_22k_1kft_384.pth"),
    "revcol_xlarge": _cfg(),
}
#: What timm's ``register_model`` reads from an entrypoint's module; set by :func:`register`.
default_cfgs: dict[str, Any] = {}


def _take_indices(indices: int | Sequence[int] | None) -> list[int]:
    """Levels to return, as timm reads ``indices``: None → all, n → the last n, else a list
    (negative entries count from the end)."""
    if indices is None:
        return list(range(_NUM_LEVELS))
    if isinstance(indices, int):
        if not 0 < indices <= _NUM_LEVELS:
            raise ValueError(f"cannot take the last {indices} of {_NUM_LEVELS} levels")
        return list(range(_NUM_LEVELS - indices, _NUM_LEVELS))
    taken = [operator.index(i) % _NUM_LEVELS if -_NUM_LEVELS <= i < _NUM_LEVELS else None
             for i in indices]
    if not taken or None in taken:
        raise ValueError(f"indices must be levels in -{_NUM_LEVELS}..{_NUM_LEVELS - 1}, "
                         f"got {indices!r}")
    return taken


class RevColTimm(RevCol):
    r""":class:`~revact.revcol.RevCol` with timm's model interface; same modules, same keys.

    Adds ``forward_intermediates``, ``prune_intermediate_layers``, ``forward_head``,
    ``get_classifier`` and ``reset_classifier``, and accepts timm's argument names:
    ``num_classes=0`` (the head keeps its LayerNorm and returns pooled features, as timm's
    ConvNeXt does), ``drop_path_rate`` (for ``drop_path``) and ``drop_rate`` (must be 0: the
    RevCol head has no dropout). :meth:`forward_features` keeps RevCol's meaning: the four maps
    of the last column.

    Args:
        *args, **kwargs: as :class:`~revact.revcol.RevCol`.

    Example::

        >>> model = RevColTimm((8, 16, 32, 64), (1, 1, 1, 1), 2, num_classes=0)
        >>> final, maps = model.forward_intermediates(torch.randn(1, 3, 64, 64), indices=2)
        >>> [m.shape[1] for m in maps], model.forward_head(final).shape
        ([32, 64], torch.Size([1, 64]))
    """

    def __init__(self, *args: Any, num_classes: int = 1000, drop_path_rate: float | None = None,
                 drop_rate: float = 0.0, **kwargs: Any) -> None:
        if drop_rate:
            raise ValueError(f"RevCol's head has no dropout; got drop_rate={drop_rate}")
        if drop_path_rate is not None:
            kwargs["drop_path"] = drop_path_rate
        # RevCol wants at least one class; timm's num_classes=0 means "no Linear".
        super().__init__(*args, num_classes=max(num_classes, 1), **kwargs)
        if num_classes == 0 and not self.features_only:
            self.reset_classifier(0)

    def get_classifier(self) -> nn.Module:
        """The final classifier's Linear (``nn.Identity`` with ``num_classes=0``)."""
        return self._heads()[-1].classifier[1]

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """New Linear layer(s) for ``num_classes`` classes (0: none) in every head.

        Args:
            num_classes: classes of the new head(s).
            global_pool: only ``None`` or ``'avg'``: RevCol's head always average-pools.
        """
        if global_pool not in (None, "avg"):
            raise ValueError(f"RevCol's head only average-pools; got global_pool={global_pool!r}")
        heads = self._heads()
        if not heads:
            raise RuntimeError("the head was pruned (features only)")
        for head in heads:
            head.classifier[1] = (nn.Linear(self.num_features, num_classes) if num_classes > 0
                                  else nn.Identity())
            if num_classes > 0:
                self._init_weights(head.classifier[1])
        self.num_classes = num_classes

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Logits of the stride-32 map ``x`` (pooled, normalised features with
        ``pre_logits``)."""
        norm, fc = self._heads()[-1].classifier
        x = norm(x.mean((-2, -1)))
        return x if pre_logits else fc(x)

    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """The last column's maps at the chosen levels (strides 4, 8, 16, 32), as timm asks.

        Args:
            x: input images.
            indices: levels: None (all), n (the last n) or a list.
            norm: unused; RevCol has no final norm on its maps.
            stop_early: unused; every level of the last column depends on every column.
            output_fmt: only ``'NCHW'``.
            intermediates_only: return only the maps, not ``(stride-32 map, maps)``.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"RevCol outputs NCHW maps only, got output_fmt={output_fmt!r}")
        feats = self.forward_features(x)
        intermediates = [feats[i] for i in _take_indices(indices)]
        return intermediates if intermediates_only else (feats[-1], intermediates)

    def prune_intermediate_layers(
        self, indices: int | Sequence[int] = 1, prune_norm: bool = False,
        prune_head: bool = True,
    ) -> list[int]:
        """Drop the classifier head(s) and decoders when only maps are wanted; returns the
        levels as absolute indices. No column can go: the last one reads them all."""
        taken = _take_indices(indices)
        if prune_head:
            for name in ("cls", "cls_blocks", "decoder_blocks"):
                if hasattr(self, name):
                    delattr(self, name)
            # forward() then returns the kept levels, as RevCol(features_only=True) does.
            self.num_classes, self.inter_supv = 0, False
            self.features_only, self.out_indices = True, tuple(taken)
        return taken


def checkpoint_filter_fn(state_dict: dict[str, Any], model: nn.Module) -> dict[str, Tensor]:
    """An official RevCol checkpoint as ``model``'s state dict.

    Unwraps ``{"model": state_dict}`` (the release format; timm only unwraps it for files),
    and when ``model`` has a single head but the checkpoint was trained with intermediate
    supervision, takes its final head (``cls_blocks.3``) as ``cls`` and leaves out the other
    heads and the reconstruction decoders.
    """
    state_dict = state_dict.get("model", state_dict)
    if "cls_blocks.3.classifier.1.weight" not in state_dict or hasattr(model, "cls_blocks"):
        return state_dict
    out = {}
    for key, value in state_dict.items():
        if key.startswith("cls_blocks.3."):
            out["cls." + key.removeprefix("cls_blocks.3.")] = value
        elif not key.startswith(("cls_blocks.", "decoder_blocks.")):
            out[key] = value
    return out


def _create(variant: str, pretrained: bool = False, **kwargs: Any) -> RevColTimm:
    from timm.models import build_model_with_cfg

    return build_model_with_cfg(
        RevColTimm, f"revcol_{variant}", pretrained, pretrained_filter_fn=checkpoint_filter_fn,
        # The levels are not children in call order, so timm must ask the model for them.
        feature_cfg=dict(feature_cls="getter", out_indices=tuple(range(_NUM_LEVELS))),
        **VARIANTS[variant].arguments(**kwargs),
    )


def _entrypoint(variant: str) -> Callable[..., RevColTimm]:
    size = VARIANTS[variant]

    def entrypoint(pretrained: bool = False, **kwargs: Any) -> RevColTimm:
        return _create(variant, pretrained, **kwargs)

    # timm registers an entrypoint under its __name__, and reads configs of its __module__.
    entrypoint.__name__ = entrypoint.__qualname__ = f"revcol_{variant}"
    entrypoint.__doc__ = (
        f"RevCol-{variant}: channels {size.channels}, blocks {size.layers}, {size.columns} "
        f"columns; {size.params_m}M params. For ``timm.create_model``; see :class:`RevColTimm`."
    )
    return entrypoint


def register() -> None:
    """Register ``revcol_tiny`` … ``revcol_xlarge`` and their pretrained tags with timm.

    Imports timm. Safe to call more than once; does nothing if timm already knows
    ``revcol_tiny`` (registered earlier, or shipped by a later timm).
    """
    from timm.models import generate_default_cfgs, is_model, register_model

    if is_model("revcol_tiny"):
        return
    default_cfgs.update(generate_default_cfgs(_CFGS))
    for variant in VARIANTS:
        register_model(_entrypoint(variant))

