"""A small YOLO-format detection dataset: Fashion-MNIST items pasted onto textured canvases.

Each image holds 1 to ``max_objects`` randomly scaled items with little overlap; each label
line is ``class cx cy w h`` (normalised), the box being the tight box of the pixels the item
painted, not its 28×28 square. Training images take their items from Fashion-MNIST's train
split, validation images from its test split, so no item is seen in both.

Every image is a pure function of ``(seed, split, index)`` and the generation arguments:
the same call writes byte-identical files, and a larger ``n_train`` only appends images.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from revact.data.datasets import (
    FASHION_MNIST_CLASSES,
    DataNotFoundError,
    load_fashion_mnist,
)
from revact.train.checkpoint import check_out_dir

__all__ = ["Scene", "compose_scene", "write_detection_dataset", "write_preview"]

_SPLIT_CODES = {"train": 0, "val": 1}  # part of each image's seed, so the splits differ
_PLACEMENT_TRIES = 30
# Pixel noise over the whole image, items included, so that no pixel is exactly predictable;
# it is what PNG compresses worst (160 px: ~24 KB without it, ~44 KB at this level).
_NOISE_STD = 2.0


@dataclass
class Scene:
    """One composed image and its objects.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        classes: (K,) int64 class indices.
        boxes: (K, 4) int64 pixel boxes ``x0, y0, x1, y1`` (``x1``, ``y1`` exclusive).
        masks: (K, H, W) bool, the pixels each item painted (before later items covered any).
        sources: (K,) int64 indices of the items in the pool they were drawn from.
    """

    image: np.ndarray
    classes: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray
    sources: np.ndarray

    def yolo_labels(self) -> str:
        """The YOLO label file text: one ``class cx cy w h`` line per object, normalised."""
        h, w = self.image.shape[:2]
        lines = []
        for c, (x0, y0, x1, y1) in zip(self.classes, self.boxes, strict=True):
            lines.append(f"{c} {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} "
                         f"{(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}\n")
        return "".join(lines)


def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) weights of linear interpolation from n_in knots spread over n_out pixels."""
    pos = np.linspace(0, n_in - 1, n_out)
    eye = np.eye(n_in)
    return np.stack([np.interp(pos, np.arange(n_in), eye[k]) for k in range(n_in)], axis=1)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A (size, size, 3) float32 canvas: tinted grey, soft blotches and faint stripes.

    Smooth variation keeps a detector from finding items by brightness alone, and the
    stripes give it an edge texture that is not an object.
    """
    base = rng.uniform(15, 110) + rng.uniform(-12, 12, size=3)
    knots = int(rng.integers(3, 7))
    interp = _interp_matrix(size, knots)
    # Bilinear upsampling of a coarse random grid, as two small matrix products per channel.
    blotches = (interp @ rng.normal(0, 18, (3, knots, knots)) @ interp.T).transpose(1, 2, 0)
    ramp = np.arange(size) / size
    fx, fy = rng.uniform(-12, 12, size=2)
    phase = 2 * np.pi * (fx * ramp[None, :] + fy * ramp[:, None]) + rng.uniform(0, 2 * np.pi)
    stripes = rng.uniform(0, 8) * np.sin(phase)
    return (base + blotches + stripes[..., None]).astype(np.float32)


def _resize(item: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    if side == item.shape[0]:
        return item
    # Pillow's bilinear filter widens its support when shrinking, so small items stay smooth.
    return np.asarray(Image.fromarray(item).resize((side, side), Image.BILINEAR))


def _overlap(box: tuple[int, int, int, int], others: list[tuple[int, int, int, int]]) -> float:
    """Largest intersection with any of ``others`` as a fraction of the smaller box's area."""
    x0, y0, x1, y1 = box
    worst = 0.0
    for a0, b0, a1, b1 in others:
        inter = max(0, min(x1, a1) - max(x0, a0)) * max(0, min(y1, b1) - max(y0, b0))
        smaller = min((x1 - x0) * (y1 - y0), (a1 - a0) * (b1 - b0))
        worst = max(worst, inter / smaller)
    return worst


def compose_scene(
    images: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    *,
    imgsz: int = 160,
    max_objects: int = 4,
    scale: tuple[float, float] = (0.75, 2.5),
    max_overlap: float = 0.1,
    fg_threshold: int = 16,
) -> Scene:
    """Paste 1 to ``max_objects`` items from a pool onto a textured canvas.

    Args:
        images: (N, S, S) uint8 pool of light-on-black items (Fashion-MNIST layout).
        labels: (N,) class of each pool item.
        rng: the only source of randomness.
        imgsz: canvas side in pixels; must hold the largest scaled item.
        max_objects: most items per image (the count is uniform in 1..max_objects).
        scale: range of the uniform random item scale factor.
        max_overlap: most an item's box may cover of another's (or its own) box area, as a
            fraction of the smaller one; items that find no such place in a few tries are
            left out, so crowded canvases get fewer objects.
        fg_threshold: resized item pixels at or below this value are background: neither
            pasted nor counted in the box.
    """
    canvas = _background(rng, imgsz)
    n_objects = int(rng.integers(1, max_objects + 1))
    classes, boxes, masks, sources = [], [], [], []
    for _ in range(n_objects):
        index = int(rng.integers(len(images)))
        side = max(1, round(images.shape[-1] * rng.uniform(*scale)))
        item = _resize(images[index], side).astype(np.float32)
        fg = item > fg_threshold
        if not fg.any():
            continue
        rows, cols = np.flatnonzero(fg.any(1)), np.flatnonzero(fg.any(0))
        # The item's own tight box inside its square patch.
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        for _ in range(_PLACEMENT_TRIES):
            y, x = (int(v) for v in rng.integers(0, imgsz - side + 1, size=2))
            box = (x + c0, y + r0, x + c1, y + r1)
            if _overlap(box, boxes) <= max_overlap:
                break
        else:
            continue
        # Items are light on black: their brightness, relative to their brightest pixel,
        # doubles as opacity, so dark garments are opaque too. Stretching each to a random
        # peak with a per-channel gain keeps them visible on the (darker) background and
        # makes class not a matter of grey level.
        item *= rng.uniform(150, 255) / item.max()
        alpha = np.where(fg, np.minimum(item / 96.0, 1.0), 0.0)[..., None]
        colour = item[..., None] * rng.uniform(0.55, 1.0, size=3)
        patch = canvas[y:y + side, x:x + side]
        patch[:] = (1 - alpha) * patch + alpha * colour
        mask = np.zeros((imgsz, imgsz), dtype=bool)
        mask[y:y + side, x:x + side] = fg
        classes.append(int(labels[index]))
        boxes.append(box)
        masks.append(mask)
        sources.append(index)
    canvas += _NOISE_STD * rng.standard_normal(canvas.shape, dtype=np.float32)
    return Scene(
        image=np.clip(np.rint(canvas), 0, 255).astype(np.uint8),
        classes=np.array(classes, dtype=np.int64),
        boxes=np.array(boxes, dtype=np.int64).reshape(-1, 4),
        masks=np.array(masks, dtype=bool).reshape(-1, imgsz, imgsz),
        sources=np.array(sources, dtype=np.int64),
    )


def _load_pools(data_dir, download: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    train, test, _ = load_fashion_mnist(data_dir, download)
    return {split: (d.images[:, 0].numpy(), d.labels.numpy())
            for split, d in (("train", train), ("val", test))}


MAX_IMGSZ = 4096
"""Largest image side: a canvas is imgsz² × 3 bytes in memory (4096 px: 48 MiB)."""

# Bytes per pixel of a written image, measured with these settings on 2,400 images at
# 160 px (PNG 1.72, JPEG 0.17) and 48 at 640 px (PNG 1.63, JPEG 0.09); rounded up.
_BYTES_PER_PIXEL = {"png": 1.8, "jpg": 0.2}


def estimate_bytes(n_images: int, imgsz: int, image_format: str = "png") -> int:
    """About how many bytes :func:`write_detection_dataset` writes (images dominate)."""
    ext = "jpg" if image_format.lower() in ("jpg", "jpeg") else "png"
    return int(n_images * imgsz * imgsz * _BYTES_PER_PIXEL[ext])


def _check_space(out: Path, needed: int) -> None:
    existing = next(p for p in (out, *out.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if needed > 0.9 * free:
        raise ValueError(
            f"this dataset needs about {needed / 2**20:,.0f} MiB and {existing} has "
            f"{free / 2**20:,.0f} MiB free (the limit is 90% of it); write fewer or smaller "
            "images, use --format jpg (about 10x smaller), or choose another --out"
        )


def _check_out(out: Path, overwrite: bool) -> bool:
    """Create ``out`` unless it holds an earlier dataset (and no ``overwrite``); True if
    it was created here."""
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--out {out}: cannot create it ({e.strerror or e})") from None
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{out} exists and is not empty; choose another folder or pass overwrite=True "
            "(--overwrite) to replace its images/, labels/ and data.yaml"
        )
    return created


def _clear_out(out: Path) -> None:
    # Stale images from a larger earlier write would silently join the new set, and
    # Ultralytics' labels/*.cache would describe the old labels.
    for sub in ("images/train", "images/val", "labels/train", "labels/val"):
        shutil.rmtree(out / sub, ignore_errors=True)
    for stale in [*out.glob("labels/*.cache"), out / "data.yaml", out / "preview.png"]:
        stale.unlink(missing_ok=True)


def _data_yaml(root: Path, header: str) -> str:
    # json.dumps gives double-quoted strings, which YAML reads the same way; it keeps the
    # absolute path and names such as "T-shirt/top" safe without a YAML writer.
    names = "".join(f"  {i}: {json.dumps(n)}\n" for i, n in enumerate(FASHION_MNIST_CLASSES))
    return (f"{header}path: {json.dumps(str(root))}\ntrain: images/train\nval: images/val\n"
            f"names:\n{names}")


def write_detection_dataset(
    out: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    n_train: int = 2000,
    n_val: int = 400,
    imgsz: int = 160,
    max_objects: int = 4,
    scale: tuple[float, float] = (0.75, 2.5),
    max_overlap: float = 0.1,
    fg_threshold: int = 16,
    seed: int = 0,
    image_format: str = "png",
    download: bool = True,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Write a YOLO detection dataset of pasted Fashion-MNIST items under ``out``.

    Layout: ``images/{train,val}/NNNNNN.png`` (or ``.jpg``), ``labels/{train,val}/NNNNNN.txt``
    and ``data.yaml`` (absolute ``path``, the 10 Fashion-MNIST class ``names``, no
    ``download`` key), ready for ``yolo train data=OUT/data.yaml``.

    Args:
        out: output folder; created, or must be empty unless ``overwrite``.
        data_dir: folder with the Fashion-MNIST IDX files; default: the usual search
            (``$REVACT_DATA_DIR``, the Debian package, the download cache).
        n_train: training images (items from Fashion-MNIST's train split).
        n_val: validation images (items from its test split).
        imgsz: image side in pixels.
        max_objects, scale, max_overlap, fg_threshold: see :func:`compose_scene`.
        seed: seed of everything random; same arguments, same bytes.
        image_format: ``'png'`` (lossless) or ``'jpg'`` (quality 90, about a tenth the size
            at 160 px).
        download: let torchvision download Fashion-MNIST when it is not found on disk.
        overwrite: replace an earlier dataset in ``out``.
        progress: show a progress bar.

    Returns:
        Path of ``data.yaml``.

    Raises:
        ValueError: bad sizes or counts (``imgsz`` at most :data:`MAX_IMGSZ`), an ``out``
            that cannot be created (under a file, unwritable), or more data than 90% of the
            free disk space there (:func:`estimate_bytes`).
        FileExistsError: a non-empty ``out`` folder without ``overwrite``.
        DataNotFoundError: Fashion-MNIST is missing; the message says where it looked and
            how to get it.
    """
    from PIL import Image
    from tqdm import tqdm

    if n_train <= 0 or n_val <= 0:
        raise ValueError(f"n_train and n_val must be positive, got {n_train} and {n_val}")
    if max_objects < 1:
        raise ValueError(f"max_objects must be at least 1, got {max_objects}")
    if not 0 < scale[0] <= scale[1]:
        raise ValueError(f"scale must satisfy 0 < min <= max, got {scale}")
    if not 0 <= max_overlap <= 1:
        raise ValueError(f"max_overlap must be in [0, 1], got {max_overlap}")
    ext = {"png": "png", "jpg": "jpg", "jpeg": "jpg"}.get(image_format.lower())
    if ext is None:
        raise ValueError(f"image_format must be 'png' or 'jpg', got {image_format!r}")
    if not 1 <= imgsz <= MAX_IMGSZ:
        raise ValueError(f"imgsz must be in [1, {MAX_IMGSZ}] pixels, got {imgsz}")
    out = Path(out).resolve()
    # Before loading (and decoding) the data: fail before any work.
    check_out_dir(out)  # a parent that is a file, an unwritable parent
    _check_space(out, estimate_bytes(n_train + n_val, imgsz, ext))
    created = _check_out(out, overwrite)
    try:
        pools = _load_pools(data_dir, download)
        item_side = pools["train"][0].shape[-1]
        largest = round(item_side * scale[1])
        if imgsz < largest:
            raise ValueError(
                f"imgsz {imgsz} is smaller than the largest item ({item_side} px × max scale "
                f"{scale[1]} = {largest} px); raise imgsz or lower the max scale"
            )
    except (DataNotFoundError, ValueError):
        if created:
            out.rmdir()  # leave nothing behind for a write that did not start
        raise
    _clear_out(out)

    # zlib level 1: far less compression work per image for slightly larger files (no
    # benchmark here measures it).
    save = {"png": {"format": "PNG", "compress_level": 1},
            "jpg": {"format": "JPEG", "quality": 90}}[ext]
    counts = {"train": n_train, "val": n_val}
    width = max(6, len(str(max(counts.values()) - 1)))
    with tqdm(total=n_train + n_val, desc="detdata", unit="img", disable=not progress) as bar:
        for split, n in counts.items():
            images, labels = pools[split]
            (out / "images" / split).mkdir(parents=True, exist_ok=True)
            (out / "labels" / split).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                rng = np.random.default_rng([seed, _SPLIT_CODES[split], i])
                scene = compose_scene(images, labels, rng, imgsz=imgsz, max_objects=max_objects,
                                      scale=scale, max_overlap=max_overlap,
                                      fg_threshold=fg_threshold)
                stem = f"{i:0{width}d}"
                Image.fromarray(scene.image).save(out / "images" / split / f"{stem}.{ext}", **save)
                (out / "labels" / split / f"{stem}.txt").write_text(scene.yolo_labels())
                bar.update()

    header = (f"# Fashion-MNIST detection set, written by `revact detdata` "
              f"(revact.data.detection.write_detection_dataset):\n# n_train={n_train} "
              f"n_val={n_val} imgsz={imgsz} max_objects={max_objects} scale={scale[0]}-{scale[1]} "
              f"max_overlap={max_overlap} fg_threshold={fg_threshold} seed={seed}\n")
    yaml_path = out / "data.yaml"
    yaml_path.write_text(_data_yaml(out, header))
    return yaml_path


def _read_labels(path: Path) -> np.ndarray:
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return np.array(rows, dtype=np.float64).reshape(-1, 5)


def write_preview(
    root: str | os.PathLike, out: str | os.PathLike | None = None, *, split: str = "val",
    n: int = 12, cols: int = 4,
) -> Path:
    """Draw the first ``n`` images of a split with their label boxes and class names.

    The boxes come from the label files on disk, so the preview shows what a detector
    will be trained on. Written to ``out`` (default ``ROOT/preview.png``).
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle
    from PIL import Image

    root = Path(root)
    files = sorted((root / "images" / split).glob("*.*"))[:n]
    if not files:
        raise FileNotFoundError(f"no images in {root / 'images' / split}")
    rows = -(-len(files) // cols)
    # Figure directly (no pyplot): no global backend state, safe in threads and notebooks.
    # Fixed margins rather than a layout engine, which has to measure every artist (text,
    # images) of the grid before it can place them.
    fig = Figure(figsize=(2.4 * cols, 2.55 * rows))
    axes = fig.subplots(rows, cols, squeeze=False,
                        gridspec_kw={"left": 0.01, "right": 0.99, "bottom": 0.01, "top": 0.95,
                                     "wspace": 0.04, "hspace": 0.12}).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, path in zip(axes, files, strict=False):
        with Image.open(path) as im:
            image = np.asarray(im.convert("RGB"))
        h, w = image.shape[:2]
        ax.imshow(image, interpolation="nearest")
        ax.set_title(path.name, fontsize=8)
        for c, cx, cy, bw, bh in _read_labels(root / "labels" / split / f"{path.stem}.txt"):
            # Box edges lie on pixel boundaries; imshow centres pixel k at k, hence -0.5.
            x0, y0 = (cx - bw / 2) * w - 0.5, (cy - bh / 2) * h - 0.5
            ax.add_patch(Rectangle((x0, y0), bw * w, bh * h, fill=False, color="lime", lw=1.2))
            ax.text(x0, y0 - 1, FASHION_MNIST_CLASSES[int(c)], color="black", fontsize=6,
                    va="bottom", bbox={"facecolor": "lime", "pad": 0.5, "lw": 0})
    out = Path(out) if out is not None else root / "preview.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out
