"""The training loop behind ``revact train`` and ``revact compare``.

Reproducibility contract: with the same config and seed, a run interrupted after any epoch
and continued with ``--resume`` ends with the same weights and metrics as an uninterrupted
run. Everything random is either a pure function of ``(seed, epoch)`` (the data order, as
``DistributedSampler`` computes it) or saved in the checkpoint (the global torch RNG used by
dropout, the augmentation generator, Python's ``random``), and the checkpoint also holds
model, optimizer, scheduler and grad-scaler state.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DistributedSampler

from revact.data import DataSplits, ImageData, load_data
from revact.integrations.flops import count_macs, saved_tensor_mib
from revact.train.checkpoint import check_out_dir, load_checkpoint, save_checkpoint
from revact.train.config import TrainConfig
from revact.train.distributed import (
    DistInfo,
    all_reduce_sum,
    cleanup_distributed,
    init_distributed,
)

__all__ = ["train", "build_optimizer", "cosine_lambda", "evaluate", "peak_memory_mib",
           "steps_per_epoch"]


def _log(info: DistInfo, msg: str) -> None:
    if info.is_main:
        print(msg, flush=True)


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            return torch.device("cuda", local % torch.cuda.device_count())
        return torch.device("cpu")
    return torch.device(name)


def steps_per_epoch(cfg: TrainConfig, data: DataSplits, world_size: int = 1) -> int:
    """Optimizer steps per epoch (full global batches only), after checking the recipe fits
    the data; ``revact compare`` calls it once, before any run starts.

    Raises:
        ValueError: the batch does not divide over the processes, the training images give
            no full batch, or no validation image is left.
    """
    if cfg.batch_size % world_size:
        raise ValueError(
            f"batch size {cfg.batch_size} must divide by the number of processes "
            f"({world_size}); it is the global batch"
        )
    # drop_last: a final batch of 1 would break BatchNorm (and Meta-ACON's G(x)).
    steps = len(data.train) // cfg.batch_size
    if steps < 1:
        raise ValueError(f"{len(data.train)} training images give no full batch of "
                         f"{cfg.batch_size}; lower --batch-size")
    if len(data.val.subset(cfg.val_subset)) < 1:
        raise ValueError(f"no validation images: {data.describe()}")
    return steps


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (Nesterov momentum) or AdamW over :func:`revact.param_groups`.

    The groups keep weight decay off biases, norm scales and the activations' own shape
    parameters (ACON's p1/p2/β, DY-ReLU's are in FC layers and so do decay as weights).
    """
    from revact import param_groups

    groups = param_groups(model, cfg.weight_decay)
    if cfg.opt == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999))


def cosine_lambda(total_steps: int, warmup_steps: int = 0):
    """LR multiplier per optimizer step: linear warm-up, then cosine decay to zero."""

    def fn(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return fn


def peak_memory_mib(device: torch.device) -> float:
    """Peak memory of this process: CUDA allocator high-water, else RSS high-water (MiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # ru_maxrss is KiB on Linux, bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


class _Normalizer:
    """uint8 images → normalised float batches on the device (with optional flips)."""

    def __init__(self, data: DataSplits, device: torch.device) -> None:
        self.device = device
        self.mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)

    def __call__(self, images: Tensor, flip_gen: torch.Generator | None = None) -> Tensor:
        x = images.to(self.device, non_blocking=True).float().div_(255)
        if flip_gen is not None:
            # Horizontal flip of a random half: the only augmentation, cheap and safe for
            # clothing images; drawn from a dedicated generator saved in the checkpoint.
            flip = torch.rand(x.shape[0], generator=flip_gen) < 0.5
            x[flip.to(self.device)] = x[flip.to(self.device)].flip(-1)
        return (x - self.mean) / self.std


def _autocast(cfg: TrainConfig, device: torch.device):
    if not cfg.amp:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: ImageData,
    norm: _Normalizer,
    info: DistInfo,
    cfg: TrainConfig,
    batch_size: int = 1000,
) -> dict[str, float]:
    """Loss and accuracy over ``data``, sharded across ranks and summed (no padding)."""
    model.eval()
    idx = torch.arange(info.rank, len(data), info.world_size)
    loss_sum, correct = 0.0, 0.0
    for i in range(0, len(idx), batch_size):
        b = idx[i : i + batch_size]
        y = data.labels[b].to(norm.device)
        with _autocast(cfg, norm.device):
            logits = model(norm(data.images[b]))
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    loss_sum, correct, n = all_reduce_sum([loss_sum, correct, float(len(idx))], info)
    return {"loss": loss_sum / max(n, 1), "acc": 100.0 * correct / max(n, 1)}


def _rng_state(flip_gen: torch.Generator, device: torch.device) -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "augment": flip_gen.get_state(),
        "python": random.getstate(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], flip_gen: torch.Generator, device) -> None:
    torch.set_rng_state(state["torch"])
    flip_gen.set_state(state["augment"])
    random.setstate(_tuples(state["python"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _tuples(x):
    # weights_only unpickling returns Python's RNG state with lists where it had tuples.
    return tuple(_tuples(v) for v in x) if isinstance(x, list | tuple) else x


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def train(
    cfg: TrainConfig, resume: str | os.PathLike | bool | None = None,
    data: DataSplits | None = None,
) -> dict[str, Any]:
    """Train ``cfg.model`` with activation ``cfg.act``; evaluate on test at the end.

    Writes ``checkpoint.pt`` (atomically, after every epoch) and ``metrics.json`` into
    ``cfg.out``. Under ``torchrun`` each rank trains on its ``DistributedSampler`` shard of
    every global batch (``cfg.batch_size`` is the global batch); rank 0 writes the files.

    Args:
        cfg: the recipe.
        resume: ``True`` for ``cfg.out/checkpoint.pt``, a path, or None/False to start fresh.
        data: pre-loaded splits (tests); loaded from ``cfg`` when None.

    Returns:
        The metrics dictionary also written to ``metrics.json``.

    Raises:
        CheckpointError: ``resume`` points at a corrupt, foreign or mismatched checkpoint.
        DataNotFoundError: the dataset is missing.
    """
    device = _resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    info = init_distributed(device)
    try:
        return _train(cfg, resume, data, device, info)
    finally:
        cleanup_distributed()


def _train(cfg, resume, data, device, info: DistInfo) -> dict[str, Any]:
    from revact.models import create_model

    # Before any work: an --out that cannot hold the checkpoint would lose the first epoch.
    out = check_out_dir(cfg.out)
    ckpt_path = out / "checkpoint.pt"
    if cfg.batch_size % info.world_size:  # before loading data; steps_per_epoch checks again
        raise ValueError(
            f"batch size {cfg.batch_size} must divide by the number of processes "
            f"({info.world_size}); it is the global batch"
        )
    state = None
    if resume:
        path = ckpt_path if resume is True else Path(resume)
        state = load_checkpoint(path, recipe={**cfg.recipe()})
        if state["config"].get("world_size", 1) != info.world_size:
            from revact.train.checkpoint import CheckpointError

            raise CheckpointError(
                f"{path} was written with {state['config'].get('world_size', 1)} process(es), "
                f"this run has {info.world_size}; the data order would differ"
            )
    if data is None:
        data = load_data(
            cfg.data, cfg.data_dir, val_size=cfg.val_size, split_seed=cfg.split_seed,
            train_subset=cfg.train_subset, test_subset=cfg.test_subset, download=cfg.download,
        )
    steps_per_epoch(cfg, data, info.world_size)
    val_data = data.val.subset(cfg.val_subset)
    _log(info, f"data: {data.describe()}" + (
        f" (val evaluated on {len(val_data)})" if len(val_data) != len(data.val) else ""))

    torch.manual_seed(cfg.seed)  # same initial weights on every rank and every activation run
    random.seed(cfg.seed)
    model = create_model(
        cfg.model, act_layer=cfg.act, num_classes=data.num_classes, in_chans=data.in_chans
    )
    n_params = sum(p.numel() for p in model.parameters())
    macs = count_macs(model, (data.in_chans, data.image_size, data.image_size))
    model.to(device)
    opt = build_optimizer(model, cfg)

    per_rank_batch = cfg.batch_size // info.world_size
    sampler = DistributedSampler(
        range(len(data.train)), num_replicas=info.world_size, rank=info.rank,
        shuffle=True, seed=cfg.seed, drop_last=True,
    )
    # Equals steps_per_epoch(...) (checked above): drop_last keeps full batches only.
    n_steps = len(sampler) // per_rank_batch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, cosine_lambda(cfg.epochs * n_steps, int(cfg.warmup_epochs * n_steps))
    )
    use_scaler = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    flip_gen = torch.Generator().manual_seed(cfg.seed * 1000 + info.rank)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    norm = _Normalizer(data, device)

    # On a copy and from its own generator: measuring must not move any RNG the run uses.
    probe = torch.randn(per_rank_batch, data.in_chans, data.image_size, data.image_size,
                        generator=torch.Generator().manual_seed(0)).to(device)
    rng = torch.get_rng_state()
    saved_mib = saved_tensor_mib(model, probe)
    torch.set_rng_state(rng)

    start_epoch, history, train_time, train_images = 0, [], 0.0, 0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"], flip_gen, device)
        start_epoch, history = state["epoch"], list(state.get("history", []))
        train_time, train_images = state.get("train_seconds", 0.0), state.get("train_images", 0)
        _log(info, f"resumed from {ckpt_path if resume is True else resume} "
                   f"after epoch {start_epoch}/{cfg.epochs}")

    net: nn.Module = model
    if info.enabled:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    _log(info, f"model: {cfg.model} act={cfg.act} params={n_params:,} "
               f"MACs={macs['macs'] / 1e6:.2f}M  opt={cfg.opt} lr={cfg.lr} "
               f"wd={cfg.weight_decay} batch={_batch_text(cfg.batch_size, info.world_size)} "
               f"device={device}")

    for epoch in range(start_epoch, cfg.epochs):
        sampler.set_epoch(epoch)
        order = torch.tensor(list(iter(sampler)), dtype=torch.long)
        net.train()
        loss_sum = correct = seen = 0.0
        bar = _progress(info, cfg, n_steps, f"epoch {epoch + 1}/{cfg.epochs}")
        t0 = time.perf_counter()
        for step in range(n_steps):
            b = order[step * per_rank_batch : (step + 1) * per_rank_batch]
            x = norm(data.train.images[b], flip_gen if cfg.augment else None)
            y = data.train.labels[b].to(device)
            with _autocast(cfg, device):
                logits = net(x)
                loss = criterion(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            loss_sum += loss.item() * len(b)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(b)
            if bar is not None:
                bar.update(1)
                if step % 10 == 0:
                    bar.set_postfix(loss=f"{loss_sum / seen:.3f}",
                                    acc=f"{100 * correct / seen:.1f}")
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        epoch_time = time.perf_counter() - t0
        if bar is not None:
            bar.close()
        loss_sum, correct, seen = all_reduce_sum([loss_sum, correct, seen], info)
        train_time += epoch_time
        train_images += int(seen)
        val = evaluate(model, val_data, norm, info, cfg)
        row = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / seen,
            "train_acc": 100.0 * correct / seen,
            "val_loss": val["loss"],
            "val_acc": val["acc"],
            "lr": opt.param_groups[0]["lr"],
            "seconds": epoch_time,
            "img_per_s": seen / epoch_time,
        }
        history.append(row)
        _log(info, f"epoch {epoch + 1}/{cfg.epochs}  train loss {row['train_loss']:.4f} "
                   f"acc {row['train_acc']:.2f}%  val loss {val['loss']:.4f} "
                   f"acc {val['acc']:.2f}%  {row['img_per_s']:.0f} img/s  {epoch_time:.1f}s")
        if info.is_main:
            save_checkpoint({
                "config": {**cfg.to_dict(), "world_size": info.world_size},
                "epoch": epoch + 1,
                "model_args": {"num_classes": data.num_classes, "in_chans": data.in_chans},
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict() if use_scaler else None,
                "rng": _rng_state(flip_gen, device),
                "data_order": {"sampler_seed": cfg.seed, "next_epoch": epoch + 1},
                "history": history,
                "train_seconds": train_time,
                "train_images": train_images,
            }, ckpt_path)
        if info.enabled:
            torch.distributed.barrier()

    test = evaluate(model, data.test, norm, info, cfg)
    _log(info, f"test  loss {test['loss']:.4f}  acc {test['acc']:.2f}%  "
               f"({len(data.test)} images)")
    peak = all_reduce_sum([peak_memory_mib(device)], info)[0] / info.world_size
    metrics = {
        "config": {**cfg.to_dict(), "world_size": info.world_size},
        "data": {"name": data.name, "source": data.source, "train": len(data.train),
                 "val": len(val_data), "test": len(data.test), "image_size": data.image_size,
                 "in_chans": data.in_chans, "num_classes": data.num_classes},
        "params": n_params,
        "macs": macs["macs"],
        "layer_macs": macs["layer_macs"],
        "act_macs": macs["act_macs"],
        "history": history,
        "test_acc": test["acc"],
        "test_loss": test["loss"],
        "val_acc": history[-1]["val_acc"] if history else None,
        "train_seconds": train_time,
        "train_img_per_s": train_images / train_time if train_time else None,
        "peak_mem_mib": peak,
        "saved_for_backward_mib": saved_mib,
        "saved_for_backward_batch": per_rank_batch,
        "peak_mem_kind": "cuda_max_allocated" if device.type == "cuda" else "rss_high_water",
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if info.is_main:
        _write_json(out / "metrics.json", metrics)
    return metrics


def _batch_text(batch_size: int, world_size: int) -> str:
    """``64``, or ``64 (2 processes x 32)``: the batch size is always the global one."""
    if world_size == 1:
        return str(batch_size)
    return f"{batch_size} ({world_size} processes x {batch_size // world_size})"


def _progress(info: DistInfo, cfg: TrainConfig, total: int, desc: str):
    if not (cfg.progress and info.is_main):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, file=sys.stderr)
