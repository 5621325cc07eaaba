"""Datasets held in memory as uint8 tensors, with a deterministic train/val split.

Small image datasets (Fashion-MNIST is 55 MB as uint8) fit in RAM; batching by indexing one
tensor skips the per-image decoding, collation and worker processes of a ``DataLoader`` over
PIL images (no benchmark here compares the two), and it makes the data order a pure function
of a seeded generator, which exact ``--resume`` needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from revact.data.idx import IDXError, read_idx

__all__ = [
    "DataNotFoundError",
    "ImageData",
    "DataSplits",
    "FASHION_MNIST_CLASSES",
    "DEBIAN_FASHION_MNIST_DIR",
    "find_fashion_mnist",
    "load_fashion_mnist",
    "load_image_folder",
    "load_data",
]

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
APT_INSTALL = "sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist"
HOW_TO_GET = (
    "Fashion-MNIST not found. Get it in one of these ways:\n"
    f"  * Debian/Ubuntu:  {APT_INSTALL}\n"
    f"    (puts the four IDX .gz files in {DEBIAN_FASHION_MNIST_DIR})\n"
    "  * a folder holding train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz),\n"
    "    t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz): pass it as --data-dir DIR\n"
    "    (data_dir= in Python) or set $REVACT_DATA_DIR\n"
    "  * with network access and no --data-dir: torchvision downloads it to ~/.cache/revact\n"
    "    (--no-download / download=False turns that off)"
)
IMAGE_FOLDER_HINT = ("--data PATH (data= in Python): an ImageFolder tree (class sub-folders) "
                     "of your own")


class DataNotFoundError(FileNotFoundError):
    """The requested data is not on disk; the message says how to get it.

    ``summary`` is the same in one line (a cluster node reports it beside its name);
    by default the message's first line.
    """

    def __init__(self, message: str, summary: str | None = None) -> None:
        super().__init__(message)
        self.summary = summary or (message.strip().splitlines() or [""])[0]


@dataclass
class ImageData:
    """Images as uint8 (N, C, H, W) and int64 labels (N,)."""

    images: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return self.labels.shape[0]

    def subset(self, n: int | None) -> ImageData:
        """The first ``n`` samples (all when ``n`` is None or larger than the set)."""
        if n is None or n >= len(self):
            return self
        return ImageData(self.images[:n], self.labels[:n])


@dataclass
class DataSplits:
    """Train / validation / test splits plus the facts a model and the engine need.

    ``mean``/``std`` are per-channel statistics of the training split in [0, 1] units.
    """

    name: str
    source: str
    classes: list[str]
    train: ImageData
    val: ImageData
    test: ImageData
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    @property
    def in_chans(self) -> int:
        return self.train.images.shape[1]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        return self.train.images.shape[-1]

    def describe(self) -> str:
        return (
            f"{self.name} from {self.source}: train {len(self.train)}, val {len(self.val)}, "
            f"test {len(self.test)}, {self.in_chans}x{self.image_size}x{self.image_size}, "
            f"{self.num_classes} classes"
        )


def _locate(folder: Path) -> dict[str, Path] | None:
    """The four IDX files in ``folder`` (plain or .gz), or None if any is missing."""
    found = {}
    for key, stem in _FILES.items():
        for candidate in (folder / f"{stem}.gz", folder / stem):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            return None
    return found


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "revact"


def search_roots(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders :func:`find_fashion_mnist` searches, in order."""
    if data_dir is not None:
        return [Path(data_dir)]
    roots = [Path(p) for p in [os.environ.get("REVACT_DATA_DIR")] if p]
    return roots + [DEBIAN_FASHION_MNIST_DIR, _cache_dir()]


def find_fashion_mnist(data_dir: str | os.PathLike | None = None) -> dict[str, Path] | None:
    """Paths of the Fashion-MNIST IDX files, or None.

    With ``data_dir`` only that folder (or its torchvision layout ``FashionMNIST/raw``) is
    searched; otherwise ``$REVACT_DATA_DIR``, the Debian package's folder and the download
    cache, in that order.
    """
    for root in search_roots(data_dir):
        for folder in (root, root / "FashionMNIST" / "raw", root / "fashion-mnist"):
            found = _locate(folder)
            if found:
                return found
    return None


def _download() -> dict[str, Path] | None:
    """Fetch Fashion-MNIST with torchvision into the cache; None when that fails (no network)."""
    try:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(_cache_dir()), train=True, download=True)
        FashionMNIST(str(_cache_dir()), train=False, download=True)
    except Exception:  # any failure means "not available here"; the caller explains
        return None
    return find_fashion_mnist(_cache_dir())


def load_fashion_mnist(
    data_dir: str | os.PathLike | None = None, download: bool = True
) -> tuple[ImageData, ImageData, str]:
    """Fashion-MNIST's official train (60k) and test (10k) sets and where they came from.

    Raises:
        DataNotFoundError: not found (and not downloadable); the message says how to get it.
    """
    files = find_fashion_mnist(data_dir)
    if files is None and download and data_dir is None:
        files = _download()
    if files is None:
        roots = search_roots(data_dir)
        looked = "\n".join(f"  {root}  (and its FashionMNIST/raw, fashion-mnist sub-folders)"
                           for root in roots)
        raise DataNotFoundError(
            f"{HOW_TO_GET}\nLooked in:\n{looked}",
            summary=f"Fashion-MNIST not found (looked in {', '.join(map(str, roots))}); install "
                    f"it: {APT_INSTALL} (Debian/Ubuntu), or put the four IDX files in a folder "
                    "given as --data-dir or $REVACT_DATA_DIR")
    try:
        arrays = {k: read_idx(p) for k, p in files.items()}
    except IDXError as e:
        raise DataNotFoundError(f"Fashion-MNIST file is damaged: {e}\n\n{HOW_TO_GET}") from e
    sets = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise DataNotFoundError(
                f"Fashion-MNIST {split} files disagree: images {images.shape}, "
                f"labels {labels.shape}"
            )
        sets.append(
            ImageData(
                torch.from_numpy(images.astype(np.uint8)).unsqueeze(1),
                torch.from_numpy(labels.astype(np.int64)),
            )
        )
    return sets[0], sets[1], str(files["train_images"].parent)


def _read_folder(root: Path, classes: list[str] | None, image_size: int | None):
    from PIL import Image
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes

    found, _ = find_classes(str(root))
    classes = classes or found
    images, labels = [], []
    for label, cls in enumerate(classes):
        folder = root / cls
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() not in IMG_EXTENSIONS:
                continue
            with Image.open(path) as im:
                im = im.convert("RGB")
                if image_size is None:
                    image_size = min(im.size)
                im = im.resize((image_size, image_size), Image.BILINEAR)
                images.append(np.asarray(im, dtype=np.uint8).transpose(2, 0, 1))
            labels.append(label)
    if not images:
        raise DataNotFoundError(f"no images found under {root} (expected ROOT/<class>/<image>)")
    return torch.from_numpy(np.stack(images)), torch.tensor(labels), classes, image_size


def load_image_folder(
    path: str | os.PathLike, image_size: int | None = None, test_fraction: float = 0.15
) -> tuple[ImageData, ImageData, list[str]]:
    """An ImageFolder tree as (train, test) sets plus class names.

    ``PATH/train`` and ``PATH/test`` (or ``PATH/val``) are used when present; otherwise
    ``PATH/<class>/...`` is split deterministically, ``test_fraction`` going to test.
    Images are converted to RGB and resized to ``image_size`` squared (default: the short side
    of the first image).
    """
    root = Path(path)
    if not root.is_dir():
        raise DataNotFoundError(f"--data {path}: no such folder (expected an ImageFolder tree)")
    train_root = root / "train"
    test_root = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
    if train_root.is_dir() and test_root is not None:
        x, y, classes, size = _read_folder(train_root, None, image_size)
        tx, ty, _, _ = _read_folder(test_root, classes, size)
        return ImageData(x, y), ImageData(tx, ty), classes
    x, y, classes, _ = _read_folder(root, None, image_size)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(1234))
    n_test = max(1, int(round(test_fraction * len(y))))
    te, tr = perm[:n_test], perm[n_test:]
    return ImageData(x[tr], y[tr]), ImageData(x[te], y[te]), classes


def _stats(images: Tensor) -> tuple[list[float], list[float]]:
    x = images[:10000].double().div_(255)
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()


def load_data(
    data: str = "fashion-mnist",
    data_dir: str | os.PathLike | None = None,
    *,
    val_size: int | float = 5000,
    split_seed: int = 0,
    train_subset: int | None = None,
    test_subset: int | None = None,
    download: bool = True,
    image_size: int | None = None,
) -> DataSplits:
    """Load a dataset and split its training set into train and validation.

    The split depends only on ``split_seed`` (not on the training seed), so every run of a
    comparison trains and selects on the same images. The test set is never used for
    choices; it is evaluated once, for the final numbers.

    Args:
        data: ``'fashion-mnist'`` or a path to an ImageFolder tree.
        data_dir: folder holding the Fashion-MNIST IDX files (skips the default search).
        val_size: validation images held out from train (a count, or a fraction if < 1;
            at most a fifth of the training set).
        split_seed: seed of the train/val permutation.
        train_subset: keep only this many training images (after the split).
        test_subset: keep only this many test images (for quick smoke runs only).
        download: allow torchvision's downloader when the files are not on disk.
        image_size: resize ImageFolder images to this size.

    Raises:
        DataNotFoundError: the data is missing; the message says how to get it.
    """
    if data.lower().replace("_", "-") in ("fashion-mnist", "fmnist", "fashionmnist"):
        try:
            train, test, source = load_fashion_mnist(data_dir, download)
        except DataNotFoundError as e:  # here, the user's own images are a way out too
            raise DataNotFoundError(f"{e}\nOr train on {IMAGE_FOLDER_HINT} images",
                                    summary=e.summary) from None
        name, classes = "fashion-mnist", list(FASHION_MNIST_CLASSES)
    else:
        train, test, classes = load_image_folder(data, image_size)
        name, source = Path(data).name or str(data), str(data)
    n = len(train)
    n_val = int(round(val_size * n)) if isinstance(val_size, float) and val_size < 1 else val_size
    # Never more than a fifth of a small training set, so small ImageFolder trees and
    # synthetic test data keep most images for training.
    n_val = int(min(max(n_val, 0), n // 5))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    val = ImageData(train.images[perm[:n_val]], train.labels[perm[:n_val]])
    train = ImageData(train.images[perm[n_val:]], train.labels[perm[n_val:]]).subset(train_subset)
    mean, std = _stats(train.images)
    return DataSplits(name, source, classes, train, val, test.subset(test_subset), mean, std)
