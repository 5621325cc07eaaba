"""``revact export``: a revact, torchvision, timm or Ultralytics model to ONNX, checked in ONNX
Runtime."""

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
  revact export revcol_nano --input 1,28,28 --out revcol_nano.onnx
  revact export timm:resnet18 --act acon_c --out timm_r18_acon_c.onnx
  revact export yolov8n-dyrelu_b.yaml --input 3,640,640 --out yolov8n_dyrelu_b.onnx

MODEL is a revact model (revact.models.list_models(): mbv2, resnet20, revcol_tiny, ...), a
torchvision model name (torchvision.models.list_models()), timm:NAME (timm.list_models()),
or an Ultralytics model YAML (a shipped one by name, with a scale letter n, s, m, l or x:
`revact yolo models` lists them; or a path) or .pt, built with random weights (a .pt keeps
its own); to export trained weights, load them in Python and call revact.export_onnx (or,
for YOLO checkpoints, `revact yolo export`). --act replaces the model's activations with
revact.swap_activations. --input is one image's shape without the batch axis, as many sizes
as the model's first convolution takes; RevCol needs 32x32 or more unless
--pad-small-inputs. --opset is 17 to 20: the TorchScript exporter's highest, and the
range revact's activations and RevCol are tested with. The batch axis is dynamic; the file
is run in ONNX Runtime on a batch of 2 and compared with PyTorch (max abs difference
<= 1e-4).
"""

# Without importing torch (`revact --help` answers at once); tests check them against
# revact.integrations.onnx.MIN_OPSET / MAX_OPSET.
OPSETS = (17, 20)


def _opset(text: str) -> int:
    """``--opset`` (an argparse ``type``): an int in :data:`OPSETS`."""
    try:
        opset = int(text)
    except ValueError:
        opset = None
    if opset is None or not OPSETS[0] <= opset <= OPSETS[1]:
        raise argparse.ArgumentTypeError(f"expected {OPSETS[0]} to {OPSETS[1]} (the "
                                         f"TorchScript exporter's highest), got {text!r}")
    return opset


def _run(args: argparse.Namespace) -> int:
    import torch

    from revact.integrations.onnx import export_onnx
    from revact.integrations.resolve import check_input_size, load_model, pad_small_inputs
    from revact.integrations.swap import swap_activations

    sample = torch.randn(1, *args.input)
    try:
        model, _ = load_model(args.model, in_chans=args.input[0])
        check_input_size(model, args.input)
        pad_small_inputs(model, args.input, args.pad_small_inputs)
        if args.act:
            report = swap_activations(model, args.act, sample=sample)
            print(f"swapped {len(report)} activations for {args.act}")
        result = export_onnx(model, sample, args.out, opset=args.opset)
    except (ValueError, TypeError, OSError) as e:  # a bad name, activation, input or --out
        message = e.strerror if isinstance(e, OSError) and e.strerror else e
        print(f"error: {message}", file=sys.stderr)
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
        description="Export a revact, torchvision, timm or Ultralytics model to ONNX in eval "
        "mode with a dynamic batch axis, then run the file in ONNX Runtime and compare with "
        "PyTorch.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL",
                        help="revact, torchvision or timm:NAME model, or Ultralytics .yaml/.pt")
    parser.add_argument("--out", required=True,
                        help="the .onnx file to write (folders are created)")
    parser.add_argument("--input", metavar="C,H,W", type=parse_input_size,
                        default=(3, 224, 224),
                        help="one image's shape, without the batch (default: 3,224,224)")
    parser.add_argument("--act", help="swap the activations for this one first (revact list)")
    parser.add_argument("--opset", type=_opset, default=OPSETS[0],
                        help=f"ONNX opset, {OPSETS[0]} to {OPSETS[1]} (default: %(default)s)")
    parser.add_argument("--pad-small-inputs", action="store_true",
                        help="RevCol models: zero-pad inputs under 32x32 to 32 (RevCol's "
                             "pad_small_inputs=True) instead of refusing them")
    parser.set_defaults(func=_run)
