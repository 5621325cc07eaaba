"""The training loop behind ``revact train`` and ``revact compare``.

Reproducibility contract: with the same config and seed, a run interrupted after any epoch
and continued with ``--resume`` ends with the same weights and metrics as an uninterrupted
run. Everything random is either a pure function of ``(seed, epoch)`` (the data order, as
``DistributedSampler`` computes it) or saved in the checkpoint (the global torch RNG used by
dropout, the augmentation generator, Python's ``random``), and the checkpoint also holds
model, optimizer, scheduler and grad-scaler state.

Under ``torchrun`` (one machine or several) the processes train the run one process would
with the same global batch, up to float rounding: each takes its share of every global
batch, BatchNorm normalises over the whole global batch (:func:`global_batch_norm`), the
flips are drawn for the global batch, and gradients are averaged. Dropout masks are the
exception: each process draws its own (from the same seed), so a network with dropout
(MobileNetV2's classifier) trains a slightly different run per process count.

Resuming with more epochs than the checkpoint's run was started with is allowed, and is the
one exception to that contract: the LR schedule (linear warm-up, then cosine to zero over
all steps) is redrawn over the new total, and from the next step the run follows it. So
the LR jumps from where the old schedule had got to (0 when that run had finished) to the
new schedule's value at this step, e.g. from 0 to half the peak when 10 finished epochs
are extended to 20: a warm restart, not the run an uninterrupted 20-epoch training gives.
The extension is recorded in the checkpoint's and ``metrics.json``'s ``config`` as
``schedule_changes``. Fewer epochs than the checkpoint's are refused.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DistributedSampler

from revact.bench.memory import peak_memory_mib, saved_tensor_mib
from revact.data import DataSplits, ImageData, load_data
from revact.integrations.flops import count_macs
from revact.train.checkpoint import (
    CheckpointError,
    check_out_dir,
    load_checkpoint,
    save_checkpoint,
)
from revact.train.config import TrainConfig, expand_path
from revact.train.distributed import (
    DistInfo,
    all_reduce_sum,
    cleanup_distributed,
    global_batch_norm,
    init_distributed,
)
from revact.train.precise_bn import precise_bn
from revact.train.results import EpochStats, RunResult

__all__ = ["train", "build_optimizer", "cosine_lambda", "evaluate", "peak_memory_mib",
           "steps_per_epoch", "RunResult", "EpochStats"]


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


def _check_global_batch(batch_size: int, world_size: int) -> None:
    if batch_size % world_size:
        raise ValueError(
            f"batch size {batch_size} must divide by the number of processes "
            f"({world_size}); it is the global batch"
        )


def steps_per_epoch(cfg: TrainConfig, data: DataSplits, world_size: int = 1) -> int:
    """Optimizer steps per epoch (full global batches only), after checking the recipe fits
    the data; ``revact compare`` calls it once, before any run starts.

    Raises:
        ValueError: the batch does not divide over the processes, the training images give
            no full batch, or no validation image is left.
    """
    _check_global_batch(cfg.batch_size, world_size)
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


class _Normalizer:
    """uint8 images → normalised float batches on the device (with optional flips)."""

    def __init__(self, data: DataSplits, device: torch.device) -> None:
        self.device = device
        self.mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)

    def __call__(self, images: Tensor, flip_gen: torch.Generator | None = None,
                 info: DistInfo | None = None) -> Tensor:
        x = images.to(self.device, non_blocking=True).float().div_(255)
        if flip_gen is not None:
            # Horizontal flip of a random half: the only augmentation, cheap and safe for
            # clothing images; drawn from a dedicated generator saved in the checkpoint.
            # Drawn for the whole global batch on every rank, each taking its images' share
            # (the sampler gives rank r the batch's images r, r + world, ...): the flips
            # do not depend on the number of processes.
            rank, world = (info.rank, info.world_size) if info else (0, 1)
            flip = (torch.rand(x.shape[0] * world, generator=flip_gen) < 0.5)[rank::world]
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


def _set_rng_state(
    state: dict[str, Any], flip_gen: torch.Generator, device: torch.device,
) -> None:
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
) -> RunResult:
    """Train ``cfg.model`` with activation ``cfg.act``; evaluate on test at the end.

    Writes ``checkpoint.pt`` (atomically, after every epoch) and ``metrics.json`` into
    ``cfg.out``. Under ``torchrun`` each rank trains on its ``DistributedSampler`` shard of
    every global batch (``cfg.batch_size`` is the global batch); rank 0 writes the files.

    Args:
        cfg: the recipe.
        resume: ``True`` for ``cfg.out/checkpoint.pt``, a path, or None/False to start fresh.
        data: pre-loaded splits (tests); loaded from ``cfg`` when None.

    Returns:
        The run's :class:`RunResult`, also written to ``metrics.json``
        (``result["test_acc"]`` reads as from that file).

    Raises:
        CheckpointError: ``resume`` points at a corrupt, foreign or mismatched checkpoint.
        DataNotFoundError: the dataset is missing.
    """
    device = _resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    info = init_distributed(device)
    try:
        result = _train(cfg, resume, data, device, info)
        if info.enabled:
            # Every rank leaves together, after rank 0's last write: a process (and with it,
            # under multi-node torchrun, maybe the launcher holding the rendezvous store)
            # gone while another still tears down its process group can abort that one.
            torch.distributed.barrier()
        return result
    finally:
        cleanup_distributed()


@dataclass
class _Run:
    """One training run's objects and progress, as :func:`_set_up` builds them."""

    cfg: TrainConfig
    info: DistInfo
    device: torch.device
    data: DataSplits
    val_data: ImageData
    model: nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    sampler: DistributedSampler
    flip_gen: torch.Generator
    criterion: nn.Module
    norm: _Normalizer
    n_steps: int  # optimizer steps per epoch
    per_rank_batch: int
    n_params: int
    macs: dict[str, float]
    saved_mib: float
    net: nn.Module | None = None  # the model, DDP-wrapped under torchrun
    # Progress, restored on resume.
    epochs_done: int = 0
    history: list[EpochStats] = field(default_factory=list)
    train_seconds: float = 0.0
    train_images: int = 0
    # Resumes that raised --epochs: {"at_epoch", "epochs_before", "epochs_after"} each.
    schedule_changes: list[dict[str, int]] = field(default_factory=list)


def _train(
    cfg: TrainConfig, resume: str | os.PathLike | bool | None, data: DataSplits | None,
    device: torch.device, info: DistInfo,
) -> RunResult:
    # Before any work: an --out that cannot hold the checkpoint would lose the first epoch.
    out = check_out_dir(cfg.out)
    _check_global_batch(cfg.batch_size, info.world_size)  # before loading data
    ckpt = out / "checkpoint.pt" if resume is True else Path(resume) if resume else None
    state = _load_resume_state(cfg, ckpt, info) if ckpt else None
    run = _set_up(cfg, data, device, info)
    if state is not None:
        _restore(run, state)
        _log(info, f"resumed from {ckpt} after epoch {run.epochs_done}/{cfg.epochs}")
        saved_epochs = state["config"]["epochs"]
        if cfg.epochs != saved_epochs:
            was = run.opt.param_groups[0]["lr"]
            _extend_schedule(run, saved_epochs)
            _log(info, f"extended from {saved_epochs} to {cfg.epochs} epochs: the cosine "
                       f"schedule is redrawn over {cfg.epochs} epochs, so the LR goes from "
                       f"{was:.4g} to {run.opt.param_groups[0]['lr']:.4g} at this step "
                       "(a warm restart; not the same as an uninterrupted run)")
    run.net = run.model
    if info.enabled:
        # BatchNorm over the global batch, as one process has it (same parameters and
        # buffers: the optimizer and the checkpoint do not notice).
        run.model = global_batch_norm(run.model, device)
        run.net = nn.parallel.DistributedDataParallel(
            run.model, device_ids=[device.index] if device.type == "cuda" else None
        )
    _log(info, f"model: {cfg.model} act={cfg.act} params={run.n_params:,} "
               f"MACs={run.macs['macs'] / 1e6:.2f}M  opt={cfg.opt} lr={cfg.lr} "
               f"wd={cfg.weight_decay} batch={_batch_text(cfg.batch_size, info.world_size)} "
               f"device={device}")
    for epoch in range(run.epochs_done, cfg.epochs):
        run.history.append(_epoch(run, epoch))
        run.epochs_done = epoch + 1
        if info.is_main:
            save_checkpoint(_checkpoint_state(run), out / "checkpoint.pt")
        if info.enabled:
            torch.distributed.barrier()
    result = _finish(run)
    if info.is_main:
        _write_json(out / "metrics.json", result.to_dict())
    return result


def _load_resume_state(cfg: TrainConfig, path: Path, info: DistInfo) -> dict[str, Any]:
    """The checkpoint to resume from, checked against this recipe and process count.

    ``epochs`` may be larger than the checkpoint's (see the module docstring), not smaller.
    """
    state = load_checkpoint(path, recipe={k: v for k, v in cfg.recipe().items()
                                          if k != "epochs"})
    saved_epochs = state["config"].get("epochs")
    if saved_epochs is None or cfg.epochs < saved_epochs:
        raise CheckpointError(
            f"{path} was written by a run of {saved_epochs} epochs; --resume continues it "
            f"with --epochs {saved_epochs} or more (more redraws the cosine LR schedule over "
            f"the new total), not {cfg.epochs}. Use a different --out for a new run."
        )
    saved_world = state["config"].get("world_size", 1)
    if saved_world != info.world_size:
        raise CheckpointError(
            f"{path} was written with {saved_world} process(es), this run has "
            f"{info.world_size}; the data order would differ"
        )
    return state


def _set_up(
    cfg: TrainConfig, data: DataSplits | None, device: torch.device, info: DistInfo,
) -> _Run:
    """Data, network, optimizer, schedule and generators of a fresh run (nothing trained).

    The order of the steps that draw random numbers is part of the reproducibility
    contract: the initial weights come from ``cfg.seed`` alone.
    """
    from revact.models import create_model

    if data is None:
        data = load_data(
            cfg.data, expand_path(cfg.data_dir), val_size=cfg.val_size, split_seed=cfg.split_seed,
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
    # On a copy and from its own generator: measuring must not move any RNG the run uses.
    probe = torch.randn(per_rank_batch, data.in_chans, data.image_size, data.image_size,
                        generator=torch.Generator().manual_seed(0)).to(device)
    rng = torch.get_rng_state()
    saved_mib = saved_tensor_mib(model, probe)
    torch.set_rng_state(rng)
    return _Run(
        cfg=cfg, info=info, device=device, data=data, val_data=val_data, model=model,
        opt=opt, sched=sched,
        scaler=torch.amp.GradScaler("cuda", enabled=_uses_scaler(cfg, device)),
        sampler=sampler, flip_gen=torch.Generator().manual_seed(cfg.seed * 1000),
        criterion=nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing),
        norm=_Normalizer(data, device), n_steps=n_steps, per_rank_batch=per_rank_batch,
        n_params=n_params, macs=macs, saved_mib=saved_mib,
    )


def _extend_schedule(run: _Run, saved_epochs: int) -> None:
    """After :func:`_restore` of a run started with ``saved_epochs``: the LR of the next step
    from the schedule over ``run.cfg.epochs`` (the scheduler already holds it), recorded."""
    sched = run.sched
    for group, base, fn in zip(run.opt.param_groups, sched.base_lrs, sched.lr_lambdas,
                               strict=True):
        group["lr"] = base * fn(sched.last_epoch)
    sched._last_lr = [group["lr"] for group in run.opt.param_groups]
    run.schedule_changes.append({"at_epoch": run.epochs_done, "epochs_before": saved_epochs,
                                 "epochs_after": run.cfg.epochs})


def _config_record(run: _Run) -> dict[str, Any]:
    """The run's config as checkpoints and ``metrics.json`` record it."""
    record = {**run.cfg.to_dict(), "world_size": run.info.world_size}
    if run.schedule_changes:
        record["schedule_changes"] = list(run.schedule_changes)
    return record


def _uses_scaler(cfg: TrainConfig, device: torch.device) -> bool:
    return cfg.amp and device.type == "cuda"


def _checkpoint_state(run: _Run) -> dict[str, Any]:
    """Everything :func:`_restore` needs to continue exactly where ``run`` is now."""
    cfg = run.cfg
    return {
        "config": _config_record(run),
        "epoch": run.epochs_done,
        "model_args": {"num_classes": run.data.num_classes, "in_chans": run.data.in_chans},
        "model": run.model.state_dict(),
        "optimizer": run.opt.state_dict(),
        "scheduler": run.sched.state_dict(),
        "scaler": run.scaler.state_dict() if _uses_scaler(cfg, run.device) else None,
        "rng": _rng_state(run.flip_gen, run.device),
        "data_order": {"sampler_seed": cfg.seed, "next_epoch": run.epochs_done},
        "history": [h.to_dict() for h in run.history],
        "train_seconds": run.train_seconds,
        "train_images": run.train_images,
    }


def _restore(run: _Run, state: dict[str, Any]) -> None:
    """Load a checkpoint's weights, optimizer, schedule, generators and progress."""
    run.model.load_state_dict(state["model"])
    run.opt.load_state_dict(state["optimizer"])
    run.sched.load_state_dict(state["scheduler"])
    if state.get("scaler"):
        run.scaler.load_state_dict(state["scaler"])
    _set_rng_state(state["rng"], run.flip_gen, run.device)
    run.epochs_done = state["epoch"]
    run.history = [EpochStats.from_dict(h) for h in state.get("history", [])]
    run.train_seconds = state.get("train_seconds", 0.0)
    run.train_images = state.get("train_images", 0)
    run.schedule_changes = list(state["config"].get("schedule_changes", []))


def _epoch(run: _Run, epoch: int) -> EpochStats:
    """Train one epoch, then validate; adds to the run's time and image counts."""
    cfg = run.cfg
    loss_sum, correct, seen, seconds = _train_pass(run, epoch)
    loss_sum, correct, seen = all_reduce_sum([loss_sum, correct, seen], run.info)
    run.train_seconds += seconds
    run.train_images += int(seen)
    if cfg.precise_bn:
        _precise_bn(run)
    val = evaluate(run.model, run.val_data, run.norm, run.info, cfg)
    stats = EpochStats(
        epoch=epoch + 1, train_loss=loss_sum / seen, train_acc=100.0 * correct / seen,
        val_loss=val["loss"], val_acc=val["acc"], lr=run.opt.param_groups[0]["lr"],
        seconds=seconds, img_per_s=seen / seconds,
    )
    _log(run.info, f"epoch {epoch + 1}/{cfg.epochs}  train loss {stats.train_loss:.4f} "
                   f"acc {stats.train_acc:.2f}%  val loss {stats.val_loss:.4f} "
                   f"acc {stats.val_acc:.2f}%  {stats.img_per_s:.0f} img/s  {seconds:.1f}s")
    return stats


def _precise_bn(run: _Run) -> None:
    """Re-estimate the BatchNorm statistics on ``cfg.precise_bn`` training batches.

    The batches are the same every epoch and on every resume: the first ones of a fixed
    permutation of the training images (from the run's seed, without flips, not drawn from
    any generator the run uses), each rank taking its share of every global batch.
    """
    cfg, info = run.cfg, run.info
    n_images = min(cfg.precise_bn, run.n_steps) * cfg.batch_size
    order = torch.randperm(len(run.data.train), generator=torch.Generator().manual_seed(cfg.seed))
    mine = order[:n_images][info.rank :: info.world_size]
    b_size = run.per_rank_batch

    def forward(x: Tensor) -> Tensor:
        with _autocast(cfg, run.device):
            return run.model(x)

    def all_reduce(t: Tensor) -> None:
        if info.enabled:
            torch.distributed.all_reduce(t)

    batches = (run.norm(run.data.train.images[mine[i : i + b_size]])
               for i in range(0, len(mine), b_size))
    precise_bn(run.model, batches, forward=forward, all_reduce=all_reduce)


def _train_pass(run: _Run, epoch: int) -> tuple[float, float, float, float]:
    """This rank's optimizer steps of one epoch: (loss sum, correct, images, seconds)."""
    cfg, device, b_size = run.cfg, run.device, run.per_rank_batch
    run.sampler.set_epoch(epoch)
    order = torch.tensor(list(iter(run.sampler)), dtype=torch.long)
    run.net.train()
    loss_sum = correct = seen = 0.0
    bar = _progress(run.info, cfg, run.n_steps, f"epoch {epoch + 1}/{cfg.epochs}")
    t0 = time.perf_counter()
    for step in range(run.n_steps):
        b = order[step * b_size : (step + 1) * b_size]
        x = run.norm(run.data.train.images[b], run.flip_gen if cfg.augment else None, run.info)
        y = run.data.train.labels[b].to(device)
        with _autocast(cfg, device):
            logits = run.net(x)
            loss = run.criterion(logits.float(), y)
        run.opt.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.step(run.opt)
        run.scaler.update()
        run.sched.step()
        loss_sum += loss.item() * len(b)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(b)
        if bar is not None:
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{100 * correct / seen:.1f}")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    return loss_sum, correct, seen, seconds


def _finish(run: _Run) -> RunResult:
    """Test once, gather memory, and put the run's numbers into a :class:`RunResult`."""
    cfg, info, data, device = run.cfg, run.info, run.data, run.device
    test = evaluate(run.model, data.test, run.norm, info, cfg)
    _log(info, f"test  loss {test['loss']:.4f}  acc {test['acc']:.2f}%  "
               f"({len(data.test)} images)")
    peak = all_reduce_sum([peak_memory_mib(device)], info)[0] / info.world_size
    return RunResult(
        config=_config_record(run),
        data={"name": data.name, "source": data.source, "train": len(data.train),
              "val": len(run.val_data), "test": len(data.test), "image_size": data.image_size,
              "in_chans": data.in_chans, "num_classes": data.num_classes},
        params=run.n_params,
        macs=run.macs["macs"],
        layer_macs=run.macs["layer_macs"],
        act_macs=run.macs["act_macs"],
        history=run.history,
        test_acc=test["acc"],
        test_loss=test["loss"],
        val_acc=run.history[-1].val_acc if run.history else None,
        train_seconds=run.train_seconds,
        train_img_per_s=run.train_images / run.train_seconds if run.train_seconds else None,
        peak_mem_mib=peak,
        saved_for_backward_mib=run.saved_mib,
        saved_for_backward_batch=run.per_rank_batch,
        peak_mem_kind="cuda_max_allocated" if device.type == "cuda" else "rss_high_water",
        device=str(device),
        threads=torch.get_num_threads(),
        torch=torch.__version__,
    )


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
