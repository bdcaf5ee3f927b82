"""Fixtures shared by the test modules: a tiny synthetic MNIST in the IDX layout, so that training
runs need no real data and take seconds (each class a bright patch at its own place)."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from wcbook.data import DATA_ENV


def _write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def _synthetic(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 40, (n, 28, 28))
    for i, k in enumerate(labels):
        r, c = divmod(int(k), 4)
        images[i, 7 * r : 7 * r + 7, 7 * c : 7 * c + 7] = 255
    return images, labels


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """A data root holding MNIST/raw with 300 training and 100 test images."""
    root = tmp_path_factory.mktemp("data")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 300), ("t10k", 100)):
        images, labels = _synthetic(n, rng)
        _write_idx(raw / f"{split}-images-idx3-ubyte.gz", images)
        _write_idx(raw / f"{split}-labels-idx1-ubyte.gz", labels)
    return root


@pytest.fixture
def synthetic_env(data_root, monkeypatch):
    """WCBOOK_DATA pointed at :func:`data_root` for the test."""
    monkeypatch.setenv(DATA_ENV, str(data_root))
    return data_root


#: The offline copies beside the checkout (``../shared/data``), used where ``$WCBOOK_DATA`` is unset.
FALLBACK_DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def real_data_root() -> Path | None:
    """The root of the real data sets: ``$WCBOOK_DATA``, else :data:`FALLBACK_DATA_ROOT` where it
    exists, else None (each test skips on what it lacks)."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return FALLBACK_DATA_ROOT if FALLBACK_DATA_ROOT.is_dir() else None
