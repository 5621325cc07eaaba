"""``revact export``: a revact, RevCol or torchvision model to ONNX, checked in ONNX Runtime."""

from __future__ import annotations

import argparse
import sys

from revact.integrations.resolve import parse_input_size

_EPILOG = """\
examples:
  revact export resnet18 --act dyrelu_b --out r18_dyb.onnx
  revact export mobilenet_v2 --act acon_c --out mbv2_acon_c.onnx --opset 18
  revact export revcol_tiny --out revcol_tiny.onnx
  revact export mbv2 --input 1,28,28 --act meta_acon --out mbv2_meta_acon.onnx

MODEL is a revact model (revact.models.list_models(): mbv2, resnet20, revcol_tiny, ...) or a
torchvision model name (torchvision.models.list_models()), built with random weights; to
export trained weights, load them in Python and call revact.export_onnx. --act replaces the
model's activations with revact.swap_activations. The batch axis is dynamic; the file is run
in ONNX Runtime on a batch of 2 and compared with PyTorch (max abs difference <= 1e-4).
"""


def _run(args: argparse.Namespace) -> int:
    import torch

    from revact.integrations.onnx import export_onnx
    from revact.integrations.resolve import load_model
    from revact.integrations.swap import swap_activations

    sample = torch.randn(1, *args.input)
    try:
        model, _ = load_model(args.model, in_chans=args.input[0])
        if args.act:
            report = swap_activations(model, args.act, sample=sample)
            print(f"swapped {len(report)} activations for {args.act}")
        result = export_onnx(model, sample, args.out, opset=args.opset)
    except ValueError as e:  # a bad name, activation, input size or opset
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # ONNX Runtime disagrees with PyTorch
        print(f"error: {e}", file=sys.stderr)
        return 1
    size = result.path.stat().st_size / 2**20
    print(f"wrote {result.path} ({size:.1f} MiB, opset {result.opset}, input (batch, "
          f"{', '.join(map(str, args.input))}), dynamic batch)")
    print(f"ONNX Runtime check: batch {result.check_batch}, max abs difference to PyTorch "
          f"{result.max_abs_diff:.2e}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a model (optionally with swapped activations) to ONNX and check it",
        description="Export a model to ONNX in eval mode with a dynamic batch axis, then run "
        "the file in ONNX Runtime and compare with PyTorch.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help="revact or torchvision model name")
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.add_argument("--input", type=parse_input_size, default=(3, 224, 224),
                        help="input size without the batch, C,H,W (default: 3,224,224)")
    parser.add_argument("--act", help="swap the activations for this one first (revact list)")
    parser.add_argument("--opset", type=int, default=17,
                        help="ONNX opset, 17 to 20 (default: %(default)s)")
    parser.set_defaults(func=_run)
