"""``revact flops``: MACs of any model, activation maths included."""

from __future__ import annotations

import argparse
import sys

from revact.integrations.resolve import parse_input_size

_EPILOG = """\
examples:
  revact flops mobilenet_v2                          # torchvision, 3x224x224
  revact flops mobilenet_v2 --act dyrelu_b --table   # every ReLU6 swapped, per-module table
  revact flops mobilenet_v2 --act dyrelu_b:reduction=8
  revact flops timm:resnet18 --input 3,160,160
  revact flops mbv2 --input 1,28,28 --act acon_c      # a revact reference network
  revact flops yolov8n-dyrelu_b.yaml                 # Ultralytics YAML (shipped or a path) or .pt

MODEL is a revact model (revact.models.list_models()), a torchvision classification model
(torchvision.models.list_models()), timm:NAME, or an Ultralytics .yaml/.pt. Counts are MACs
per image; GFLOPs = 2 x MACs, the unit thop and Ultralytics print. The rules (which
element-wise maths each activation costs) are in revact.integrations.flops.
"""


def _in_channels(model) -> int:  # noqa: ANN001 - any nn.Module; torch imported on use
    from torch import nn

    conv = next((m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
    return conv.in_channels if conv is not None else 3


def _run(args: argparse.Namespace) -> int:
    import torch

    from revact.activations.create_act import parse_act_string
    from revact.integrations.flops import count_flops
    from revact.integrations.resolve import load_model
    from revact.integrations.swap import swap_activations

    try:
        model, side = load_model(args.model, in_chans=args.input[0] if args.input else None)
        size = args.input or (_in_channels(model), side, side)
        if args.act:
            name, kwargs = parse_act_string(args.act)
            swap_activations(model, name, sample=torch.zeros(1, *size), **kwargs)
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = count_flops(model, size)
    print(report.table() if args.table else report.summary())
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "flops",
        help="count a model's MACs with its activations' maths (thop counts them as zero)",
        description="MACs per image of a revact, torchvision, timm or Ultralytics model, "
        "counting every activation call's element-wise maths and hyper-function.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help="model name or Ultralytics .yaml/.pt")
    parser.add_argument("--input", metavar="C,H,W", type=parse_input_size,
                        help="per-image input shape (default: the first conv's channels at "
                             "224x224, 640x640 for Ultralytics)")
    parser.add_argument("--act", metavar="NAME[:key=value]",
                        help="swap every activation for this one first (revact.swap_activations)")
    parser.add_argument("--table", action="store_true", help="print the per-module breakdown")
    parser.set_defaults(func=_run)
