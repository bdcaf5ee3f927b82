"""Checkpoints and result files: where they live, how they are written so that a crash never
leaves a broken one, and how a checkpoint is read back to resume a run.

A checkpoint holds a whole ensemble (a single run is an ensemble of one): the stacked model and
optimiser, each member's shuffling generator, history and status, the global generators, the
epoch and the sessions that trained it. It is written to a temporary file, flushed to disk and
renamed over the old one, which is first kept as ``<name>.prev``: whatever moment a run is killed
at, one complete checkpoint remains.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..experiments import ExperimentConfig, Profile

#: Version of the checkpoint layout; bumped when it changes incompatibly (3: ensembles).
CHECKPOINT_FORMAT = 3

#: Fields that may change between a checkpoint and its resumption: they do not affect the
#: training itself (a run may be resumed to more epochs, or evaluated on another schedule).
RESUMABLE_CHANGES = frozenset({"epochs", "eval_every", "description", "reference"})


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed; the message says which file and what to do."""


def _seeds_name(seeds: int | Sequence[int]) -> str:
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    if len(seeds) == 1:
        return f"seed{seeds[0]}"
    return "seeds" + "_".join(str(s) for s in seeds)


def checkpoint_path(
    config: ExperimentConfig,
    profile: Profile,
    seeds: int | Sequence[int],
    checkpoint_dir: str | os.PathLike = "checkpoints",
) -> Path:
    """``<checkpoint_dir>/<experiment>/<profile>/seed<k>.pt`` for one seed, ``seeds<a>_<b>...pt``
    for an ensemble of several."""
    return Path(checkpoint_dir) / config.name / profile.name / f"{_seeds_name(seeds)}.pt"


def results_path(
    config: ExperimentConfig,
    profile: Profile,
    seed: int,
    results_dir: str | os.PathLike = "results",
) -> Path:
    """``<results_dir>/<experiment>/<profile>/seed<k>.json``."""
    return Path(results_dir) / config.name / profile.name / f"seed{seed}.json"


def atomic_write(
    path: Path, write: Callable[[Any], None], mode: str = "wb", keep_previous: bool = False
) -> None:
    """Write through a temporary file in the same folder, flushed to disk, then renamed over
    ``path``; with ``keep_previous`` the old file is first renamed to ``<path>.prev`` (replacing
    the one before it), so that at most two copies are on disk while the new one is written and
    :func:`load` finds the old one if writing stops half-way."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if keep_previous and path.exists():
        os.replace(path, previous_path(path))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def previous_path(path: Path) -> Path:
    """Where the checkpoint before the last one is kept."""
    return path.with_name(path.name + ".prev")


def save(path: Path, state: dict[str, Any]) -> None:
    """Write a checkpoint crash-safely, keeping the previous one until the new one is complete."""
    atomic_write(path, lambda handle: torch.save(state, handle), keep_previous=True)


def drop_previous(path: Path) -> None:
    """Remove the copy :func:`save` keeps of the checkpoint before ``path`` (once a run has
    finished its last checkpoint is the one to keep, and the copy only takes disk space)."""
    previous_path(path).unlink(missing_ok=True)


def _read(path: Path) -> dict[str, Any]:
    # On the CPU: generator states must stay CPU tensors; load_state_dict moves the rest.
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "format" not in state:
        raise ValueError("not a checkpoint")
    return state


def load(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or the previous one if that one is damaged (said in one
    line); None when there is none. A damaged checkpoint without a previous one raises
    :class:`CheckpointError` saying how to start over."""
    candidates = [p for p in (path, previous_path(path)) if p.exists()]
    for candidate in candidates:
        try:
            return _read(candidate)
        except Exception as exc:  # a truncated, empty or foreign file: say so and fall back
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            print(f"warning: checkpoint {candidate} is unreadable ({reason})", file=sys.stderr)
    if candidates:
        raise CheckpointError(
            f"the checkpoint {path} is damaged and no earlier one is left; delete it or pass "
            "--no-resume (resume=False) to start over"
        )
    return None


def comparable(config: dict[str, Any], profile: dict[str, Any]) -> tuple[dict, dict]:
    """Config and profile without the fields a resumed run may change."""
    return (
        {k: v for k, v in config.items() if k not in RESUMABLE_CHANGES},
        {k: v for k, v in profile.items() if k not in RESUMABLE_CHANGES},
    )


def check_resumable(
    state: dict[str, Any],
    path: Path,
    config: dict[str, Any],
    profile: dict[str, Any],
    seeds: list[int],
    total_epochs: int,
) -> None:
    """Refuse a checkpoint of another layout, run or set of seeds, or past the run's end."""
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"the checkpoint {path} has layout {state.get('format')}, this version writes "
            f"{CHECKPOINT_FORMAT}; pass --no-resume (resume=False) to start over"
        )
    if comparable(state["config"], state["profile"]) != comparable(config, profile):
        raise CheckpointError(
            f"the checkpoint {path} belongs to a different configuration or profile; "
            "delete it or pass --no-resume (resume=False) to start over"
        )
    if list(state["seeds"]) != list(seeds):
        raise CheckpointError(
            f"the checkpoint {path} holds seeds {state['seeds']}, not {seeds}; "
            "delete it or pass --no-resume (resume=False) to start over"
        )
    if state["epoch"] > total_epochs:
        raise CheckpointError(
            f"the checkpoint {path} already holds {state['epoch']} epochs, more than the "
            f"{total_epochs} asked for; pass --no-resume (resume=False) to start over"
        )


def for_device(saved: dict[str, Any], optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """A saved optimizer state made loadable by ``optimizer``, which may live on another kind of
    device than the one that saved it (a run begun on a GPU and resumed on a CPU, or the
    reverse): each group takes the new optimizer's ``capturable`` flag, which decides where
    Adam keeps its step counts, and its ``fused`` and ``foreach`` flags, which say how it
    updates on that device (see :func:`wcbook.kinds.adam_options`)."""
    flags = ("capturable", "fused", "foreach")
    groups = [
        {**group, **{key: new[key] for key in flags if key in new}}
        for group, new in zip(saved["param_groups"], optimizer.param_groups)
    ]
    return {**saved, "param_groups": groups}


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_states() -> dict[str, Any]:
    """Global generator states in types ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` saved."""
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
