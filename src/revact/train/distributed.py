"""Process-group setup for ``torchrun`` (gloo on CPU, NCCL on CUDA)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["DistInfo", "init_distributed", "cleanup_distributed", "all_reduce_sum",
           "global_batch_norm", "GlobalBatchNorm"]


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return info


def cleanup_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], info: DistInfo) -> list[float]:
    """Sum a few numbers over all ranks (identity when not distributed)."""
    if not info.enabled:
        return values
    # NCCL reduces CUDA tensors only.
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


class _AllReduceSum(torch.autograd.Function):
    """Sum over the process group; its gradient is the sum of every process's gradient."""

    @staticmethod
    def forward(ctx, t: Tensor) -> Tensor:
        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics are those of the global batch: every process's
    share summed over the process group (gloo included, where torch's ``SyncBatchNorm``
    takes CUDA tensors only). The gradient flows through the all-reduces, so backward is
    that of BatchNorm over the global batch too. Outside training, or without a process
    group, it is plain BatchNorm. Parameters, buffers and state-dict keys are BatchNorm's.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        self._check_input_dim(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        count = torch.tensor([x.numel() / x.shape[1]], dtype=xf.dtype, device=x.device)
        packed = _AllReduceSum.apply(torch.cat([xf.sum(dims), count]))
        n = packed[-1]
        mean = packed[:-1] / n
        centered = xf - mean.view(shape)
        # Two passes, as one process's BatchNorm: the variance from centred values.
        var = _AllReduceSum.apply(centered.square().sum(dims)) / n
        y = centered * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = (self.momentum if self.momentum is not None
                     else 1.0 / float(self.num_batches_tracked))
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                unbiased = var.detach() * (n / (n - 1).clamp_min(1))
                self.running_var.mul_(1 - m).add_(unbiased, alpha=m)
        return y.to(x.dtype)


def global_batch_norm(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with every BatchNorm normalising over the global batch of the process
    group: torch's ``SyncBatchNorm`` on CUDA, :class:`GlobalBatchNorm` elsewhere. The new
    layers hold the same parameter and buffer tensors (an optimizer built before keeps
    working); ``model`` is changed in place and returned (or the new root layer)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _convert(model)


def _convert(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, _BatchNorm) and not isinstance(
            module, GlobalBatchNorm | nn.SyncBatchNorm):
        out = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats, device="meta")
        if module.affine:
            out.weight, out.bias = module.weight, module.bias
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            setattr(out, name, getattr(module, name))
        out.training = module.training
    for name, child in module.named_children():
        out.add_module(name, _convert(child))
    return out
