"""Typed records of training results, and their JSON form.

:class:`RunResult` is one run's ``metrics.json``; :class:`CompareRun` is that run's row in a
comparison's ``results.json``. ``to_dict()`` writes the keys (and their order) those files
have always had and ``from_dict()`` reads them back, older files included (a key an older
revact did not write reads as None), so existing result folders keep working.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["EpochStats", "RunResult", "CompareRun"]


def _known(cls, d: dict[str, Any]) -> dict[str, Any]:
    """``d``'s values for the fields of ``cls``; None for a field ``d`` lacks."""
    return {f.name: d.get(f.name) for f in fields(cls)}


@dataclass
class EpochStats:
    """One epoch: training loss/accuracy over its steps, then validation, LR and speed."""

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    lr: float
    seconds: float
    img_per_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EpochStats:
        return cls(**_known(cls, d))


def _history(rows: list) -> list[EpochStats]:
    return [r if isinstance(r, EpochStats) else EpochStats.from_dict(r) for r in rows or []]


@dataclass
class RunResult:
    """What one training run measured: the content of its ``metrics.json``.

    ``result["test_acc"]`` reads like the dictionary :func:`revact.train.engine.train`
    returned before this record existed.
    """

    config: dict[str, Any]  # TrainConfig.to_dict() plus world_size
    data: dict[str, Any]  # name, source, train/val/test sizes, image_size, in_chans, ...
    params: int
    macs: float
    layer_macs: float
    act_macs: float
    history: list[EpochStats]
    test_acc: float
    test_loss: float
    val_acc: float | None
    train_seconds: float
    train_img_per_s: float | None
    peak_mem_mib: float
    saved_for_backward_mib: float
    saved_for_backward_batch: int | None
    peak_mem_kind: str
    device: str
    threads: int
    torch: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # the EpochStats in history become dicts too

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunResult:
        kw = _known(cls, d)
        kw["history"] = _history(kw["history"])
        return cls(**kw)

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]


# The measurements a comparison keeps of each run, in results.json's order.
_KEPT = ("test_acc", "test_loss", "val_acc", "params", "macs", "layer_macs", "act_macs",
         "train_img_per_s", "train_seconds", "peak_mem_mib", "saved_for_backward_mib",
         "history")


@dataclass
class CompareRun:
    """One (activation, seed) run of a comparison: a row of ``results.json``'s ``runs``."""

    act: str
    seed: int
    dir: str  # relative to the comparison folder
    wall_seconds: float | None
    # Where it ran: this machine's host name (--backend local) or "host/<Ray node id>";
    # None in results written before it was recorded.
    node: str | None
    test_acc: float
    test_loss: float
    val_acc: float | None
    params: int
    macs: float
    layer_macs: float
    act_macs: float
    train_img_per_s: float | None
    train_seconds: float
    peak_mem_mib: float
    saved_for_backward_mib: float
    history: list[EpochStats]

    @classmethod
    def from_result(cls, act: str, seed: int, dir: str, wall_seconds: float | None,
                    result: RunResult, node: str | None = None) -> CompareRun:
        return cls(act=act, seed=seed, dir=dir, wall_seconds=wall_seconds, node=node,
                   **{k: getattr(result, k) for k in _KEPT})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["node"] is None:  # a row from before nodes were recorded reads back as it was
            del d["node"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CompareRun:
        kw = _known(cls, d)
        kw["history"] = _history(kw["history"])
        return cls(**kw)
