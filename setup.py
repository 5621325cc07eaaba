"""Builds revact's optional native CPU kernels (``revact._C``); everything else is in
pyproject.toml.

The kernels are compiled against the torch found at build time, so install with that
torch already present and without build isolation (``pip install --no-build-isolation``;
the Makefile does). When torch or a C++ compiler is missing, or the build fails, revact
installs without them and runs the same maths with PyTorch operations (slower, equal
results); ``revact.activations.native_kernels_available()`` says which.
"""

import warnings

from setuptools import setup


def _native_extension() -> dict:
    try:
        from torch.utils.cpp_extension import BuildExtension, CppExtension
    except ImportError:
        warnings.warn("torch is not importable at build time: revact installs without its "
                      "native CPU kernels", stacklevel=1)
        return {}

    class OptionalBuildExtension(BuildExtension):
        def build_extensions(self) -> None:
            try:
                super().build_extensions()
            except Exception as error:  # no compiler, unsupported platform, ...
                warnings.warn(f"revact's native CPU kernels did not build ({error}); "
                              "revact runs without them", stacklevel=1)

    extension = CppExtension(
        "revact._C",
        ["src/revact/csrc/cpu_kernels.cpp"],
        # -fopenmp: ATen's parallel_for is OpenMP in torch's Linux builds; torch ships
        # the runtime (libgomp), which the kernels then share.
        extra_compile_args=["-O3", "-fopenmp"],
        extra_link_args=["-fopenmp"],
    )
    return {"ext_modules": [extension],
            "cmdclass": {"build_ext": OptionalBuildExtension.with_options(use_ninja=False)}}


setup(**_native_extension())
