"""Builds revact's optional native CPU kernels (``revact._C``); everything else is in
pyproject.toml.

The kernels compile against the torch present at build time and load only under that
torch (same version and C++ ABI; revact.activations._native checks before loading). So
install with the torch you will run already installed, without build isolation:

    pip install --no-build-isolation .        (the Makefile does this, editable)

A plain ``pip install .`` first installs the newest torch into a throwaway build
environment (gigabytes with CUDA) and compiles against that; when the torch revact then
runs with differs, revact warns once, with the command that rebuilds the kernels, and runs
without them.

Where the build cannot apply (torch not importable here, an unsupported compiler, a
compile error) revact installs without the kernels and runs the same maths as PyTorch
operations (same results, slower). This script then says why on stderr (pip shows it with
-v), writes it to ``revact/_native_build.json`` beside the library (``revact info`` shows
it, and revact warns once per process), and ``REVACT_REQUIRE_NATIVE=1`` makes it an
install error instead (CI, packagers). Partial builds say so the same way: a compiler
without OpenMP (Apple clang) builds kernels that run on one thread; one that cannot target
AVX2 per function builds only the baseline copy, one that cannot target AVX-512 no AVX-512
copy.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from setuptools import Extension, setup

SOURCE_DIR = Path(__file__).resolve().parent
SOURCES = ["src/revact/csrc/cpu_kernels.cpp"]
RECORD_NAME = "_native_build.json"  # read by revact.activations._native

# An instruction-set region as csrc/cpu_kernels_copy.h opens it, around a lambda (the
# kernels' loop bodies are lambdas) calling an intrinsic of that set: it compiles only
# where the compiler really targets the set there (GCC's pragma; Clang ignores that one
# and takes its own attribute pragma).
_TARGET_PROBE = r"""
#include <immintrin.h>
#define REVACT_PRAGMA_TEXT(...) _Pragma(#__VA_ARGS__)
#define REVACT_PRAGMA(...) REVACT_PRAGMA_TEXT(__VA_ARGS__)
#define REVACT_TARGET "TARGETS"
#if defined(__clang__)
REVACT_PRAGMA(clang attribute push(__attribute__((target(REVACT_TARGET))), apply_to = function))
#else
REVACT_PRAGMA(GCC push_options)
REVACT_PRAGMA(GCC target(REVACT_TARGET))
#endif
VECTOR probe(VECTOR a) {
  auto body = [&](VECTOR v) { return FMADD(v, v, a); };
  return body(a);
}
"""
_AVX2_PROBE = (_TARGET_PROBE.replace("TARGETS", "avx2,fma").replace("VECTOR", "__m256")
               .replace("FMADD", "_mm256_fmadd_ps"))
_AVX512_PROBE = (_TARGET_PROBE.replace("TARGETS", "avx2,fma,avx512f,avx512dq,avx512bw,avx512vl")
                 .replace("VECTOR", "__m512").replace("FMADD", "_mm512_fmadd_ps"))

_OPENMP_PROBE = r"""
#include <omp.h>
int probe() {
  int n = 0;
#pragma omp parallel reduction(+ : n)
  n += omp_get_num_threads();
  return n;
}
"""


def require_native() -> bool:
    """REVACT_REQUIRE_NATIVE=1: a build without the kernels is an install error."""
    return os.environ.get("REVACT_REQUIRE_NATIVE", "").strip() not in ("", "0")


def say(message: str) -> None:
    print(f"revact: {message}", file=sys.stderr, flush=True)


def cxx_standard(torch_version: str) -> str:
    """The C++ standard torch's own extension builder uses: C++17 up to torch 2.11, C++20
    from 2.12 (pytorch/pytorch#176659; 2.14's headers refuse anything older). The kernels
    are C++17 code, so either compiles them; passing it explicitly keeps a compiler's
    older default from being used."""
    major, minor = (int(part) for part in torch_version.split(".")[:2])
    return "c++20" if (major, minor) >= (2, 12) else "c++17"


def built_in_isolation(torch_file: str) -> bool:
    """Whether the torch being built against lives in pip's throwaway build environment
    (``pip install .`` without ``--no-build-isolation``)."""
    return "pip-build-env-" in torch_file


def write_record(directory: str | os.PathLike, record: dict) -> None:
    path = Path(directory) / RECORD_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")


def _torch_build_ext():
    """torch's BuildExtension, or (torch not importable) setuptools' build_ext and why."""
    try:
        import torch
        from torch.utils.cpp_extension import BuildExtension
    except Exception as error:  # ImportError, or a torch that fails to import
        from setuptools.command.build_ext import build_ext

        return build_ext, None, f"torch is not importable at build time ({error})"
    return BuildExtension, torch, None


_Base, _torch, _NO_TORCH = _torch_build_ext()


class _BuildFailed(RuntimeError):
    pass


class NativeBuild(_Base):
    """Builds ``revact._C`` where it can and records the outcome beside it (or fails,
    under REVACT_REQUIRE_NATIVE=1)."""

    def run(self) -> None:
        # setuptools builds in build_lib and then, for editable installs (inplace), copies
        # the library into src/revact: copy_extensions_to_source below.
        self._editable = bool(self.inplace or getattr(self, "editable_mode", False))
        super().run()

    def build_extensions(self) -> None:
        reason = _NO_TORCH
        if reason is None and self.compiler.compiler_type == "msvc":
            reason = ("MSVC cannot compile them (they use GCC/Clang vector extensions); build "
                      "with GCC or Clang")
        if reason is None:
            try:
                super().build_extensions()  # torch's checks of the compiler, then each ext
                return
            except Exception as error:  # no compiler, a compile error, ...
                reason = f"the build failed ({' '.join(str(error).split()) or repr(error)})"
        for ext in self.extensions:
            self._give_up(ext, reason)

    def build_extension(self, ext: Extension) -> None:
        output = Path(self.get_ext_fullpath(ext.name))
        output.unlink(missing_ok=True)  # a stale library must not pass for this build
        try:
            record = self._configure(ext)
            super().build_extension(ext)
        except Exception as error:
            # Re-raised as an error setuptools does not swallow for optional extensions
            # (it would only print it), for build_extensions to record.
            raise _BuildFailed(str(error) or repr(error)) from error
        for note in record["notes"]:
            say(f"WARNING: native CPU kernels: {note}")
        write_record(output.parent, record)

    def copy_extensions_to_source(self) -> None:
        """Editable installs: the library and its record into src/revact. The old library
        is unlinked first, not overwritten, so processes that have it loaded keep a
        consistent copy; a failed build removes it (the record says why)."""
        build_py = self.get_finalized_command("build_py")
        for ext in self.extensions:
            inplace_file, regular_file = self._get_inplace_equivalent(build_py, ext)
            Path(inplace_file).unlink(missing_ok=True)
            record = Path(regular_file).parent / RECORD_NAME
            if record.is_file():
                self.copy_file(str(record), str(Path(inplace_file).parent / RECORD_NAME))
        super().copy_extensions_to_source()

    # ------------------------------------------------------------------ helpers

    def _base_record(self) -> dict:
        return {
            "built": False,
            "reason": None,
            "notes": [],
            "torch": None if _torch is None else _torch.__version__,
            "cxx11_abi": None if _torch is None else bool(_torch._C._GLIBCXX_USE_CXX11_ABI),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "compiler": None,
            "std": None,
            "openmp": None,
            "avx2_build": None,
            "avx512_build": None,
            "isolated_build": None,
            "source_dir": str(SOURCE_DIR),
            "editable": getattr(self, "_editable", False),
        }

    def _give_up(self, ext: Extension, reason: str) -> None:
        record = {**self._base_record(), "reason": reason}
        output = Path(self.get_ext_fullpath(ext.name))
        output.unlink(missing_ok=True)
        write_record(output.parent, record)
        if require_native():
            raise SystemExit(f"revact: REVACT_REQUIRE_NATIVE is set and the native CPU "
                               f"kernels did not build: {reason}")
        say(f"WARNING: the native CPU kernels were not built: {reason}. revact installs "
            "without them and runs the same maths as PyTorch operations (same results, "
            "slower); `revact info` shows this. REVACT_REQUIRE_NATIVE=1 makes it an error.")

    def _probe(self, source: str, flags: list[str], link: bool = False) -> str | None:
        """Compiles ``source`` (and links it as a shared library) with the build's
        compiler and ``flags``: None when it works, else the compiler's first error."""
        with tempfile.TemporaryDirectory() as tmp:
            src, obj = Path(tmp, "probe.cpp"), Path(tmp, "probe.o")
            src.write_text(source)
            steps = [[*self.compiler.compiler_so, *flags, "-c", str(src), "-o", str(obj)]]
            if link:
                linker = getattr(self.compiler, "linker_so_cxx", None) or self.compiler.linker_so
                steps.append([*linker, str(obj), *flags, "-o", str(Path(tmp, "probe.so"))])
            for command in steps:
                try:
                    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
                except (OSError, subprocess.SubprocessError) as error:
                    return str(error)
                if done.returncode != 0:
                    lines = [line for line in (done.stderr + done.stdout).splitlines()
                             if "error" in line.lower()] or (done.stderr + done.stdout).splitlines()
                    return lines[0].strip() if lines else f"exit status {done.returncode}"
        return None

    def _compiler_version(self) -> str:
        try:
            out = subprocess.run([self.compiler.compiler_so[0], "--version"],
                                 capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        return out.splitlines()[0].strip() if out.strip() else self.compiler.compiler_so[0]

    def _configure(self, ext: Extension) -> dict:
        """The compile flags this compiler takes, by probing; returns the build record."""
        record = self._base_record()
        record["compiler"] = self._compiler_version()
        std = cxx_standard(_torch.__version__)
        record["std"] = std
        error = self._probe("int main() { return 0; }\n", [f"-std={std}"])
        if error is not None:
            raise RuntimeError(f"the compiler does not take -std={std}, which torch "
                               f"{_torch.__version__} needs: {error}")
        # -ffp-contract=off: no a·b + c fused into one rounding (GCC fuses by default where
        # FMA is enabled): the kernels round each step as ATen's kernels do, so that the
        # same inputs give the same infinities, NaNs and cancellations (g·x - g·x = 0).
        # -Wno-psabi: GCC's notes that 32-byte vector arguments change ABI without AVX
        # concern only the inline helpers inside the library.
        flags = ["-O3", f"-std={std}", "-ffp-contract=off", "-Wno-psabi"]
        link_flags: list[str] = []
        # -fopenmp: ATen's parallel_for is OpenMP in torch's Linux builds (its header
        # holds the pragmas); torch ships the runtime (libgomp), which the kernels share.
        error = self._probe(_OPENMP_PROBE, [f"-std={std}", "-fopenmp"], link=True)
        record["openmp"] = error is None
        if error is None:
            flags.append("-fopenmp")
            link_flags.append("-fopenmp")
        else:
            record["notes"].append(f"the compiler does not take -fopenmp ({error}): the "
                                   "kernels run on one thread")
        if platform.machine().lower() in ("x86_64", "amd64"):
            error = self._probe(_AVX2_PROBE, [f"-std={std}"])
            record["avx2_build"] = error is None
            if error is None:
                flags.append("-DREVACT_AVX2")
                error = self._probe(_AVX512_PROBE, [f"-std={std}"])
                record["avx512_build"] = error is None
                if error is None:
                    flags.append("-DREVACT_AVX512")
                else:
                    record["notes"].append(f"the compiler cannot target AVX-512 per function "
                                           f"({error}): AVX-512 CPUs run the AVX2 copy")
            else:
                record["avx512_build"] = False
                record["notes"].append(f"the compiler cannot target AVX2 per function "
                                       f"({error}): only the baseline copy is built, "
                                       "slower on AVX2 CPUs")
        else:
            record["avx2_build"] = record["avx512_build"] = False
        record["isolated_build"] = built_in_isolation(_torch.__file__)
        if record["isolated_build"]:
            record["notes"].append(
                f"built in pip's isolated build environment, against the torch pip "
                f"downloaded for it ({_torch.__version__}): revact loads them only under "
                "that torch version. To build against the torch you run, install with "
                "pip install --no-build-isolation")
        ext.extra_compile_args = [*(ext.extra_compile_args or []), *flags]
        ext.extra_link_args = [*(ext.extra_link_args or []), *link_flags]
        record["built"] = True
        return record


def _extension() -> Extension:
    if _torch is None:
        return Extension("revact._C", SOURCES, optional=True)
    from torch.utils.cpp_extension import CppExtension

    extension = CppExtension("revact._C", SOURCES)
    # A failed build must not fail the install (unless REVACT_REQUIRE_NATIVE=1): optional
    # lets setuptools skip the missing library; NativeBuild records why.
    extension.optional = True
    return extension


def build_ext_command() -> type:
    return NativeBuild.with_options(use_ninja=False) if _torch is not None else NativeBuild


if __name__ == "__main__":  # as pip's build backend runs it; tests import the helpers
    setup(ext_modules=[_extension()], cmdclass={"build_ext": build_ext_command()})
