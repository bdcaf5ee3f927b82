"""Step traces: a replay of a run's first steps is the run's own steps, written by the CLI."""

from __future__ import annotations

import json

import pytest

from wcbook import __main__ as cli
from wcbook.experiments import Profile, get_experiment
from wcbook.models import WilsonCowanClassifier
from wcbook.training import train
from wcbook.training.trace import trace_steps, trace_summary

TINY = Profile(name="tiny", description="test", n_train=300, n_test=100, epochs=2, image_size=7,
               eval_every=1)


def test_a_trace_replays_the_steps_of_training(tmp_path, synthetic_env):
    record = train("mnist-scratch", TINY, 0, device="cpu", results_dir=tmp_path / "r",
                   checkpoint_dir=tmp_path / "c", progress=False)
    per_epoch = -(-TINY.n_train // get_experiment("mnist-scratch").batch_size)
    traced = trace_steps("mnist-scratch", TINY, 0, steps=2 * per_epoch + 5, progress=False)
    trace = traced["trace"]
    assert traced["steps"] == 2 * per_epoch  # the run has no more steps than that
    assert trace["step"] == list(range(1, 2 * per_epoch + 1))
    sizes = [min(TINY.n_train - k * 200, 200) for k in range(per_epoch)]
    for epoch in range(2):
        losses = trace["loss"][epoch * per_epoch : (epoch + 1) * per_epoch]
        mean = sum(s * v for s, v in zip(sizes, losses)) / sum(sizes)
        # records keep 6 significant digits, so a rounding error of up to 5e-6 (relative)
        assert mean == pytest.approx(record["history"]["loss"][epoch], rel=1e-5)
        # the parameters after an epoch's last step are those the record saw after the epoch
        gamma = record["history"]["gamma"][epoch]
        assert trace["gamma"][(epoch + 1) * per_epoch - 1] == pytest.approx(gamma, rel=1e-5)
    assert all(g > 0 for g in trace["max_gradient"]) and min(trace["phi_condition"]) >= 1
    assert all(v > 0 for v in trace["max_second_moment"])
    assert not any(trace["second_moment_overflow"])
    summary = trace_summary(trace)
    assert summary["overflow_step"] is None and summary["steps_gamma_negative"] == 0
    assert summary["nonfinite_step"] is None and all(trace["finite"])
    assert traced["experiment"] == "mnist-scratch" and traced["seed"] == 0 and "commit" in traced


def test_the_trace_command_writes_its_record(tmp_path, synthetic_env, capsys):
    code = cli.main(["trace", "mnist-mlp", "--profile", "smoke", "--steps", "2",
                     "--out", str(tmp_path)])
    assert code == 0
    written = json.loads((tmp_path / "traces" / "mnist-mlp" / "smoke" / "seed0.json").read_text())
    assert written["trace"]["step"] == [1, 2] and "phi_condition" not in written["trace"]
    assert "largest gradient entry" in capsys.readouterr().out
    assert cli.main(["trace", "no-such-run", "--profile", "smoke", "--out", str(tmp_path)]) == 2
    with pytest.raises(ValueError, match="at least 1"):
        trace_steps("mnist-mlp", "smoke", steps=0)


def test_a_trace_shows_when_adams_second_moment_overflows(synthetic_env, monkeypatch):
    monkeypatch.setattr(WilsonCowanClassifier, "penalty", lambda self: 1e25 * self.gamma)
    trace = trace_steps("mnist-scratch", TINY, 0, steps=2, progress=False)["trace"]
    assert trace["second_moment_overflow"] == [True, True]
    assert trace["max_second_moment"] == [None, None] and trace["max_gradient"][0] > 1e24
    summary = trace_summary(trace)
    assert summary["overflow_step"] == 1 and summary["steps"] == 2
    assert summary["max_gradient"] > 1e24 and summary["max_phi_condition"] >= 1


def test_a_trace_stops_at_the_first_nan(synthetic_env, monkeypatch):
    monkeypatch.setattr(WilsonCowanClassifier, "penalty", lambda self: self.gamma * float("nan"))
    trace = trace_steps("mnist-scratch", TINY, 0, steps=4, progress=False)["trace"]
    assert trace["step"] == [1] and trace["finite"] == [False]
    assert trace["phi_condition"] == [None]  # the parameters are NaN after the step
    summary = trace_summary(trace)
    assert summary["nonfinite_step"] == 1 and summary["max_phi_condition"] is None
