"""Every number of the paper's Tables 1-7 and Appendix E beside ours, with a verdict.

The paper's numbers are the ``reference`` fields of the experiment registry
(:data:`wcbook.experiments.EXPERIMENTS`); ours are the committed records under ``results/``
(:func:`wcbook.results.load_records`) of the ``paper`` profile, and for the stability row
the committed stability certificates under ``certificates/`` of runs whose record predates the
stability report (:mod:`wcbook.certificate`). Nothing else enters.

**The gap in standard errors.** The paper gives the mean over :data:`PAPER_RUNS` runs and its
standard error (SE); for a mean of ours over n >= 2 seeds the SE is ours too. The gap is
``(ours - paper) / sqrt(SE_paper^2 + SE_ours^2)``. Two cases lack an SE, and borrow the spread of
one run, ``sd = SE * sqrt(PAPER_RUNS)``, from the paper's five-run row of the same model:

* a single number of ours (n = 1), and the best-of-runs values on either side: their SE is sd;
* the single-run rows of the paper (Tables 6, 7, App. E): the sd of the from-scratch model on the
  same data set (``spread_from`` of the :class:`Entry`).

**Status.** ``reproduced`` when the gap is within :data:`TOLERANCE` standard errors; otherwise
``explained`` where a known cause accounts for it (our data or encoder differ, the authors' code
does something other than the text, other hardware), else ``off``. ``missing`` when no finished
paper-profile record exists; the smaller profiles that do exist are named (with the run's mean
at the largest of them for the rows marked ``show_smaller``). A qualitative row (training fails,
every trained eigenvalue inside the stable region) is judged on the largest profile that has
records able to answer it, which the row names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import pandas as pd

from .experiments import SCALING_SIDES, VARIANTS, data_caveat, get_experiment
from .results import finished, mean_sem, member_pace
from .tables import frame

__all__ = [
    "PAPER_RUNS",
    "TOLERANCE",
    "Entry",
    "Score",
    "paper_entries",
    "score",
    "scorecard",
    "status_counts",
    "chapter_of",
    "TABLE_TITLES",
    "score_frame",
]

#: Runs behind each of the paper's means (PAPER.md section 5).
PAPER_RUNS = 5
#: Largest absolute gap, in combined standard errors, that still counts as reproduced.
TOLERANCE = 2.0
#: Profiles from the largest to the smallest, to say which smaller runs exist.
_PROFILE_ORDER = ("paper", "midscale-encoded", "midscale", "smoke", "smoke-encoded",
                  "smoke-transfer", "smoke-text", "smoke-scaling")

#: Where each experiment family is discussed in the book (page names under book/).
_CHAPTERS = (
    ("imdb-", "06_text"),
    ("cifar10-", "08_transfer"),
    ("flowers-", "08_transfer"),
    ("mnist-cnn", "07_encoders"),
    ("fashion-cnn", "07_encoders"),
    ("scaling-", "A1_scaling"),
    ("ablation-", "A2_ablations"),
    ("", "04_training"),
)

#: Causes of a gap that the records' caveats do not state: the authors' code differs from the
#: paper's text (PAPER.md, "known defects").
_KNOWN_CAUSES = {
    "imdb-wc": "the authors' script never runs the Euler loop, so the paper's number is that of "
    "the distance head (row above); with the dynamics running the model stays at chance",
}

#: Causes of an accuracy gap measured beside the runs (they say nothing of gamma or timings).
_ACCURACY_CAUSES = {
    "flowers-transfer": "a logistic-regression probe on the same frozen features (probes/"
    "flowers-transfer) stays far below the paper's number too: these features on this copy of "
    "the data set the ceiling, not the head",
}

#: Qualitative outcomes a row can report, and whether a record shows it (None: the record
#: cannot tell).
_OUTCOMES = {
    "diverged": lambda r: not finished(r),
    "inside": lambda r: None if "stability" not in r else (
        r["stability"]["mu_max"] < r["stability"]["mu_bound"] and r["stability"]["full_stable"]),
}


@dataclass(frozen=True)
class Entry:
    """One number of the paper: where it is printed, what it measures, and which runs of ours
    answer it (the first of ``variants`` with paper-profile records; None is the default).
    ``outcome`` marks a qualitative row (a key of :data:`_OUTCOMES`: the record status or the
    stability the paper reports) instead of a number; ``spread_from`` names the five-run
    experiment whose spread a single-run row borrows; ``show_smaller`` puts the mean of the
    largest smaller profile into the reason of a missing row.
    """

    table: str
    label: str
    experiment: str
    metric: str
    variants: tuple[str | None, ...] = (None,)
    spread_from: str | None = None
    outcome: str | None = None
    show_smaller: bool = False


@dataclass(frozen=True)
class Score:
    """One scorecard row: the paper's number and ours, the gap and the verdict."""

    entry: Entry
    paper: float | None
    paper_se: float | None
    ours: float | None
    ours_se: float | None
    n: int
    profile: str | None
    variant: str | None
    gap_se: float | None
    status: str
    reason: str
    chapter: str


def chapter_of(experiment: str) -> str:
    """The book page (under ``book/``) that discusses ``experiment``."""
    return next(page for prefix, page in _CHAPTERS if experiment.startswith(prefix))


def paper_entries() -> list[Entry]:
    """Every number of Tables 1-7 and Appendix E, in the paper's order."""
    entries = [
        Entry("Table 1", "learned gamma, MNIST", "mnist-scratch", "gamma"),
        Entry("Table 1", "learned gamma, Fashion-MNIST", "fashion-scratch", "gamma"),
        Entry("Table 2", "MNIST, Wilson-Cowan", "mnist-scratch", "test_accuracy"),
        Entry("Table 2", "MNIST, Wilson-Cowan, best run", "mnist-scratch", "test_accuracy_best"),
        Entry("Table 2", "MNIST, MLP", "mnist-mlp", "test_accuracy"),
        Entry("Table 2", "Fashion-MNIST, Wilson-Cowan", "fashion-scratch", "test_accuracy"),
        Entry("Table 2", "Fashion-MNIST, MLP", "fashion-mlp", "test_accuracy"),
    ]
    encoders = (("MNIST, CNN", "mnist-cnn"), ("Fashion-MNIST, CNN", "fashion-cnn"),
                ("CIFAR-10, VGG16", "cifar10-vgg16"), ("TF-FLOWERS, VGG16", "flowers-transfer"))
    for label, experiment in encoders:
        entries.append(Entry("Table 3", f"{label} + Wilson-Cowan", experiment, "test_accuracy"))
        if "test_accuracy_best" in get_experiment(experiment).reference:
            entries.append(Entry("Table 3", f"{label} + Wilson-Cowan, best run", experiment,
                                 "test_accuracy_best"))
    entries += [Entry("Table 4", f"learned gamma, {label}", experiment, "gamma")
                for label, experiment in encoders]
    imdb = ("batch-32-bf16", None)
    # Until the measured design has paper records, the dynamics run is the paper's head's.
    imdb_wc = ("batch-32-bf16", None, "paper-literal-bf16", "paper-literal")
    entries += [
        Entry("Table 5", "BERT + Wilson-Cowan (dynamics run)", "imdb-wc", "test_accuracy",
              imdb_wc),
        Entry("Table 5", "BERT + Wilson-Cowan as the authors' code runs it (distance head)",
              "imdb-distance-head", "test_accuracy", imdb),
        Entry("Table 5", "BERT alone", "imdb-encoder", "test_accuracy", imdb),
    ]
    for table, name, base in (("Table 6", "mnist", "mnist-scratch"),
                              ("Table 7", "fashion", "fashion-scratch")):
        for side in SCALING_SIDES:
            n = side * side
            for metric, what in (("gamma", "gamma"), ("test_accuracy", "accuracy"),
                                 ("seconds_per_epoch", "s/epoch")):
                entries.append(Entry(table, f"N = {n}, {what}", f"scaling-{name}-{n}", metric,
                                     spread_from=base))
    entries += [
        Entry("App. E", "eigenvalues forced unstable: training fails", "ablation-unstable",
              "status", outcome="diverged"),
        Entry("App. E", "planted eigenvectors learned (random start, lr 0.1)",
              "ablation-learned-planted", "test_accuracy", spread_from="mnist-scratch",
              show_smaller=True),
        Entry("App. E", "planted eigenvectors learned (start in the targets' span, lr 1e-4)",
              "ablation-learned-planted", "test_accuracy", ("planted-span",),
              spread_from="mnist-scratch", show_smaller=True),
        Entry("App. E", "planted eigenvalue 0.1 (not in the kernel)", "ablation-not-in-kernel",
              "test_accuracy", spread_from="mnist-scratch"),
        Entry("Fig. 6", "every trained eigenvalue inside the stable region, MNIST",
              "mnist-scratch", "stability", outcome="inside"),
    ]
    return entries


#: What each of the paper's tables reports.
TABLE_TITLES = {
    "Table 1": "Table 1: the learned time scale gamma, from scratch",
    "Table 2": "Table 2: test accuracy from scratch, Wilson-Cowan network and MLP baseline",
    "Table 3": "Table 3: test accuracy with an encoder in front of the dynamics",
    "Table 4": "Table 4: the learned gamma with an encoder in front",
    "Table 5": "Table 5: IMDB reviews, a text encoder in front",
    "Table 6": "Table 6: MNIST resized to N pixels (single runs)",
    "Table 7": "Table 7: Fashion-MNIST resized to N pixels (single runs)",
    "App. E": "Appendix E: ablations on MNIST",
    "Fig. 6": "Fig. 6: the trained eigenvalues against the stable region",
}


def _runs(entry: Entry, records: list[dict[str, Any]], profile: str) -> tuple[str | None, list]:
    """The variant and the records of ``entry`` under ``profile`` (first variant that has any)."""
    for variant in entry.variants:
        found = [r for r in records if r["experiment"] == entry.experiment
                 and r.get("variant") == variant and r["profile"] == profile]
        if found:
            return variant, sorted(found, key=lambda r: r["seed"])
    return None, []


def _value(record: dict[str, Any], metric: str) -> float | None:
    """A metric of one finished record other than its time per epoch (see :func:`_timed`)."""
    key = "test_accuracy" if metric == "test_accuracy_best" else metric
    return record["metrics"].get(key)


def _timed(runs: list[dict[str, Any]]) -> tuple[list[str], list[float]]:
    """The devices (each named once) and the times per epoch of the finished runs trained on one
    kind of device: the GPU runs where there are any (the paper's times are GPU times), else the
    others. A run trained on several devices counts with its first GPU session, whose time (the
    ensemble's) is shared by its members as a record's own time is; one that moved between CPUs
    only has no single time."""
    paces = []
    for r in filter(finished, runs):
        if r.get("seconds_per_epoch") is not None:
            paces.append((r["device_type"], r["device"], r["seconds_per_epoch"]))
            continue
        gpu = [s for s in r.get("sessions", []) if s["device_type"] == "cuda"]
        if gpu:
            paces.append(("cuda", gpu[0]["device"], member_pace(r, gpu[0])))
    kept = [p for p in paces if p[0] == "cuda"] or paces
    return list(dict.fromkeys(p[1] for p in kept)), [p[2] for p in kept]


def _values(runs: list[dict[str, Any]], metric: str) -> list[float]:
    """The metric of each finished run that has it."""
    if metric == "seconds_per_epoch":
        return _timed(runs)[1]
    return [v for v in (_value(r, metric) for r in runs if finished(r)) if v is not None]


def _run_sd(experiment: str, metric: str) -> float | None:
    """The spread of one of the paper's runs, from a five-run mean's standard error."""
    key = "test_accuracy" if metric == "test_accuracy_best" else metric
    sem = get_experiment(experiment).reference.get(f"{key}_sem")
    return None if sem is None else sem * math.sqrt(PAPER_RUNS)


def _paper(entry: Entry) -> tuple[float | None, float | None, float | None]:
    """The paper's value, its SE as used in the gap, and the spread of one run."""
    reference = get_experiment(entry.experiment).reference
    value = reference.get(entry.metric)
    sd = _run_sd(entry.spread_from or entry.experiment, entry.metric)
    if entry.metric == "test_accuracy_best" or entry.spread_from:
        return value, sd, sd
    return value, reference.get(f"{entry.metric}_sem"), sd


def _smaller_profiles(entry: Entry, records: list[dict[str, Any]]) -> list[str]:
    have = {r["profile"] for r in records if r["experiment"] == entry.experiment}
    return [p for p in _PROFILE_ORDER if p in have and p != "paper"] + sorted(
        have - set(_PROFILE_ORDER))


def _smaller_result(entry: Entry, records: list[dict[str, Any]]) -> str:
    """'; <profile>: <mean> over <n> seeds' of the entry's own run at the largest smaller
    profile that has finished records of it ('' where none has)."""
    for profile in _PROFILE_ORDER[1:]:
        variant, runs = _runs(entry, records, profile)
        values = _values(runs, entry.metric)
        if values and variant in entry.variants:
            digits = _DIGITS[entry.metric]
            return (f"; {profile}{f' [{variant}]' if variant else ''}: "
                    f"{mean_sem(values)[0]:.{digits}f} over {len(values)} seed(s)")
    return ""


def _cause(entry: Entry, record: dict[str, Any], variant: str | None) -> str:
    """The known causes of a gap for ``entry`` measured by ``record`` ('' where none is known)."""
    accuracy = entry.metric.startswith("test_accuracy")
    causes = [_KNOWN_CAUSES.get(entry.experiment),
              _ACCURACY_CAUSES.get(entry.experiment) if accuracy else None, record.get("caveat")
              or data_caveat(get_experiment(entry.experiment, variant))]
    if variant:
        causes.append(f"run as variant {variant} ({VARIANTS[variant].description.split(':')[0]})")
    return "; ".join(c for c in causes if c)


#: The fields that name one run (of one seed) in a record or a certificate.
_RUN_FIELDS = ("experiment", "variant", "profile", "seed")


def _run_key(record: dict[str, Any]) -> tuple:
    return tuple(record.get(k) for k in _RUN_FIELDS)


def _certified(certificate: dict[str, Any]) -> dict[str, Any]:
    """A stability certificate as the stability report a training record carries (the largest
    Gamma*lambda, the lower edge of the unstable band, the full Jacobian's verdict)."""
    c = certificate["certificate"]
    report = {"mu_max": c["mu_range"][1], "mu_bound": min(c["mu_edges"]),
              "full_stable": c["full_stable"]}
    return {**dict(zip(_RUN_FIELDS, _run_key(certificate))),
            "metrics": {}, "stability": report, "certified": True}


def _outcome_score(entry: Entry, records: list[dict[str, Any]], chapter: str,
                   certificates: list[dict[str, Any]]) -> Score:
    shows = _OUTCOMES[entry.outcome]
    records = [r for r in records if shows(r) is not None]
    if entry.outcome == "inside":
        reported = {_run_key(r) for r in records}
        records += [_certified(c) for c in certificates if _run_key(c) not in reported]
    profiles = [p for p in _PROFILE_ORDER if _runs(entry, records, p)[1]]
    if not profiles:
        return Score(entry, None, None, None, None, 0, None, None, None, "missing",
                     "no record", chapter)
    profile = profiles[0]
    variant, runs = _runs(entry, records, profile)
    hits = sum(bool(shows(r)) for r in runs)
    status = "reproduced" if hits == len(runs) else "off"
    reason = f"{hits} of {len(runs)} {profile}-profile runs {entry.outcome}"
    certified = sum(bool(r.get("certified")) for r in runs)
    if certified:
        reason += f" ({certified} judged by the stability certificate, certificates/)"
    if profile != "paper":
        reason += "; no paper-profile run"
    return Score(entry, None, None, float(hits), None, len(runs), profile, variant, None,
                 status, reason, chapter)


def score(entry: Entry, records: list[dict[str, Any]],
          certificates: Iterable[dict[str, Any]] = ()) -> Score:
    """The scorecard row of one paper number against ``records`` (and, for the stability row,
    the stability ``certificates`` of runs whose records carry no stability report)."""
    chapter = chapter_of(entry.experiment)
    if entry.outcome is not None:
        return _outcome_score(entry, records, chapter, list(certificates))
    paper, paper_se, run_sd = _paper(entry)
    variant, runs = _runs(entry, records, "paper")
    values = _values(runs, entry.metric)
    if not values:
        smaller = _smaller_profiles(entry, records)
        diverged = [r for r in runs if not finished(r)]
        stopped = [f"seed {r['seed']} in epoch {r['diverged_at']['epoch']}"
                   for r in diverged if r.get("diverged_at")]
        reason = "no paper-profile run"
        if diverged:
            reason = "paper-profile run diverged" + (f" ({', '.join(stopped)})" if stopped else "")
        reason += f"; smaller runs: {', '.join(smaller)}" if smaller else ""
        reason += _smaller_result(entry, records) if entry.show_smaller else ""
        return Score(entry, paper, paper_se, None, None, len(runs), None, variant, None,
                     "off" if diverged else "missing", reason, chapter)
    if entry.metric == "test_accuracy_best":
        ours, ours_se = max(values), run_sd
    else:
        ours, ours_se = mean_sem(values)
        ours_se = run_sd if ours_se is None else ours_se
    gap_se = _gap(ours, paper, paper_se, ours_se, entry.metric)
    cause = (f"other hardware: ours timed on one {' or one '.join(_timed(runs)[0])}"
             if entry.metric == "seconds_per_epoch" else _cause(entry, runs[0], variant))
    if gap_se is not None and abs(gap_se) <= TOLERANCE:
        status = "reproduced"
    else:
        status = "explained" if cause else "off"
    return Score(entry, paper, paper_se, ours, ours_se, len(values), "paper", variant, gap_se,
                 status, cause, chapter)


def _gap(ours: float, paper: float | None, paper_se: float | None, ours_se: float | None,
         metric: str) -> float | None:
    """(ours - paper) in combined standard errors; None where no SE is known (timings)."""
    if paper is None or metric == "seconds_per_epoch":
        return None
    combined = math.hypot(paper_se or 0.0, ours_se or 0.0)
    if combined == 0.0:
        return math.copysign(math.inf, ours - paper) if ours != paper else 0.0
    return (ours - paper) / combined


def scorecard(records: Iterable[dict[str, Any]],
              certificates: Iterable[dict[str, Any]] = ()) -> list[Score]:
    """Every paper number (:func:`paper_entries`) scored against ``records`` and, for the
    stability row, ``certificates`` (the committed ones: ``load_records("certificates")``)."""
    records, certificates = list(records), list(certificates)
    return [score(entry, records, certificates) for entry in paper_entries()]


def status_counts(scores: Iterable[Score]) -> dict[str, int]:
    """How many rows carry each status, in the order reproduced, explained, off, missing."""
    scores = list(scores)
    return {s: sum(row.status == s for row in scores)
            for s in ("reproduced", "explained", "off", "missing")}


_DIGITS = {"test_accuracy": 4, "test_accuracy_best": 4, "gamma": 3, "seconds_per_epoch": 2}


def _ours_text(row: Score) -> str:
    if row.entry.outcome is not None:
        return "-" if row.profile is None else f"{row.entry.outcome}: {row.ours:.0f} of {row.n}"
    if row.ours is None:
        return "-"
    digits = _DIGITS[row.entry.metric]
    own_se = row.n > 1 and row.entry.metric != "test_accuracy_best"
    return f"{row.ours:.{digits}f}" + (f" ± {row.ours_se:.{digits}f}" if own_se else "")


def _paper_text(row: Score) -> str:
    if row.entry.outcome == "inside":
        return "all inside"
    if row.entry.outcome is not None:
        return "training fails"
    reference = get_experiment(row.entry.experiment).reference
    sem = reference.get(f"{row.entry.metric}_sem")
    return f"{row.paper:g}" + ("" if sem is None else f" ± {sem:g}")


def _gap_text(gap: float | None) -> str:
    if gap is None:
        return "-"
    return f"{'+' if gap > 0 else '-'}∞" if math.isinf(gap) else f"{gap:+.1f}"


def score_frame(scores: Iterable[Score]) -> pd.DataFrame:
    """The rows of one table as a DataFrame for :func:`wcbook.tables.styled`: the paper's
    number (± its SE where it gives one), ours (± SE over seeds where n > 1), n, the gap in
    combined SEs, the status linked to the chapter that discusses the row, and why."""
    rows = []
    for row in scores:
        profile = "" if row.profile in (None, "paper") else f" ({row.profile})"
        variant = f" [{row.variant}]" if row.variant else ""
        rows.append((
            row.entry.label + variant,
            _paper_text(row),
            _ours_text(row) + profile,
            row.n,
            _gap_text(row.gap_se),
            f'<a href="{row.chapter}.html">{row.status}</a>',
            row.reason,
        ))
    return frame(rows, ("what", "paper", "ours", "n", "gap (SE)", "status", "why"))
