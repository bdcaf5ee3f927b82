"""Image data sets for the Wilson-Cowan experiments: MNIST and Fashion-MNIST (grey, IDX files,
:func:`load_images`) and the colour sets of the encoder experiments, CIFAR-10 and the flowers
(:func:`load_color_images`, see the end of this docstring).

Data root
---------
All loaders read the original IDX files in the torchvision "raw" layout::

    <root>/MNIST/raw/train-images-idx3-ubyte.gz
    <root>/MNIST/raw/train-labels-idx1-ubyte.gz
    <root>/MNIST/raw/t10k-images-idx3-ubyte.gz
    <root>/MNIST/raw/t10k-labels-idx1-ubyte.gz
    <root>/FashionMNIST/raw/...            (same four file names)

Uncompressed copies (the same names without ``.gz``) are accepted as well.

The root is chosen in this order (see :func:`data_root`):

1. the ``root`` argument given to a loader;
2. the environment variable ``WCBOOK_DATA`` (for example
   ``export WCBOOK_DATA=../shared/data`` on machines that hold offline copies);
3. the default ``~/.cache/wcbook/data``.

When the files are missing, ``load_images(..., download=True)`` fetches the
originals with torchvision, which writes exactly this layout under the root.
Without ``download=True`` (or when offline) a :class:`DataRootError` explains
what was looked for and where.

Parsed arrays are cached in memory per (data set, split, resolved root), so
repeated calls in one process are cheap; every call returns fresh tensors, so
callers may modify them freely.

Colour sets
-----------
:func:`load_color_images` reads images straight from an archive under the same root::

    <root>/cifar10/cifar10_jpeg.zip              CIFAR-10 as JPEG, {train,test}/<class>/NNNN.jpg
    <root>/cifar-10-batches-py/                  or torchvision's CIFAR-10 (download=True)
    <root>/flowers/flowers_recognition_128.zip   Flowers Recognition, flowers/<class>/<file>.jpg
    <root>/tf_flowers/flower_photos.tgz          TF-FLOWERS, flower_photos/<class>/<file>.jpg

"flowers-recognition" (offline) stands in for "tf-flowers" (online): same five classes, labels
daisy, dandelion, rose, sunflower, tulip; results on it must be labelled as a substitute.
"""

from __future__ import annotations

import functools
import gzip
import io
import os
import pathlib
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "DATA_ENV",
    "DEFAULT_ROOT",
    "DataRootError",
    "DatasetSpec",
    "DATASETS",
    "SPLITS",
    "data_root",
    "read_idx",
    "load_images",
    "flatten_images",
    "clear_cache",
    "ColorDatasetSpec",
    "COLOR_DATASETS",
    "FLOWERS_SPLIT_SEED",
    "FLOWERS_TEST_FRACTION",
    "color_dataset_available",
    "load_color_images",
]

#: Environment variable naming the data root.
DATA_ENV = "WCBOOK_DATA"

#: Root used when neither an argument nor ``$WCBOOK_DATA`` is given.
DEFAULT_ROOT = "~/.cache/wcbook/data"

#: Known split names.
SPLITS = ("train", "test")


class DataRootError(FileNotFoundError):
    """Raised when the data files cannot be found under the data root (and were not downloaded)."""


@dataclass(frozen=True)
class DatasetSpec:
    """Description of one IDX image data set in the torchvision raw layout."""

    id: str
    folder: str
    train_images: str
    train_labels: str
    test_images: str
    test_labels: str
    num_classes: int
    class_names: tuple[str, ...]

    def files(self, split: str) -> tuple[str, str]:
        """Return the ``(images, labels)`` file names of ``split`` ("train" or "test")."""
        split = _check_split(split)
        if split == "train":
            return self.train_images, self.train_labels
        return self.test_images, self.test_labels

    def raw_dir(self, root: str | os.PathLike | None = None) -> pathlib.Path:
        """Return the folder ``<root>/<folder>/raw`` holding the IDX files."""
        return data_root(root) / self.folder / "raw"


_IDX_FILES = dict(
    train_images="train-images-idx3-ubyte.gz",
    train_labels="train-labels-idx1-ubyte.gz",
    test_images="t10k-images-idx3-ubyte.gz",
    test_labels="t10k-labels-idx1-ubyte.gz",
)

#: Known data sets, by id.
DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        id="mnist",
        folder="MNIST",
        num_classes=10,
        class_names=tuple(str(d) for d in range(10)),
        **_IDX_FILES,
    ),
    "fashion": DatasetSpec(
        id="fashion",
        folder="FashionMNIST",
        num_classes=10,
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        **_IDX_FILES,
    ),
}

# Name of the torchvision.datasets class that downloads each data set.
_TORCHVISION_CLASS = {"mnist": "MNIST", "fashion": "FashionMNIST"}

# IDX type codes -> big-endian numpy dtypes.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def data_root(root: str | os.PathLike | None = None) -> pathlib.Path:
    """Return the data root: ``root`` if given, else ``$WCBOOK_DATA``, else ``~/.cache/wcbook/data``.

    ``~`` is expanded; the folder is not required to exist.
    """
    if root is None or (isinstance(root, str) and root == ""):
        root = os.environ.get(DATA_ENV) or DEFAULT_ROOT
    return pathlib.Path(root).expanduser()


def _check_name(name: str) -> str:
    key = name.lower().strip() if isinstance(name, str) else name
    if key not in DATASETS:
        known = ", ".join(repr(k) for k in DATASETS)
        raise ValueError(f"unknown dataset {name!r}; known ids: {known}")
    return key


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(map(repr, SPLITS))}")
    return split


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse an IDX file (gzip-compressed or plain) into a numpy array.

    The header (two zero bytes, a type code, the number of dimensions, then one
    big-endian uint32 per dimension) decides dtype and shape. Multi-byte types
    are returned in native byte order. Raises ``ValueError`` for a corrupt or
    truncated file.
    """
    path = pathlib.Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip magic
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise ValueError(f"{path}: corrupt or truncated gzip stream ({exc})") from exc

    if len(raw) < 4:
        raise ValueError(f"{path}: not an IDX file (only {len(raw)} bytes, header needs at least 4)")
    zero0, zero1, code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero0 != 0 or zero1 != 0:
        raise ValueError(
            f"{path}: not an IDX file (magic number 0x{raw[:4].hex()} does not start with two zero bytes)"
        )
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions")

    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise ValueError(
            f"{path}: truncated IDX header ({len(raw)} bytes, {header_len} needed for {ndim} dimensions)"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - header_len
    if actual != expected:
        kind = "truncated" if actual < expected else "has trailing bytes"
        raise ValueError(
            f"{path}: IDX file {kind}: shape {shape} of {dtype.name} needs {expected} data bytes, "
            f"found {actual}"
        )
    flat = np.frombuffer(raw, dtype=dtype, offset=header_len)
    # astype copies: the result is writable and in native byte order.
    return flat.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def _find_file(raw_dir: pathlib.Path, file_name: str) -> pathlib.Path | None:
    """Return the path of ``file_name`` (or its uncompressed twin) in ``raw_dir``, if present."""
    candidates = [raw_dir / file_name]
    if file_name.endswith(".gz"):
        candidates.append(raw_dir / file_name[: -len(".gz")])
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


def _missing_message(name: str, split: str, root: pathlib.Path, missing: pathlib.Path) -> str:
    spec = DATASETS[name]
    return (
        f"{spec.id} ({split}) data not found: missing file {missing} "
        f"(searched data root {root}). Set the environment variable {DATA_ENV} to a folder "
        f"holding {spec.folder}/raw/{spec.train_images} and the other IDX files "
        f"(e.g. `export {DATA_ENV}=../shared/data`), pass root=..., "
        f"or pass download=True when online."
    )


@functools.lru_cache(maxsize=8)
def _load_arrays(name: str, split: str, root: str) -> tuple[np.ndarray, np.ndarray]:
    """Read and check the IDX pair of one split; cached, arrays made read-only."""
    spec = DATASETS[name]
    root_path = pathlib.Path(root)
    raw_dir = root_path / spec.folder / "raw"
    paths = []
    for file_name in spec.files(split):
        found = _find_file(raw_dir, file_name)
        if found is None:
            raise DataRootError(_missing_message(name, split, root_path, raw_dir / file_name))
        paths.append(found)

    images, labels = (read_idx(p) for p in paths)
    if images.ndim != 3:
        raise ValueError(f"{paths[0]}: expected a 3-d image array, got shape {images.shape}")
    if labels.ndim != 1:
        raise ValueError(f"{paths[1]}: expected a 1-d label array, got shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{spec.id} ({split}): {images.shape[0]} images but {labels.shape[0]} labels "
            f"({paths[0]}, {paths[1]})"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise ValueError(
            f"{paths[1]}: labels outside 0..{spec.num_classes - 1} "
            f"(min {labels.min()}, max {labels.max()})"
        )
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _download(name: str, split: str, root: pathlib.Path) -> None:
    """Download the original files of ``name`` into ``root`` with torchvision."""
    import torchvision.datasets  # imported lazily: only needed when downloading

    cls = getattr(torchvision.datasets, _TORCHVISION_CLASS[name])
    root.mkdir(parents=True, exist_ok=True)
    cls(str(root), train=(split == "train"), download=True)


def load_images(
    name: str,
    split: str = "train",
    root: str | os.PathLike | None = None,
    *,
    download: bool = False,
    size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one split of an image data set as ``(images, labels)``.

    ``name`` is a key of :data:`DATASETS` ("mnist" or "fashion"); ``split`` is
    "train" or "test"; ``root`` defaults as in :func:`data_root`. Images are
    float32 of shape ``(n, side, side)`` holding pixel/255 in [0, 1]; labels are
    int64 of shape ``(n,)``. With ``size`` the images are resized to
    ``size x size`` (bilinear, antialiased) and clamped to [0, 1]. Missing files
    are downloaded with torchvision when ``download=True``; otherwise (or when
    the download fails) :class:`DataRootError` is raised.
    """
    key = _check_name(name)
    split = _check_split(split)
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ValueError(f"size must be a positive int or None, got {size!r}")

    root_path = data_root(root).resolve()
    try:
        images_u8, labels_np = _load_arrays(key, split, str(root_path))
    except DataRootError as missing:
        if not download:
            raise
        try:
            _download(key, split, root_path)
        except Exception as exc:  # no internet, unwritable root, ...
            raise DataRootError(f"{missing} Download with torchvision failed: {exc!r}") from exc
        images_u8, labels_np = _load_arrays(key, split, str(root_path))

    # Fresh tensors every call: astype copies, so the cached arrays stay untouched.
    images = torch.from_numpy(images_u8.astype(np.float32))
    images.div_(255.0)
    labels = torch.from_numpy(labels_np.astype(np.int64))

    if size is not None and tuple(images.shape[-2:]) != (size, size):
        images = F.interpolate(
            images.unsqueeze(1),
            size=(size, size),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        ).squeeze(1)
        images = images.clamp_(0.0, 1.0).contiguous()
    return images, labels


def flatten_images(images: torch.Tensor) -> torch.Tensor:
    """Flatten ``(n, h, w)`` images to float32 ``(n, h*w)``; ``ValueError`` for other ranks."""
    if images.ndim != 3:
        raise ValueError(f"expected images of shape (n, h, w), got shape {tuple(images.shape)}")
    return images.reshape(images.shape[0], -1).to(torch.float32)


def clear_cache() -> None:
    """Forget the in-memory cache of parsed data sets."""
    _load_arrays.cache_clear()
    _load_archive.cache_clear()
    _load_cifar_torchvision.cache_clear()


# ----------------------------------------------------------------------------------------------
# Colour image sets (CIFAR-10, flowers) for the encoder experiments
# ----------------------------------------------------------------------------------------------
#: Seed of the 90/10 train/test split of the flower sets (see :func:`load_color_images`).
FLOWERS_SPLIT_SEED = 0

#: Fraction of every flower class put in the test split (the paper's 90/10 split).
FLOWERS_TEST_FRACTION = 0.1

_FLOWER_CLASSES = ("daisy", "dandelion", "rose", "sunflower", "tulip")

_TF_FLOWERS_URL = (
    "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz"
)


@dataclass(frozen=True)
class ColorDatasetSpec:
    """One colour image set read from an archive under the data root.

    ``archive`` is the archive's path relative to the root; ``folders`` maps each folder name in
    the archive to its class (position in ``class_names``); ``prefix`` is the folder inside the
    archive that holds the class folders (CIFAR-10: one per split, so empty here and the split
    is the first path component). ``split`` says how train and test are told apart: "folder"
    (``{train,test}/<class>/`` in the archive) or "seeded" (one pool, split 90/10 by
    :data:`FLOWERS_SPLIT_SEED`).
    """

    id: str
    description: str
    archive: str
    prefix: str
    folders: tuple[str, ...]
    class_names: tuple[str, ...]
    split: Literal["folder", "seeded"]
    url: str | None = None

    @property
    def num_classes(self) -> int:
        """K."""
        return len(self.class_names)

    def archive_path(self, root: str | os.PathLike | None = None) -> pathlib.Path:
        """``<root>/<archive>``."""
        return data_root(root) / self.archive


_CIFAR_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

#: Colour data sets, by id. "cifar10" reads the offline JPEG copy (or, when it is absent,
#: torchvision's CIFAR-10 folder, downloaded on request); "flowers-recognition" is the offline
#: substitute for TF-FLOWERS; "tf-flowers" is TF-FLOWERS itself (the ``flower_photos`` archive,
#: downloaded on request). The two flower sets share classes and labels.
COLOR_DATASETS: dict[str, ColorDatasetSpec] = {
    "cifar10": ColorDatasetSpec(
        id="cifar10",
        description="CIFAR-10 (offline copy: JPEG at about quality 75, official split and labels)",
        archive="cifar10/cifar10_jpeg.zip",
        prefix="",
        folders=_CIFAR_CLASSES,
        class_names=_CIFAR_CLASSES,
        split="folder",
    ),
    "flowers-recognition": ColorDatasetSpec(
        id="flowers-recognition",
        description="Flowers Recognition, 128 x 128 (offline substitute for TF-FLOWERS)",
        archive="flowers/flowers_recognition_128.zip",
        prefix="flowers",
        folders=_FLOWER_CLASSES,
        class_names=_FLOWER_CLASSES,
        split="seeded",
    ),
    "tf-flowers": ColorDatasetSpec(
        id="tf-flowers",
        description="TF-FLOWERS (flower_photos, 3,670 photos of varying size)",
        archive="tf_flowers/flower_photos.tgz",
        prefix="flower_photos",
        folders=("daisy", "dandelion", "roses", "sunflowers", "tulips"),
        class_names=_FLOWER_CLASSES,
        split="seeded",
        url=_TF_FLOWERS_URL,
    ),
}

# torchvision's folder of the CIFAR-10 pickles under the data root (the online fallback).
_CIFAR_TORCHVISION_DIR = "cifar-10-batches-py"


def _check_color_name(name: str) -> str:
    key = name.lower().strip() if isinstance(name, str) else name
    if key not in COLOR_DATASETS:
        known = ", ".join(repr(k) for k in COLOR_DATASETS)
        raise ValueError(f"unknown colour dataset {name!r}; known ids: {known}")
    return key


def _check_positive(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be a positive int or None, got {value!r}")


class _Archive:
    """Read access to the members of a zip or tar archive, by name."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        if zipfile.is_zipfile(path):
            self._zip: zipfile.ZipFile | None = zipfile.ZipFile(path)
            self._tar: tarfile.TarFile | None = None
            self._members: dict[str, tarfile.TarInfo] = {}
            self.names = [n for n in self._zip.namelist() if not n.endswith("/")]
        elif tarfile.is_tarfile(path):
            self._zip = None
            self._tar = tarfile.open(path)
            self._members = {m.name: m for m in self._tar.getmembers() if m.isfile()}
            self.names = list(self._members)
        else:
            raise ValueError(f"{path}: neither a zip nor a tar archive")

    def read(self, name: str) -> bytes:
        """The bytes of member ``name``."""
        if self._zip is not None:
            return self._zip.read(name)
        handle = self._tar.extractfile(self._members[name])
        return handle.read()

    def close(self) -> None:
        """Close the archive."""
        (self._zip or self._tar).close()


def _class_members(spec: ColorDatasetSpec, names: list[str], top: str) -> list[list[str]]:
    """Image members ``<top>/<folder>/<file>.jpg`` of each class, sorted by name."""
    per_class: list[list[str]] = [[] for _ in spec.folders]
    index = {folder: k for k, folder in enumerate(spec.folders)}
    for name in names:
        parts = name.removeprefix("./").split("/")
        if len(parts) < 3 or "/".join(parts[:-2]) != top or not parts[-1].lower().endswith(
            (".jpg", ".jpeg", ".png")
        ):
            continue
        k = index.get(parts[-2])
        if k is not None:
            per_class[k].append(name)
    return [sorted(members) for members in per_class]


def _interleave(per_class: list[list[str]]) -> list[tuple[str, int]]:
    """Round-robin over the classes: image 0 of every class, then image 1, and so on."""
    order = []
    for i in range(max((len(m) for m in per_class), default=0)):
        order.extend((members[i], k) for k, members in enumerate(per_class) if i < len(members))
    return order


def _seeded_split(
    per_class: list[list[str]], split: str, seed: int
) -> list[tuple[str, int]]:
    """A stratified 90/10 split: round(10%) of every class (sorted, then permuted) is the test
    set; each split is then shuffled with the same generator so that its first n are mixed."""
    rng = np.random.default_rng(seed)
    chosen: list[tuple[str, int]] = []
    for k, members in enumerate(per_class):
        perm = rng.permutation(len(members))
        n_test = int(round(FLOWERS_TEST_FRACTION * len(members)))
        picked = perm[:n_test] if split == "test" else perm[n_test:]
        chosen.extend((members[i], k) for i in sorted(picked))
    return [chosen[i] for i in rng.permutation(len(chosen))]


def _decode(data: bytes, size: int | None, where: str) -> np.ndarray:
    """One image file as uint8 RGB (H, W, 3), resized to ``size x size`` (bilinear) if given."""
    from PIL import Image  # installed with torchvision

    try:
        with Image.open(io.BytesIO(data)) as image:
            image = image.convert("RGB")
            if size is not None and image.size != (size, size):
                image = image.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{where}: cannot decode the image ({exc})") from exc


def _stack(images: list[np.ndarray], where: str) -> np.ndarray:
    shapes = {a.shape for a in images}
    if len(shapes) > 1:
        raise ValueError(
            f"{where}: the images have different sizes ({len(shapes)} shapes, e.g. "
            f"{sorted(shapes)[:3]}); pass size=... to resize them to one square size"
        )
    return np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2))


@functools.lru_cache(maxsize=8)
def _load_archive(
    name: str, split: str, archive: str, limit: int | None, size: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Decode (the first ``limit`` of) one split of an archive; cached, arrays read-only."""
    spec = COLOR_DATASETS[name]
    path = pathlib.Path(archive)
    reader = _Archive(path)
    try:
        if spec.split == "folder":
            top = "/".join(p for p in (spec.prefix, split) if p)
            order = _interleave(_class_members(spec, reader.names, top))
        else:
            order = _seeded_split(_class_members(spec, reader.names, spec.prefix), split, seed)
        if not order:
            raise ValueError(
                f"{path}: no images found under {spec.prefix or split}/<class>/ for any of the "
                f"class folders {', '.join(spec.folders)}"
            )
        order = order[:limit]
        images = [_decode(reader.read(m), size, f"{path}:{m}") for m, _ in order]
    finally:
        reader.close()
    stacked = _stack(images, f"{spec.id} ({split}, {path})")
    labels = np.array([k for _, k in order], dtype=np.int64)
    stacked.setflags(write=False)
    labels.setflags(write=False)
    return stacked, labels


@functools.lru_cache(maxsize=4)
def _load_cifar_torchvision(root: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """torchvision's CIFAR-10 pickles under ``root`` (official order), as uint8 (n, 3, 32, 32)."""
    import torchvision.datasets  # imported lazily: only needed for this layout

    data = torchvision.datasets.CIFAR10(root, train=(split == "train"), download=False)
    images = np.ascontiguousarray(np.asarray(data.data, dtype=np.uint8).transpose(0, 3, 1, 2))
    labels = np.asarray(data.targets, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _color_missing(spec: ColorDatasetSpec, root: pathlib.Path) -> str:
    alternatives = ""
    if spec.id == "cifar10":
        alternatives = f" or torchvision's {root / _CIFAR_TORCHVISION_DIR}"
    online = "pass download=True when online" if spec.id != "flowers-recognition" else (
        "it cannot be downloaded (the online counterpart is 'tf-flowers')"
    )
    return (
        f"{spec.id} data not found: missing file {root / spec.archive}{alternatives} "
        f"(searched data root {root}). Set the environment variable {DATA_ENV} to a folder "
        f"holding {spec.archive} (e.g. `export {DATA_ENV}=../shared/data`), pass root=..., "
        f"or {online}."
    )


def _download_color(spec: ColorDatasetSpec, root: pathlib.Path) -> None:
    """Fetch the original files of ``spec`` into ``root`` (torchvision's downloader)."""
    import torchvision.datasets
    from torchvision.datasets.utils import download_url

    root.mkdir(parents=True, exist_ok=True)
    if spec.id == "cifar10":
        torchvision.datasets.CIFAR10(str(root), train=True, download=True)
    else:  # tf-flowers (the offline substitute is never downloaded)
        target = root / spec.archive
        download_url(spec.url, str(target.parent), filename=target.name)


def color_dataset_available(name: str, root: str | os.PathLike | None = None) -> bool:
    """Whether the files of colour data set ``name`` are under the data root (no download)."""
    spec = COLOR_DATASETS[_check_color_name(name)]
    if spec.archive_path(root).is_file():
        return True
    return spec.id == "cifar10" and (data_root(root) / _CIFAR_TORCHVISION_DIR).is_dir()


def load_color_images(
    name: str,
    split: str = "train",
    root: str | os.PathLike | None = None,
    *,
    download: bool = False,
    size: int | None = None,
    limit: int | None = None,
    split_seed: int = FLOWERS_SPLIT_SEED,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one split of a colour data set as ``(images, labels)``.

    ``name`` is a key of :data:`COLOR_DATASETS`. Images are float32 ``(n, 3, H, W)`` holding
    pixel/255 in [0, 1], labels int64 ``(n,)`` indexing ``class_names``. ``size`` resizes every
    image to ``size x size`` (bilinear, antialiased when shrinking) as it is decoded; ``limit``
    keeps the first ``limit`` images of the order below and decodes only those.

    Order and split:

    * ``cifar10`` from the JPEG zip: the official split and labels (``{train,test}/<class>/k.jpg``
      is image k of that class in official order). The zip does not keep the official order
      *across* classes, so the classes are interleaved: image i is number i // 10 of class
      i % 10, and any first n are balanced. From torchvision's folder (online) the official order.
    * the flower sets: per class, the file names sorted, permuted with ``split_seed``, and
      round(10%) of them form the test split (stratified 90/10); each split is then shuffled with
      the same generator. Fixed by the file list and the seed.

    Missing files: ``download=True`` fetches CIFAR-10 (torchvision) or TF-FLOWERS (the
    ``flower_photos`` archive); otherwise, or when that fails, :class:`DataRootError`.
    Decoded arrays are cached per (set, split, archive, limit, size, seed); every call returns
    fresh tensors.
    """
    key = _check_color_name(name)
    split = _check_split(split)
    _check_positive("size", size)
    _check_positive("limit", limit)
    spec = COLOR_DATASETS[key]
    root_path = data_root(root).resolve()

    if not color_dataset_available(key, root_path):
        if not download or spec.id == "flowers-recognition":
            raise DataRootError(_color_missing(spec, root_path))
        try:
            _download_color(spec, root_path)
        except Exception as exc:  # no internet, unwritable root, ...
            raise DataRootError(
                f"{_color_missing(spec, root_path)} Download failed: {exc!r}"
            ) from exc

    archive = root_path / spec.archive
    if archive.is_file():
        images_u8, labels_np = _load_archive(key, split, str(archive), limit, size, split_seed)
        images = torch.from_numpy(images_u8.astype(np.float32)).div_(255.0)
    else:  # torchvision's CIFAR-10 folder
        images_u8, labels_np = _load_cifar_torchvision(str(root_path), split)
        images_u8, labels_np = images_u8[:limit], labels_np[:limit]
        images = torch.from_numpy(images_u8.astype(np.float32)).div_(255.0)
        if size is not None and images.shape[-1] != size:
            images = F.interpolate(
                images, size=(size, size), mode="bilinear", align_corners=False, antialias=True
            ).clamp_(0.0, 1.0)
    return images.contiguous(), torch.from_numpy(labels_np.astype(np.int64))
