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
  revact flops revcol_tiny --input 3,28,28 --pad-small-inputs

MODEL is a revact model (revact.models.list_models()), a torchvision classification model
(torchvision.models.list_models()), timm:NAME, or an Ultralytics .yaml/.pt (a shipped YAML
takes the scale letters n, s, m, l, x: yolov8l-revcol_t.yaml). --input is one image's shape
without the batch axis, as many sizes as the model's first convolution takes (C,H,W for
2-D ones); RevCol needs 32x32 or more unless --pad-small-inputs. Counts are MACs per image;
GFLOPs = 2 x MACs, the unit thop and Ultralytics print. The rules (which element-wise maths
each activation costs) are in revact.integrations.flops.
"""


def _run(args: argparse.Namespace) -> int:
    import torch

    from revact.activations.create_act import parse_act_string
    from revact.integrations.flops import count_flops
    from revact.integrations.resolve import (
        check_input_size,
        first_conv,
        load_model,
        pad_small_inputs,
    )
    from revact.integrations.swap import swap_activations

    try:
        model, side = load_model(args.model, in_chans=args.input[0] if args.input else None)
        if args.input:
            size = args.input
            check_input_size(model, size)
        else:
            conv = first_conv(model)
            size = (conv.in_channels if conv is not None else 3, side, side)
        pad_small_inputs(model, size, args.pad_small_inputs)
        if args.act:
            name, kwargs = parse_act_string(args.act)
            swap_activations(model, name, sample=torch.zeros(1, *size), **kwargs)
        report = count_flops(model, size)
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
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
    parser.add_argument("--pad-small-inputs", action="store_true",
                        help="RevCol models: zero-pad inputs under 32x32 to 32 (RevCol's "
                             "pad_small_inputs=True) instead of refusing them")
    parser.set_defaults(func=_run)
