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

__all__ = ["SummaryRow", "load_records", "mean_sem", "summarise", "format_table"]

#: Metrics summarised across seeds.
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
