"""The gamma floor: where explicit Euler keeps the inhibitory equation stable, and a training
option that keeps gamma there without touching a run that never goes below it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from wcbook.dynamics import firing_functions, node_rhs
from wcbook.experiments import Profile, get_experiment
from wcbook.models import WilsonCowanClassifier
from wcbook.params import WCParams
from wcbook.stability import euler_gamma_floor
from wcbook.training import DivergenceError, train

TINY = Profile(name="tiny", description="test", n_train=300, n_test=100, epochs=2, image_size=7,
               eval_every=1)


def _worst_factor(gamma: float, dt: float = 0.1) -> float:
    """The largest |1 + dt g'(y) / gamma| over y in [0, 1], g' by central differences of the
    model's own right-hand side (an independent route to the floor's derivative)."""
    p = WCParams()
    F_E, F_I = firing_functions(p, np.tanh)
    y, h = np.linspace(0.0, 1.0, 2001), 1e-6
    g = lambda v: node_rhs(np.zeros_like(v), v, 0.0, p, 1.0, F_E, F_I)[1]  # noqa: E731
    derivative = (g(y + h) - g(y - h)) / (2 * h)
    return float(np.abs(1 + dt * derivative / gamma).max())


def test_euler_keeps_the_inhibitory_equation_stable_exactly_down_to_the_floor():
    floor = euler_gamma_floor(WCParams(), dt=0.1)
    assert _worst_factor(floor * 1.001) <= 1.0 < _worst_factor(floor * 0.99)
    assert euler_gamma_floor(WCParams(), dt=0.05) == pytest.approx(floor / 2)
    with pytest.raises(ValueError, match="w_IE = 0"):
        euler_gamma_floor(WCParams(w_IE=1.0))


def _floored(tmp_path, tag, floor: bool, **extra):
    config = get_experiment("mnist-scratch")
    config = dataclasses.replace(config, model_options={"gamma_floor": True} if floor else {},
                                 **extra)
    return train(config, TINY, 0, device="cpu", results_dir=tmp_path / tag / "r",
                 checkpoint_dir=tmp_path / tag / "c", progress=False)


def test_a_run_whose_gamma_stays_above_the_floor_is_unchanged(tmp_path, synthetic_env):
    free, floored = _floored(tmp_path, "free", False), _floored(tmp_path, "floor", True)
    assert min(free["history"]["gamma"]) > euler_gamma_floor()
    assert floored["history"] == free["history"] and floored["metrics"] == free["metrics"]


def test_the_floor_holds_gamma_where_the_free_run_diverges(tmp_path, synthetic_env, monkeypatch):
    monkeypatch.setattr(WilsonCowanClassifier, "penalty", lambda self: 1e3 * self.gamma)
    with pytest.raises(DivergenceError, match="gamma = .* left"):
        _floored(tmp_path, "free", False, lr=1.0)
    record = _floored(tmp_path, "floor", True, lr=1.0)
    assert record.get("status") != "diverged"
    assert record["metrics"]["gamma"] == pytest.approx(euler_gamma_floor(), rel=1e-5)


def test_gamma_cannot_start_below_its_floor():
    with pytest.raises(ValueError, match="below its Euler floor"):
        WilsonCowanClassifier(16, 2, WCParams(gamma=0.05), gamma_floor=True)
    assert WilsonCowanClassifier(16, 2).parameter_bounds() == {}
    assert torch.is_tensor(WilsonCowanClassifier(16, 2, gamma_floor=True).gamma)
