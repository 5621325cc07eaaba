"""The training recipe as one flat, serialisable dataclass."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields

__all__ = ["TrainConfig", "RECIPE_KEYS", "DEFAULT_LR", "DEFAULT_WEIGHT_DECAY",
           "saved_recipe_value", "expand_path"]

# Per optimizer, for a config that leaves lr / weight_decay as None.
DEFAULT_LR = {"sgd": 0.1, "adamw": 2e-3}
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-4, "adamw": 0.05}


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
    # Batches of training images (batch_size each, capped at the training set) on which
    # every BatchNorm's running statistics are re-estimated before each validation and
    # the test; 0 = off (the momentum estimates as trained). See revact.train.precise_bn.
    precise_bn: int = 0
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
        if self.opt not in DEFAULT_LR:
            raise ValueError(f"unknown optimizer {self.opt!r}; choose 'sgd' or 'adamw'")
        if self.lr is None:
            self.lr = DEFAULT_LR[self.opt]
        if self.weight_decay is None:
            self.weight_decay = DEFAULT_WEIGHT_DECAY[self.opt]
        self.validate()

    def validate(self) -> None:
        """Raise a ``ValueError`` naming the first value no run could use.

        Called on construction, so ``revact train`` and ``revact compare`` refuse a bad
        recipe once, before any data is loaded or any run starts. What depends on the data
        (a full batch from the training images) is checked by
        :func:`revact.train.engine.steps_per_epoch`.
        """
        checks = (
            (self.epochs >= 1, "epochs must be >= 1", self.epochs),
            (self.batch_size >= 2, "batch size must be >= 2 (BatchNorm)", self.batch_size),
            (self.lr > 0, "learning rate must be > 0", self.lr),
            (0 <= self.momentum < 1, "momentum must be in [0, 1)", self.momentum),
            (self.weight_decay >= 0, "weight decay must be >= 0", self.weight_decay),
            (0 <= self.warmup_epochs <= self.epochs,
             f"warm-up epochs must be in [0, epochs = {self.epochs}]", self.warmup_epochs),
            (0 <= self.label_smoothing <= 1, "label smoothing must be in [0, 1]",
             self.label_smoothing),
            (self.val_size > 0, "validation size must be >= 1 (the run selects and reports "
                                "on it)", self.val_size),
            (self.split_seed >= 0, "split seed must be >= 0", self.split_seed),
            (self.seed >= 0, "seed must be >= 0", self.seed),
            (isinstance(self.precise_bn, int) and self.precise_bn >= 0,
             "precise BN takes a number of batches >= 0 (0 = off)", self.precise_bn),
            (self.threads is None or self.threads >= 1, "threads must be >= 1", self.threads),
        )
        for ok, what, value in checks:
            if not ok:
                raise ValueError(f"{what}, got {value}")
        for name in ("train_subset", "val_subset", "test_subset"):
            n = getattr(self, name)
            if n is not None and n < 1:
                raise ValueError(f"{name.replace('_', ' ')} must be >= 1 images, got {n}")

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
    "train_subset", "val_subset", "test_subset", "precise_bn",
)

# Recipe keys added after files were first written: an older file without the key was made
# with this value, so its runs and checkpoints still match a recipe that has it.
_ADDED_KEYS = {"precise_bn": 0}


def saved_recipe_value(saved: dict, key: str):
    """``saved[key]`` of a saved config, or the value an older file without it was made with."""
    return saved.get(key, _ADDED_KEYS.get(key))


def expand_path(path: str | None) -> str | None:
    """``~`` and ``$VARS`` in a path, expanded where the run is: a ``--data-dir`` given as
    ``'$SLURM_TMPDIR/fmnist'`` (quoted, so that the shell leaves it) names each node's own
    copy of the data in a cluster run."""
    return None if path is None else os.path.expandvars(os.path.expanduser(path))
