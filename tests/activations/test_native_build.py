"""How the native kernels are built and loaded: the C++ standard, REVACT_REQUIRE_NATIVE,
the build record and the check of the torch the library was built for.

Nothing here downloads anything; the one pip call builds a wheel offline, with a compiler
that fails at once.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch

import revact
from revact.activations import _native

ROOT = Path(__file__).resolve().parents[2]
CSRC = ROOT / "src" / "revact" / "csrc"
# The part of ATen, c10 and torch/library.h the kernels use, declared in C++17: the kernels
# compile against it with -std=c++17 whatever torch is installed (torch >= 2.12's own
# headers need C++20).
TORCH_STUB = r"""
#pragma once
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <vector>

namespace at {
enum class ScalarType { Float, Double };
inline bool isFloatingType(ScalarType) { return true; }
struct Device { bool is_cpu() const { return true; } };
struct TensorOptions {};
using IntArrayRef = std::vector<int64_t>;
class Tensor {
 public:
  int64_t dim() const;
  int64_t size(int64_t dim) const;
  int64_t stride(int64_t dim) const;
  int64_t numel() const;
  IntArrayRef sizes() const;
  bool is_contiguous() const;
  Device device() const;
  ScalarType scalar_type() const;
  TensorOptions options() const;
  template <typename T> const T* const_data_ptr() const;
  template <typename T> T* mutable_data_ptr() const;
};
Tensor empty(IntArrayRef sizes, TensorOptions options);
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
template <typename F>
void parallel_for(int64_t begin, int64_t end, int64_t /*grain*/, const F& f) {
  f(begin, end);
}
}  // namespace at

namespace torch {
struct Library {
  void def(const char* schema);
  template <typename F> void impl(const char* name, F&& f);
};
}  // namespace torch

namespace revact_stub {
template <typename... Args> void check(bool condition, const Args&... message);
}
#define TORCH_CHECK(cond, ...) ::revact_stub::check((cond), __VA_ARGS__)
#define AT_DISPATCH_FLOATING_TYPES(TYPE, NAME, ...)        \
  [&] {                                                    \
    switch (TYPE) {                                        \
      case at::ScalarType::Double: {                       \
        using scalar_t = double;                           \
        return __VA_ARGS__();                              \
      }                                                    \
      default: {                                           \
        using scalar_t = float;                            \
        return __VA_ARGS__();                              \
      }                                                    \
    }                                                      \
  }()
#define TORCH_LIBRARY(ns, m) [[maybe_unused]] static void stub_library_##ns(torch::Library& m)
#define TORCH_LIBRARY_IMPL(ns, key, m) \
  [[maybe_unused]] static void stub_library_impl_##ns##_##key(torch::Library& m)
"""
STUB_HEADERS = ["ATen/Dispatch.h", "ATen/Parallel.h", "ATen/core/Tensor.h", "ATen/ops/empty.h",
                "ATen/ops/empty_like.h", "ATen/ops/zeros_like.h", "c10/util/Exception.h",
                "torch/library.h"]


def _clang() -> str | None:
    """clang++, or a versioned clang++-N (Debian's clang-N packages)."""
    if shutil.which("clang++"):
        return "clang++"
    for version in range(30, 13, -1):
        if shutil.which(f"clang++-{version}"):
            return f"clang++-{version}"
    return None


def _compilers() -> list[str]:
    found = [c for c in ("g++", _clang()) if c and shutil.which(c)]
    return found or (["c++"] if shutil.which("c++") else [])


def _load_setup_py():
    """setup.py as a module (its setup() call runs only as __main__)."""
    spec = importlib.util.spec_from_file_location("revact_setup_py", ROOT / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def torch_stub(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("torch_stub")
    (root / "revact_torch_stub.h").write_text(TORCH_STUB)
    for header in STUB_HEADERS:
        (root / header).parent.mkdir(parents=True, exist_ok=True)
        (root / header).write_text('#pragma once\n#include "revact_torch_stub.h"\n')
    return root


@pytest.mark.parametrize("copies", [(), ("-DREVACT_AVX2",), ("-DREVACT_AVX2", "-DREVACT_AVX512")])
def test_kernels_are_cxx17(torch_stub, copies):
    """torch < 2.12 builds extensions with -std=c++17, so the kernels must be C++17: no
    <bit>/std::bit_cast or other C++20 library or language features (the standard library
    hides C++20 names under -std=c++17, so using one fails here)."""
    if not _compilers():
        pytest.skip("no C++ compiler")
    for compiler in _compilers():
        command = [compiler, "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror",
                   "-Wno-psabi", f"-I{torch_stub}", str(CSRC / "cpu_kernels.cpp")]
        command[1:1] = copies
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{compiler}:\n{done.stderr[-4000:]}"


def test_a_cxx20_feature_would_be_caught(torch_stub, tmp_path):
    """The check above fails for C++20 code (what the kernels once used)."""
    if not _compilers():
        pytest.skip("no C++ compiler")
    source = tmp_path / "uses_cxx20.cpp"
    source.write_text('#include <bit>\n#include "cpu_kernels.cpp"\n'
                      "float f(int i) { return std::bit_cast<float>(i); }\n")
    done = subprocess.run([_compilers()[0], "-std=c++17", "-fsyntax-only", "-Wno-psabi",
                           f"-I{torch_stub}", f"-I{CSRC}", str(source)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "bit_cast" in done.stderr


@pytest.mark.skipif(_clang() is None, reason="no clang++")
def test_kernels_compile_with_clang_against_this_torch():
    """Clang ignores GCC's target pragma; the kernels open their AVX2 and AVX-512 regions
    with Clang's own. (The install builds with the default compiler; this covers the other one.)"""
    import sysconfig

    from torch.utils.cpp_extension import include_paths

    std = _load_setup_py().cxx_standard(torch.__version__)
    command = [_clang(), f"-std={std}", "-fsyntax-only", "-DREVACT_AVX2", "-DREVACT_AVX512",
               "-Werror",
               "-Wno-psabi", "-Wno-unknown-warning-option",
               *(f"-isystem{p}" for p in [*include_paths(), sysconfig.get_paths()["include"]]),
               str(CSRC / "cpu_kernels.cpp")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]


def test_an_isolated_build_is_recognised():
    """pip's build isolation installs a torch of its own to build against: recorded and
    said (the torch then run may differ)."""
    setup_py = _load_setup_py()
    assert setup_py.built_in_isolation(
        "/tmp/pip-build-env-x1y2/overlay/lib/python3.11/site-packages/torch/__init__.py")
    assert not setup_py.built_in_isolation(torch.__file__)


@pytest.mark.parametrize(("version", "std"), [("2.2.0", "c++17"), ("2.11.0", "c++17"),
                                              ("2.12.0", "c++20"), ("2.14.1+cu130", "c++20"),
                                              ("3.0.0", "c++20")])
def test_the_cxx_standard_is_torchs(version, std):
    assert _load_setup_py().cxx_standard(version) == std


# ------------------------------------------------------------------ setup.py


def _fake_compiler(tmp_path: Path) -> Path:
    """A compiler that rejects -fopenmp (as Apple clang does) and AVX2 intrinsics in the
    target region (as a compiler that ignores the region's pragma would); it compiles
    anything else with the real one."""
    real = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    script = tmp_path / "fake-c++"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        for a in "$@"; do
          case "$a" in
            -fopenmp) echo "clang: error: unsupported option '-fopenmp'" >&2; exit 1;;
            *.cpp) if grep -q immintrin "$a"; then
                     echo "$a: error: '_mm256_fmadd_ps' needs target feature 'fma'" >&2
                     exit 1
                   fi;;
          esac
        done
        exec {real} "$@"
    """))
    script.chmod(0o755)
    return script


@pytest.mark.skipif(os.name != "posix" or not (shutil.which("c++") or shutil.which("g++")),
                    reason="needs a POSIX shell and a C++ compiler")
def test_partial_builds_say_what_they_lack(tmp_path):
    """No OpenMP: kernels on one thread; no per-function AVX2 target: the baseline copy
    only. Both are recorded (revact info shows them), and the flags follow."""
    from types import SimpleNamespace

    from setuptools import Distribution, Extension

    setup_py = _load_setup_py()
    command = setup_py.NativeBuild(Distribution())
    fake = str(_fake_compiler(tmp_path))
    command.compiler = SimpleNamespace(compiler_so=[fake], linker_so=[fake, "-shared"],
                                       compiler_type="unix")
    ext = Extension("revact._C", [])
    record = setup_py.NativeBuild._configure(command, ext)
    assert record["built"] and record["openmp"] is False
    assert "-fopenmp" not in ext.extra_compile_args + ext.extra_link_args
    assert any("-fopenmp" in note and "one thread" in note for note in record["notes"])
    if record["avx2_build"] is not None and platform_is_x86():
        assert record["avx2_build"] is False and "-DREVACT_AVX2" not in ext.extra_compile_args
        assert any("_mm256_fmadd_ps" in note and "baseline" in note for note in record["notes"])


def platform_is_x86() -> bool:
    import platform

    return platform.machine().lower() in ("x86_64", "amd64")


def _setup_build_ext(tmp_path, **env):
    """``setup.py build_ext`` into tmp_path (nothing is written into the checkout)."""
    return subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--build-lib", str(tmp_path / "lib"),
         "--build-temp", str(tmp_path / "tmp")],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=300)


def test_a_failed_build_installs_without_kernels_and_says_why(tmp_path):
    done = _setup_build_ext(tmp_path, CC="false", CXX="false", REVACT_REQUIRE_NATIVE="0")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "revact: WARNING: the native CPU kernels were not built" in done.stderr
    record = json.loads((tmp_path / "lib" / "revact" / "_native_build.json").read_text())
    assert record["built"] is False and "false" in record["reason"]
    assert record["torch"] == torch.__version__
    assert not list((tmp_path / "lib" / "revact").glob("_C*"))


def test_require_native_makes_a_failed_build_an_error(tmp_path):
    done = _setup_build_ext(tmp_path, CC="false", CXX="false", REVACT_REQUIRE_NATIVE="1")
    assert done.returncode != 0
    assert "REVACT_REQUIRE_NATIVE is set and the native CPU kernels did not build" in \
        done.stderr
    assert "Traceback" not in done.stderr  # one message, not a stack


def test_pip_wheel_offline_packs_the_build_record(tmp_path):
    """A non-editable build (pip wheel, no build isolation, no index: nothing is
    downloaded) carries the record beside the package; a failed build still makes a
    wheel, and pip -v shows why."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns(
        "__pycache__", "_C*", "_native_build.json", "*.egg-info"))
    env = {**os.environ, "CC": "false", "CXX": "false", "REVACT_REQUIRE_NATIVE": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
         "--no-index", "-v", "-w", str(tmp_path / "wheels"), str(project)],
        env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "the native CPU kernels were not built" in done.stdout + done.stderr
    (wheel,) = (tmp_path / "wheels").glob("revact-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        record = json.loads(archive.read("revact/_native_build.json"))
    assert record["built"] is False and record["editable"] is False


# ------------------------------------------------------------------ loading


def _run_with_record(tmp_path, edit) -> dict:
    """Import a copy of the installed package whose build record ``edit`` changed (or
    removed: ``edit`` returns None) in a fresh process; what it saw."""
    package = tmp_path / "site" / "revact"
    shutil.copytree(_native._PACKAGE, package,
                    ignore=shutil.ignore_patterns("__pycache__", "_native_build.json"))
    record = edit(_native.build_record())
    if record is not None:
        (package / "_native_build.json").write_text(json.dumps(record))
    script = textwrap.dedent("""
        import json, warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import revact
            import torch
            y = revact.AconC(4)(torch.randn(2, 4, 3, 3))  # runs, natively or not
        from revact.activations import _native
        print(json.dumps({
            "file": revact.__file__,
            "warnings": [str(w.message) for w in caught
                         if issubclass(w.category, _native.NativeKernelsWarning)],
            "available": revact.native_kernels_available(),
            "reason": _native.status()["reason"],
            "info": revact.info()["native"],
        }))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["file"].startswith(str(package))
    return seen


@pytest.fixture
def built_here():
    if not revact.native_kernels_available():
        pytest.skip("the native kernels are not built here")


def test_the_record_of_this_build_loads(tmp_path, built_here):
    seen = _run_with_record(tmp_path, lambda record: record)
    assert seen["available"] and not seen["warnings"] and seen["reason"] is None


@pytest.mark.parametrize("case", ["other_torch", "other_abi", "failed_build", "no_record"])
def test_a_library_for_another_torch_is_not_loaded(tmp_path, built_here, case):
    """Built for another torch (version or C++ ABI), a failed build, or no record: the
    library stays unloaded, one warning line says why and how to rebuild, and the PyTorch
    bodies run."""
    def edit(record):
        if case == "other_torch":
            return {**record, "torch": "2.2.0+cu121"}
        if case == "other_abi":
            return {**record, "cxx11_abi": not record["cxx11_abi"]}
        if case == "failed_build":
            return {**record, "built": False, "reason": "the build failed (no compiler)"}
        return None

    seen = _run_with_record(tmp_path, edit)
    assert not seen["available"]
    (message,) = seen["warnings"]
    assert "\n" not in message
    expected = {"other_torch": "built for torch 2.2.0",
                "other_abi": "C++11 ABI",
                "failed_build": "the build failed (no compiler)",
                "no_record": "no build record"}[case]
    assert expected in message and expected in seen["reason"]
    assert "pip install --no-build-isolation" in message
    assert seen["info"]["loaded"] is False and expected in seen["info"]["why_not"]
