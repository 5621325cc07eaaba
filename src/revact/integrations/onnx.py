"""ONNX export of any model with revact activations, checked in ONNX Runtime.

:func:`export_onnx` uses PyTorch's TorchScript-based exporter
(``torch.onnx.export(..., dynamo=False)``), chosen over the ``torch.export``-based one
(``dynamo=True``, torch's default since 2.9) because:

* it needs nothing beyond ``onnx`` and ``onnxruntime``; the ``dynamo=True`` path also needs
  ``onnxscript``;
* it is the path Ultralytics' ``format='onnx'`` takes, so a YOLO model and a plain model
  with the same activations export the same way;
* it exports every revact activation and RevCol as they are: the custom autograd
  functions step aside while exporting (no gradient is needed), leaving plain tensor ops
  that map to standard ONNX operators;
* it takes well under a second for a single activation where ``dynamo=True`` takes
  5-20 s (torch 2.14, CPU), which keeps an export of every activation in the tests cheap.

Both exporters give the same numbers for these modules; should the TorchScript exporter
be removed from torch, ``dynamo=True`` with ``dynamic_shapes`` is the replacement.
"""

from __future__ import annotations

import errno
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["MAX_OPSET", "MIN_OPSET", "OnnxExport", "export_onnx", "run_onnx"]

#: The lowest opset accepted: 17 brings ``LayerNormalization`` (RevCol's ConvNeXt blocks),
#: exported otherwise as a chain of reductions.
MIN_OPSET = 17
#: The highest opset accepted: the TorchScript exporter's highest (torch's
#: ``ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET``, 20 up to torch 2.14 at least; above it torch only
#: warns and writes a file of the opset it knows), and the highest every revact activation
#: and RevCol were exported and checked in ONNX Runtime with (tests/integrations/test_onnx.py).
MAX_OPSET = 20


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote and how it checked.

    Attributes:
        path: the ``.onnx`` file.
        opset: the ONNX opset it was exported with.
        dynamic_batch: whether the batch axis of input and outputs is dynamic.
        check_batch: the batch size ONNX Runtime was run on (None: not checked).
        max_abs_diff: largest absolute difference between ONNX Runtime's and PyTorch's
            outputs on that batch (None: not checked).
    """

    path: Path
    opset: int
    dynamic_batch: bool
    check_batch: int | None = None
    max_abs_diff: float | None = None


def export_onnx(
    model: nn.Module,
    sample: Tensor,
    path: str | os.PathLike,
    *,
    opset: int = MIN_OPSET,
    dynamic_batch: bool = True,
    check: bool = True,
    atol: float = 1e-4,
) -> OnnxExport:
    """Export ``model`` to ONNX in eval mode and check the file in ONNX Runtime.

    The model is put in eval mode for the export (every module's own mode is restored
    afterwards), so BatchNorm uses its running statistics and RevCol its plain forward.
    With ``check=True`` ONNX Runtime (CPU) runs the file on a random batch of another
    size than ``sample`` (when the batch axis is dynamic) and its outputs are compared
    with PyTorch's on the same batch.

    Args:
        model: any module taking one tensor; its outputs may be a tensor or a (nested)
            list, tuple or dict of tensors, such as RevCol's ``features_only`` maps.
        sample: an example input, e.g. ``torch.randn(1, 3, 224, 224)``; its shape except
            the batch axis is fixed in the file.
        path: where to write the ``.onnx`` file (parent folders are created); checked to be
            writable before anything is exported.
        opset: ONNX opset, :data:`MIN_OPSET` (17) to :data:`MAX_OPSET` (20). Default: 17
        dynamic_batch: make axis 0 of the input and of every output dynamic. Default: True
        check: run the file in ONNX Runtime and compare with PyTorch. Default: True
        atol: largest absolute difference the check accepts. Default: 1e-4

    Returns:
        An :class:`OnnxExport` with the path, opset and the check's difference.

    Raises:
        TypeError: ``sample`` is not a tensor (a number, a list), or, with ``check``, not a
            floating-point one (the check draws random inputs of its dtype).
        ValueError: ``opset`` outside 17-20; ``sample`` without a batch axis (a scalar, or
            one dimension fewer than the model's first convolution takes); the model
            failed on ``sample`` or on the check's batch (the message says why).
        OSError: ``path`` cannot be written (a folder, under a file, a read-only place).
        RuntimeError: the check found a difference above ``atol``.

    Example::

        >>> model = torchvision.models.resnet18()
        >>> revact.swap_activations(model, "dyrelu_b")
        >>> result = revact.export_onnx(model, torch.randn(1, 3, 224, 224), "r18_dyb.onnx")
        >>> result.max_abs_diff < 1e-4
        True
    """
    from revact.integrations.resolve import first_conv, input_error

    if isinstance(opset, bool) or not isinstance(opset, int):
        raise TypeError(f"opset must be an int from {MIN_OPSET} to {MAX_OPSET}, got {opset!r}")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset must be at least {MIN_OPSET} and at most {MAX_OPSET} (the "
                         f"TorchScript exporter's highest), got {opset}")
    example = "e.g. torch.randn(1, 3, 224, 224)"
    if not isinstance(sample, Tensor):
        raise TypeError(f"sample must be a tensor with a batch axis, {example}; got "
                        f"{type(sample).__name__}")
    if check and not sample.is_floating_point():
        raise TypeError(f"sample must be a floating-point tensor, {example}, for the check "
                        f"draws random inputs of its dtype; got {sample.dtype} (or pass "
                        f"check=False)")
    conv = first_conv(model)
    if sample.dim() < 1 or (conv is not None and sample.dim() == conv.weight.dim() - 1):
        raise ValueError(f"sample needs a batch axis, {example}; got shape "
                         f"{tuple(sample.shape)} (sample.unsqueeze(0) adds one)")
    path = _writable(Path(path))
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            try:
                out = model(sample)
            except (RuntimeError, ValueError, AssertionError, IndexError, TypeError) as e:
                raise input_error(model, sample.shape, e, "sample") from e
            n_outputs = len(list(_tensors(out)))
        output_names = ["output"] if n_outputs == 1 else [f"output{i}" for i in range(n_outputs)]
        batch_axes = {name: {0: "batch"} for name in ["input", *output_names]}
        with warnings.catch_warnings():
            # The legacy exporter is chosen on purpose (module docstring).
            warnings.filterwarnings("ignore", "You are using the legacy TorchScript",
                                    DeprecationWarning)
            warnings.filterwarnings("ignore", "The feature will be removed", DeprecationWarning)
            # torch's own symbolic for F.pad (RevCol's pad_small_inputs) reverses the pad
            # list with a step -1 Slice, which constant folding skips: the Slice stays in
            # the graph and runs in ONNX Runtime, with the same result (checked below).
            warnings.filterwarnings("ignore", "Constant folding - Only steps=1", UserWarning)
            torch.onnx.export(
                model, (sample,), str(path), dynamo=False, opset_version=opset,
                input_names=["input"], output_names=output_names,
                dynamic_axes=batch_axes if dynamic_batch else None,
            )
        result = OnnxExport(path, opset, dynamic_batch)
        if not check:
            return result
        batch = sample.shape[0] + 1 if dynamic_batch else sample.shape[0]
        generator = torch.Generator().manual_seed(0)
        x = torch.randn((batch, *sample.shape[1:]), generator=generator, dtype=sample.dtype)
        with torch.no_grad():
            try:
                out = model(x.to(sample.device))
            except (RuntimeError, ValueError, AssertionError, IndexError, TypeError) as e:
                raise input_error(model, x.shape, e, "the check's batch (sample's shape, "
                                  "another batch size)") from e
            expected = [t.detach().cpu() for t in _tensors(out)]
    finally:
        for m, training in modes.items():
            m.train(training)
    got = run_onnx(path, x)
    diff = max(float((torch.from_numpy(g) - e).abs().max()) if e.numel() else 0.0
               for g, e in zip(got, expected, strict=True))
    if not diff <= atol:  # also catches NaN
        raise RuntimeError(
            f"ONNX Runtime's output differs from PyTorch's by up to {diff:.3g} "
            f"(tolerance {atol:g}) on a batch of {batch}: {path}"
        )
    return OnnxExport(path, opset, dynamic_batch, batch, diff)


def _writable(path: Path) -> Path:
    """``path`` once its folder exists and takes a new file; an OSError saying why not."""
    where = f"cannot write the ONNX file {path}"
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"{where}: it is a folder")
    above = next((p for p in path.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{where}: {above} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            if not os.access(path, os.W_OK):
                raise PermissionError(errno.EACCES, "the file is read-only")
        else:  # a file beside it: some folders take no new files, even from root (/proc)
            try:
                tempfile.TemporaryFile(dir=path.parent).close()
            except OSError as e:
                e.strerror = f"{path.parent} takes no new files ({e.strerror or e})"
                raise
    except OSError as e:
        raise type(e)(e.errno, f"{where}: {e.strerror or e}") from None
    return path


def run_onnx(path: str | os.PathLike, x: Tensor, threads: int | None = None) -> list[Any]:
    """Run an exported file in ONNX Runtime (CPU) on ``x``; its outputs as numpy arrays.

    Args:
        path: the ``.onnx`` file, with one input.
        x: the input.
        threads: intra-op threads. Default: ``torch.get_num_threads()``
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: x.detach().cpu().numpy()})


def _tensors(out: Any) -> Iterator[Tensor]:
    """The tensors of a model's output in the order the exporter flattens them."""
    if isinstance(out, Tensor):
        yield out
    elif isinstance(out, Mapping):
        for value in out.values():
            yield from _tensors(value)
    elif isinstance(out, (list, tuple)):
        for value in out:
            yield from _tensors(value)
