"""Tests for the colour data sets of wcbook.data (CIFAR-10 and the flowers), on tiny synthetic
archives written in tmp_path, plus checks on the real offline copies when they are present."""

from __future__ import annotations

import io
import pathlib
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import wcbook.data as data
from wcbook.data import (
    COLOR_DATASETS,
    DATA_ENV,
    DataRootError,
    color_dataset_available,
    load_color_images,
)



@pytest.fixture(autouse=True)
def _fresh_cache():
    data.clear_cache()
    yield
    data.clear_cache()


def _png(rgb: tuple[int, int, int], size: tuple[int, int] = (4, 4)) -> bytes:
    """A lossless image of one colour, so decoded pixels can be checked exactly."""
    buffer = io.BytesIO()
    Image.new("RGB", size, rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def _colour(k: int, i: int) -> tuple[int, int, int]:
    """Class k in the red channel, image number i in the green one."""
    return (10 * k, i, 255)


def _cifar_zip(root: pathlib.Path, per_class: dict[str, int]) -> None:
    path = root / "cifar10" / "cifar10_jpeg.zip"
    path.parent.mkdir(parents=True)
    with zipfile.ZipFile(path, "w") as archive:
        for split, n in per_class.items():
            for k, cls in enumerate(COLOR_DATASETS["cifar10"].folders):
                for i in range(n):
                    archive.writestr(f"{split}/{cls}/{i:04d}.png", _png(_colour(k, i), (8, 8)))


def _flowers_zip(root: pathlib.Path, n: int) -> None:
    path = root / "flowers" / "flowers_recognition_128.zip"
    path.parent.mkdir(parents=True)
    with zipfile.ZipFile(path, "w") as archive:
        for k, cls in enumerate(COLOR_DATASETS["flowers-recognition"].folders):
            for i in range(n):
                archive.writestr(f"flowers/{cls}/img{i:03d}.png", _png(_colour(k, i)))
        archive.writestr("flowers/README.txt", b"not an image")


@pytest.fixture
def cifar_root(tmp_path):
    _cifar_zip(tmp_path, {"train": 3, "test": 2})
    return tmp_path


@pytest.fixture
def flowers_root(tmp_path):
    _flowers_zip(tmp_path, 20)
    return tmp_path


# ---------------------------------------------------------------- CIFAR-10 from the zip


def test_cifar_zip_order_labels_and_pixels(cifar_root):
    images, labels = load_color_images("cifar10", "train", cifar_root)
    assert images.shape == (30, 3, 8, 8) and images.dtype == torch.float32
    assert labels.dtype == torch.int64
    # classes interleaved: image i is number i // 10 of class i % 10
    assert labels.tolist() == [i % 10 for i in range(30)]
    for i in range(30):
        k, number = i % 10, i // 10
        expected = torch.tensor(_colour(k, number), dtype=torch.float32) / 255
        assert torch.equal(images[i, :, 0, 0], expected)
    test_images, test_labels = load_color_images("cifar10", "test", cifar_root)
    assert test_images.shape == (20, 3, 8, 8)
    assert torch.bincount(test_labels).tolist() == [2] * 10


def test_cifar_limit_decodes_only_what_is_asked(cifar_root, monkeypatch):
    calls = []
    real = data._decode

    def counting(raw, size, where):
        calls.append(where)
        return real(raw, size, where)

    monkeypatch.setattr(data, "_decode", counting)
    images, labels = load_color_images("cifar10", "train", cifar_root, limit=7)
    assert images.shape[0] == 7 == len(calls)
    assert labels.tolist() == list(range(7))
    # a limit past the end gives everything
    assert load_color_images("cifar10", "test", cifar_root, limit=1000)[0].shape[0] == 20


def test_cifar_resize_and_range(cifar_root):
    images, _ = load_color_images("cifar10", "train", cifar_root, size=5, limit=4)
    assert images.shape == (4, 3, 5, 5)
    # every image is one colour, which resizing keeps exactly
    for i in range(4):
        colour = torch.tensor(_colour(i % 10, i // 10), dtype=torch.float32) / 255
        assert torch.equal(images[i], colour[:, None, None].expand(3, 5, 5))


def test_fresh_tensors_every_call(cifar_root):
    first, _ = load_color_images("cifar10", "train", cifar_root, limit=3)
    first.zero_()
    again, _ = load_color_images("cifar10", "train", cifar_root, limit=3)
    assert again.abs().sum() > 0


def test_cifar_env_root(cifar_root, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(cifar_root))
    assert color_dataset_available("cifar10")
    assert load_color_images("cifar10", "test", limit=2)[0].shape == (2, 3, 8, 8)


def test_cifar_torchvision_folder_is_used_when_no_zip(tmp_path, monkeypatch):
    (tmp_path / "cifar-10-batches-py").mkdir()
    fake = np.arange(4 * 32 * 32 * 3, dtype=np.int64).reshape(4, 3, 32, 32) % 256
    fake_labels = np.array([3, 1, 4, 1])
    seen = []

    def fake_loader(root, split):
        seen.append((root, split))
        return fake.astype(np.uint8), fake_labels

    monkeypatch.setattr(data, "_load_cifar_torchvision", fake_loader)
    assert color_dataset_available("cifar10", tmp_path)
    images, labels = load_color_images("cifar10", "test", tmp_path, limit=3, size=16)
    assert seen == [(str(tmp_path.resolve()), "test")]
    assert images.shape == (3, 3, 16, 16) and labels.tolist() == [3, 1, 4]


# ---------------------------------------------------------------- flowers


def test_flowers_split_is_stratified_disjoint_and_seeded(flowers_root):
    train_x, train_y = load_color_images("flowers-recognition", "train", flowers_root)
    test_x, test_y = load_color_images("flowers-recognition", "test", flowers_root)
    assert train_x.shape == (90, 3, 4, 4) and test_x.shape == (10, 3, 4, 4)
    assert torch.bincount(train_y).tolist() == [18] * 5
    assert torch.bincount(test_y).tolist() == [2] * 5

    def identities(x):  # (class, image number) recovered from the pixel colour
        return {(round(float(v[0]) * 255) // 10, round(float(v[1]) * 255)) for v in x[:, :, 0, 0]}

    train_ids, test_ids = identities(train_x), identities(test_x)
    assert len(train_ids) == 90 and len(test_ids) == 10 and not train_ids & test_ids
    # every label matches the folder its image came from
    assert (train_x[:, 0, 0, 0] * 255 / 10).round().long().tolist() == train_y.tolist()
    # the split is a function of the seed: same seed, same split; other seed, another split
    data.clear_cache()
    again_x, again_y = load_color_images("flowers-recognition", "test", flowers_root)
    assert torch.equal(again_x, test_x) and torch.equal(again_y, test_y)
    other_x, _ = load_color_images("flowers-recognition", "test", flowers_root, split_seed=1)
    assert identities(other_x) != test_ids
    # a first-n limit of the training split is mixed, not one class
    _, first = load_color_images("flowers-recognition", "train", flowers_root, limit=10)
    assert len(set(first.tolist())) > 1
    assert torch.equal(first, train_y[:10])


def _tf_flowers_tgz(root: pathlib.Path, n: int, sizes: list[tuple[int, int]]) -> None:
    path = root / "tf_flowers" / "flower_photos.tgz"
    path.parent.mkdir(parents=True)
    with tarfile.open(path, "w:gz") as archive:
        def add(name: str, payload: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))

        add("flower_photos/LICENSE.txt", b"licence text")
        for k, cls in enumerate(COLOR_DATASETS["tf-flowers"].folders):
            for i in range(n):
                add(f"flower_photos/{cls}/{i}.png", _png(_colour(k, i), sizes[i % len(sizes)]))


def test_tf_flowers_tar_layout_and_sizes(tmp_path):
    _tf_flowers_tgz(tmp_path, 10, [(6, 5), (4, 4)])
    with pytest.raises(ValueError, match="different sizes.*size="):
        load_color_images("tf-flowers", "train", tmp_path)
    images, labels = load_color_images("tf-flowers", "train", tmp_path, size=3)
    assert images.shape == (45, 3, 3, 3)
    assert torch.bincount(labels).tolist() == [9] * 5  # "roses" -> rose, and so on
    assert COLOR_DATASETS["tf-flowers"].class_names == COLOR_DATASETS["flowers-recognition"].class_names
    assert (images[:, 0, 1, 1] * 255 / 10).round().long().tolist() == labels.tolist()


# ---------------------------------------------------------------- errors


def test_missing_root_raises_with_hint(tmp_path):
    for name in COLOR_DATASETS:
        assert not color_dataset_available(name, tmp_path)
        with pytest.raises(DataRootError, match=DATA_ENV):
            load_color_images(name, "train", tmp_path)
    with pytest.raises(DataRootError, match="cannot be downloaded"):
        load_color_images("flowers-recognition", "train", tmp_path, download=True)


def test_download_failure_is_dataroot_error(tmp_path, monkeypatch):
    def offline(spec, root):
        raise OSError("no network")

    monkeypatch.setattr(data, "_download_color", offline)
    for name in ("cifar10", "tf-flowers"):
        with pytest.raises(DataRootError, match="Download failed.*no network"):
            load_color_images(name, "test", tmp_path, download=True)


def test_bad_arguments(cifar_root):
    with pytest.raises(ValueError, match="unknown colour dataset 'imagenet'.*cifar10"):
        load_color_images("imagenet", "train", cifar_root)
    with pytest.raises(ValueError, match="unknown split"):
        load_color_images("cifar10", "valid", cifar_root)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="size"):
            load_color_images("cifar10", "train", cifar_root, size=bad)
        with pytest.raises(ValueError, match="limit"):
            load_color_images("cifar10", "train", cifar_root, limit=bad)


def test_corrupt_image_and_empty_archive(tmp_path):
    path = tmp_path / "cifar10" / "cifar10_jpeg.zip"
    path.parent.mkdir(parents=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("train/cat/0000.jpg", b"not a jpeg")
    with pytest.raises(ValueError, match="cat/0000.jpg: cannot decode"):
        load_color_images("cifar10", "train", tmp_path)
    with pytest.raises(ValueError, match="no images found"):
        load_color_images("cifar10", "test", tmp_path)
    path.write_bytes(b"garbage")
    data.clear_cache()
    with pytest.raises(ValueError, match="neither a zip nor a tar"):
        load_color_images("cifar10", "test", tmp_path)


# ---------------------------------------------------------------- the real offline copies


def _require(name: str, root: pathlib.Path | None) -> pathlib.Path:
    if root is None or not color_dataset_available(name, root):
        pytest.skip(f"the real {name} copy is not under {DATA_ENV} (or ../shared/data beside the checkout)")
    return root


def test_real_cifar10_first_images(real_data_root):
    root = _require("cifar10", real_data_root)
    images, labels = load_color_images("cifar10", "test", root, limit=40)
    assert images.shape == (40, 3, 32, 32)
    assert labels.tolist() == [i % 10 for i in range(40)]
    # the mean of these 40 JPEG-decoded images (measured 0.47346; decoders differ in rounding)
    assert float(images.double().mean()) == pytest.approx(0.47346, abs=1e-3)


def test_real_flowers_split_counts(real_data_root):
    root = _require("flowers-recognition", real_data_root)
    images, labels = load_color_images("flowers-recognition", "test", root)
    assert images.shape == (430, 3, 128, 128)
    # round(10%) of daisy 764, dandelion 1052, rose 784, sunflower 733, tulip 984
    assert torch.bincount(labels).tolist() == [76, 105, 78, 73, 98]
