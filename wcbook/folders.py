"""Where the command line writes: the committed (published) folders, or a user's working folder.

The repository's records (``results/``, ``certificates/``, ``benchmarks/results/``,
``robustness/``, ``traces/``) and exported weights (``models/``) are what the
book and the tests read; a command writes there only when asked with ``--publish`` (run from the
repository root). Every other run goes to a working folder, ``--out DIR`` or by default
``$WCBOOK_HOME``, else ``~/.cache/wcbook/runs``::

    <out>/results/<run>/<profile>/seed<k>.json        training records
    <out>/checkpoints/<run>/<profile>/seed<k>.pt      checkpoints
    <out>/certificates/<run>/<profile>/seed<k>.json   stability certificates
    <out>/benchmarks/<device>-<time>.json             benchmark records
    <out>/robustness/<run>/<profile>/seed<k>.json     robustness records
    <out>/models/<run>/<profile>/seed<k>.safetensors  exported weights
    <out>/traces/<run>/<profile>/seed<k>.json         step-by-step replays of a run's start

Readers take the folder to read, so a user's own records are read with, for example,
``load_records(working().results)`` and the published ones with
``load_records(published().results)``.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "HOME_ENV",
    "DEFAULT_HOME",
    "Folders",
    "user_home",
    "published",
    "working",
    "add_output_arguments",
    "add_folder_overrides",
    "folders_from_args",
    "run_name",
]

#: Environment variable naming the default working folder.
HOME_ENV = "WCBOOK_HOME"
#: The working folder when neither ``--out`` nor ``$WCBOOK_HOME`` is given.
DEFAULT_HOME = "~/.cache/wcbook/runs"


@dataclass(frozen=True)
class Folders:
    """The folders a command may write into."""

    results: Path
    checkpoints: Path
    certificates: Path
    benchmarks: Path
    robustness: Path
    models: Path
    traces: Path
    publish: bool = False


def user_home() -> Path:
    """The default working folder: ``$WCBOOK_HOME``, else ``~/.cache/wcbook/runs``."""
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser()


def published(root: str | os.PathLike = ".") -> Folders:
    """The committed folders of the repository at ``root`` (checkpoints are never committed)."""
    base = Path(root)
    return Folders(
        results=base / "results",
        checkpoints=base / "checkpoints",
        certificates=base / "certificates",
        benchmarks=base / "benchmarks" / "results",
        robustness=base / "robustness",
        models=base / "models",
        traces=base / "traces",
        publish=True,
    )


def working(out: str | os.PathLike | None = None) -> Folders:
    """The folders under a working folder ``out`` (default :func:`user_home`)."""
    base = Path(out).expanduser() if out is not None else user_home()
    return Folders(
        results=base / "results",
        checkpoints=base / "checkpoints",
        certificates=base / "certificates",
        benchmarks=base / "benchmarks",
        robustness=base / "robustness",
        models=base / "models",
        traces=base / "traces",
    )


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """``--out DIR`` and ``--publish`` (mutually exclusive)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help=f"working folder for records and checkpoints (default ${HOME_ENV}, else "
        f"{DEFAULT_HOME})",
    )
    group.add_argument(
        "--publish",
        action="store_true",
        help="write the committed records (results/, certificates/, benchmarks/results/, "
        "robustness/, traces/, models/) of the repository in the current folder instead",
    )


def add_folder_overrides(parser: argparse.ArgumentParser) -> None:
    """``--results-dir`` and ``--checkpoint-dir``: one folder each, instead of ``<out>/...``."""
    parser.add_argument(
        "--results-dir", default=None, help="records here instead (default <out>/results)"
    )
    parser.add_argument(
        "--checkpoint-dir",
        default=None,
        help="checkpoints here instead (default <out>/checkpoints)",
    )


def folders_from_args(args: argparse.Namespace) -> Folders:
    """The folders that ``--out`` / ``--publish`` of :func:`add_output_arguments` select."""
    return published() if args.publish else working(args.out)


def run_name(experiment_id: str, variant: str | None = None) -> str:
    """Folder name of an experiment's outputs: the id, or ``<id>+<variant>`` for a variant."""
    return experiment_id if variant is None else f"{experiment_id}+{variant}"
