"""What revact runs on and with, for bug reports: :func:`info` and ``revact info``.

Versions (revact, torch, Python, the platform), the CPU's vector instruction sets, the
native CPU kernels (built, loaded, used, which build of them, and why not), what
:func:`~revact.activations.functional.use_fused_kernels` and ``torch.compile`` run, and
the optional integrations' versions. Nothing heavy is imported: the integrations'
versions come from their installed metadata (``importlib.metadata``).
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from pathlib import Path

import torch

from revact.activations import _native
from revact.activations.functional import fused_kernels_enabled

__all__ = ["info", "INTEGRATIONS"]

# The optional packages revact integrates with or uses, by distribution name; a tuple
# lists alternative distributions of one package.
INTEGRATIONS: dict[str, tuple[str, ...]] = {
    "ultralytics": ("ultralytics",),
    "timm": ("timm",),
    "onnx": ("onnx",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "ray": ("ray",),
    "scipy": ("scipy",),
}


def _version(*distributions: str) -> str:
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "not installed"


def _cpu() -> dict:
    """The CPU's model and whether it has AVX2, FMA and AVX-512 (``None``: unknown), from
    /proc/cpuinfo where there is one, else from the instruction set ATen dispatches to."""
    capability = torch.backends.cpu.get_cpu_capability()
    model, flags = platform.processor() or platform.machine(), None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.machine()):
                model = value.strip()
            elif key.strip() == "flags" and flags is None:
                flags = set(value.split())
    except OSError:
        pass
    if flags is not None:
        has = {"avx2": "avx2" in flags, "fma": "fma" in flags, "avx512f": "avx512f" in flags}
    else:  # ATen's own dispatch level: AVX512 implies AVX2 and FMA; otherwise unknown
        avx512 = capability.startswith("AVX512")
        avx2 = avx512 or capability == "AVX2"
        has = {"avx2": avx2 or None, "fma": avx2 or None, "avx512f": avx512 or None}
    return {"model": model, **has, "aten_capability": capability}


def _native_kernels() -> dict:
    status = _native.status()
    record = status["build"] or {}
    used = status["loaded"] and status["enabled"]
    if used:
        why_not = None
    elif status["loaded"]:
        why_not = "use_native_kernels(False) is in effect"
    else:
        why_not = status["reason"]
    return {
        "built": status["library"] is not None and record.get("built", True),
        "loaded": status["loaded"],
        "used": used,
        "variant": status["variant"],
        "why_not": why_not,
        "library": status["library"],
        "built_for_torch": record.get("torch"),
        "compiler": record.get("compiler"),
        "std": record.get("std"),
        "openmp": record.get("openmp"),
        "avx2_build": record.get("avx2_build"),
        "avx512_build": record.get("avx512_build"),
        "build_failure": record.get("reason"),
        "build_notes": list(record.get("notes") or []),
        "rebuild": status["rebuild"],
        "compiled_graphs_keep_them": status["compilable"],
    }


def _paths(native: dict) -> dict:
    """What runs the adaptive activations' maths in each mode."""
    if native["used"]:
        variant = native["variant"] or "unknown build"
        eager = (f"native CPU kernels ({variant}) for the CPU float32/float64 cases they "
                 "cover; PyTorch operations elsewhere")
        fused = ("native CPU kernels where they apply; torch.compile-d PyTorch bodies "
                 "elsewhere (GPU, other dtypes)")
        compiled = ("the native ops stay in the graph (fake kernels registered); Inductor "
                    "compiles the rest" if native["compiled_graphs_keep_them"] else
                    "PyTorch bodies, traced and fused by Inductor (this torch cannot keep "
                    "the native ops in a graph)")
    else:
        eager = "PyTorch operations (the native CPU kernels are not used)"
        fused = "torch.compile-d PyTorch bodies (Inductor)"
        compiled = "PyTorch bodies, traced and fused by Inductor"
    return {"eager": eager, "use_fused_kernels": fused, "torch.compile": compiled,
            "use_fused_kernels_on": fused_kernels_enabled()}


def info() -> dict:
    """revact's environment as a dict (``revact info`` prints it; ``--json`` as JSON).

    Keys: ``revact``, ``python``, ``platform``, ``torch`` (version, C++11 ABI, CUDA,
    threads, torchvision), ``cpu`` (model, ``avx2``/``fma``/``avx512f``, ATen's
    dispatch level), ``native`` (the native CPU kernels: ``built``, ``loaded``, ``used``,
    ``variant`` — ``avx512``, ``avx2`` or ``baseline (why)`` —, ``why_not``, the build
    record and the command that rebuilds them), ``paths`` (what eager mode,
    :func:`use_fused_kernels` and ``torch.compile`` run) and ``integrations`` (version
    or ``"not installed"``).
    """
    import revact

    native = _native_kernels()
    return {
        "revact": revact.__version__,
        "python": f"{platform.python_version()} ({platform.python_implementation()}, "
                  f"{sys.executable})",
        "platform": platform.platform(),
        "torch": {
            "version": torch.__version__,
            "cxx11_abi": bool(torch._C._GLIBCXX_USE_CXX11_ABI),
            "cuda": torch.version.cuda,
            "threads": torch.get_num_threads(),
            "torchvision": _version("torchvision"),
        },
        "cpu": _cpu(),
        "native": native,
        "paths": _paths(native),
        "integrations": {name: _version(*dists) for name, dists in INTEGRATIONS.items()},
    }
