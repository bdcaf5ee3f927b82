"""Tests of the stability certificate, the ablation switches and the appendix registry entries."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from wcbook import appendix
from wcbook.certificate import (
    certify,
    coupled_jacobian,
    critical_mode_mu,
    flow_gain,
    mode_abscissa,
    network_jacobian,
)
from wcbook.coupling import SpectralCoupling, make_targets
from wcbook.experiments import (
    EXPERIMENTS,
    SCALING_SIDES,
    ExperimentConfig,
    Profile,
    get_experiment,
    resolve,
)
from wcbook.models import WilsonCowanClassifier, WilsonCowanNetwork, unstable_mu
from wcbook.params import WCParams
from wcbook.stability import bistable_states, node_eigenvalues, stability_interval
from wcbook.training import evaluate, load_data, load_trained

P = WCParams()
STATES = bistable_states(P)
EDGE = min(
    float(stability_interval(x, STATES.y_star, P).sup) for x in (STATES.xbar1, STATES.xbar2)
)


def _network(n=24, k=2, seed=0, **options) -> WilsonCowanNetwork:
    return WilsonCowanNetwork(n, k, P, seed=seed, dtype=torch.float64, **options)


# ------------------------------------------------------------------ the full Jacobian
def test_closed_form_jacobian_matches_autograd():
    net = _network()
    gen = torch.Generator().manual_seed(1)
    x, y = torch.rand(24, generator=gen, dtype=torch.float64), torch.rand(24, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        net.gamma.fill_(0.7)

    def rhs(z):
        dx, dy = net.rhs(z[None, :24], z[None, 24:])
        return torch.cat([dx[0], dy[0]])

    expected = torch.autograd.functional.jacobian(rhs, torch.cat([x, y]))
    assert torch.allclose(network_jacobian(net, x, y), expected, atol=1e-12)


def _uniform_coupling(n: int, lambdas: np.ndarray) -> torch.Tensor:
    """A = Q diag(lambdas) Q^T with the uniform vector as the first column of Q (lambda_0 = 0)."""
    gen = torch.Generator().manual_seed(2)
    noise = torch.randn(n, n, generator=gen, dtype=torch.float64)
    noise[:, 0] = 1.0
    q, r = torch.linalg.qr(noise)
    q = q * torch.sign(torch.diagonal(r))
    return q @ torch.diag(torch.as_tensor(lambdas)) @ q.T


@pytest.mark.parametrize("xbar", [STATES.xbar1, STATES.xbar2])
def test_per_mode_criterion_is_exact_at_uniform_states(xbar):
    """All nodes at one state and A 1 = 0: the spectrum of J is the union of the 2x2 spectra."""
    n, Gamma, gamma = 16, 0.25, 0.6
    lambdas = np.concatenate([[0.0], np.linspace(-8.0, 4.0, n - 1)])
    A = _uniform_coupling(n, lambdas)
    x = torch.full((n,), xbar, dtype=torch.float64)
    y = torch.full((n,), STATES.y_star, dtype=torch.float64)
    full = np.sort_complex(torch.linalg.eigvals(coupled_jacobian(A, Gamma, gamma, P, x, y)).numpy())
    per_mode = np.sort_complex(
        np.array([s for lam in lambdas for s in node_eigenvalues(xbar, STATES.y_star, Gamma * lam, P, gamma)])
    )
    np.testing.assert_allclose(full, per_mode, atol=1e-9)
    assert full.real.max() < 0


def test_an_eigenvalue_past_the_edge_makes_the_uniform_state_unstable():
    n, Gamma, gamma = 16, 0.25, 0.6
    lambdas = np.concatenate([[0.0], np.full(n - 1, -4.0)])
    lambdas[5] = (EDGE + 1.0) / Gamma  # mu one unit past the lower edge
    A = _uniform_coupling(n, lambdas)
    x = torch.full((n,), STATES.xbar1, dtype=torch.float64)
    y = torch.full((n,), STATES.y_star, dtype=torch.float64)
    s = torch.linalg.eigvals(coupled_jacobian(A, Gamma, gamma, P, x, y))
    expected = max(e.real for e in node_eigenvalues(STATES.xbar1, STATES.y_star, EDGE + 1.0, P, gamma))
    assert expected > 0
    assert float(s.real.max()) == pytest.approx(expected, abs=1e-9)


def test_jacobian_rejects_bad_shapes():
    with pytest.raises(ValueError, match="square"):
        coupled_jacobian(torch.zeros(3, 4), 1.0, 1.0, P, torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="single states"):
        coupled_jacobian(torch.zeros(3, 3), 1.0, 1.0, P, torch.zeros(1, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="gamma"):
        coupled_jacobian(torch.zeros(3, 3), 1.0, 0.0, P, torch.zeros(3), torch.zeros(3))


# ------------------------------------------------------------------ the certificate
def test_a_fresh_network_is_certified_stable_with_working_basins():
    net = _network()
    images = torch.stack([net.targets[0], net.targets[1], torch.full((24,), 0.9, dtype=torch.float64)])
    cert = certify(net, images, torch.tensor([0, 1, 0]), noise_levels=(0.0, 0.01), samples=5, T=30.0)
    assert cert.per_mode_stable and cert.full_stable and cert.agree
    assert len(cert.attractors) == 2
    for a in cert.attractors:
        assert a.residual < 1e-6 and a.newton_converged and a.shift < 1e-6 and a.max_real < 0
        assert a.max_real_x <= a.max_real + 1e-12
    assert [b.returned for b in cert.basins] == [1.0, 1.0]
    assert cert.images.n == 3 and cert.images.converged_to_label >= 2 / 3
    assert "stable" in cert.summary()
    assert json.loads(json.dumps(cert.to_dict()))["full_stable"] is True


def test_pushing_an_eigenvalue_past_the_edge_is_detected_by_both_criteria():
    net = _network()
    with torch.no_grad():
        net.coupling.eigenvalues[0] = 200.0 / net.Gamma
    cert = certify(net, noise_levels=(0.01,), samples=5, T=30.0)
    assert not cert.per_mode_stable
    assert not cert.full_stable and cert.max_real > 0
    assert cert.basins[0].returned < 1.0


def test_targets_outside_the_kernel_move_a_little_and_stay_stable():
    net = _network(planted_eigenvalue=0.1)
    cert = certify(net, noise_levels=(0.01,), samples=3, T=20.0)
    for a in cert.attractors:
        assert a.residual > 1e-6 and a.newton_converged and 0 < a.shift < 0.05
    assert cert.full_stable


def test_certificate_accepts_a_classifier_and_rejects_bad_input():
    model = WilsonCowanClassifier(24, 2, seed=0, T_eval=5.0)
    assert certify(model, noise_levels=(0.01,), samples=2).horizon == 5.0
    front_end = torch.nn.Sequential(torch.nn.Linear(3, 24), model)  # a model holding one inside
    assert certify(front_end, noise_levels=(0.01,), samples=2).horizon == 5.0
    with pytest.raises(TypeError, match="WilsonCowanNetwork"):
        certify(torch.nn.Linear(3, 3))
    with pytest.raises(ValueError, match="together"):
        certify(model, torch.zeros(2, 24))
    with pytest.raises(ValueError, match="shape"):
        certify(model, torch.zeros(2, 23), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="noise"):
        certify(model, noise_levels=(-1.0,))


# ------------------------------------------------------------------ ablation switches
def test_default_coupling_keeps_its_parameters_and_draws():
    targets = make_targets(20, 2, STATES.xbar1, STATES.xbar2)
    a = SpectralCoupling(targets, -4.0, generator=torch.Generator().manual_seed(3))
    b = SpectralCoupling(
        targets,
        -4.0,
        generator=torch.Generator().manual_seed(3),
        learn_planted=False,
        planted_eigenvalue=0.0,
        eigenvalue_floor=None,
    )
    assert set(a.state_dict()) == {"phi_fixed", "phi_free", "eigenvalues"}
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert torch.equal(a.spectrum()[:2], torch.zeros(2))


def test_learned_planted_columns_are_trainable_and_keep_their_eigenvalue():
    net = _network(learn_planted=True)
    names = {n for n, _ in net.named_parameters()}
    assert "coupling.phi_learned" in names and "coupling.phi_fixed" not in dict(net.named_buffers())
    phi = net.coupling.phi().detach()
    assert torch.allclose(phi.T @ phi, torch.eye(24, dtype=torch.float64), atol=1e-10)
    assert torch.equal(net.coupling.spectrum()[:2].detach(), torch.zeros(2, dtype=torch.float64))


def test_forced_eigenvalues_stay_outside_the_stable_region():
    net = _network(force_unstable=True)
    floor = unstable_mu(P)
    mu = (net.Gamma * net.coupling.free_eigenvalues()).detach()
    assert bool((mu > floor).all()) and float(mu.mean()) == pytest.approx(floor + 1, abs=0.5)
    opt = torch.optim.Adam(net.parameters(), lr=10.0)
    (net.Gamma * net.coupling.free_eigenvalues()).sum().backward()  # push them down hard
    for _ in range(5):
        opt.step()
    assert bool((net.Gamma * net.coupling.free_eigenvalues() >= floor).all())  # at most down to it
    cert = certify(net, noise_levels=(0.01,), samples=2, T=5.0)
    assert not cert.per_mode_stable


def test_flow_gain_is_the_norm_of_the_linearised_euler_map():
    stable, unstable = _network(), _network(force_unstable=True)
    for net in (stable, unstable):  # one step: the largest ||I + dt J|| over the targets
        one = max(float(torch.linalg.matrix_norm(
            torch.eye(48, dtype=torch.float64) + 0.1 * network_jacobian(net, *(
                s[0] for s in net.target_state(k))), 2)) for k in range(2))
        assert flow_gain(net, T=0.1) == pytest.approx(one, rel=1e-12)
    assert flow_gain(stable, T=2.5) < 1
    # an unstable mode: at least the spectral radius |1 + dt s|^25 of its eigenvalue s
    x, y = unstable.target_state(0)
    s = torch.linalg.eigvals(network_jacobian(unstable, x[0], y[0]))
    assert float((1 + 0.1 * s).abs().max()) ** 25 <= flow_gain(unstable, T=2.5) * (1 + 1e-9)
    assert flow_gain(unstable, T=2.5) > 10
    with pytest.raises(ValueError):
        flow_gain(stable, T=-1.0)


def test_a_modes_critical_mu_is_where_the_full_jacobian_turns_unstable():
    net = _network()
    x, y = (s[0] for s in net.target_state(0))
    kept = net.coupling.eigenvalues.detach().clone()
    critical = critical_mode_mu(net, 0, x, y)
    assert mode_abscissa(net, 0, critical - 1e-3, x, y) < 0 < mode_abscissa(
        net, 0, critical + 1e-3, x, y)
    assert torch.equal(net.coupling.eigenvalues.detach(), kept)  # the network is left as it was
    with pytest.raises(ValueError, match="widen the bracket"):
        critical_mode_mu(net, 0, x, y, hi=critical / 2)


def test_bad_coupling_options_are_rejected():
    targets = make_targets(20, 2, STATES.xbar1, STATES.xbar2)
    with pytest.raises(ValueError, match="planted_eigenvalue"):
        SpectralCoupling(targets, -4.0, planted_eigenvalue=float("nan"))
    with pytest.raises(ValueError, match="eigenvalue_floor"):
        SpectralCoupling(targets, -4.0, eigenvalue_floor=float("inf"))


# ------------------------------------------------------------------ registry
def test_profile_image_size_applies_only_to_configs_without_one():
    smoke = Profile("s", "test", image_size=14, epochs=2)
    assert resolve(get_experiment("mnist-scratch"), smoke).image_size == 14
    for side in SCALING_SIDES:
        config = resolve(get_experiment(f"scaling-fashion-{side * side}"), smoke)
        assert (config.image_size, config.n_nodes, config.epochs) == (side, side * side, 2)
    assert resolve(get_experiment("scaling-mnist-1225"), "smoke-scaling").n_nodes == 1225


def test_scaling_and_ablation_entries_carry_the_papers_numbers():
    assert get_experiment("scaling-mnist-196").reference == {
        "test_accuracy": 0.9746,
        "gamma": 0.86046,
        "seconds_per_epoch": 2,
    }
    assert get_experiment("scaling-mnist-784").epochs == 525
    assert get_experiment("scaling-fashion-1225").reference["test_accuracy"] == 0.887
    assert get_experiment("scaling-fashion-1225").T_train == 3.5
    assert get_experiment("ablation-learned-planted").reference["test_accuracy"] == 0.9783
    assert get_experiment("ablation-not-in-kernel").model_options == {"planted_eigenvalue": 0.1}
    assert set(appendix.SCALING_IDS) | set(appendix.ABLATION_IDS) <= set(EXPERIMENTS)


def test_model_options_are_validated_and_serialised_only_when_set():
    base = get_experiment("mnist-scratch")
    assert "model_options" not in base.to_dict()
    ablation = resolve(get_experiment("ablation-unstable"), "smoke")
    assert ExperimentConfig.from_dict(json.loads(json.dumps(ablation.to_dict()))) == ablation
    with pytest.raises(ValueError, match="unknown model option"):
        dataclasses.replace(base, model_options={"planted": True})
    with pytest.raises(ValueError, match="Wilson-Cowan"):
        dataclasses.replace(get_experiment("mnist-mlp"), model_options={"learn_planted": True})
    model = get_experiment("ablation-not-in-kernel").build_model(seed=0)
    assert model.network.coupling.planted_eigenvalue == 0.1


# ------------------------------------------------------------------ divergence as an outcome
def test_divergence_becomes_a_record(tmp_path, synthetic_env, monkeypatch):
    # the regulariser turns NaN: the parameters are NaN after the first step
    monkeypatch.setattr(WilsonCowanClassifier, "penalty", lambda self: self.gamma * float("nan"))
    tiny = Profile("tiny", "test", n_train=200, n_test=50, epochs=3, image_size=7)
    record = appendix.train_outcome(
        "ablation-unstable", tiny, 0, results_dir=tmp_path / "r", checkpoint_dir=tmp_path / "c"
    )
    assert record["status"] == "diverged" and record["diverged_at"] == {"epoch": 1, "step": None}
    assert "gamma" in record["message"] or "NaN" in record["message"]
    stored = json.loads((tmp_path / "r" / "ablation-unstable" / "tiny" / "seed0.json").read_text())
    assert stored["metrics"] == {} and stored["config"]["model_options"] == {"force_unstable": True}


def test_a_finished_run_is_marked_finished(tmp_path, synthetic_env):
    tiny = Profile("tiny", "test", n_train=200, n_test=50, epochs=1, image_size=7)
    config = dataclasses.replace(get_experiment("ablation-not-in-kernel"), T_eval=None)
    record = appendix.train_outcome(
        config, tiny, 0, results_dir=tmp_path / "r", checkpoint_dir=tmp_path / "c"
    )
    stored = json.loads((tmp_path / "r" / config.name / "tiny" / "seed0.json").read_text())
    assert record == {**stored, "status": "finished"} and "status" not in stored
    # The accuracy recorded is that of the checkpoint's model on the profile's test images.
    model = load_trained(config.id, "tiny", 0, tmp_path / "c")
    _, test = load_data(resolve(config, tiny), tiny, torch.device("cpu"))
    accuracy, nonfinite = evaluate(model, test)
    assert nonfinite == 0 and record["metrics"]["test_accuracy"] == round(accuracy, 6)
    assert record["history"]["test_accuracy"][-1] == record["metrics"]["test_accuracy"]


def test_certificate_record_of_a_trained_checkpoint(tmp_path, synthetic_env):
    tiny = Profile("tiny", "test", n_train=200, n_test=50, epochs=1, image_size=7)
    appendix.train_outcome(
        "mnist-scratch", tiny, 0, results_dir=tmp_path / "r", checkpoint_dir=tmp_path / "c"
    )
    record = appendix.certificate_record(
        "mnist-scratch",
        tiny,
        0,
        certificate_dir=tmp_path / "cert",
        checkpoint_dir=tmp_path / "c",
        n_images=20,
    )
    stored = json.loads((tmp_path / "cert" / "mnist-scratch" / "tiny" / "seed0.json").read_text())
    assert stored["checkpoint_epoch"] == 1 and stored["certificate"]["images"]["n"] == 20
    # One Adam step leaves every trained eigenvalue well inside the stability interval, and the
    # full Jacobian agrees with the per-mode criterion (a margin of about 1.6, not a coin toss).
    certificate = record["certificate"]
    assert certificate["per_mode_stable"] is True and certificate["full_stable"] is True
    assert certificate["per_mode_max_real"] < -1.0 and certificate["agree"] is True
    assert len(stored["certificate"]["attractors"]) == 10


def test_the_regulariser_covers_learned_planted_columns():
    model = WilsonCowanClassifier(24, 2, seed=0, learn_planted=True)
    assert model.penalty().item() == pytest.approx(0.0, abs=1e-6)  # orthonormal start
    with torch.no_grad():
        model.network.coupling.phi_learned[:, 0] = model.network.coupling.phi_free[:, 0]
    assert model.penalty().item() > 0


# ------------------------------------------------------------------ appendix tables
def _write(results, run, profile, seed, accuracy, gamma=1.0, status=None):
    path = results / run / profile / f"seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "metrics": {"test_accuracy": accuracy, "gamma": gamma},
        "history": {"loss": [0.1, 0.05], "train_accuracy": [0.5, accuracy], "gamma": [1.0, gamma]},
        "reference": get_experiment(run.split("+")[0]).reference,
        **({"status": status} if status else {}),
    }
    path.write_text(json.dumps(record))


def test_variant_table_measures_the_spread_and_judges_each_variant(tmp_path):
    assert "no finished midscale record" in appendix.variant_table("midscale", tmp_path)
    _write(tmp_path, "mnist-scratch", "midscale", 0, 0.90)
    _write(tmp_path, "mnist-scratch", "midscale", 1, 0.88)  # spread 0.02 over one repeat
    _write(tmp_path, "mnist-scratch+text-epochs", "midscale", 0, 0.50)  # capped epochs: a repeat
    _write(tmp_path, "mnist-scratch+text-T", "midscale", 0, 0.89)
    _write(tmp_path, "mnist-scratch+text", "midscale", 0, 0.10)
    _write(tmp_path, "mnist-scratch+no-ortho", "paper", 0, 0.97)
    table = appendix.variant_table("midscale", tmp_path)
    assert "over 2 repeat(s): 0.4000" in table
    lines = {line.split()[0]: line for line in table.splitlines()[2:]}
    assert "-0.010, within the spread" in lines["text-T"]
    assert "stuck at chance" in lines["text"]
    assert "no midscale record" in lines["no-ortho"] and "text-coupling" in lines
    _write(tmp_path, "mnist-scratch+no-ortho", "midscale", 0, 0.99)
    _write(tmp_path, "mnist-scratch+text-epochs", "midscale", 0, 0.90)
    lines = appendix.variant_table("midscale", tmp_path).splitlines()
    assert "+0.090, better" in next(line for line in lines if line.startswith("no-ortho"))
    assert next(line for line in lines if line.startswith("no-ortho")).endswith("0.9700")
    _write(tmp_path, "mnist-scratch", "smoke", 0, 0.70)
    table = appendix.variant_table("smoke", tmp_path)
    lines = {line.split()[0]: line for line in table.splitlines()}
    assert lines["text-epochs"].endswith("(under this profile: the default's configuration)")
    assert lines["text-T"].endswith("no smoke record")
    _write(tmp_path, "mnist-scratch+text-T", "smoke", 0, None, status="diverged")
    table = appendix.variant_table("smoke", tmp_path)
    assert next(line for line in table.splitlines() if line.startswith("text-T")).endswith("diverged")


def test_ablation_table_shows_diverged_runs_and_missing_records(tmp_path):
    _write(tmp_path, "mnist-scratch", "smoke", 0, 0.75, gamma=1.3)
    _write(tmp_path, "ablation-unstable", "smoke", 0, None, status="diverged")
    lines = appendix.ablation_table("smoke", tmp_path).splitlines()
    assert lines[1].split()[:4] == ["mnist-scratch", "finished", "2", "0.7500"]
    assert lines[2].split()[:3] == ["ablation-unstable", "diverged", "2"]
    assert "-" in lines[2].split() and lines[3].endswith("no smoke record")
