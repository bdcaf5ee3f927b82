"""Reading results records back and summarising them across seeds, next to the paper's numbers.

The paper reports the mean over 5 runs and the standard deviation of the mean (SEM = sample
standard deviation / sqrt(n)); :func:`summarise` computes the same two numbers per
(experiment, variant, profile).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from .folders import run_name
from .tables import frame, styled

__all__ = [
    "SummaryRow",
    "load_records",
    "mean_sem",
    "mean_text",
    "group_runs",
    "CANDIDATE_COLUMNS",
    "candidate_rows",
    "summarise",
    "format_table",
    "summary_frame",
    "archived_runs",
    "encoder_table",
    "encoder_rows",
    "encoder_frame",
    "show_encoder_table",
    "seed_frame",
    "spread_frame",
    "show_twin_seeds",
    "twin_seed_frame",
    "member_pace",
    "pace_text",
    "finished",
    "outcome",
    "session_devices",
    "first_epoch_threads",
    "stage_paces",
]

#: Metrics summarised per experiment: test accuracy, the learned gamma (Wilson-Cowan models) and,
#: for the encoder experiments, the test accuracy after stage 1 (encoder + head alone).
SUMMARY_METRICS = ("test_accuracy", "gamma", "stage1_test_accuracy")


def load_records(results_dir: str | os.PathLike = "results") -> list[dict[str, Any]]:
    """Every ``*.json`` record under ``results_dir`` (recursively), sorted by path.

    A missing folder gives an empty list; a file that is not a valid record raises ValueError
    naming it.
    """
    root = Path(results_dir)
    records = []
    for path in sorted(root.rglob("*.json")):
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
        if (
            not isinstance(record, dict)
            or not {"experiment", "profile", "metrics"} <= record.keys()
        ):
            raise ValueError(f"{path}: not a results record (needs experiment, profile, metrics)")
        records.append(record)
    return records


def mean_sem(values: Iterable[float]) -> tuple[float, float | None]:
    """Mean and standard deviation of the mean (sample std / sqrt(n)); SEM None for one value."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_sem needs at least one value")
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return mean, None
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(variance / n)


@dataclass(frozen=True)
class SummaryRow:
    """One line of the summary: a metric of one (experiment, variant, profile) over its seeds."""

    experiment: str
    variant: str | None
    profile: str
    metric: str
    n: int
    mean: float
    sem: float | None
    paper: float | None
    paper_sem: float | None

    @property
    def gap(self) -> float | None:
        """mean - paper value (None where the paper gives none)."""
        return None if self.paper is None else self.mean - self.paper


def summarise(records: Iterable[dict[str, Any]]) -> list[SummaryRow]:
    """Rows per (experiment, variant, profile) and metric: test accuracy, and gamma if recorded."""
    groups: dict[tuple[str, str | None, str], list[dict[str, Any]]] = {}
    for record in records:
        key = (record["experiment"], record.get("variant"), record["profile"])
        groups.setdefault(key, []).append(record)
    rows = []
    for (experiment, variant, profile), group in sorted(
        groups.items(), key=lambda kv: _sort_key(kv[0])
    ):
        reference = group[0].get("reference", {})
        for metric in SUMMARY_METRICS:
            values = [r["metrics"][metric] for r in group if metric in r["metrics"]]
            if not values:
                continue
            mean, sem = mean_sem(values)
            rows.append(
                SummaryRow(
                    experiment,
                    variant,
                    profile,
                    metric,
                    len(values),
                    mean,
                    sem,
                    reference.get(metric),
                    reference.get(f"{metric}_sem"),
                )
            )
    return rows


def _sort_key(key: tuple[str, str | None, str]) -> tuple[str, str, str]:
    experiment, variant, profile = key
    return experiment, variant or "", profile


def _number(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _signed(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:+.{digits}f}"


def format_table(rows: Iterable[SummaryRow], digits: int = 4) -> str:
    """A Markdown table of summary rows (it reads as plain text too)."""
    header = [
        "experiment",
        "variant",
        "profile",
        "metric",
        "seeds",
        "mean",
        "sem",
        "paper",
        "paper sem",
        "gap",
    ]
    lines = [header]
    for row in rows:
        lines.append(
            [
                row.experiment,
                row.variant or "-",
                row.profile,
                row.metric,
                str(row.n),
                _number(row.mean, digits),
                _number(row.sem, digits),
                _number(row.paper, digits),
                _number(row.paper_sem, digits),
                _signed(row.gap, digits),
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "| " + " | ".join(cell.ljust(w) for cell, w in zip(line, widths)) + " |" for line in lines
    ]
    text.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(text)


def _with_sem(value: float | None, sem: float | None, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" + ("" if sem is None else f" ± {sem:.{digits}f}")


def summary_frame(rows: Iterable[SummaryRow], digits: int = 4) -> pd.DataFrame:
    """Summary rows as a DataFrame for :func:`wcbook.tables.styled`: run, profile, metric, seeds,
    our mean ± SEM, the paper's value ± its SEM and the gap."""
    return frame(
        (
            (
                run_name(row.experiment, row.variant),
                row.profile,
                row.metric,
                row.n,
                _with_sem(row.mean, row.sem, digits),
                _with_sem(row.paper, row.paper_sem, digits),
                _signed(row.gap, digits) or "-",
            )
            for row in rows
        ),
        ("run", "profile", "metric", "seeds", "ours", "paper", "gap"),
    )


RunKey = tuple[str, "str | None"]


def member_pace(record: dict[str, Any], session: dict[str, Any]) -> float:
    """A member's seconds per epoch in one of ``record``'s sessions: a session times the whole
    ensemble, so its time is divided by the ensemble's size (1 for a single run)."""
    return session["seconds_per_epoch"] / (record.get("ensemble") or {}).get("size", 1)


def pace_text(record: dict[str, Any]) -> str:
    """The time per epoch of a record and where it was measured: one figure when one kind of
    device trained every epoch, else one per session with the epochs it trained; both are a
    member's share (``member_pace``)."""
    if record.get("seconds_per_epoch") is not None:
        return f"{record['seconds_per_epoch']:.2f} s/epoch on {record['device']}"
    return ", ".join(
        f"{member_pace(record, s):.2f} s/epoch on {s['device']} "
        f"(epochs {s['first_epoch']}-{s['last_epoch']})"
        for s in record.get("sessions", [])
    ) or "no time recorded"


def finished(record: dict[str, Any]) -> bool:
    """Whether a run trained to its last epoch (records without ``status`` all finished)."""
    return record.get("status", "finished") != "diverged"


def outcome(record: dict[str, Any]) -> str:
    """How a run ended: ``"finished"``, or ``"diverged in epoch E"`` (``", step S"`` where the
    record knows the step)."""
    if finished(record):
        return "finished"
    where = record["diverged_at"]
    step = f", step {where['step']}" if where["step"] else ""
    return f"diverged in epoch {where['epoch']}{step}"


def session_devices(record: dict[str, Any]) -> str:
    """The kinds of device that trained a run, in order (``"cuda, then cpu"`` for a run resumed on
    a CPU after a GPU)."""
    kinds = [s["device_type"] for s in record.get("sessions", [])] or [record["device_type"]]
    return ", then ".join(dict.fromkeys(kinds))


def first_epoch_threads(record: dict[str, Any]) -> int | str:
    """The CPU threads that trained a run's first epoch (``"-"`` where a GPU trained it)."""
    first = (record.get("sessions") or [record])[0]
    return first["torch_threads"] if first["device_type"] == "cpu" else "-"


def stage_paces(record: dict[str, Any], stage1_epochs: int) -> dict[int, float]:
    """A member's mean seconds per epoch in stage 1 and in stage 2 of an encoder run, weighted by
    the epochs of each session. A record keeps one pace per session, so a session that spans both
    stages counts for neither; a stage without a session of its own is NaN."""
    paces: dict[int, list[tuple[int, float]]] = {1: [], 2: []}
    for session in record.get("sessions", []):
        n = session["last_epoch"] - session["first_epoch"] + 1
        if session["last_epoch"] <= stage1_epochs:
            paces[1].append((n, member_pace(record, session)))
        elif session["first_epoch"] > stage1_epochs:
            paces[2].append((n, member_pace(record, session)))
    return {stage: sum(n * x for n, x in v) / sum(n for n, _ in v) if v else math.nan
            for stage, v in paces.items()}


def _profile_rank(profile: str) -> tuple[bool, bool, str]:
    return profile != "paper", not profile.startswith("smoke"), profile


def archived_runs(
    records: Iterable[dict[str, Any]], experiments: Iterable[str]
) -> dict[RunKey, list[dict[str, Any]]]:
    """The finished records of each (experiment, variant) among ``experiments``: those of the
    ``paper`` profile where there are any, else those of its first smoke profile."""
    wanted = set(experiments)
    grouped: dict[RunKey, dict[str, list[dict[str, Any]]]] = {}
    for r in records:
        if r["experiment"] in wanted and finished(r):
            key = (r["experiment"], r.get("variant"))
            grouped.setdefault(key, {}).setdefault(r["profile"], []).append(r)
    return {key: runs[min(runs, key=_profile_rank)] for key, runs in grouped.items()}


def mean_text(values: Iterable[float | None], digits: int = 4) -> str:
    """The mean of the values that are not None, with ± its standard error where there are
    several; "-" where there are none."""
    present = [v for v in values if v is not None]
    if not present:
        return "-"
    mean, sem = mean_sem(present)
    return f"{mean:.{digits}f}" + ("" if sem is None else f" ± {sem:.{digits}f}")


def _mean_text(records: list[dict[str, Any]], value: Any, digits: int = 4) -> str:
    return mean_text((value(r) for r in records), digits)


def _paper_text(reference: dict[str, float], key: str, digits: int = 4) -> str:
    if key not in reference:
        return "-"
    sem = reference.get(f"{key}_sem")
    return f"{reference[key]:.{digits}f}" + ("" if sem is None else f" ± {sem:.{digits}f}")


ENCODER_COLUMNS = ("run", "profile", "seeds", "accuracy", "paper T3", "gamma", "paper T4",
                   "stage 1", "stage 2 adds", "softmax twin", "on target", "device")


def encoder_rows(
    runs: dict[RunKey, list[dict[str, Any]]], experiments: Iterable[str]
) -> tuple[list[tuple[str, ...]], dict[str, str]]:
    """The rows of :func:`encoder_table` (columns :data:`ENCODER_COLUMNS`) and the caveat of each
    row whose data or encoder differ from the paper's, by row name."""
    order = list(experiments)
    rows, notes = [], {}
    for (experiment, variant), recs in sorted(
        runs.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1] or "")
    ):
        if experiment.endswith("-softmax"):
            continue
        reference, caveat = recs[0]["reference"], recs[0].get("caveat") or ""
        name = run_name(experiment, variant)
        name += " [SUBSTITUTE]" if caveat.startswith("substitute") else ""
        if caveat:
            notes[name] = caveat
        twin = runs.get((f"{experiment}-softmax", variant), [])
        profile = recs[0]["profile"]
        metric = lambda key: lambda r: r["metrics"].get(key)  # noqa: E731
        rows.append((
            name,
            profile,
            str(len(recs)),
            _mean_text(recs, metric("test_accuracy")),
            _paper_text(reference, "test_accuracy"),
            _mean_text(recs, metric("gamma"), 3),
            _paper_text(reference, "gamma", 3),
            _mean_text(recs, metric("stage1_test_accuracy")),
            _mean_text(recs, lambda r: r["metrics"]["test_accuracy"]
                       - r["metrics"]["stage1_test_accuracy"]),
            _mean_text(twin, metric("test_accuracy"))
            + (f" ({twin[0]['profile']})" if twin and twin[0]["profile"] != profile else ""),
            _mean_text(recs, lambda r: r.get("attractors", {}).get("final_within_10pct"), 3),
            ", ".join(sorted({r["device"] for r in recs})),
        ))
    return rows, notes


def encoder_table(runs: dict[RunKey, list[dict[str, Any]]], experiments: Iterable[str]) -> str:
    """The encoder experiments of :func:`archived_runs` beside the paper's Tables 3 and 4, one row
    per Wilson-Cowan run (mean ± SEM over seeds): accuracy, learned gamma, the stage-1 accuracy
    (encoder + head alone), what stage 2 adds to it, the softmax twin's accuracy, the fraction of
    test states x(T) within 10% of the targets' separation, profile and device. Rows whose data or
    encoder differ from the paper's are marked and their caveat printed below the table."""
    rows, notes = encoder_rows(runs, experiments)
    lines = [ENCODER_COLUMNS, *rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(ENCODER_COLUMNS))]
    out = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    out += [f"\n{name}: {caveat}" for name, caveat in notes.items()]
    return "\n".join(out)


def encoder_frame(
    runs: dict[RunKey, list[dict[str, Any]]], experiments: Iterable[str]
) -> tuple[pd.DataFrame, dict[str, str]]:
    """:func:`encoder_table` as a DataFrame for :func:`wcbook.tables.styled`, and its caveats."""
    rows, notes = encoder_rows(runs, experiments)
    return frame(rows, ENCODER_COLUMNS), notes


def show_encoder_table(
    runs: dict[RunKey, list[dict[str, Any]]], experiments: Iterable[str], name: str
) -> None:
    """Display the encoder runs of ``experiments`` as an HTML table with the id ``name``, and
    print the caveat of every substitute row below it (for the book's chapters)."""
    from IPython.display import display

    table, notes = encoder_frame(runs, experiments)
    display(styled(table, name, numeric=["seeds"]))
    for run, caveat in notes.items():
        print(f"{run}: {caveat}")


def seed_frame(
    records: Iterable[dict[str, Any]], metrics: Iterable[str] = ("test_accuracy", "gamma")
) -> pd.DataFrame:
    """One row per record: its seed, its status ("finished" or "diverged") and ``metrics`` (NaN
    where a record has no such metric, e.g. a diverged run), sorted by seed."""
    metrics = list(metrics)
    rows = []
    for record in records:
        values = record.get("metrics") or {}
        rows.append([record["seed"], record.get("status") or "finished",
                     *(float(values.get(m, math.nan)) for m in metrics)])
    return frame(rows, ["seed", "status", *metrics]).sort_values("seed", ignore_index=True)


def group_runs(records: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Records by run name (``experiment``, or ``experiment+variant`` for a variant), each run's
    records in the order of their seeds."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(records, key=lambda r: (r["experiment"], r.get("variant") or "", r["seed"])):
        groups.setdefault(run_name(r["experiment"], r.get("variant")), []).append(r)
    return groups


#: Columns of :func:`candidate_rows`.
CANDIDATE_COLUMNS = ("run", "what changes", "epochs", "seeds", "accuracy", "stage 1",
                     "attractor fraction", "on correct target", "distinct end states", "s/run")


def _all_or_none(metrics: list[dict[str, Any]], key: str) -> list[Any]:
    """Each run's ``key``, or nothing where a run lacks it."""
    return [m[key] for m in metrics] if all(key in m for m in metrics) else []


def candidate_rows(
    groups: dict[str, list[dict[str, Any]]], descriptions: dict[str, str]
) -> list[tuple[str, ...]]:
    """One row per run of ``groups`` (:func:`group_runs`), columns :data:`CANDIDATE_COLUMNS`:
    what its variant changes (``descriptions`` by variant), its stages' epochs, its seeds, and
    over them the mean ± SEM test accuracy, stage-1 accuracy and attractor fractions, each seed's
    number of distinct end states and the mean wall time."""
    from .experiments import ExperimentConfig  # torch-free to import this module

    rows = []
    for run, group in groups.items():
        metrics = [r["metrics"] for r in group]
        stages = ExperimentConfig.from_dict(group[0]["config"]).stages
        distinct = _all_or_none(metrics, "distinct_end_states")
        rows.append((
            run, descriptions.get(group[0]["variant"], "-"),
            " + ".join(str(epochs) for _, epochs, _ in stages),
            ",".join(str(r["seed"]) for r in group),
            mean_text((m["test_accuracy"] for m in metrics), 3),
            *(mean_text(_all_or_none(metrics, key), 2) for key in (
                "stage1_test_accuracy", "attractor_fraction", "attractor_fraction_correct")),
            "/".join(map(str, distinct)) or "-",
            f"{sum(r['wall_time_s'] for r in group) / len(group):.0f}",
        ))
    return rows


def plateau_epochs(record: dict[str, Any], level: float = 0.5) -> int:
    """How many epochs of ``record`` ended with a training accuracy of at most ``level`` before
    the first that ended above it (the epochs spent on the initial plateau): all of them if none
    did."""
    accuracies = record["history"]["train_accuracy"]
    return next((epoch for epoch, a in enumerate(accuracies) if a > level), len(accuracies))


def spread_frame(seeds: pd.DataFrame, metrics: Iterable[str], digits: int = 3) -> pd.DataFrame:
    """The spread over seeds of each of ``metrics`` (columns of :func:`seed_frame`): number of
    finished seeds, mean ± sample standard deviation, smallest and largest value, rounded to
    ``digits``."""
    rows = []
    for metric in metrics:
        values = seeds[metric].dropna().to_numpy(dtype=float)
        if values.size == 0:
            rows.append([metric, 0, "-", "-", "-"])
            continue
        std = float(values.std(ddof=1)) if values.size > 1 else math.nan
        spread = f"{values.mean():.{digits}f} ± {std:.{digits}f}" if values.size > 1 else (
            f"{values.mean():.{digits}f}")
        rows.append([metric, int(values.size), spread, f"{values.min():.{digits}f}",
                     f"{values.max():.{digits}f}"])
    return frame(rows, ["metric", "seeds", "mean ± std", "min", "max"])


def twin_seed_frame(
    records: Iterable[dict[str, Any]], twins: Iterable[dict[str, Any]]
) -> pd.DataFrame:
    """One row per seed of an encoder experiment trained beside its softmax twin: the seed, the
    Wilson-Cowan run's status, its test accuracy after stage 1 (encoder and head alone) and after
    stage 2, what stage 2 added (``stage2_gain``), its learned ``gamma``, and the twin's test
    accuracy after stage 2 (``twin_test_accuracy``); NaN where a run diverged or is missing."""
    own = seed_frame(records, ("stage1_test_accuracy", "test_accuracy", "gamma"))
    twin = seed_frame(twins, ("test_accuracy",))[["seed", "test_accuracy"]]
    table = own.merge(twin.rename(columns={"test_accuracy": "twin_test_accuracy"}),
                      on="seed", how="outer")
    table.insert(4, "stage2_gain", table["test_accuracy"] - table["stage1_test_accuracy"])
    return table.sort_values("seed", ignore_index=True)


def show_twin_seeds(runs: Any, name: str, title: str, chance: float) -> pd.DataFrame:
    """Display live runs of an encoder experiment and its twin (a
    :class:`wcbook.training.TwinRuns`): the spread over seeds as an HTML table with the id
    ``name``, the per-seed plot (:func:`wcbook.plots.twin_seed_plot`, dotted at ``chance``) and
    the time each took; ``title`` names the models, profile and seeds. Returns the per-seed frame
    of :func:`twin_seed_frame`."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    from .plots import twin_seed_plot

    seeds = twin_seed_frame(runs.records, runs.twins)
    metrics = ["stage1_test_accuracy", "test_accuracy", "stage2_gain", "twin_test_accuracy", "gamma"]
    display(styled(spread_frame(seeds, metrics), name, caption=f"{title}: spread over seeds",
                   numeric=["seeds", "mean ± std", "min", "max"]))
    twin_seed_plot(seeds, chance, f"{title} (dotted: chance, initial gamma)")
    plt.show()
    print(f"{runs.seconds:.0f} s elapsed for both stages of the Wilson-Cowan models, "
          f"{runs.twin_seconds:.0f} s elapsed for the twins' stage 2, on "
          f"{runs.records[0]['device']}")
    return seeds
