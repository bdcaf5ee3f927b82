"""The catalogue of data sets: where each lies under the data root, its expected checksums, the
experiments that need it, and where its originals can be fetched (``python -m wcbook data``).

Every data set has one or more layouts that its loader reads (:mod:`wcbook.data`,
:mod:`wcbook.text`); the first complete one is used. Expected checksums:

* MNIST and Fashion-MNIST: the SHA-256 and the MD5 of the *decompressed* IDX files, so that a
  ``.gz`` file and its plain twin, and the offline copies (gzip'd again, other bytes) and
  torchvision's downloads (the original ``.gz`` files) all check alike. The MD5s are the ones
  published for the uncompressed files; the SHA-256s were computed from copies whose MD5s match.
* CIFAR-10 through torchvision: the MD5s torchvision checks (``CIFAR10.train_list`` ...).
* The original IMDB and TF-FLOWERS archives: their published MD5s.
* The offline archives (CIFAR-10 as JPEG, Flowers Recognition at 128 px, IMDB without 40
  reviews; see their caveats in :func:`wcbook.experiments.data_caveat`): SHA-256 of the copies
  these results were made with; they have no published counterpart.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import shutil
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .data import DATA_ENV, data_root
from .experiments import EXPERIMENTS, VARIANTS, get_experiment, run_name
from .text import IMDB_URL

__all__ = [
    "DataFile",
    "Layout",
    "DataSet",
    "CATALOG",
    "DataStatus",
    "DownloadError",
    "check",
    "needed_by",
    "format_status",
    "offline_instructions",
    "download",
    "stage",
    "add_arguments",
    "run",
]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class DataFile:
    """One file a loader reads, relative to the data root.

    ``digests`` ("sha256:<hex>", "md5:<hex>") must all match; with ``gunzip`` they are digests of
    the decompressed bytes and the plain twin (the name without ``.gz``) is accepted too.
    """

    path: str
    digests: tuple[str, ...] = ()
    gunzip: bool = False

    def find(self, root: Path) -> Path | None:
        """The file (or its plain twin) under ``root``, if present."""
        candidates = [root / self.path]
        if self.gunzip and self.path.endswith(".gz"):
            candidates.append(root / self.path[: -len(".gz")])
        return next((c for c in candidates if c.is_file()), None)


@dataclass(frozen=True)
class Layout:
    """One way a data set can lie under the root: its files and where they come from."""

    name: str
    files: tuple[DataFile, ...]
    origin: str


@dataclass(frozen=True)
class DataSet:
    """A catalogue entry: ``id`` as the experiments name it (``ExperimentConfig.dataset``)."""

    id: str
    title: str
    layouts: tuple[Layout, ...]
    fetch: Callable[[Path], None] | None = None


def _idx(folder: str, digests: dict[str, tuple[str, str]]) -> tuple[DataFile, ...]:
    return tuple(
        DataFile(f"{folder}/raw/{name}.gz", (f"sha256:{sha}", f"md5:{md5}"), gunzip=True)
        for name, (sha, md5) in digests.items()
    )


_MNIST = {
    "train-images-idx3-ubyte": (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "6bbc9ace898e44ae57da46a324031adb",
    ),
    "train-labels-idx1-ubyte": (
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "a25bea736e30d166cdddb491f175f624",
    ),
    "t10k-images-idx3-ubyte": (
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "2646ac647ad5339dbf082846283269ea",
    ),
    "t10k-labels-idx1-ubyte": (
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        "27ae3e4e09519cfbb04c329615203637",
    ),
}
_FASHION = {
    "train-images-idx3-ubyte": (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    ),
    "train-labels-idx1-ubyte": (
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "9018921c3c673c538a1fc5bad174d6f9",
    ),
    "t10k-images-idx3-ubyte": (
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "8181f5470baa50b63fa0f6fddb340f0a",
    ),
    "t10k-labels-idx1-ubyte": (
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        "15d484375f8d13e6eb1aabb0c3f46965",
    ),
}
#: torchvision's CIFAR-10 folder: the MD5s torchvision itself checks.
_CIFAR_BATCHES = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_TF_FLOWERS_URL = (
    "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz"
)
_TF_FLOWERS_MD5 = "6f87fb78e9cc9ab41eff2015b380011d"
_IMDB_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
#: SHA-256 of the offline archives these results were made with (no published counterpart).
_CIFAR_JPEG = "sha256:ad20075fc5d761cb1545aa313752ecc67cdb288bc8d01abc2128e7de0ddfedb5"
_FLOWERS_ZIP = "sha256:3895c81ad138fd6626da4c2ce0b0c31df683750569a2d04e7721ee507414d02c"
_IMDB_XZ = "sha256:61dc0d0da634bced6a078cfde06051656c883527cd97832ea1a8b0897aa5372e"


def _fetch_torchvision(name: str) -> Callable[[Path], None]:
    """A fetcher of torchvision's data set class ``name`` (both splits)."""

    def fetch(root: Path) -> None:
        import torchvision.datasets  # only needed for a download

        cls = getattr(torchvision.datasets, name)
        for train in (True, False):
            cls(str(root), train=train, download=True)

    return fetch


def _fetch_url(url: str, target: str, md5: str) -> Callable[[Path], None]:
    """A fetcher of one archive at ``url`` to ``<root>/<target>``, checked against ``md5``."""

    def fetch(root: Path) -> None:
        from torchvision.datasets.utils import download_url

        path = root / target
        download_url(url, str(path.parent), filename=path.name, md5=md5)

    return fetch


_TORCHVISION_IDX = "torchvision's download (MNIST mirrors), the original .gz files"

#: Every data set an experiment (or a variant) reads, by id.
CATALOG: dict[str, DataSet] = {
    "mnist": DataSet(
        "mnist",
        "MNIST",
        (Layout("IDX files", _idx("MNIST", _MNIST), _TORCHVISION_IDX),),
        _fetch_torchvision("MNIST"),
    ),
    "fashion": DataSet(
        "fashion",
        "Fashion-MNIST",
        (
            Layout(
                "IDX files",
                _idx("FashionMNIST", _FASHION),
                "torchvision's download (zalandoresearch/fashion-mnist), the original .gz files",
            ),
        ),
        _fetch_torchvision("FashionMNIST"),
    ),
    "cifar10": DataSet(
        "cifar10",
        "CIFAR-10",
        (
            Layout(
                "JPEG copy",
                (
                    DataFile(
                        "cifar10/cifar10_jpeg.zip",
                        (_CIFAR_JPEG,),
                    ),
                ),
                "the offline JPEG copy (no public download)",
            ),
            Layout(
                "torchvision",
                tuple(
                    DataFile(f"cifar-10-batches-py/{n}", (f"md5:{m}",))
                    for n, m in _CIFAR_BATCHES.items()
                ),
                f"{_CIFAR_URL}, unpacked",
            ),
        ),
        _fetch_torchvision("CIFAR10"),
    ),
    "flowers-recognition": DataSet(
        "flowers-recognition",
        "Flowers Recognition, 128 px (TF-FLOWERS substitute)",
        (
            Layout(
                "zip",
                (
                    DataFile(
                        "flowers/flowers_recognition_128.zip",
                        (_FLOWERS_ZIP,),
                    ),
                ),
                "the offline copy (no public download; online, variant imagenet reads "
                "tf-flowers instead)",
            ),
        ),
    ),
    "tf-flowers": DataSet(
        "tf-flowers",
        "TF-FLOWERS (flower_photos)",
        (
            Layout(
                "archive",
                (DataFile("tf_flowers/flower_photos.tgz", (f"md5:{_TF_FLOWERS_MD5}",)),),
                _TF_FLOWERS_URL,
            ),
        ),
        _fetch_url(_TF_FLOWERS_URL, "tf_flowers/flower_photos.tgz", _TF_FLOWERS_MD5),
    ),
    "imdb": DataSet(
        "imdb",
        "IMDB Large Movie Review Dataset",
        (
            Layout(
                "offline copy",
                (
                    DataFile(
                        "imdb/aclImdb_labeled.tar.xz",
                        (_IMDB_XZ,),
                    ),
                ),
                "the offline copy of 49,960 reviews (no public download)",
            ),
            Layout(
                "original",
                (DataFile("imdb/aclImdb_v1.tar.gz", (f"md5:{_IMDB_MD5}",)),),
                IMDB_URL,
            ),
        ),
        _fetch_url(IMDB_URL, "imdb/aclImdb_v1.tar.gz", _IMDB_MD5),
    ),
}


class DownloadError(RuntimeError):
    """A data set could not be fetched (offline, no public source, a bad checksum)."""


def _digests(path: Path, algorithms: Iterable[str], gunzip: bool) -> dict[str, str]:
    """Hex digests of the file (decompressed with ``gunzip`` when it is a .gz file)."""
    hashes = {name: hashlib.new(name) for name in algorithms}
    opener = gzip.open if gunzip and path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            for h in hashes.values():
                h.update(chunk)
    return {name: h.hexdigest() for name, h in hashes.items()}


def _file_check(file: DataFile, path: Path) -> str:
    """"ok", "mismatch" or "unchecked" (no expected digest) for a present file."""
    if not file.digests:
        return "unchecked"
    expected = dict(d.split(":", 1) for d in file.digests)
    try:
        actual = _digests(path, expected, file.gunzip)
    except (OSError, EOFError) as exc:  # unreadable, truncated gzip stream
        return f"mismatch ({exc})"
    return "ok" if actual == expected else "mismatch"


@dataclass(frozen=True)
class DataStatus:
    """What :func:`check` found of one data set under a root."""

    dataset: DataSet
    root: Path
    layout: Layout
    found: tuple[Path | None, ...]
    checks: tuple[str, ...]

    @property
    def state(self) -> str:
        """"present" (every file of the layout), "partial" or "missing"."""
        count = sum(p is not None for p in self.found)
        return "present" if count == len(self.found) else "partial" if count else "missing"

    @property
    def size(self) -> int:
        """Bytes of the files found."""
        return sum(p.stat().st_size for p in self.found if p is not None)

    @property
    def checksum(self) -> str:
        """"ok", "unchecked", "-" (nothing checked) or "MISMATCH: <file>, ..."."""
        bad = [str(p) for p, c in zip(self.found, self.checks) if c.startswith("mismatch")]
        if bad:
            return "MISMATCH: " + ", ".join(bad)
        checked = [c for c in self.checks if c != "-"]
        if not checked:
            return "-"
        return "ok" if all(c == "ok" for c in checked) else "unchecked"


def _layout_found(layout: Layout, root: Path) -> tuple[Path | None, ...]:
    return tuple(f.find(root) for f in layout.files)


def check(
    name: str, root: str | os.PathLike | None = None, *, verify: bool = True
) -> DataStatus:
    """The state of data set ``name`` under the data root: the first complete layout (else the
    first partly present one, else the first), its files and, with ``verify``, their checksums."""
    if name not in CATALOG:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(CATALOG)}")
    dataset, base = CATALOG[name], data_root(root)
    options = [(layout, _layout_found(layout, base)) for layout in dataset.layouts]
    complete = [o for o in options if all(p is not None for p in o[1])]
    partial = [o for o in options if any(p is not None for p in o[1])]
    layout, found = (complete or partial or options)[0]
    checks = tuple(
        "-" if p is None else (_file_check(f, p) if verify else "unverified")
        for f, p in zip(layout.files, found)
    )
    return DataStatus(dataset, base, layout, found, checks)


def needed_by() -> dict[str, list[str]]:
    """{data set id: the runs that read it}: every experiment, and every variant run whose
    variant changes the data set (``<experiment>+<variant>``)."""
    needs: dict[str, list[str]] = {}
    for experiment_id, config in EXPERIMENTS.items():
        needs.setdefault(config.dataset, []).append(experiment_id)
    for variant in VARIANTS.values():
        for experiment_id in variant.overrides:
            dataset = get_experiment(experiment_id, variant.name).dataset
            if dataset != EXPERIMENTS[experiment_id].dataset:
                needs.setdefault(dataset, []).append(run_name(experiment_id, variant.name))
    return needs


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size else "-"


def format_status(statuses: Iterable[DataStatus], needs: dict[str, list[str]]) -> str:
    """The table of ``python -m wcbook data``: one line per data set and its users below it."""
    lines = [f"{'data set':20s} {'state':8s} {'size':>9s}  {'checksum':10s} layout"]
    for s in statuses:
        lines.append(
            f"{s.dataset.id:20s} {s.state:8s} {_megabytes(s.size):>9s}  {s.checksum:10s} "
            f"{s.layout.name} ({s.layout.files[0].path.split('/')[0]}/)"
        )
        users = ", ".join(needs.get(s.dataset.id, [])) or "no experiment"
        lines.extend(
            textwrap.wrap(
                users,
                96,
                initial_indent="    needed by: ",
                subsequent_indent=" " * 15,
                break_on_hyphens=False,
            )
        )
    return "\n".join(lines)


def offline_instructions(name: str, root: str | os.PathLike | None = None) -> str:
    """Which files to place where for data set ``name`` (any one layout will do)."""
    dataset, base = CATALOG[name], data_root(root)
    parts = [f"Place one of these layouts of {dataset.title} under the data root {base}:"]
    for layout in dataset.layouts:
        parts.append(f"  {layout.name} (from {layout.origin}):")
        parts.extend(f"    {base / f.path}" for f in layout.files)
    parts.append(f"and point {DATA_ENV} at that root (or pass --root).")
    return "\n".join(parts)


def download(name: str, root: str | os.PathLike | None = None) -> DataStatus:
    """Fetch the originals of data set ``name`` into the data root unless they are already
    present with good checksums; the state afterwards. Raises :class:`DownloadError` saying
    which files to place where when there is no public source or the download fails."""
    status = check(name, root)
    if status.state == "present" and status.checksum in ("ok", "unchecked"):
        return status
    dataset = CATALOG[name]
    if dataset.fetch is None:
        raise DownloadError(
            f"{name} has no public download.\n{offline_instructions(name, root)}"
        )
    try:
        status.root.mkdir(parents=True, exist_ok=True)
        dataset.fetch(status.root)
    except Exception as exc:  # offline, unwritable root, a server's error, a bad checksum
        raise DownloadError(
            f"could not download {name} ({type(exc).__name__}: {str(exc).strip()}).\n"
            f"{offline_instructions(name, root)}"
        ) from exc
    return check(name, root)


def stage(
    names: Iterable[str], target: str | os.PathLike, root: str | os.PathLike | None = None
) -> list[Path]:
    """Copy the files of data sets ``names`` from the data root into ``target``, same layout, so
    that ``target`` is a data root holding just those sets (what a device machine is sent);
    the copied paths. Raises ValueError naming the set and its files when one is incomplete."""
    statuses = [check(name, root, verify=False) for name in names]
    for status in statuses:
        if status.state != "present":
            raise ValueError(
                f"cannot stage {status.dataset.id}: it is {status.state} under {status.root}.\n"
                f"{offline_instructions(status.dataset.id, root)}"
            )
    copied = []
    for status in statuses:
        for path in (p for p in status.found if p is not None):
            destination = Path(target) / path.relative_to(status.root)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)
            copied.append(destination)
    return copied


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m wcbook data``."""
    parser.add_argument(
        "--root", default=None, help=f"data root (default ${DATA_ENV}, else ~/.cache/wcbook/data)"
    )
    parser.add_argument(
        "--download",
        metavar="NAME",
        choices=list(CATALOG),
        help=f"fetch this data set's originals ({', '.join(CATALOG)})",
    )
    parser.add_argument(
        "--no-verify", action="store_true", help="skip the checksums (they read every file)"
    )
    parser.add_argument(
        "--stage",
        metavar="DIR",
        help="copy the data sets named by --sets into DIR (a data root holding only them)",
    )
    parser.add_argument(
        "--sets", default=None, help=f"comma-separated data sets to stage ({', '.join(CATALOG)})"
    )


def run(args: argparse.Namespace) -> int:
    """List every data set (or fetch one); exit code 1 when a download fails or a checksum
    does not match."""
    root = data_root(args.root)
    source = "--root" if args.root else f"${DATA_ENV}" if os.environ.get(DATA_ENV) else "default"
    print(f"data root: {root} ({source})")
    if args.stage:
        return _stage(args, root)
    if args.download:
        try:
            statuses = [download(args.download, root)]
        except DownloadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    else:
        statuses = [check(name, root, verify=not args.no_verify) for name in CATALOG]
    print(format_status(statuses, needed_by()))
    return 1 if any(s.checksum.startswith("MISMATCH") for s in statuses) else 0


def _stage(args: argparse.Namespace, root: Path) -> int:
    """``--stage DIR --sets a,b``: copy the sets and print what was staged; 1 on a bad request."""
    names = [n for n in (args.sets or "").split(",") if n]
    unknown = [n for n in names if n not in CATALOG]
    if not names or unknown:
        print(f"error: name the data sets to stage with --sets (known: {', '.join(CATALOG)})"
              + (f"; unknown: {', '.join(unknown)}" if unknown else ""), file=sys.stderr)
        return 1
    try:
        copied = stage(names, args.stage, root)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for p in copied)
    print(f"staged {', '.join(names)}: {len(copied)} files, {_megabytes(size)} in {args.stage}")
    return 0
