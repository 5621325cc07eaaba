"""``revact yolo``: Ultralytics' train / val / predict / export with revact registered."""

from __future__ import annotations

import argparse
import difflib
import os
import sys

MODES = ("train", "val", "predict", "export")

_EPILOG = """\
examples:
  revact detdata --out data/fmnist-det                     # a small detection set
  revact yolo train model=yolov8n-dyrelu_b.yaml data=data/fmnist-det/data.yaml imgsz=160 epochs=10
  revact yolo train model=yolov8n-revcol_t.yaml data=data/fmnist-det/data.yaml imgsz=160
  revact yolo val model=runs/detect/train/weights/best.pt data=data/fmnist-det/data.yaml
  revact yolo predict model=runs/detect/train/weights/best.pt source=image.png
  revact yolo export model=runs/detect/train/weights/best.pt format=onnx dynamic=True
  revact yolo models                                      # the model YAMLs revact ships

Arguments are Ultralytics' own (key=value, as for its `yolo` command); `model=` is required.
A shipped YAML is found by name, with Ultralytics' scale letter (yolov8n-acon_c.yaml is
yolov8-acon_c.yaml at scale n). Detection training uses revact's DetectionTrainer: no weight
decay on activation parameters, and activations swapped into a loaded model are kept.
Offline by default: YOLO_OFFLINE=1 and YOLO_AUTOINSTALL=False unless set, and Ultralytics'
dataset check finds a local stand-in font instead of fetching Arial.ttf. Export defaults to
simplify=False (the simplifier needs a package offline installs lack).
"""


# Printed on stderr after `revact yolo models`' list. The RevCol figures were measured with
# `revact flops yolov8n-revcol_t.yaml` (3x640x640, activation maths counted) and the
# parameter count of the model it builds (80 classes).
MODELS_NOTE = """\
Add Ultralytics' scale letter (n, s, m, l or x) after the version: yolov8n-acon_c.yaml,
yolo11s-dyrelu_b.yaml, yolov5n-revcol_t.yaml (without one, Ultralytics warns and takes n).
In the RevCol YAMLs (*-revcol_t, *-revcol_s) the letter scales only the neck and head: the
backbone is RevCol-T/S at its published size, so yolov8n-revcol_t.yaml is already 32.2M
parameters and 81.3 GFLOPs at 640 px (`revact flops yolov8n-revcol_t.yaml`)."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "yolo",
        help="Ultralytics YOLO train/val/predict/export with revact's layers and model YAMLs",
        description="Run Ultralytics YOLO with revact registered, so model YAMLs and "
        "checkpoints that use revact's activations or the RevCol backbone work.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("mode", choices=(*MODES, "models"), help="what to run")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="Ultralytics arguments, e.g. model=yolov8n-dyrelu_b.yaml epochs=10")
    p.set_defaults(func=_run)


class UsageError(ValueError):
    """A bad command line: reported in one line, exit status 2."""


def parse_overrides(pairs: list[str]) -> dict:
    """``key=value`` strings → Ultralytics arguments, with its value parsing and key check."""
    from ultralytics.cfg import DEFAULT_CFG_DICT, check_cfg, smart_value

    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise UsageError(f"expected key=value, got {pair!r}")
        if key not in DEFAULT_CFG_DICT:
            close = difflib.get_close_matches(key, DEFAULT_CFG_DICT, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise UsageError(f"{key!r} is not an Ultralytics argument.{hint}")
        overrides[key] = value if key in {"name", "project"} else smart_value(value)
    try:
        check_cfg(dict(overrides))  # value types and ranges, e.g. epochs=abc, fraction=2
    except (TypeError, ValueError) as e:
        raise UsageError(str(e)) from None
    return overrides


def prepare_offline() -> None:
    """Keep Ultralytics from reaching the network, unless the user's environment says so.

    Its dataset check looks for ``Arial.ttf`` in its config folder and otherwise asks the
    network for it (a 3 s attempt per process even with ``YOLO_OFFLINE=1``); a copy of
    matplotlib's DejaVu Sans under that name stands in for it.
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    import shutil
    from pathlib import Path

    import matplotlib
    from ultralytics.utils import USER_CONFIG_DIR

    font = Path(USER_CONFIG_DIR) / "Arial.ttf"
    if not font.exists():
        font.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf", font)


def _is_yaml(path: str) -> bool:
    return path.lower().endswith((".yaml", ".yml"))


def check_overrides(mode: str, overrides: dict) -> None:
    """Refuse, before Ultralytics starts, what it would answer with a traceback or a download.

    Ultralytics resolves a missing file by fetching it (offline: a traceback after a
    network attempt), takes ``imgsz=abc`` as a string until the data loader fails, and
    falls back to the coco8 download when ``val`` has no ``data=``.

    Raises:
        UsageError: the message names the argument, what it needs and what was given.
    """
    import revact.integrations.ultralytics as yolo_integration

    model = str(overrides.get("model", ""))
    if not model:
        shipped = ", ".join(yolo_integration.list_cfgs())
        raise UsageError(f"model= is required: a .pt checkpoint, a model YAML, or one of {shipped}")
    if os.path.exists(model) and not (model.endswith(".pt") or _is_yaml(model)):
        raise UsageError(f"model={model} is neither a .pt checkpoint nor a model YAML")
    if model.endswith(".pt") and not os.path.isfile(model):
        raise UsageError(f"model={model}: no such checkpoint (offline, nothing is downloaded)")
    data = overrides.get("data")
    if data is not None:
        data = str(data)
        if not _is_yaml(data) and mode in ("train", "val"):
            raise UsageError(f"data={data} is not a dataset YAML (write one with revact detdata)")
        if _is_yaml(data) and not os.path.isfile(data):
            raise UsageError(f"data={data}: no such file (offline, Ultralytics' named datasets "
                             "are not downloaded; give a local dataset YAML, e.g. from "
                             "revact detdata)")
    elif mode == "val" and not overrides.get("resume"):
        raise UsageError("val needs data=PATH.yaml: offline, Ultralytics' fallback (coco8) "
                         "cannot be downloaded")
    imgsz = overrides.get("imgsz")
    if imgsz is not None:
        sizes = imgsz if isinstance(imgsz, list | tuple) else [imgsz]
        if not sizes or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                for v in sizes):
            raise UsageError(f"imgsz= takes a positive integer (or [h, w]), got {imgsz!r}")
    _check_device(overrides.get("device"))
    if mode == "export" and "format" in overrides:
        from ultralytics.engine.exporter import export_formats

        formats = [f for f in export_formats()["Argument"] if f != "-"]
        if str(overrides["format"]) not in formats:
            raise UsageError(f"format={overrides['format']} is not an export format; "
                             f"choose one of {', '.join(formats)}")
    if overrides.get("resume") and model.endswith(".pt"):
        _check_resumable(model)


def _check_device(device: object) -> None:
    """``device=cuda``/``0``/``0,1`` need CUDA; say so instead of Ultralytics' traceback."""
    if device is None:
        return
    text = str(device).lower().replace(" ", "")
    if text in ("cpu", "mps", ""):
        return
    import torch

    wants_cuda = text.startswith("cuda") or all(p.isdigit() for p in text.split(","))
    if wants_cuda and not torch.cuda.is_available():
        raise UsageError(f"device={device} needs CUDA, which this torch cannot use here "
                         "(torch.cuda.is_available() is False); use device=cpu")


def _check_resumable(path: str) -> None:
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one line
        raise UsageError(
            f"model={path} is not a loadable checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("epoch", -1) < 0 or ckpt.get("optimizer") is None:
        raise UsageError(f"model={path} is a finished run (or has no optimizer state): nothing "
                         "to resume. Start a new training from it without resume=True")


def run(mode: str, overrides: dict) -> object:
    """Run one Ultralytics mode on ``overrides``; returns what Ultralytics returns."""
    from ultralytics import YOLO

    import revact.integrations.ultralytics as yolo_integration

    yolo_integration.register()
    check_overrides(mode, overrides)
    model = YOLO(yolo_integration.model_cfg(overrides.pop("model")))
    if mode == "train":
        if model.task == "detect":
            overrides.setdefault("trainer", yolo_integration.DetectionTrainer)
        return model.train(**overrides)
    if mode == "export":
        overrides.setdefault("simplify", False)
    return getattr(model, mode)(**overrides)


def _run(args: argparse.Namespace) -> int:
    if args.mode == "models":
        from revact.integrations.ultralytics import list_cfgs

        print("\n".join(list_cfgs()))  # stdout: the names alone, one a line (for scripts)
        print(MODELS_NOTE, file=sys.stderr)
        return 0
    try:
        prepare_offline()
        run(args.mode, parse_overrides(args.overrides))
    except (UsageError, FileNotFoundError) as e:
        print(f"revact yolo {args.mode}: error: {e}", file=sys.stderr)
        return 2
    except (RuntimeError, TypeError, ValueError, KeyError) as e:
        # What Ultralytics raises for input it cannot use (a corrupt checkpoint, a dataset
        # YAML without the keys it needs, ...): its message, in one line.
        if os.environ.get("REVACT_DEBUG"):
            raise
        print(f"revact yolo {args.mode}: error: {_one_line(e)} (REVACT_DEBUG=1 shows the "
              "traceback)", file=sys.stderr)
        return 1
    return 0


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    text = "".join(ch for ch in text if ord(ch) < 0x2000)  # Ultralytics' emoji markers
    return f"{type(e).__name__}: {text.strip()}" if text.strip() else type(e).__name__
