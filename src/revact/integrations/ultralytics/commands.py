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


def run(mode: str, overrides: dict) -> object:
    """Run one Ultralytics mode on ``overrides``; returns what Ultralytics returns."""
    from ultralytics import YOLO

    import revact.integrations.ultralytics as yolo_integration

    yolo_integration.register()
    if "model" not in overrides:
        shipped = ", ".join(yolo_integration.list_cfgs())
        raise UsageError(f"model= is required: a .pt checkpoint, a model YAML, or one of {shipped}")
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

        print("\n".join(list_cfgs()))
        return 0
    try:
        prepare_offline()
        run(args.mode, parse_overrides(args.overrides))
    except (UsageError, FileNotFoundError) as e:
        print(f"revact yolo {args.mode}: error: {e}", file=sys.stderr)
        return 2
    return 0
