"""One model name → an untrained model, and what input it takes, for the commands that take
any model (``revact flops``, ``revact export``)."""

from __future__ import annotations

import argparse
import difflib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported on use: `revact --help` answers without it
    from torch import nn

__all__ = ["MODEL_SPEC_HELP", "check_input_size", "first_conv", "input_error", "load_model",
           "pad_small_inputs", "parse_input_size"]

MODEL_SPEC_HELP = ("a revact model (revact.models.list_models()), a torchvision model "
                   "(torchvision.models.list_models()), timm:NAME, or an Ultralytics .yaml/.pt")


def load_model(spec: str, in_chans: int | None = None) -> tuple[nn.Module, int]:
    """Build ``spec`` (see :data:`MODEL_SPEC_HELP`) untrained; also its usual image side.

    Args:
        spec: the model's name or file.
        in_chans: input channels for revact's own models (which take ``in_chans``); the
            others keep their own.

    Raises:
        ValueError: an unknown name, a missing file, or a scale letter the YAML lacks.
    """
    if spec.endswith((".yaml", ".yml", ".pt")):
        return _load_ultralytics(spec), 640
    if spec.startswith("timm:"):
        import timm

        from revact.integrations.timm import register

        register()  # also under REVACT_NO_IMPORT_HOOKS=1: timm:revcol_tiny works

        name = spec[len("timm:"):]
        if not timm.is_model(name):
            close = difflib.get_close_matches(name, timm.list_models(), n=3)
            hint = f"; did you mean {', '.join('timm:' + c for c in close)}?" if close else ""
            raise ValueError(f"unknown timm model {name!r} (timm.list_models() names "
                             f"them){hint}")
        return timm.create_model(name, pretrained=False), 224
    from revact._names import normalise_name
    from revact.models import create_model, list_models

    if normalise_name(spec) in list_models():
        return create_model(spec, **({} if in_chans is None else {"in_chans": in_chans})), 224
    import torchvision

    if spec in torchvision.models.list_models():
        return torchvision.models.get_model(spec, weights=None), 224
    raise ValueError(f"unknown model {spec!r}: not {MODEL_SPEC_HELP}")


def _load_ultralytics(spec: str) -> nn.Module:
    # As `revact yolo` does: no update checks, analytics or pip installs.
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    from ultralytics import YOLO

    from revact.integrations.ultralytics import model_cfg, register

    register()  # revact's YAML names, also under REVACT_NO_IMPORT_HOOKS=1
    path = model_cfg(spec)
    try:
        if spec.endswith((".yaml", ".yml")):
            _check_scale(path)
        return YOLO(path).model
    except FileNotFoundError as e:  # `revact yolo`'s message, and where the shipped ones are
        raise ValueError(f"{e} (`revact yolo models` lists the YAMLs revact ships)") from None


def _check_scale(path: str) -> None:
    """A YAML's scale letter (yolov8l-...) must be one of its ``scales:``; Ultralytics
    itself fails with ``KeyError: 'l'``."""
    from ultralytics.nn.tasks import guess_model_scale, yaml_model_load

    cfg = yaml_model_load(path)  # FileNotFoundError for a missing file
    scale, scales = guess_model_scale(path), cfg.get("scales")
    if scale and scales and scale not in scales:
        raise ValueError(f"{os.path.basename(path)}: scale {scale!r} is not in the YAML's "
                         f"scales ({', '.join(scales)})")


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


def first_conv(model: nn.Module) -> nn.Module | None:
    """The model's first convolution in registration order (usually its stem), or None."""
    from torch import nn

    return next((m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)


def check_input_size(model: nn.Module, size: Sequence[int], flag: str = "--input") -> None:
    """A command's per-image input shape against the model's first convolution.

    Raises:
        ValueError: ``size`` has the batch axis, too few or too many sizes, or other
            channels than that convolution takes.
    """
    conv = first_conv(model)
    if conv is None:
        return
    given = ",".join(map(str, size))
    spatial = conv.weight.dim() - 2
    example = ",".join([str(conv.in_channels), *("224" for _ in range(spatial))])
    if len(size) == spatial + 2 and size[0] == 1:
        raise ValueError(f"{flag} is one image's shape without the batch axis, e.g. "
                         f"{example}; got {given}")
    if len(size) != spatial + 1:
        raise ValueError(f"{flag} needs {spatial + 1} sizes for this model (C and "
                         f"{spatial}-D, e.g. {example}), got {given}")
    if size[0] != conv.in_channels:
        raise ValueError(f"{flag}: this model takes {conv.in_channels} input channels, got "
                         f"{size[0]} ({given})")


def input_error(model: nn.Module, shape: Sequence[int], error: BaseException,
                given: str) -> ValueError:
    """A one-line ValueError for a forward pass of ``model`` that failed on ``shape``.

    Args:
        model: the model that failed.
        shape: the shape of the batch it ran on.
        error: what the forward pass raised; the first line of its message ends the result.
        given: what the caller gave, as the caller wrote it (``input_size=(3, 224)``,
            ``--input 3,224``).

    When ``shape`` disagrees with the first convolution (most often a missing or an extra
    batch axis, or the channels), the message says what that convolution takes.
    """
    shape = tuple(int(s) for s in shape)
    msg = f"{type(model).__name__} failed on a batch of shape {shape} from {given}"
    conv = first_conv(model)
    if conv is not None:
        spatial = conv.weight.dim() - 2
        want = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}.get(spatial, "")
        if len(shape) != spatial + 2:
            msg += (f": its first convolution ({type(conv).__name__}) takes {spatial + 2}-D "
                    f"batches {want}, i.e. {spatial + 1} sizes per image; got "
                    f"{len(shape) - 1}")
        elif shape[1] != conv.in_channels:
            msg += (f": its first convolution takes {conv.in_channels} input channels, "
                    f"got {shape[1]}")
    lines = str(error).strip().splitlines()
    return ValueError(f"{msg} ({type(error).__name__}: {lines[0] if lines else ''})")


def pad_small_inputs(model: nn.Module, size: Sequence[int], pad: bool) -> None:
    """``--pad-small-inputs`` of the commands: RevCol zero-pads inputs under 32 pixels.

    Raises:
        ValueError: ``pad`` for a model without RevCol, or an input under 32 pixels on a
            side for a RevCol model without ``pad``.
    """
    from revact.revcol.model import MIN_INPUT_SIZE, RevCol

    revcols = [m for m in model.modules() if isinstance(m, RevCol)]
    if pad:
        if not revcols:
            raise ValueError("--pad-small-inputs applies to RevCol models only")
        for m in revcols:
            m.pad_small_inputs = True
        return
    small = len(size) >= 3 and min(size[-2:]) < MIN_INPUT_SIZE
    if small and any(not m.pad_small_inputs for m in revcols):
        raise ValueError(f"RevCol needs inputs of at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} "
                         f"pixels (stride 32), got {'x'.join(map(str, size[-2:]))}; pass "
                         f"--pad-small-inputs to zero-pad smaller ones")

