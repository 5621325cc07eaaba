"""Ultralytics' detection trainer, keeping revact's modules and their optimizer settings.

Pass it as ``YOLO(...).train(trainer=DetectionTrainer, ...)``; ``revact yolo train`` does.
Its module path is importable, so DDP workers (which unpickle the trainer class) import
revact, and with it the YAML names.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from ultralytics.models.yolo.detect import DetectionTrainer as _UltralyticsDetectionTrainer
from ultralytics.utils import LOGGER, colorstr

from revact.integrations.ultralytics import count_revact_modules
from revact.integrations.ultralytics.source_model import source_model
from revact.optim import decays

__all__ = ["DetectionTrainer", "describe_groups", "exempt_from_weight_decay"]


def exempt_from_weight_decay(optimizer: torch.optim.Optimizer, model: nn.Module) -> int:
    """Move every parameter that should not be decayed out of the decayed groups.

    Ultralytics decays any parameter that is neither a bias nor a norm weight, so ACON's
    ``p1``/``p2``/``β`` (shape ``(1, C, 1, 1)``), Swish's β and RevCol's α and layer scales
    land in the decayed group, and with MuSGD in the Muon group, which orthogonalises them
    as if they were conv filters. :func:`revact.optim.decays` is the rule, as for
    :func:`revact.param_groups`. The moved parameters get a group of their own next to the
    one they left, with the same settings and ``weight_decay=0``.

    Returns:
        The number of parameters moved.
    """
    exempt = {id(p) for name, p in model.named_parameters() if not decays(name, p)}
    moved_total = 0
    for group in list(optimizer.param_groups):
        if group["weight_decay"] == 0 and not group.get("use_muon", False):
            continue
        moved = [p for p in group["params"] if id(p) in exempt]
        if not moved:
            continue
        group["params"] = [p for p in group["params"] if id(p) not in exempt]
        settings = {k: v for k, v in group.items() if k != "params"}
        settings.update(weight_decay=0.0, param_group="activation")
        if "use_muon" in settings:
            settings["use_muon"] = False
        optimizer.add_param_group({"params": moved, **settings})
        moved_total += len(moved)
    return moved_total


def describe_groups(optimizer: torch.optim.Optimizer) -> str:
    """The optimizer's parameter groups in Ultralytics' log style, one entry per non-empty
    group: ``SGD with parameter groups 64 weight(lr=0.01, decay=0.0005), 57 bn(lr=0.01,
    decay=0.0), ...`` (the count is of parameter tensors, as Ultralytics counts them)."""
    parts = []
    for group in optimizer.param_groups:
        if not group["params"]:
            continue
        muon = ", muon" if group.get("use_muon") else ""
        parts.append(f"{len(group['params'])} {group.get('param_group', 'group')}"
                     f"(lr={group['lr']:.6g}, decay={float(group['weight_decay'])}{muon})")
    return f"{type(optimizer).__name__} with parameter groups {', '.join(parts)}"


class DetectionTrainer(_UltralyticsDetectionTrainer):
    """Ultralytics' ``DetectionTrainer`` that keeps revact modules and their settings.

    - ``build_optimizer``: no weight decay on activation parameters (see
      :func:`exempt_from_weight_decay`).
    - ``get_model``: when the model ``YOLO.train()`` is called on (loaded from a checkpoint,
      or built from a YAML) has revact modules its YAML does not describe (they were
      swapped in after building, e.g. with :func:`revact.swap_activations`), Ultralytics'
      rebuild-from-YAML would silently turn them back into SiLU; this trainer trains that
      model itself.
    """

    def build_optimizer(self, model, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        optimizer = super().build_optimizer(model, *args, **kwargs)
        moved = exempt_from_weight_decay(optimizer, model)
        if moved:
            # Ultralytics has just printed its groups; these are the ones that train.
            LOGGER.info(f"{colorstr('optimizer:')} revact moved {moved} activation/shape "
                        f"parameters to weight_decay=0.0; {describe_groups(optimizer)}")
        return optimizer

    def get_model(self, cfg=None, weights=None, verbose=True):  # noqa: ANN001
        model = super().get_model(cfg=cfg, weights=weights, verbose=verbose)
        if not isinstance(weights, nn.Module):
            # Built from a YAML path: Ultralytics does not pass the model train() was
            # called on, which may hold swapped activations (source_model finds it).
            weights = source_model(self)
        if weights is None or count_revact_modules(model) == count_revact_modules(weights):
            return model
        classes = getattr(weights, "nc", None) or weights.yaml.get("nc")
        if classes != self.data["nc"]:
            raise ValueError(
                f"the model to train has revact modules its YAML does not describe, and "
                f"{classes} classes where the data has {self.data['nc']}: it cannot be "
                "rebuilt for them without losing those modules. Put the activation in the "
                "model YAML (activation: ChannelAct(...)), or build the model with the data's "
                "class count (nc: in the YAML) before swapping."
            )
        LOGGER.info(
            "revact: training the loaded model itself (its revact modules "
            f"{dict(count_revact_modules(weights))} are not in its YAML)"
        )
        kept = copy.deepcopy(weights).float()
        for p in kept.parameters():
            p.requires_grad_(True)
        return kept
