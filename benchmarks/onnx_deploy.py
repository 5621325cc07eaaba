"""Deployment cost: ONNX Runtime (CPU) inference time of torchvision MobileNetV2 and ResNet-18
with each activation, as ratios to the original network (ReLU6 / ReLU) timed in the same run.
Prints a markdown report (and writes it with ``--out``).

    .venv/bin/python benchmarks/onnx_deploy.py
    .venv/bin/python benchmarks/onnx_deploy.py --models resnet18 --acts silu,dyrelu_b --rounds 9

Every variant is the torchvision network with random weights (time does not depend on them;
BatchNorm statistics are estimated on two random batches so that values have a trained
network's unit scale) and its activations replaced by ``revact.swap_activations``. Each is
exported with ``revact.export_onnx`` (opset 17, dynamic batch, checked against PyTorch) and
loaded in one ONNX Runtime session with fixed thread counts and denormals flushed to zero (so
that tiny values cannot make one variant slow for reasons a trained network would not share).

The timing is interleaved for a shared, noisy machine: each round times one inference of every
variant of a model, in an order rotated from round to round, and a variant's ratio is the
median over rounds of its time over the original's time *in the same round*, so load that comes
and goes hits both sides of each ratio alike.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torchvision

import revact
from revact.integrations.onnx import export_onnx

DEFAULT_ACTS = "silu,mish,gelu,acon_c,meta_acon,dyrelu_b,dyrelu_c"
ORIGINAL = {"mobilenet_v2": "ReLU6", "resnet18": "ReLU"}


def build(model_name: str, act: str | None) -> torch.nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.get_model(model_name, weights=None)
    if act is not None:
        revact.swap_activations(model, act, sample=torch.randn(1, 3, 224, 224))
    # Random weights shrink the signal layer by layer (logits near 1e-15 in MobileNetV2):
    # BatchNorm statistics taken on random batches restore unit scale, as in a trained
    # network, so no variant is timed on vanishing values.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # a plain average over the batches below
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(8, 3, 224, 224))
    return model.eval()


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def time_round_robin(
    sessions: dict[str, ort.InferenceSession], x: np.ndarray, warmup: int, rounds: int
) -> dict[str, list[float]]:
    """Per variant, one time (s) per round; each round runs every variant once, the start of
    the order rotating so that no variant always follows the same one."""
    names = list(sessions)
    for name in names:
        for _ in range(warmup):
            sessions[name].run(None, {"input": x})
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            sessions[name].run(None, {"input": x})
            times[name].append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="mobilenet_v2,resnet18")
    p.add_argument("--acts", default=DEFAULT_ACTS, help="revact activations to swap in")
    p.add_argument("--batches", default="1,8", help="batch sizes timed")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs per variant and batch")
    p.add_argument("--rounds", type=int, default=21, help="timed rounds per batch")
    p.add_argument("--out", type=Path, help="also write the report to this markdown file")
    args = p.parse_args(argv)
    acts = [a.strip() for a in args.acts.split(",") if a.strip()]
    batches = [int(b) for b in args.batches.split(",")]
    torch.set_num_threads(args.threads)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model_name in args.models.split(","):
            sessions, params, checks = {}, {}, {}
            for act in [None, *acts]:
                label = act or ORIGINAL.get(model_name, "original")
                model = build(model_name, act)
                path = Path(tmp) / f"{model_name}-{label}.onnx"
                result = export_onnx(model, torch.randn(1, 3, 224, 224), path)
                params[label] = sum(p.numel() for p in model.parameters()) / 1e6
                checks[label] = result.max_abs_diff
                sessions[label] = session(path, args.threads)
                print(f"exported {model_name} {label} (max abs diff {result.max_abs_diff:.1e})",
                      file=sys.stderr)
            base = next(iter(sessions))
            for batch in batches:
                x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224), np.float32)
                times = time_round_robin(sessions, x, args.warmup, args.rounds)
                for label, ts in times.items():
                    ratios = [t / b for t, b in zip(ts, times[base], strict=True)]
                    rows.append((model_name, label, batch, params[label], checks[label],
                                 statistics.median(ts) * 1e3, statistics.median(ratios),
                                 np.quantile(ratios, 0.25), np.quantile(ratios, 0.75)))

    command = ".venv/bin/python benchmarks/onnx_deploy.py" + "".join(
        " " + shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    lines = [
        f"Command: `{command}` (run from the repository root, {time.strftime('%Y-%m-%d')})",
        "",
        f"ONNX Runtime {ort.__version__} CPUExecutionProvider, {args.threads} intra-op "
        f"thread(s), sequential; torch {torch.__version__}, torchvision "
        f"{torchvision.__version__}; {platform.processor() or platform.machine()}, "
        f"{args.rounds} interleaved rounds after {args.warmup} warm-up runs per variant; "
        "224x224 float32 input, opset 17, random weights.",
        "",
        "| model | activation | params (M) | batch | median ms | ratio to original | "
        "ratio IQR | ORT vs PyTorch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model_name, label, batch, par, diff, ms, ratio, q1, q3 in rows:
        lines.append(f"| {model_name} | {label} | {par:.2f} | {batch} | {ms:.1f} | "
                     f"{ratio:.2f}x | {q1:.2f}-{q3:.2f} | {diff:.0e} |")
    lines += [
        "",
        "Ratio: median over rounds of (variant time / original time in the same round); IQR: "
        "its interquartile range over rounds. ORT vs PyTorch: the export check's largest "
        "absolute output difference on a batch of 2.",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
