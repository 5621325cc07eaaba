"""The training recipe as one flat, serialisable dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

__all__ = ["TrainConfig", "RECIPE_KEYS"]


@dataclass
class TrainConfig:
    """Everything that decides a training run's numbers, plus where to write them.

    Fields in :data:`RECIPE_KEYS` must match between a checkpoint and the run that resumes
    from it; the rest (output folder, progress bar, threads) may change.
    """

    model: str = "mbv2"
    act: str = "relu"
    seed: int = 0
    epochs: int = 10
    batch_size: int = 128
    opt: str = "sgd"
    lr: float | None = None  # None: 0.1 for SGD, 2e-3 for AdamW
    momentum: float = 0.9
    weight_decay: float | None = None  # None: 5e-4 for SGD, 0.05 for AdamW
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.1
    augment: bool = True
    amp: bool = False
    data: str = "fashion-mnist"
    data_dir: str | None = None
    download: bool = True
    val_size: int = 5000
    split_seed: int = 0
    train_subset: int | None = None
    val_subset: int | None = None
    test_subset: int | None = None
    # Not part of the recipe.
    out: str = "runs/train"
    device: str = "auto"
    threads: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        self.opt = self.opt.lower()
        # Paths arrive as Path objects from Python callers; the config must stay JSON-able.
        self.data, self.out = str(self.data), str(self.out)
        self.data_dir = None if self.data_dir is None else str(self.data_dir)
        if self.opt not in ("sgd", "adamw"):
            raise ValueError(f"unknown optimizer {self.opt!r}; choose 'sgd' or 'adamw'")
        if self.lr is None:
            self.lr = 0.1 if self.opt == "sgd" else 2e-3
        if self.weight_decay is None:
            self.weight_decay = 5e-4 if self.opt == "sgd" else 0.05
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 2:
            raise ValueError(f"batch size must be >= 2 (BatchNorm), got {self.batch_size}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def recipe(self) -> dict:
        """The fields that decide the numbers (compared on ``--resume``)."""
        return {k: getattr(self, k) for k in RECIPE_KEYS}


RECIPE_KEYS = (
    "model", "act", "seed", "epochs", "batch_size", "opt", "lr", "momentum", "weight_decay",
    "warmup_epochs", "label_smoothing", "augment", "amp", "data", "val_size", "split_seed",
    "train_subset", "val_subset", "test_subset",
)
