"""One model name → an untrained model, for the commands that take any model."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported on use: `revact --help` answers without it
    from torch import nn

__all__ = ["MODEL_SPEC_HELP", "load_model", "parse_input_size"]

MODEL_SPEC_HELP = ("a revact model (revact.models.list_models()), a torchvision model "
                   "(torchvision.models.list_models()), timm:NAME, or an Ultralytics .yaml/.pt")


def load_model(spec: str, in_chans: int | None = None) -> tuple[nn.Module, int]:
    """Build ``spec`` (see :data:`MODEL_SPEC_HELP`) untrained; also its usual image side.

    Args:
        spec: the model's name or file.
        in_chans: input channels for revact's own models (which take ``in_chans``); the
            others keep their own.

    Raises:
        ValueError: an unknown name.
    """
    if spec.endswith((".yaml", ".yml", ".pt")):
        # As `revact yolo` does: no update checks, analytics or pip installs.
        os.environ.setdefault("YOLO_OFFLINE", "1")
        os.environ.setdefault("YOLO_AUTOINSTALL", "False")
        from ultralytics import YOLO

        from revact.integrations.ultralytics import model_cfg

        return YOLO(model_cfg(spec)).model, 640
    if spec.startswith("timm:"):
        import timm

        return timm.create_model(spec[len("timm:"):], pretrained=False), 224
    from revact.models import create_model, list_models

    if spec.strip().lower().replace("-", "_") in list_models():
        return create_model(spec, **({} if in_chans is None else {"in_chans": in_chans})), 224
    import torchvision

    if spec in torchvision.models.list_models():
        return torchvision.models.get_model(spec, weights=None), 224
    raise ValueError(f"unknown model {spec!r}: not {MODEL_SPEC_HELP}")


def parse_input_size(text: str) -> tuple[int, ...]:
    """``--input C,H,W`` (an argparse ``type``): positive sizes without the batch."""
    try:
        shape = tuple(int(s) for s in text.split(","))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected sizes without the batch, e.g. 3,224,224; "
                                         f"got {text!r}")
    return shape
