"""A small, learnable stand-in for Fashion-MNIST in the same IDX format, for tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from revact.data.idx import write_idx

__all__ = ["write_synthetic_idx"]


def _images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(labels)
    x = rng.integers(0, 60, size=(n, 28, 28)).astype(np.float32)
    for i, k in enumerate(labels):
        # Class k: a bright bar whose row and length depend on k, jittered by a pixel or two,
        # so small networks learn it within an epoch yet not trivially.
        r = 3 + 2 * int(k) + int(rng.integers(-1, 2))
        c = int(rng.integers(2, 6))
        x[i, r : r + 3, c : c + 10 + int(k)] += 170
    return np.clip(x, 0, 255).astype(np.uint8)


def write_synthetic_idx(
    folder: str | os.PathLike, n_train: int = 1200, n_test: int = 300, seed: int = 0,
    gz: bool = True,
) -> Path:
    """Write the four Fashion-MNIST-named IDX files with synthetic 28×28 images.

    Returns:
        ``folder``, usable as ``--data-dir``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    suffix = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", _images(labels, rng))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return folder
