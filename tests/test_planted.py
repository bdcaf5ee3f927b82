"""Tests of the training diagnostics of the planted columns and the stability margin, and of the
enforcement of the stable region (a ceiling on the trainable eigenvalues)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from wcbook.certificate import final_stability
from wcbook.coupling import SpectralCoupling, kernel_residuals, make_targets, principal_cosines
from wcbook.experiments import get_experiment, resolve
from wcbook.kinds import rate_groups
from wcbook.models import WilsonCowanClassifier, WilsonCowanNetwork
from wcbook.params import WCParams
from wcbook.stability import bistable_states, stable_mu_bound, stability_interval

P = WCParams()
STATES = bistable_states(P)
TARGETS = make_targets(24, 3, STATES.xbar1, STATES.xbar2)


def test_cosines_are_one_for_columns_in_the_span_and_small_for_orthogonal_ones():
    mixing = torch.tensor([[2.0, 0.5, 0.0], [0.0, 1.0, -1.0], [1.0, 0.0, 3.0]], dtype=torch.float64)
    inside = TARGETS.T @ mixing  # another basis of the same span
    assert torch.allclose(principal_cosines(inside, TARGETS), torch.ones(3, dtype=torch.float64))
    q = torch.linalg.qr(TARGETS.T)[0]
    noise = torch.randn(24, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    outside = noise - q @ (q.T @ noise)
    assert principal_cosines(outside, TARGETS).max() < 1e-12


def test_kernel_residual_is_the_eigenvalue_of_a_target_eigenvector():
    q = torch.linalg.qr(TARGETS.T)[0]
    zero = q @ torch.diag(torch.zeros(3, dtype=torch.float64)) @ q.T
    assert kernel_residuals(zero, TARGETS).abs().max() < 1e-12
    scaled = 0.3 * q @ q.T - 2.0 * (torch.eye(24, dtype=torch.float64) - q @ q.T)
    # every target lies in span(q), where A acts as 0.3 times the identity
    assert torch.allclose(kernel_residuals(scaled, TARGETS), torch.full((3,), 0.3, dtype=torch.float64))


def test_the_paper_model_carries_its_targets_and_a_span_start_does_too():
    fixed = WilsonCowanNetwork(24, 3, P, seed=0, dtype=torch.float64)
    assert "planted_cosine_min" not in fixed.diagnostics()  # only for learned columns
    span = WilsonCowanNetwork(24, 3, P, seed=0, dtype=torch.float64, learn_planted=True,
                              planted_init="span")
    d = span.diagnostics()
    assert d["planted_cosine_min"] == pytest.approx(1.0, abs=1e-12)
    assert d["target_residual_max"] < 1e-10
    random = WilsonCowanNetwork(24, 3, P, seed=0, dtype=torch.float64, learn_planted=True)
    d = random.diagnostics()
    assert d["planted_cosine_min"] < 0.99 and d["target_residual_max"] > 0.1


def test_span_start_keeps_the_random_draws_of_the_free_part():
    fixed = WilsonCowanNetwork(24, 3, P, seed=4, dtype=torch.float64)
    span = WilsonCowanNetwork(24, 3, P, seed=4, dtype=torch.float64, learn_planted=True,
                              planted_init="span")
    assert torch.equal(fixed.coupling.phi(), span.coupling.phi())
    assert torch.equal(fixed.coupling.spectrum(), span.coupling.spectrum())


def test_stability_margin_is_the_bound_minus_the_largest_mu():
    bound = min(float(stability_interval(x, STATES.y_star, P).sup)
                for x in (STATES.xbar1, STATES.xbar2))
    assert stable_mu_bound(P) == pytest.approx(bound)
    net = WilsonCowanNetwork(24, 3, P, seed=0, dtype=torch.float64)
    with torch.no_grad():
        net.coupling.eigenvalues[0] = 2.0 / net.Gamma
    d = net.diagnostics()
    assert d["mu_max"] == pytest.approx(2.0)
    assert d["stability_margin"] == pytest.approx(bound - 2.0)


def test_enforcement_starts_where_the_free_model_starts():
    free = WilsonCowanNetwork(24, 3, P, seed=2, dtype=torch.float64)
    held = WilsonCowanNetwork(24, 3, P, seed=2, dtype=torch.float64, enforce_stable=True)
    assert torch.allclose(free.coupling.spectrum(), held.coupling.spectrum(), atol=1e-9)
    assert torch.equal(free.coupling.phi(), held.coupling.phi())


def test_enforcement_keeps_every_eigenvalue_inside_after_a_step_that_would_leave():
    bound = stable_mu_bound(P)
    for enforce in (False, True):
        net = WilsonCowanNetwork(24, 3, P, seed=0, dtype=torch.float64, enforce_stable=enforce)
        params = [p for n, p in net.named_parameters() if "eigen" in n]
        optimizer = torch.optim.SGD(params, lr=1e4)
        mu = net.Gamma * net.coupling.spectrum()
        (-mu.sum()).backward()  # push every eigenvalue up, far past the bound
        optimizer.step()
        mu_after = float((net.Gamma * net.coupling.spectrum()).detach().max())
        if enforce:
            assert mu_after < bound and net.diagnostics()["stability_margin"] > 0
        else:
            assert mu_after > bound and net.diagnostics()["stability_margin"] < 0


def test_enforcement_and_forced_instability_exclude_each_other():
    with pytest.raises(ValueError, match="exclude"):
        WilsonCowanNetwork(24, 3, P, seed=0, enforce_stable=True, force_unstable=True)
    targets = make_targets(24, 3, 0.1, 0.9)
    with pytest.raises(ValueError, match="not both"):
        SpectralCoupling(targets, -4.0, eigenvalue_floor=1.0, eigenvalue_ceiling=2.0)
    with pytest.raises(ValueError, match="planted_init"):
        SpectralCoupling(targets, -4.0, learn_planted=True, planted_init="near")


def test_planted_columns_get_their_own_learning_rate():
    model = WilsonCowanClassifier(24, 3, seed=0, learn_planted=True, planted_init="span",
                                  planted_lr=1e-4)
    names = [n for n, _ in model.named_parameters()]
    groups = rate_groups(model, names)
    assert groups[-1] == (["network.coupling.phi_learned"], {"lr": 1e-4})
    assert "network.coupling.phi_learned" not in groups[0][0]
    assert rate_groups(WilsonCowanClassifier(24, 3, seed=0), names[:2]) == [(names[:2], {})]
    with pytest.raises(ValueError, match="planted_lr"):
        WilsonCowanClassifier(24, 3, seed=0, planted_lr=1e-4)


def test_final_stability_agrees_with_the_bound_and_sees_unfixed_targets():
    report = final_stability(WilsonCowanClassifier(24, 3, seed=0, dtype=torch.float64))
    assert report["full_stable"] and report["mu_bound"] == pytest.approx(stable_mu_bound(P))
    assert report["max_real"] < 0 and report["residual_max"] < 1e-6
    random = final_stability(WilsonCowanClassifier(24, 3, seed=0, learn_planted=True))
    assert random["residual_max"] > 1e-3


def test_variants_of_this_study_are_registered():
    stable = get_experiment("mnist-scratch", "stable")
    assert stable.model_options == {"enforce_stable": True}
    literal = get_experiment("ablation-learned-planted")
    faithful = get_experiment("ablation-learned-planted", "planted-span")
    assert literal.model_options == {"learn_planted": True}
    assert faithful.model_options["learn_planted"] and faithful.model_options["planted_init"] == "span"
    model = resolve(faithful, "smoke").build_model(seed=0)
    assert model.metrics()["planted_cosine_min"] == pytest.approx(1.0, abs=1e-5)
    assert dataclasses.replace(faithful, variant=None) != literal


def test_margin_and_alignment_are_recorded_per_epoch_and_certified_at_the_end(
    tmp_path, synthetic_env
):
    from wcbook.experiments import Profile
    from wcbook.training import train

    tiny = Profile(name="tiny", description="test scale", n_train=300, n_test=100, epochs=3,
                   image_size=7, eval_every=3)
    config = dataclasses.replace(
        get_experiment("ablation-learned-planted", "planted-span"), T_eval=None
    )
    record = train(config, tiny, 0, device="cpu", results_dir=tmp_path / "results",
                   checkpoint_dir=tmp_path / "checkpoints", progress=False)
    history = record["history"]
    for name in ("mu_max", "stability_margin", "planted_cosine_min", "target_residual_max"):
        assert len(history[name]) == 3, name
    bound = stable_mu_bound(P)
    assert history["stability_margin"][-1] == pytest.approx(bound - history["mu_max"][-1], rel=1e-5)
    assert record["stability"]["mu_bound"] == pytest.approx(bound)
    assert record["stability"]["mu_max"] == pytest.approx(history["mu_max"][-1], abs=1e-4)
    assert isinstance(record["stability"]["full_stable"], bool)
