"""The Fashion-MNIST detection set: determinism, tight boxes, Ultralytics' checks, the CLI."""

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from revact.cli import main
from revact.data import DataNotFoundError, load_fashion_mnist, write_detection_dataset, write_idx
from revact.data.detection import _background, compose_scene
from revact.data.synthetic import write_synthetic_idx

SMALL = {"n_train": 8, "n_val": 4, "imgsz": 96, "scale": (0.75, 2.0), "download": False}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_synthetic_idx(tmp_path_factory.mktemp("idx"), n_train=200, n_test=50)


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _labels(path: Path) -> np.ndarray:
    return np.loadtxt(path, ndmin=2)


def test_same_arguments_same_bytes(tmp_path, data_dir):
    out = tmp_path / "det"
    write_detection_dataset(out, data_dir=data_dir, seed=3, **SMALL)
    first = _hashes(out)
    assert len(first) == 2 * (8 + 4) + 1
    write_detection_dataset(out, data_dir=data_dir, seed=3, overwrite=True, **SMALL)
    assert _hashes(out) == first
    write_detection_dataset(out, data_dir=data_dir, seed=4, overwrite=True, **SMALL)
    assert _hashes(out)["images/train/000000.png"] != first["images/train/000000.png"]


def test_overwrite_leaves_no_stale_files(tmp_path, data_dir):
    out = tmp_path / "det"
    write_detection_dataset(out, data_dir=data_dir, **SMALL)
    (out / "labels" / "train.cache").write_bytes(b"old")  # as Ultralytics would leave it
    write_detection_dataset(out, data_dir=data_dir, overwrite=True, **{**SMALL, "n_train": 3})
    assert len(list((out / "images" / "train").iterdir())) == 3
    assert len(list((out / "labels" / "train").iterdir())) == 3
    assert not (out / "labels" / "train.cache").exists()


def test_boxes_are_tight_around_the_pasted_pixels(data_dir):
    train, _, _ = load_fashion_mnist(data_dir, download=False)
    images, labels = train.images[:, 0].numpy(), train.labels.numpy()
    # Synthetic items are a bright bar (>= 170) on noise below 60: with that threshold the
    # tight box is the bar's, far from the item's square.
    for seed in range(6):
        rng = np.random.default_rng(seed)
        scene = compose_scene(images, labels, rng, imgsz=128, fg_threshold=60)
        background = _background(np.random.default_rng(seed), 128)
        assert 1 <= len(scene.boxes) <= 4
        for (x0, y0, x1, y1), mask in zip(scene.boxes, scene.masks, strict=True):
            ys, xs = np.nonzero(mask)
            assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            assert y1 - y0 < (x1 - x0) / 2  # a 3-row bar, not a square
        # Outside the items only the pixel noise (std 2) separates image and background.
        outside = ~scene.masks.any(0)
        diff = scene.image.astype(np.float32) - np.clip(np.rint(background), 0, 255)
        assert np.abs(diff[outside]).max() < 14
        assert np.abs(diff[scene.masks.any(0)]).mean() > 20  # the items did paint


def _write_rectangles(folder: Path) -> Path:
    """IDX files whose every item is one rectangle: rows 10..17, columns 5..22."""
    item = np.zeros((28, 28), dtype=np.uint8)
    item[10:18, 5:23] = 200
    for prefix in ("train", "t10k"):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", np.stack([item] * 5))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", np.arange(5, dtype=np.uint8))
    return folder


def test_label_geometry_is_exact(tmp_path):
    imgsz = 64
    yaml_path = write_detection_dataset(
        tmp_path / "det", data_dir=_write_rectangles(tmp_path), n_train=6, n_val=2, imgsz=imgsz,
        scale=(1.0, 1.0), max_objects=3, download=False,
    )
    for path in sorted((yaml_path.parent / "labels").rglob("*.txt")):
        lab = _labels(path)
        assert set(lab[:, 0]) <= set(range(5))
        np.testing.assert_allclose(lab[:, 3:] * imgsz, [[18, 8]] * len(lab), atol=1e-4)
        left, top = (lab[:, 1] - lab[:, 3] / 2) * imgsz, (lab[:, 2] - lab[:, 4] / 2) * imgsz
        np.testing.assert_allclose(left, np.round(left), atol=1e-4)  # on pixel edges
        np.testing.assert_allclose(top, np.round(top), atol=1e-4)


def test_ultralytics_accepts_the_dataset(tmp_path, data_dir, monkeypatch):
    # Before importing ultralytics: its settings file goes to the temporary folder, and it
    # treats the machine as offline.
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "yolo"))
    pytest.importorskip("ultralytics")
    import matplotlib
    import ultralytics.utils
    from ultralytics.cfg import get_cfg
    from ultralytics.data.build import build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset

    # check_det_dataset ends with check_font('Arial.ttf'), which asks GitHub for the font
    # (ignoring YOLO_OFFLINE) unless it is in the settings folder or among matplotlib's
    # fonts. A stand-in there keeps the test off the network; fonts only matter for plots.
    config_dir = Path(ultralytics.utils.USER_CONFIG_DIR)
    if config_dir.is_relative_to(tmp_path):  # not when another test imported it first
        shutil.copy(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf",
                    config_dir / "Arial.ttf")

    yaml_path = write_detection_dataset(tmp_path / "det", data_dir=data_dir, **SMALL)
    text = yaml_path.read_text()
    assert "download" not in text and f'path: "{yaml_path.parent}"' in text
    data = check_det_dataset(str(yaml_path))
    assert data["nc"] == 10 and data["names"][0] == "T-shirt/top"
    assert data["names"][9] == "Ankle boot" and data["channels"] == 3

    cfg = get_cfg(overrides={"imgsz": 96, "workers": 0})
    dataset = build_yolo_dataset(cfg, data["val"], batch=2, data=data, mode="val")
    assert len(dataset) == 4
    for label in dataset.labels:
        boxes = label["bboxes"]  # normalised xywh
        assert len(boxes) >= 1 and label["cls"].min() >= 0 and label["cls"].max() <= 9
        assert (boxes[:, 2:] > 0).all()
        assert (boxes[:, :2] - boxes[:, 2:] / 2 >= 0).all()
        assert (boxes[:, :2] + boxes[:, 2:] / 2 <= 1).all()
    sample = dataset[0]
    assert tuple(sample["img"].shape) == (3, 96, 96) and sample["bboxes"].shape[1] == 4


def test_errors_say_what_is_wrong(tmp_path, data_dir):
    with pytest.raises(ValueError, match="positive"):
        write_detection_dataset(tmp_path / "a", data_dir=data_dir, n_train=0, download=False)
    with pytest.raises(ValueError, match="smaller than the largest item"):
        write_detection_dataset(tmp_path / "a", data_dir=data_dir, imgsz=64, download=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="existing file"):
        write_detection_dataset(tmp_path / "file", data_dir=data_dir, download=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="overwrite"):
        write_detection_dataset(tmp_path / "full", data_dir=data_dir, download=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match="apt-get") as info:
        write_detection_dataset(tmp_path / "a", data_dir=tmp_path / "empty", download=False)
    message = str(info.value)
    assert f"Looked in:\n  {tmp_path / 'empty'}" in message
    # detdata has no --data (ImageFolder) option: not offered; the search is listed once
    assert "--data PATH" not in message and "searched" not in message
    assert not (tmp_path / "a").exists()  # nothing left behind by a write that did not start


def test_sizes_and_places_refused_before_any_work(tmp_path, data_dir, capsys):
    """Each of these was a traceback (MemoryError, FileNotFoundError) or ran for minutes."""
    (tmp_path / "file").write_text("x")
    cases = {
        ("--imgsz", "100000"): "imgsz must be in [1, 4096]",
        ("--out", str(tmp_path / "file" / "sub")): "is an existing file",
        ("--train", "1000000000"): "MiB free (the limit is 90% of it)",
    }
    for extra, message in cases.items():
        argv = ["detdata", "--out", str(tmp_path / "d"), "--data-dir", str(data_dir),
                "--no-download", "--quiet", *extra]
        assert main(argv) == 2, extra
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "d").exists()


def test_size_estimate_is_printed_and_close(tmp_path, data_dir, capsys):
    from revact.data.detection import estimate_bytes

    out = tmp_path / "det"
    assert main(["detdata", "--out", str(out), "--train", "12", "--val", "4", "--imgsz", "96",
                 "--data-dir", str(data_dir), "--no-download"]) == 0
    assert "about 0.3 MiB" in capsys.readouterr().out
    written = sum(p.stat().st_size for p in (out / "images").rglob("*.png"))
    assert 0.5 < written / estimate_bytes(16, 96, "png") < 1.2  # within 20% or above


def test_cli_writes_dataset_and_preview(tmp_path, data_dir, capsys):
    out = tmp_path / "det"
    argv = ["detdata", "--out", str(out), "--train", "4", "--val", "3", "--imgsz", "80",
            "--data-dir", str(data_dir), "--no-download", "--quiet", "--preview"]
    assert main(argv) == 0
    assert (out / "data.yaml").is_file() and (out / "preview.png").stat().st_size > 10_000
    assert len(list((out / "images" / "val").glob("*.png"))) == 3
    assert main(argv) == 2  # not empty any more
    assert "--overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["detdata", "--help"])
    assert "revact yolo train model=yolov8n.yaml" in capsys.readouterr().out
