"""The results record of each member of a run: the one writer of training records.

A finished member's record holds its metrics and history; a diverged member's record says
``status: "diverged"``, where (1-based epoch and step, the step None when the parameters rather
than the loss went bad) and why, with the history of its good epochs. Both name the ensemble the
member trained in (``ensemble``: size, seeds, the ensemble's wall time and time per epoch); the
record's own ``wall_time_s`` and ``seconds_per_epoch`` are the member's share of those (the
ensemble's divided by its size), so that records of single runs and of ensembles add up alike.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..experiments import ExperimentConfig, Profile
from .checkpoint import atomic_write, results_path
from .provenance import record_header

#: Numbers of the attractor report (:mod:`wcbook.attractors`) that also go into ``metrics``.
ATTRACTOR_METRICS = ("attractor_fraction", "attractor_fraction_correct", "distinct_end_states")


def _rounded(values: list, digits: int = 6) -> list:
    return [float(f"{v:.{digits}g}") if isinstance(v, float) else v for v in values]


def _pace(history: dict[str, list], sessions: list[dict[str, Any]], size: int) -> dict[str, Any]:
    """Wall-clock fields shared by finished and diverged records."""
    seconds = history["seconds"]
    devices = list(dict.fromkeys(entry["device"] for entry in sessions))
    per_epoch = sum(seconds) / len(seconds) if seconds and len(devices) <= 1 else None
    return {
        **({"device": " then ".join(devices)} if len(devices) > 1 else {}),
        "seconds_per_epoch": None if per_epoch is None else round(per_epoch / size, 4),
        "_ensemble_per_epoch": None if per_epoch is None else round(per_epoch, 4),
    }


def member_record(
    config: ExperimentConfig,
    profile: Profile,
    seeds: list[int],
    member: int,
    run: dict[str, Any],
    metrics: dict[str, float] | None,
) -> dict[str, Any]:
    """The record of member ``member`` of a run. ``run`` holds the run's ``history`` (per
    member), ``status`` (None or where and why it diverged), ``attractors``, ``stability``
    (:func:`wcbook.certificate.final_stability` of each member at the end), ``stage1_from``,
    ``started_utc``, ``wall_seconds``, ``environment`` and ``sessions``; ``metrics`` the
    member's final metrics (None for a diverged member)."""
    history = run["histories"][member]
    size = len(seeds)
    pace = _pace(history, run["sessions"], size)
    ensemble = {
        "size": size,
        "seeds": list(seeds),
        "wall_time_s": round(run["wall_seconds"], 3),
        "seconds_per_epoch": pace.pop("_ensemble_per_epoch"),
    }
    record = {
        **record_header(config, profile, seeds[member], run["environment"]),
        **pace,
        "ensemble": ensemble,
        "started_utc": run["started_utc"],
        "wall_time_s": round(run["wall_seconds"] / size, 3),
        "sessions": run["sessions"],
        "history": {k: _rounded(v) for k, v in history.items() if k != "seconds"},
    }
    status = run["status"][member]
    if status is not None:
        record.update(
            status="diverged",
            diverged_at={"epoch": status["epoch"], "step": status["step"]},
            message=status["message"],
            metrics={},
        )
        return record
    record["metrics"] = _final_metrics(config, history, metrics or {})
    if run["attractors"][member] is not None:
        record["attractors"] = run["attractors"][member]
        record["metrics"].update(
            {k: v for k, v in record["attractors"].items() if k in ATTRACTOR_METRICS}
        )
    stability = run["stability"][member]
    if stability is not None:
        record["stability"] = stability
    if run["stage1_from"][member] is not None:
        record["stage1_from"] = run["stage1_from"][member]
    return record


def _final_metrics(
    config: ExperimentConfig, history: dict[str, list], metrics: dict[str, float]
) -> dict[str, float]:
    out = {
        "test_accuracy": history["test_accuracy"][-1],
        "train_accuracy": history["train_accuracy"][-1],
        "train_loss": history["loss"][-1],
        **metrics,
    }
    if config.stages[0][0] == 1:  # what stage 2 adds is read against this
        out["stage1_test_accuracy"] = history["test_accuracy"][
            history["test_epochs"].index(config.stages[0][1])
        ]
    return dict(zip(out, _rounded(list(out.values()))))


def write_record(
    record: dict[str, Any],
    config: ExperimentConfig,
    profile: Profile,
    results_dir: str | os.PathLike,
) -> None:
    """Write a record to ``<results_dir>/<run>/<profile>/seed<k>.json`` atomically."""
    atomic_write(
        results_path(config, profile, record["seed"], results_dir),
        lambda handle: json.dump(record, handle, indent=1),
        mode="w",
    )
