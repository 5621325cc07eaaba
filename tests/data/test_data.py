"""IDX reading, Fashion-MNIST discovery, the deterministic split, ImageFolder, errors."""

import gzip

import numpy as np
import pytest
import torch

from revact.data import (
    DEBIAN_FASHION_MNIST_DIR,
    DataNotFoundError,
    IDXError,
    find_fashion_mnist,
    load_data,
    read_idx,
    write_idx,
)
from revact.data.synthetic import write_synthetic_idx


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_idx_roundtrip(tmp_path, suffix, dtype):
    a = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    if dtype == np.uint8:
        a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / f"a{suffix}", a)
    b = read_idx(tmp_path / f"a{suffix}")
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


def test_idx_header_is_big_endian(tmp_path):
    write_idx(tmp_path / "l", np.array([7, 8, 9], dtype=np.uint8))
    raw = (tmp_path / "l").read_bytes()
    assert raw[:8] == bytes([0, 0, 8, 1, 0, 0, 0, 3]) and raw[8:] == bytes([7, 8, 9])


def test_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(IDXError, match="magic"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "t", np.zeros((4, 5), dtype=np.uint8))
    (tmp_path / "t").write_bytes((tmp_path / "t").read_bytes()[:-3])
    with pytest.raises(IDXError, match="expected 20 data bytes"):
        read_idx(tmp_path / "t")
    (tmp_path / "c.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x09abc")[:-6])
    with pytest.raises(IDXError):
        read_idx(tmp_path / "c.gz")


def test_load_generated_split_is_deterministic(tmp_path):
    d = write_synthetic_idx(tmp_path, n_train=300, n_test=50)
    a = load_data(data_dir=d, val_size=60, split_seed=0)
    b = load_data(data_dir=d, val_size=60, split_seed=0)
    c = load_data(data_dir=d, val_size=60, split_seed=1)
    assert (len(a.train), len(a.val), len(a.test)) == (240, 60, 50)
    assert a.train.images.dtype == torch.uint8 and a.train.images.shape[1:] == (1, 28, 28)
    assert torch.equal(a.val.labels, b.val.labels) and torch.equal(a.train.images, b.train.images)
    assert not torch.equal(a.val.images, c.val.images)
    # Train and val are disjoint and together the official training set.
    raw = torch.from_numpy(read_idx(d / "train-images-idx3-ubyte.gz"))
    both = torch.cat([a.train.images, a.val.images]).flatten(1)
    assert sorted(map(bytes, both.numpy())) == sorted(map(bytes, raw.flatten(1).numpy()))
    sub = load_data(data_dir=d, val_size=60, train_subset=100, test_subset=20)
    assert torch.equal(sub.train.images, a.train.images[:100]) and len(sub.test) == 20
    assert sub.num_classes == 10 and sub.in_chans == 1 and 0 < sub.mean[0] < 1


def test_missing_data_says_how_to_get_it(tmp_path):
    with pytest.raises(DataNotFoundError) as e:
        load_data(data_dir=tmp_path / "nowhere")
    msg = str(e.value)
    assert "apt-get install -y dataset-fashion-mnist" in msg and "--data-dir" in msg
    assert find_fashion_mnist(tmp_path) is None


def test_damaged_file_is_reported(tmp_path):
    d = write_synthetic_idx(tmp_path, n_train=50, n_test=10)
    (d / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(DataNotFoundError, match="damaged"):
        load_data(data_dir=d)


def test_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 2)):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                arr = rng.integers(0, 255, size=(20, 24, 3), dtype=np.uint8)
                Image.fromarray(arr).save(tmp_path / split / cls / f"{i}.png")
    data = load_data(str(tmp_path), val_size=2, image_size=16)
    assert data.classes == ["cat", "dog"] and data.in_chans == 3 and data.image_size == 16
    assert (len(data.train), len(data.val), len(data.test)) == (10, 2, 4)
    with pytest.raises(DataNotFoundError, match="ImageFolder"):
        load_data(str(tmp_path / "missing"))


@pytest.mark.skipif(
    find_fashion_mnist(DEBIAN_FASHION_MNIST_DIR) is None,
    reason=f"Fashion-MNIST not in {DEBIAN_FASHION_MNIST_DIR} "
    "(sudo apt-get install dataset-fashion-mnist)",
)
def test_real_fashion_mnist():
    data = load_data(data_dir=DEBIAN_FASHION_MNIST_DIR)
    assert (len(data.train), len(data.val), len(data.test)) == (55000, 5000, 10000)
    assert data.train.images.shape[1:] == (1, 28, 28)
    assert torch.bincount(data.test.labels).tolist() == [1000] * 10
    assert abs(data.mean[0] - 0.286) < 0.01 and abs(data.std[0] - 0.353) < 0.01
