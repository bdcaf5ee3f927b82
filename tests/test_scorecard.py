"""The scorecard: every paper number is listed, and each verdict follows its stated rule."""

import math
from pathlib import Path

import pytest

from wcbook.experiments import EXPERIMENTS, data_caveat, get_experiment
from wcbook.results import load_records
from wcbook.scorecard import (
    PAPER_RUNS,
    TABLE_TITLES,
    TOLERANCE,
    Entry,
    paper_entries,
    score,
    score_frame,
    scorecard,
    status_counts,
)
from wcbook.tables import styled

ROOT = Path(__file__).resolve().parents[1]


def record(experiment, value, *, seed=0, profile="paper", variant=None, **extra):
    metrics = {"test_accuracy": value, "gamma": 0.8}
    return {"experiment": experiment, "variant": variant, "profile": profile, "seed": seed,
            "metrics": metrics, "device": "cpu", **extra}


def test_every_reference_number_of_the_paper_tables_has_a_row():
    entries = paper_entries()
    listed = {(e.experiment, e.metric) for e in entries}
    for entry in entries:
        reference = EXPERIMENTS[entry.experiment].reference
        for key in reference:
            if not key.endswith("_sem"):
                assert (entry.experiment, key) in listed, (entry.experiment, key)
    assert {e.table for e in entries} == set(TABLE_TITLES)
    assert sum(e.table in ("Table 6", "Table 7") for e in entries) == 2 * 7 * 3


def test_within_tolerance_is_reproduced_with_the_borrowed_spread_for_one_seed():
    reference = get_experiment("mnist-scratch").reference
    sem = reference["test_accuracy_sem"]
    combined = math.hypot(sem, sem * math.sqrt(PAPER_RUNS))
    entry = Entry("Table 2", "x", "mnist-scratch", "test_accuracy")
    near = score(entry, [record("mnist-scratch", reference["test_accuracy"] + combined)])
    assert near.status == "reproduced" and near.gap_se == pytest.approx(1.0)
    far = score(entry, [record("mnist-scratch", reference["test_accuracy"] - 3 * combined)])
    assert far.gap_se == pytest.approx(-3.0) and abs(far.gap_se) > TOLERANCE
    assert far.status == "off" and far.reason == ""


def test_a_diverged_paper_run_is_off_and_says_where_it_stopped_until_a_seed_finishes():
    entry = Entry("Table 7", "x", "scaling-fashion-441", "test_accuracy")
    stopped = {**record("scaling-fashion-441", None), "status": "diverged", "metrics": {},
               "diverged_at": {"epoch": 1, "step": None}}
    row = score(entry, [stopped])
    assert row.status == "off" and row.ours is None
    assert row.reason.startswith("paper-profile run diverged (seed 0 in epoch 1)")
    finished = record("scaling-fashion-441", get_experiment("scaling-fashion-441")
                      .reference["test_accuracy"], seed=1)
    row = score(entry, [stopped, finished])
    assert row.status == "reproduced" and row.n == 1


def test_several_seeds_use_their_own_standard_error():
    entry = Entry("Table 2", "x", "mnist-mlp", "test_accuracy")
    runs = [record("mnist-mlp", v, seed=k) for k, v in enumerate((0.980, 0.982, 0.984))]
    row = score(entry, runs)
    assert row.n == 3 and row.ours == pytest.approx(0.982)
    assert row.ours_se == pytest.approx(0.002 / math.sqrt(3))


def test_times_per_epoch_are_gpu_times_where_a_gpu_run_exists():
    entry = Entry("Table 6", "x", "scaling-mnist-196", "seconds_per_epoch")
    gpu = {"device_type": "cuda", "device": "H100", "seconds_per_epoch": 1.5}
    cpu = {"device_type": "cpu", "device": "Xeon", "seconds_per_epoch": 9.0}
    resumed = record("scaling-mnist-196", 0.97, seconds_per_epoch=None, sessions=[gpu, cpu])
    on_cpu = record("scaling-mnist-196", 0.97, seed=1, device="Xeon", device_type="cpu",
                    seconds_per_epoch=12.0)
    row = score(entry, [resumed, on_cpu])
    assert row.ours == 1.5 and row.n == 1 and row.reason == "other hardware: ours timed on one H100"
    row = score(entry, [on_cpu])
    assert row.ours == 12.0 and row.reason == "other hardware: ours timed on one Xeon"
    on_epyc = record("scaling-mnist-196", 0.97, seed=2, device="EPYC", device_type="cpu",
                     seconds_per_epoch=15.0)
    row = score(entry, [on_cpu, on_epyc])  # every device that timed a run is named
    assert row.ours == 13.5 and row.reason == "other hardware: ours timed on one Xeon or one EPYC"
    member = record("scaling-mnist-196", 0.97, seconds_per_epoch=None, sessions=[gpu, cpu],
                    ensemble={"size": 3})  # a session times the whole ensemble
    assert score(entry, [member]).ours == pytest.approx(0.5)


def test_missing_names_the_smaller_profiles_and_ignores_them():
    entry = Entry("Table 3", "x", "cifar10-vgg16", "test_accuracy")
    row = score(entry, [record("cifar10-vgg16", 0.9, profile="smoke-transfer")])
    assert row.status == "missing" and row.ours is None
    assert "smoke-transfer" in row.reason


def test_a_known_cause_turns_off_into_explained():
    entry = Entry("Table 3", "x", "flowers-transfer", "test_accuracy")
    caveat = data_caveat(get_experiment("flowers-transfer"))
    row = score(entry, [record("flowers-transfer", 0.5, caveat=caveat)])
    assert row.status == "explained" and caveat in row.reason


def test_variants_are_tried_in_order():
    entry = Entry("Table 5", "x", "imdb-encoder", "test_accuracy", ("batch-32-bf16", None))
    runs = [record("imdb-encoder", 0.88), record("imdb-encoder", 0.7, variant="batch-32-bf16")]
    row = score(entry, runs)
    assert row.variant == "batch-32-bf16" and row.ours == pytest.approx(0.7)


def test_the_outcome_row_counts_diverged_runs_on_the_largest_profile():
    entry = Entry("App. E", "x", "ablation-unstable", "status", outcome="diverged")
    runs = [record("ablation-unstable", None, profile="smoke", status="diverged", seed=k)
            for k in range(3)]
    runs.append(record("ablation-unstable", 0.9, profile="midscale"))
    row = score(entry, runs)
    assert row.profile == "midscale" and row.status == "off" and row.ours == 0


def test_committed_records_give_one_row_per_number_and_html_tables():
    rows = scorecard(load_records(ROOT / "results"))
    assert len(rows) == len(paper_entries())
    assert sum(status_counts(rows).values()) == len(rows)
    for table in TABLE_TITLES:
        html = styled(score_frame([r for r in rows if r.entry.table == table]), "t").to_html()
        assert "<table" in html and 'href="' in html
        assert html == styled(score_frame([r for r in rows if r.entry.table == table]),
                              "t").to_html()


def test_styled_refuses_a_name_that_is_no_html_id():
    with pytest.raises(ValueError):
        styled(score_frame([]), "two words")


def test_the_stability_row_reads_the_records_that_carry_a_stability_report():
    entry = Entry("Fig. 6", "x", "mnist-scratch", "stability", outcome="inside")
    inside = {"mu_max": 0.5, "mu_bound": 37.7, "full_stable": True}
    runs = [record("mnist-scratch", 0.98),  # a paper record made before the report existed
            record("mnist-scratch", 0.9, profile="midscale", stability=inside),
            record("mnist-scratch", 0.9, profile="midscale", seed=1,
                   stability={**inside, "mu_max": 40.0})]
    row = score(entry, runs)
    assert row.profile == "midscale" and row.n == 2 and row.ours == 1 and row.status == "off"
    row = score(entry, runs[:2])
    assert row.status == "reproduced" and "no paper-profile run" in row.reason


def certificate(experiment, *, mu_max, full_stable, seed=0, profile="paper"):
    return {"experiment": experiment, "variant": None, "profile": profile, "seed": seed,
            "metrics": {}, "certificate": {"mu_range": [-18.0, mu_max], "mu_edges": [37.7, 71.7],
                                           "full_stable": full_stable}}


def test_the_stability_row_reads_certificates_where_a_record_has_no_report():
    entry = Entry("Fig. 6", "x", "mnist-scratch", "stability", outcome="inside")
    paper = record("mnist-scratch", 0.98)  # made before the stability report existed
    row = score(entry, [paper], [certificate("mnist-scratch", mu_max=0.0, full_stable=True)])
    assert row.profile == "paper" and row.status == "reproduced" and row.n == 1
    assert "certificate" in row.reason and "no paper-profile run" not in row.reason
    for bad in (certificate("mnist-scratch", mu_max=40.0, full_stable=True),
                certificate("mnist-scratch", mu_max=0.0, full_stable=False)):
        assert score(entry, [paper], [bad]).status == "off"
    reported = record("mnist-scratch", 0.98, stability={"mu_max": 0.5, "mu_bound": 37.7,
                                                        "full_stable": True})
    row = score(entry, [reported], [certificate("mnist-scratch", mu_max=40.0, full_stable=True)])
    assert row.status == "reproduced" and row.n == 1 and "certificate" not in row.reason


def test_the_committed_certificates_load_as_scorecard_evidence():
    rows = scorecard(load_records(ROOT / "results"), load_records(ROOT / "certificates"))
    stability = next(r for r in rows if r.entry.outcome == "inside")
    assert stability.profile == "paper" and stability.n >= 1


def test_a_missing_row_can_name_the_mean_of_its_largest_smaller_profile():
    entry = Entry("App. E", "x", "ablation-learned-planted", "test_accuracy", ("planted-span",),
                  spread_from="mnist-scratch", show_smaller=True)
    runs = [record("ablation-learned-planted", 0.1, profile="midscale"),
            record("ablation-learned-planted", 0.8, profile="midscale", variant="planted-span"),
            record("ablation-learned-planted", 0.9, profile="midscale", variant="planted-span",
                   seed=1)]
    row = score(entry, runs)
    assert row.status == "missing"
    assert row.reason.endswith("midscale [planted-span]: 0.8500 over 2 seed(s)")
