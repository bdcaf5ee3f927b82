"""Image data sets (MNIST and Fashion-MNIST) for the Wilson-Cowan experiments.

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
"""

from __future__ import annotations

import functools
import gzip
import os
import pathlib
import zlib
from dataclasses import dataclass

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
