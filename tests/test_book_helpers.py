"""Helpers the chapters call: spreads over seeds, and the model a paper figure is drawn from."""

import math

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from wcbook.plots import learning_curves, seed_strip, twin_seed_plot  # noqa: E402
from wcbook.experiments import get_experiment  # noqa: E402
from wcbook.results import (candidate_rows, finished, first_epoch_threads,  # noqa: E402
                            group_runs, mean_text, outcome, plateau_epochs, seed_frame,
                            session_devices, show_twin_seeds, spread_frame, stage_paces,
                            twin_seed_frame)
from wcbook.training import TwinRuns, train_twins  # noqa: E402
from wcbook.weights import export_weights, figure_model, run_config  # noqa: E402

RECORDS = [
    {"seed": 2, "metrics": {"test_accuracy": 0.7, "gamma": 1.5}},
    {"seed": 0, "metrics": {"test_accuracy": 0.5, "gamma": 1.1}},
    {"seed": 1, "status": "diverged", "metrics": None},
]


def test_seed_frame_sorts_by_seed_and_keeps_a_diverged_run():
    table = seed_frame(RECORDS)
    assert table["seed"].tolist() == [0, 1, 2]
    assert table["status"].tolist() == ["finished", "diverged", "finished"]
    assert math.isnan(table.loc[1, "test_accuracy"])


def test_spread_frame_gives_mean_and_sample_std_of_finished_seeds():
    spread = spread_frame(seed_frame(RECORDS), ["test_accuracy", "gamma"])
    row = spread.iloc[0].tolist()
    assert row == ["test_accuracy", 2, "0.600 ± 0.141", "0.500", "0.700"]


def test_seed_strip_draws_one_panel_per_metric():
    table = seed_frame(RECORDS)
    axes = seed_strip({m: table[m] for m in ("test_accuracy", "gamma")}, table["seed"].tolist(),
                      reference={"test_accuracy": 0.1})
    assert [ax.get_title() for ax in axes] == ["test_accuracy", "gamma"]


WC_RUNS = [
    {"seed": 1, "metrics": {"stage1_test_accuracy": 0.5, "test_accuracy": 0.4, "gamma": 0.26}},
    {"seed": 0, "metrics": {"stage1_test_accuracy": 0.6, "test_accuracy": 0.7, "gamma": 0.25}},
]
TWINS = [{"seed": 0, "metrics": {"test_accuracy": 0.8}}, {"seed": 1, "metrics": {"test_accuracy": 0.9}}]


def test_twin_seed_frame_pairs_each_seed_with_its_twin():
    table = twin_seed_frame(WC_RUNS, TWINS)
    assert table["seed"].tolist() == [0, 1]
    assert table["twin_test_accuracy"].tolist() == [0.8, 0.9]
    assert [round(v, 6) for v in table["stage2_gain"]] == [0.1, -0.1]


def test_twin_seed_plot_names_its_panels_and_title():
    fig = twin_seed_plot(twin_seed_frame(WC_RUNS, TWINS), 0.1, "mnist-cnn, profile p, seeds [0, 1]")
    left, right = fig.axes
    assert [t.get_text() for t in left.get_xticklabels()][1] == "Wilson-Cowan\nafter stage 2"
    assert right.get_title() == "learned gamma"
    assert fig._suptitle.get_text() == "mnist-cnn, profile p, seeds [0, 1]"


def test_train_twins_trains_the_model_then_its_softmax_twin(monkeypatch):
    import wcbook.training.loop as loop

    calls = []

    def fake(experiment, profile, seeds, **options):
        calls.append((experiment, profile, seeds, options))
        return WC_RUNS if len(calls) == 1 else TWINS

    monkeypatch.setattr(loop, "train_ensemble", fake)
    runs = train_twins("mnist-cnn", "smoke-encoded", [0, 1], progress=False)
    assert [c[0] for c in calls] == ["mnist-cnn", "mnist-cnn-softmax"]
    assert all(c[1:] == ("smoke-encoded", [0, 1], {"progress": False}) for c in calls)
    assert runs.records is WC_RUNS and runs.twins is TWINS
    assert runs.seconds >= 0 and runs.twin_seconds >= 0


def test_show_twin_seeds_displays_the_spread_and_returns_the_seeds(capsys, monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    runs = TwinRuns([dict(r, device="cpu") for r in WC_RUNS], TWINS, 12.0, 3.0)
    seeds = show_twin_seeds(runs, "live", "mnist-cnn and its twin, profile p, seeds [0, 1]", 0.1)
    assert seeds["twin_test_accuracy"].tolist() == [0.8, 0.9]
    (table,) = shown
    assert table.data["metric"].tolist()[-2:] == ["twin_test_accuracy", "gamma"]
    assert table.caption == "mnist-cnn and its twin, profile p, seeds [0, 1]: spread over seeds"
    assert "12 s elapsed for both stages of the Wilson-Cowan models, 3 s elapsed" in (
        capsys.readouterr().out)


def test_figure_model_falls_back_without_paper_weights(tmp_path):
    live = run_config("mnist-scratch", "smoke").build_model(0)
    chosen = figure_model("mnist-scratch", 0, live, "smoke", tmp_path)
    assert chosen.model is live and not chosen.is_paper
    caption = chosen.caption("trajectories", "Fig. 7")
    assert caption == "trajectories: mnist-scratch, profile smoke, seed 0, 14 x 14 images"


def test_figure_model_prefers_the_paper_weights(tmp_path):
    paper = run_config("mnist-scratch", "paper").build_model(0)
    export_weights(paper, "mnist-scratch", "paper", 0, how="test", models_dir=tmp_path)
    live = run_config("mnist-scratch", "smoke").build_model(0)
    chosen = figure_model("mnist-scratch", 0, live, "smoke", tmp_path)
    assert chosen.is_paper and chosen.model is not live
    assert chosen.caption("trajectories", "Fig. 7").startswith("Fig. 7, trajectories: ")
    for name, value in paper.state_dict().items():
        assert torch.equal(chosen.model.state_dict()[name], value)


def test_plateau_epochs_counts_the_epochs_before_training_accuracy_first_passes_the_level():
    assert plateau_epochs({"history": {"train_accuracy": [0.1, 0.09, 0.3, 0.6, 0.4]}}) == 3
    assert plateau_epochs({"history": {"train_accuracy": [0.8]}}) == 0
    assert plateau_epochs({"history": {"train_accuracy": [0.1, 0.2]}}) == 2


def test_learning_curves_draws_accuracy_and_gamma_for_each_run():
    history = {"test_epochs": [1, 3], "test_accuracy": [0.1, 0.9], "gamma": [0.3, 0.5, 0.6],
               "train_accuracy": [0.1, 0.5, 0.95]}
    record = {"seed": 3, "history": history, "reference": {"test_accuracy": 0.95, "gamma": 0.8}}
    fig = learning_curves({"a": [record], "b": [record, {**record, "seed": 4}]}, "title")
    axes = fig.axes
    assert len(axes) == 4 and axes[0].get_title() == "a"
    assert len(axes[1].get_lines()) == 5  # two seeds' training and test accuracy, the paper's
    assert axes[3].get_lines()[0].get_ydata().tolist() == [0.3, 0.5, 0.6]


def _session(first: int, last: int, pace: float, kind: str = "cpu", threads: int = 2) -> dict:
    return {"first_epoch": first, "last_epoch": last, "seconds_per_epoch": pace,
            "device_type": kind, "torch_threads": threads}


def test_outcome_says_where_a_run_diverged():
    assert finished({"metrics": {}}) and outcome({"status": "finished"}) == "finished"
    diverged = {"status": "diverged", "diverged_at": {"epoch": 3, "step": None}}
    assert not finished(diverged) and outcome(diverged) == "diverged in epoch 3"
    diverged["diverged_at"]["step"] = 17
    assert outcome(diverged) == "diverged in epoch 3, step 17"


def test_session_devices_and_first_epoch_threads_follow_the_sessions_in_order():
    resumed = {"sessions": [_session(1, 4, 1.0, "cuda"), _session(5, 9, 9.0),
                            _session(10, 12, 8.0)]}
    assert session_devices(resumed) == "cuda, then cpu"
    assert first_epoch_threads(resumed) == "-"
    single = {"device_type": "cpu", "torch_threads": 4}
    assert session_devices(single) == "cpu" and first_epoch_threads(single) == 4


def test_stage_paces_weights_sessions_by_epochs_and_skips_one_that_spans_both_stages():
    record = {"sessions": [_session(1, 1, 10.0), _session(2, 3, 4.0), _session(4, 9, 2.0)]}
    assert stage_paces(record, stage1_epochs=3) == {1: 6.0, 2: 2.0}
    spanning = {"sessions": [_session(1, 5, 3.0)], "ensemble": {"size": 3}}
    paces = stage_paces(spanning, stage1_epochs=3)
    assert math.isnan(paces[1]) and math.isnan(paces[2])
    ensemble = {"sessions": [_session(1, 2, 9.0), _session(3, 4, 6.0)], "ensemble": {"size": 3}}
    assert stage_paces(ensemble, stage1_epochs=2) == {1: 3.0, 2: 2.0}


def test_mean_text_gives_the_mean_and_its_standard_error_of_the_values_present():
    assert mean_text([0.5, None, 0.7], 2) == "0.60 ± 0.10"
    assert mean_text([0.5], 3) == "0.500"
    assert mean_text([None]) == "-"


def test_candidate_rows_summarise_each_run_over_its_seeds():
    config = get_experiment("mnist-scratch").to_dict()

    def record(variant, seed, accuracy, **metrics):
        return {"experiment": "imdb-wc", "variant": variant, "seed": seed, "config": config,
                "wall_time_s": 10.0 * (seed + 1),
                "metrics": {"test_accuracy": accuracy, **metrics}}

    groups = group_runs([
        record("b", 1, 0.7, distinct_end_states=3), record("b", 0, 0.5, distinct_end_states=2),
        record("a", 0, 0.6), record(None, 0, 0.6),
    ])
    assert list(groups) == ["imdb-wc", "imdb-wc+a", "imdb-wc+b"]
    del groups["imdb-wc"]
    assert [r["seed"] for r in groups["imdb-wc+b"]] == [0, 1]
    rows = candidate_rows(groups, {"b": "what b changes"})
    assert rows[0] == ("imdb-wc+a", "-", str(config["epochs"]), "0", "0.600", "-", "-", "-",
                       "-", "10")
    assert rows[1] == ("imdb-wc+b", "what b changes", str(config["epochs"]), "0,1",
                       "0.600 ± 0.100", "-", "-", "-", "2/3", "15")
