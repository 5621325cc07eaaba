"""MobileNetV2's MAC overhead per activation, next to the papers' figures.

torchvision's MobileNetV2 ×1.0 at 3×224×224, every ReLU6 swapped by
``revact.swap_activations``, counted by ``revact.count_flops``. Two conventions side by side:
the papers' (conv/FC multiply-adds only, activations free: DY-ReLU's hyper-function counts,
ACON's gates do not) and revact's (activation maths counted too).

    python benchmarks/flops_mbv2.py --out benchmarks/results/flops.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torchvision

import revact

# name, swap spec (None: stock ReLU6), label, paper figure (MAdds of MobileNetV2 x1.0)
ROWS = (
    ("relu6", None, "ReLU6 (stock)", "300M (both papers' baseline)"),
    ("dyrelu_b", {}, "DY-ReLU-B (K=2, R=4)", "~315M, +5% (DY-ReLU, ECCV 2020)"),
    ("dyrelu_b", {"reduction": 8}, "DY-ReLU-B (K=2, R=8)", ""),
    ("dyrelu_c", {}, "DY-ReLU-C (K=2, R=4)", ""),
    ("acon_c", {}, "ACON-C", "+0 (ACON, CVPR 2021: no extra FLOPs)"),
    ("meta_acon", {}, "Meta-ACON (channel, r=16)", "\"negligible\" (ACON paper)"),
)


def measure(size: int) -> list[dict]:
    shape = (3, size, size)
    out = []
    for act, kwargs, label, paper in ROWS:
        model = torchvision.models.mobilenet_v2()
        if kwargs is not None:
            revact.swap_activations(model, act, sample=torch.zeros(1, *shape), **kwargs)
        r = revact.count_flops(model, shape)
        out.append({"label": label, "paper": paper, **r.as_dict()})
    return out


def markdown(rows: list[dict], size: int, command: str) -> str:
    base = rows[0]
    lines = [
        f"# MobileNetV2 ×1.0: MAC overhead per activation ({size}×{size})",
        "",
        f"Command: `{command}` (torch {torch.__version__}, torchvision "
        f"{torchvision.__version__}). MACs per image, in millions; FLOPs = 2 × MACs.",
        "",
        "| activation | conv/FC MMACs | of which hyper-function | activation maths | total "
        "MMACs | overhead, papers' convention | overhead, all maths | paper's figure |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        conv = 100 * (r["layer_macs"] / base["layer_macs"] - 1)
        total = 100 * (r["macs"] / base["macs"] - 1)
        lines.append(
            f"| {r['label']} | {r['layer_macs'] / 1e6:.1f} | {r['hyper_macs'] / 1e6:.2f} | "
            f"{r['act_macs'] / 1e6:.1f} | {r['macs'] / 1e6:.1f} | {conv:+.1f}% | "
            f"{total:+.1f}% | {r['paper']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--out", type=Path, help="write the Markdown table here too")
    args = parser.parse_args()
    command = "python benchmarks/flops_mbv2.py" + (f" --size {args.size}" if args.size != 224
                                                   else "")
    text = markdown(measure(args.size), args.size, command)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
