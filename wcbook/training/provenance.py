"""Devices and provenance: where and from which code a run was made, as every record says."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from ..experiments import ExperimentConfig, Profile, data_caveat

#: Environment variable naming the commit of a tree that is not a git checkout.
COMMIT_ENV = "WCBOOK_COMMIT"

#: The precisions of float32 matrix products a run may use (``--matmul``): ``fp32`` exact float32
#: products, ``tf32`` TensorFloat-32 on GPUs that have it (what TensorFlow uses by default on
#: Ampere and later GPUs, so the authors' runs), with a 10-bit mantissa in the products.
MATMUL_PRECISIONS = ("fp32", "tf32")

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def select_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU; anything else goes to :class:`torch.device`."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def device_name(device: torch.device) -> str:
    """A human-readable name of the hardware: the GPU model, or the CPU model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def git_commit() -> tuple[str, bool | None]:
    """(HEAD commit of the checkout holding this package, whether tracked files are modified).

    The environment variable ``WCBOOK_COMMIT``, when set, wins: it names the commit a copy of the
    tree was made from (a copy shipped to a GPU machine, whose ``.git`` may be stale or missing),
    with ``+dirty`` appended when the copy held changes. Without it and outside a git checkout:
    ``("unknown", None)``. Read-only: ``--no-optional-locks`` keeps ``git status`` from touching
    the index.
    """
    declared = os.environ.get(COMMIT_ENV, "").strip()
    if declared:
        commit, _, flag = declared.partition("+")
        return commit, flag == "dirty"

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "--no-optional-locks", *args],
            cwd=_PACKAGE_DIR,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return "unknown", None
    return commit, dirty


def check_matmul(matmul: str) -> str:
    """``matmul`` if it is one of :data:`MATMUL_PRECISIONS`, else a ValueError listing them."""
    if matmul not in MATMUL_PRECISIONS:
        raise ValueError(
            f"unknown matmul precision {matmul!r}; choose one of {', '.join(MATMUL_PRECISIONS)}"
        )
    return matmul


def environment(
    device: torch.device, engine: str | None, world: int, matmul: str = "fp32"
) -> dict[str, Any]:
    """Hardware, software and execution path of the session that trains (stored with every
    checkpoint): ``engine`` None for models without one, ``world_size`` > 1 for DDP runs,
    ``matmul`` the precision of float32 products."""
    return {
        "device": device_name(device),
        "device_type": device.type,
        "torch_threads": torch.get_num_threads(),
        "torch_version": str(torch.__version__),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "engine": engine,
        "world_size": world,
        "matmul": matmul,
    }


def session_entry(
    environment: dict[str, Any], started: str, first_epoch: int, seconds: list[float]
) -> dict[str, Any]:
    """One session of a run: its hardware and software, when it began, the epochs it trained
    and their mean duration."""
    return {
        **environment,
        "started_utc": started,
        "first_epoch": first_epoch,
        "last_epoch": first_epoch + len(seconds) - 1,
        "seconds_per_epoch": round(sum(seconds) / max(len(seconds), 1), 4),
    }


def record_header(
    config: ExperimentConfig, profile: Profile, seed: int, environment: dict[str, Any]
) -> dict[str, Any]:
    """What every results record says of how it was made: the run (experiment, variant,
    profile, seed, configurations), the paper's numbers, the hardware and software
    (``environment``) and the commit, read now."""
    commit, dirty = git_commit()
    caveat = data_caveat(config)
    return {
        **({"caveat": caveat} if caveat else {}),
        "experiment": config.id,
        "variant": config.variant,
        "profile": profile.name,
        "seed": seed,
        "reference": dict(config.reference),
        "epochs": config.epochs,
        "n_train": profile.n_train,
        "n_test": profile.n_test,
        **environment,
        "commit": commit,
        "dirty": dirty,
        "config": config.to_dict(),
        "profile_config": profile.to_dict(),
    }
