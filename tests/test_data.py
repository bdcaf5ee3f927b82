"""Tests for wcbook.data (IDX parsing, data root resolution, MNIST / Fashion-MNIST loading)."""

from __future__ import annotations

import gzip
import pathlib
import struct

import numpy as np
import pytest
import torch

from wcbook.data import (
    DATA_ENV,
    DATASETS,
    DataRootError,
    data_root,
    flatten_images,
    load_images,
    read_idx,
)


MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def root(real_data_root) -> pathlib.Path:
    if real_data_root is None:
        pytest.skip(
            f"real MNIST/Fashion-MNIST data not available: {DATA_ENV} is unset and "
            "../shared/data beside the checkout does not exist"
        )
    return real_data_root


def _idx_bytes(array: np.ndarray, code: int) -> bytes:
    """Encode ``array`` as an IDX file with type ``code`` (big-endian data)."""
    big_endian = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(big_endian).tobytes()


# ---------------------------------------------------------------- specs, data_root


def test_dataset_specs():
    assert set(DATASETS) == {"mnist", "fashion"}
    assert DATASETS["mnist"].folder == "MNIST"
    assert DATASETS["fashion"].folder == "FashionMNIST"
    for spec in DATASETS.values():
        assert spec.num_classes == 10 == len(spec.class_names)
        assert spec.files("train") == ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
        assert spec.files("test") == ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    assert DATASETS["mnist"].class_names == tuple("0123456789")
    assert DATASETS["fashion"].class_names[0] == "T-shirt/top"
    assert DATASETS["fashion"].class_names[-1] == "Ankle boot"


def test_data_root_precedence(monkeypatch, tmp_path):
    env_dir = tmp_path / "from_env"
    arg_dir = tmp_path / "from_arg"
    monkeypatch.setenv(DATA_ENV, str(env_dir))
    assert data_root() == env_dir
    assert data_root(arg_dir) == arg_dir
    assert data_root(str(arg_dir)) == arg_dir
    monkeypatch.delenv(DATA_ENV)
    assert data_root() == pathlib.Path("~/.cache/wcbook/data").expanduser()
    assert data_root(arg_dir) == arg_dir


# ---------------------------------------------------------------- read_idx


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_handmade(tmp_path, compress):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    payload = _idx_bytes(images, 0x08)
    path = tmp_path / ("x.idx.gz" if compress else "x.idx")
    path.write_bytes(gzip.compress(payload) if compress else payload)
    out = read_idx(path)
    assert out.dtype == np.uint8
    assert out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, images)


def test_read_idx_multibyte_types(tmp_path):
    ints = np.array([-5, 0, 70000], dtype=np.int32)
    (tmp_path / "i.idx").write_bytes(_idx_bytes(ints, 0x0C))
    out = read_idx(tmp_path / "i.idx")
    assert out.dtype == np.int32 and out.dtype.isnative
    np.testing.assert_array_equal(out, ints)

    floats = np.array([[1.5, -2.25]], dtype=np.float32)
    (tmp_path / "f.idx").write_bytes(_idx_bytes(floats, 0x0D))
    np.testing.assert_array_equal(read_idx(tmp_path / "f.idx"), floats)


def test_read_idx_truncated(tmp_path):
    payload = _idx_bytes(np.zeros((3, 5, 5), dtype=np.uint8), 0x08)
    (tmp_path / "short.idx").write_bytes(payload[:-7])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short.idx")
    # header cut inside the dimension list
    (tmp_path / "head.idx").write_bytes(payload[:9])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "head.idx")
    # truncated gzip stream
    (tmp_path / "short.gz").write_bytes(gzip.compress(payload)[:-10])
    with pytest.raises(ValueError):
        read_idx(tmp_path / "short.gz")
    # trailing garbage
    (tmp_path / "long.idx").write_bytes(payload + b"\x00")
    with pytest.raises(ValueError):
        read_idx(tmp_path / "long.idx")


def test_read_idx_bad_magic(tmp_path):
    (tmp_path / "bad1").write_bytes(b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(ValueError, match="IDX"):
        read_idx(tmp_path / "bad1")
    (tmp_path / "bad2").write_bytes(b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(ValueError, match="type code"):
        read_idx(tmp_path / "bad2")


# ---------------------------------------------------------------- errors without real data


def test_missing_root_raises(tmp_path):
    with pytest.raises(DataRootError) as info:
        load_images("mnist", "test", root=tmp_path)
    message = str(info.value)
    assert DATA_ENV in message
    assert str(tmp_path.resolve()) in message
    assert "t10k-images-idx3-ubyte.gz" in message
    assert isinstance(info.value, FileNotFoundError)


def test_missing_root_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    with pytest.raises(DataRootError, match=DATA_ENV):
        load_images("fashion", "train")


def test_unknown_dataset_and_split(tmp_path):
    with pytest.raises(ValueError, match="mnist"):
        load_images("cifar", root=tmp_path)
    with pytest.raises(ValueError, match="split"):
        load_images("mnist", "validation", root=tmp_path)


def test_download_failure_is_dataroot_error(tmp_path, monkeypatch):
    torchvision_datasets = pytest.importorskip("torchvision.datasets")

    class Offline:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("no internet")

    monkeypatch.setattr(torchvision_datasets, "MNIST", Offline)
    with pytest.raises(DataRootError, match="no internet"):
        load_images("mnist", "test", root=tmp_path / "dl", download=True)


def test_download_writes_layout_then_loads(tmp_path, monkeypatch):
    """A fake torchvision downloader that writes tiny files in the raw layout."""
    torchvision_datasets = pytest.importorskip("torchvision.datasets")
    calls = []

    class FakeFashion:
        def __init__(self, root, train=True, download=False):
            calls.append((root, train, download))
            raw = pathlib.Path(root) / "FashionMNIST" / "raw"
            raw.mkdir(parents=True, exist_ok=True)
            images = np.full((4, 6, 6), 255, dtype=np.uint8)
            images[0] = 0
            labels = np.array([0, 3, 9, 3], dtype=np.uint8)
            (raw / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(images, 0x08)))
            (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(labels, 0x08)))

    monkeypatch.setattr(torchvision_datasets, "FashionMNIST", FakeFashion)
    x, y = load_images("fashion", "test", root=tmp_path, download=True)
    assert calls == [(str(tmp_path.resolve()), False, True)]
    assert x.shape == (4, 6, 6) and x.dtype == torch.float32
    assert y.tolist() == [0, 3, 9, 3] and y.dtype == torch.int64
    assert x[0].max() == 0 and x[1].min() == 1


def test_count_mismatch(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-images-idx3-ubyte").write_bytes(_idx_bytes(np.zeros((3, 2, 2), np.uint8), 0x08))
    (raw / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(2, np.uint8), 0x08))
    with pytest.raises(ValueError, match="labels"):
        load_images("mnist", "test", root=tmp_path)


def test_flatten_images():
    x = torch.rand(5, 3, 4, dtype=torch.float64)
    flat = flatten_images(x)
    assert flat.shape == (5, 12) and flat.dtype == torch.float32
    torch.testing.assert_close(flat[2], x[2].reshape(-1).float())
    with pytest.raises(ValueError):
        flatten_images(torch.zeros(5, 12))
    with pytest.raises(ValueError):
        flatten_images(torch.zeros(2, 1, 3, 3))


# ---------------------------------------------------------------- real data


@pytest.mark.parametrize("name", ["mnist", "fashion"])
def test_test_split_shapes(root, name):
    x, y = load_images(name, "test", root)
    assert x.shape == (10000, 28, 28)
    assert x.dtype == torch.float32
    assert y.shape == (10000,)
    assert y.dtype == torch.int64
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert int(y.min()) == 0 and int(y.max()) == 9


def test_mnist_label_counts(root):
    _, y_test = load_images("mnist", "test", root)
    assert torch.bincount(y_test, minlength=10).tolist() == MNIST_TEST_COUNTS
    _, y_train = load_images("mnist", "train", root)
    assert torch.bincount(y_train, minlength=10).tolist() == MNIST_TRAIN_COUNTS


def test_mnist_train_mean_pixel(root):
    x, _ = load_images("mnist", "train", root)
    assert x.shape == (60000, 28, 28)
    assert float(x.double().mean()) * 255 == pytest.approx(33.318, abs=1e-3)


def test_fashion_train_balanced(root):
    x, y = load_images("fashion", "train", root)
    assert x.shape == (60000, 28, 28)
    assert torch.bincount(y, minlength=10).tolist() == [6000] * 10
    assert float(x.double().mean()) == pytest.approx(0.2860, abs=1e-4)


@pytest.mark.parametrize("size", [14, 35])
def test_resize(root, size):
    x, y = load_images("mnist", "test", root, size=size)
    assert x.shape == (10000, size, size)
    assert x.dtype == torch.float32
    # the background stays 0 and the strokes' cores stay at full brightness
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert y.shape == (10000,)
    x28, _ = load_images("mnist", "test", root)
    # antialiased bilinear resizing keeps the mean brightness (measured: within 5e-4 relative)
    assert float(x.double().mean()) == pytest.approx(float(x28.double().mean()), rel=1e-3)


def test_cache_cannot_be_corrupted(root):
    x1, y1 = load_images("mnist", "test", root)
    x1.fill_(7.0)
    y1.fill_(-1)
    x2, y2 = load_images("mnist", "test", root)
    assert float(x2.max()) == 1.0
    assert torch.bincount(y2, minlength=10).tolist() == MNIST_TEST_COUNTS


def test_env_root_used(root, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(root))
    x, y = load_images("mnist", "test")
    assert x.shape == (10000, 28, 28) and y.shape == (10000,)
