"""``revact info``: revact's environment on one screen (``--json``: as JSON), for bug
reports."""

from __future__ import annotations

import argparse
import json


def _copies(native: dict) -> str:
    """The instruction-set copies the library holds."""
    if not native["avx2_build"]:
        return "baseline copy only"
    return ("AVX-512 + AVX2 + baseline copies" if native["avx512_build"]
            else "AVX2 + baseline copies")


def _yes(flag) -> str:
    return {True: "yes", False: "no", None: "unknown"}[None if flag is None else bool(flag)]


def format_info(info: dict) -> str:
    """:func:`revact.info`'s dict as the text ``revact info`` prints."""
    t, cpu, native, paths = info["torch"], info["cpu"], info["native"], info["paths"]
    lines = [
        f"revact {info['revact']}  ·  Python {info['python']}",
        f"platform  {info['platform']}",
        f"torch     {t['version']} (C++11 ABI {int(t['cxx11_abi'])}, CUDA "
        f"{t['cuda'] or 'none'}, {t['threads']} threads)  ·  torchvision {t['torchvision']}",
        f"CPU       {cpu['model']}",
        f"          AVX2 {_yes(cpu['avx2'])}  ·  FMA {_yes(cpu['fma'])}  ·  AVX-512 "
        f"{_yes(cpu['avx512f'])}  ·  ATen dispatches to {cpu['aten_capability']}",
        "",
        "native CPU kernels",
    ]
    build = ", ".join(part for part in (
        native["built_for_torch"] and f"for torch {native['built_for_torch']}",
        native["compiler"], native["std"],
        native["openmp"] is not None and ("OpenMP" if native["openmp"] else "no OpenMP"),
        native["avx2_build"] is not None and _copies(native),
    ) if part)
    lines.append(f"  built     {_yes(native['built'])}" + (f" ({build})" if build else ""))
    lines.append(f"  loaded    {_yes(native['loaded'])}" +
                 (f" ({native['library']})" if native["loaded"] else ""))
    used = f"yes, {native['variant']} build" if native["used"] else "no"
    lines.append(f"  used      {used}")
    if native["why_not"]:
        lines.append(f"  why not   {native['why_not']}")
    for note in native["build_notes"]:
        lines.append(f"  note      {note}")
    if native["rebuild"]:
        lines.append(f"  rebuild   {native['rebuild']}")
    lines += [
        "",
        "the activations' maths runs as",
        f"  eager                {paths['eager']}",
        f"  use_fused_kernels()  {paths['use_fused_kernels']}"
        + (" (on now)" if paths["use_fused_kernels_on"] else ""),
        f"  torch.compile        {paths['torch.compile']}",
        "",
        "integrations  " + "  ·  ".join(f"{name} {version}" for name, version in
                                       info["integrations"].items()),
    ]
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    from revact.sysinfo import info

    data = info()
    print(json.dumps(data, indent=2) if args.json else format_info(data))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info",
        help="versions, CPU features and whether the native CPU kernels run (for bug "
        "reports)",
        description="Print revact's environment on one screen: revact, torch, Python and "
        "the platform; the CPU's AVX2/FMA/AVX-512; whether revact's native CPU kernels "
        "are built, loaded and used, which build of them (AVX-512, AVX2 or baseline) and why not; "
        "what use_fused_kernels() and torch.compile run; the optional integrations' "
        "versions.",
    )
    parser.add_argument("--json", action="store_true",
                        help="print it as JSON (the dict revact.info() returns)")
    parser.set_defaults(func=_run)
