"""``python -m wcbook data``: the catalogue of data sets, their checksums and the offline advice."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
from pathlib import Path

import pytest

from wcbook import catalog, cli
from wcbook.catalog import CATALOG, DataFile, DataSet, Layout, check, needed_by
from wcbook.data import DATA_ENV
from wcbook.experiments import EXPERIMENTS

SHARED = Path(os.environ.get(DATA_ENV, "~/.cache/wcbook/data")).expanduser()


def _fail(root: Path) -> None:
    raise OSError("[Errno -2] Name or service not known")


def test_every_experiment_data_set_is_catalogued():
    needs = needed_by()
    assert set(needs) <= set(CATALOG)
    assert sorted(i for users in needs.values() for i in users if "+" not in i) == sorted(
        EXPERIMENTS
    )
    assert needs["tf-flowers"] == [
        "flowers-transfer+imagenet",
        "flowers-transfer-softmax+imagenet",
    ]


def test_an_empty_root_lists_everything_missing(tmp_path, capsys):
    assert cli.main(["data", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"data root: {tmp_path} (--root)\n")
    for name in CATALOG:
        assert check(name, tmp_path).state == "missing"
        assert f"\n{name:20s} missing " in out
    assert "needed by: imdb-encoder, imdb-distance-head, imdb-wc" in out


def test_offline_download_says_which_file_to_place_where(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(CATALOG, "mnist", dataclasses.replace(CATALOG["mnist"], fetch=_fail))
    assert cli.main(["data", "--root", str(tmp_path), "--download", "mnist"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: could not download mnist (OSError: [Errno -2] Name or service")
    for name in ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1"):
        assert f"\n    {tmp_path / 'MNIST' / 'raw' / name}-ubyte.gz\n" in err
    assert f"and point {DATA_ENV} at that root (or pass --root)." in err


def test_a_set_without_public_source_is_explained(tmp_path, capsys):
    assert cli.main(["data", "--root", str(tmp_path), "--download", "flowers-recognition"]) == 1
    err = capsys.readouterr().err
    assert "flowers-recognition has no public download" in err
    assert f"    {tmp_path / 'flowers' / 'flowers_recognition_128.zip'}\n" in err


def test_every_downloadable_set_names_its_alternatives(tmp_path):
    text = catalog.offline_instructions("cifar10", tmp_path)
    assert str(tmp_path / "cifar10" / "cifar10_jpeg.zip") in text
    assert str(tmp_path / "cifar-10-batches-py" / "data_batch_5") in text
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in text
    assert str(tmp_path / "imdb" / "aclImdb_v1.tar.gz") in catalog.offline_instructions(
        "imdb", tmp_path
    )


def _toy(tmp_path: Path, content: bytes, *, plain: bool = False) -> DataSet:
    """A one-file data set whose expected digests are those of ``content``, written gzip'd (or
    plain) under ``tmp_path``."""
    digests = (
        f"sha256:{hashlib.sha256(content).hexdigest()}",
        f"md5:{hashlib.md5(content).hexdigest()}",
    )
    path = tmp_path / "toy" / ("file.idx" if plain else "file.idx.gz")
    path.parent.mkdir()
    path.write_bytes(content if plain else gzip.compress(content))
    return DataSet("toy", "toy", (Layout("gz", (DataFile("toy/file.idx.gz", digests, True),),
                                         "nowhere"),))


@pytest.mark.parametrize("plain", [False, True])
def test_checksums_are_of_the_decompressed_content(tmp_path, monkeypatch, plain):
    monkeypatch.setitem(CATALOG, "toy", _toy(tmp_path, b"\x00\x00\x08\x01" + bytes(7), plain=plain))
    status = check("toy", tmp_path)
    assert (status.state, status.checksum, status.size > 0) == ("present", "ok", True)


def test_a_changed_or_truncated_file_is_a_mismatch(tmp_path, monkeypatch):
    toy = _toy(tmp_path, b"abc" * 1000)
    monkeypatch.setitem(CATALOG, "toy", toy)
    path = tmp_path / "toy" / "file.idx.gz"
    path.write_bytes(path.read_bytes()[:-10])
    assert check("toy", tmp_path).checksum == f"MISMATCH: {path}"
    path.write_bytes(gzip.compress(b"abd" * 1000))
    assert check("toy", tmp_path).checksum == f"MISMATCH: {path}"
    assert check("toy", tmp_path, verify=False).checksum == "unchecked"


def test_a_present_set_is_not_fetched_again(tmp_path, monkeypatch):
    toy = _toy(tmp_path, b"xyz")
    monkeypatch.setitem(CATALOG, "toy", dataclasses.replace(toy, fetch=_fail))
    assert catalog.download("toy", tmp_path).checksum == "ok"


def test_synthetic_mnist_fails_the_checksum(data_root, capsys):
    assert cli.main(["data", "--root", str(data_root)]) == 1
    assert f"MISMATCH: {data_root / 'MNIST' / 'raw' / 'train-images-idx3-ubyte.gz'}" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize("name", ["mnist", "fashion", "cifar10", "flowers-recognition", "imdb"])
def test_the_offline_copies_match_their_checksums(name):
    """MNIST and Fashion-MNIST: also the published MD5s of the uncompressed IDX files."""
    status = check(name, SHARED)
    if status.state != "present":
        pytest.skip(f"{name} is not under {SHARED}")
    assert status.checksum == "ok"


def test_stage_copies_only_the_named_sets(data_root, tmp_path, capsys):
    target = tmp_path / "device-data"
    assert cli.main(["data", "--root", str(data_root), "--stage", str(target),
                     "--sets", "mnist"]) == 0
    assert "staged mnist: 4 files" in capsys.readouterr().out
    assert check("mnist", target, verify=False).state == "present"
    assert check("fashion", target, verify=False).state == "missing"
    assert sorted(p.name for p in (target / "MNIST" / "raw").iterdir()) == sorted(
        p.name for p in (data_root / "MNIST" / "raw").iterdir())
    assert cli.main(["data", "--root", str(data_root), "--stage", str(target),
                     "--sets", "imdb"]) == 1
    assert "cannot stage imdb: it is missing" in capsys.readouterr().err
    assert cli.main(["data", "--root", str(data_root), "--stage", str(target)]) == 1
    assert "name the data sets to stage with --sets" in capsys.readouterr().err
