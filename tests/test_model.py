"""Tests of the parameters, the dynamics, fixed points, the symbolic Jacobian and the coupling."""

import math

import numpy as np
import pytest
import sympy as sp
import torch

from wcbook.coupling import SpectralCoupling, block_size, make_targets
from wcbook.dynamics import euler, n_steps, wc_rhs
from wcbook.models import WilsonCowanNetwork
from wcbook.params import WCParams
from wcbook.stability import (
    bistable_states,
    characteristic_polynomial,
    eigenvalue_expressions,
    lam_sym,
    max_real_part,
    mu_sym,
    node_fixed_points,
    numeric_jacobian,
    s_sym,
    stability_interval,
    symbolic_jacobian,
    y_nullcline,
)

P = WCParams()


# ------------------------------------------------------------------ parameters
def test_readings_swap_offset_and_amplitude():
    assert (P.offset_E, P.amplitude_E) == (0.65, 0.25)
    text = WCParams(reading="text")
    assert (text.offset_E, text.amplitude_E) == (0.25, 0.65)


@pytest.mark.parametrize("scale,n,expected", [("sqrt", 784, 1 / 28), ("linear", 784, 1 / 784)])
def test_coupling_scales_start_near_minus_one(scale, n, expected):
    p = WCParams(coupling_scale=scale)
    assert p.coupling_factor(n) == pytest.approx(expected)
    assert p.coupling_factor(n) * p.eigenvalue_init_mean(n) == pytest.approx(-1.0)


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"gamma": 0.0}, "gamma must be positive"),
        ({"gamma": -1.0}, "gamma must be positive"),
        ({"alpha_E": float("nan")}, "finite"),
        ({"reading": "paper"}, "reading"),
        ({"coupling_scale": "cubic"}, "coupling_scale"),
    ],
)
def test_bad_parameters_are_rejected(changes, match):
    with pytest.raises(ValueError, match=match):
        WCParams(**changes)


# ------------------------------------------------------------------ fixed points
def test_default_node_is_bistable_with_three_fixed_points():
    points = node_fixed_points(P)
    assert [fp.stable for fp in points] == [True, False, True]
    s = bistable_states(P)
    assert 0 < s.xbar1 < s.x_unstable < s.xbar2 < 1
    assert 0 < s.y_star < 1


@pytest.mark.parametrize("reading", ["code", "text"])
def test_rhs_vanishes_at_every_fixed_point(reading):
    p = WCParams(reading=reading)
    for fp in node_fixed_points(p):
        x = torch.tensor([[fp.x]], dtype=torch.float64)
        y = torch.tensor([[fp.y]], dtype=torch.float64)
        dx, dy = wc_rhs(x, y, p, p.gamma)
        assert abs(dx.item()) < 1e-12 and abs(dy.item()) < 1e-12


def test_text_reading_puts_a_stable_state_below_zero():
    stable = [fp.x for fp in node_fixed_points(WCParams(reading="text")) if fp.stable]
    assert min(stable) < -0.3


def test_y_nullcline_is_flat_when_w_IE_is_zero():
    ys = y_nullcline(np.linspace(-1, 1, 7))
    assert np.ptp(ys) < 1e-14


# ------------------------------------------------------------------ symbolic Jacobian
def test_symbolic_jacobian_matches_autograd_and_finite_differences():
    rng = np.random.default_rng(0)
    J_num = numeric_jacobian(P)
    for _ in range(5):
        x, y, mu = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(-3, 3)
        gamma = rng.uniform(0.2, 1.0)
        J = np.asarray(J_num(x, y, mu, gamma), dtype=float)

        def G(z):
            # Perturbing along an eigenmode of A with eigenvalue lambda from a state in the kernel
            # of A: the coupling input is mu * (x - x_eval), zero at the evaluation point.
            xs, ys = z[0:1].reshape(1, 1), z[1:2].reshape(1, 1)
            dx, dy = wc_rhs(xs, ys, P, gamma, mu * (xs - x))
            return torch.cat([dx.reshape(1), dy.reshape(1)])

        z = torch.tensor([x, y], dtype=torch.float64)
        J_auto = torch.autograd.functional.jacobian(G, z).numpy()
        np.testing.assert_allclose(J, J_auto, rtol=1e-10, atol=1e-12)
        eps = 1e-6
        J_fd = np.stack(
            [(G(z + eps * e) - G(z - eps * e)).numpy() / (2 * eps) for e in torch.eye(2, dtype=torch.float64)],
            axis=1,
        )
        np.testing.assert_allclose(J, J_fd, rtol=1e-6, atol=1e-7)


def test_characteristic_polynomial_roots_are_the_eigenvalue_expressions():
    J = symbolic_jacobian(P)
    poly = characteristic_polynomial(J)
    assert sp.expand(poly - (s_sym**2 - J.trace() * s_sym + J.det())) == 0
    rng = np.random.default_rng(1)
    values = {sym: rng.uniform(0.1, 2.0) for sym in J.free_symbols}
    for s in eigenvalue_expressions(J):
        assert abs(complex(poly.subs(s_sym, s).subs(values).evalf())) < 1e-9


def test_stability_interval_agrees_with_eigenvalues():
    s = bistable_states(P)
    for x in (s.xbar1, s.xbar2):
        interval = stability_interval(x, s.y_star, P)
        edge = float(interval.sup)
        assert interval.inf == -sp.oo
        assert max_real_part(edge - 1e-6, x, s.y_star, P) < 0
        assert max_real_part(edge + 1e-6, x, s.y_star, P) > 0
        assert max_real_part(-1.0, x, s.y_star, P) < 0
        assert max_real_part(edge, x, s.y_star, P) == pytest.approx(0, abs=1e-9)
    assert stability_interval(s.x_unstable, s.y_star, P).contains(0) == sp.false


def test_stability_boundary_has_the_mu_variable():
    s = bistable_states(P)
    J = symbolic_jacobian(P)
    assert lam_sym in J.free_symbols
    assert isinstance(stability_interval(s.xbar1, s.y_star, P), sp.Interval)
    assert mu_sym not in J.free_symbols


# ------------------------------------------------------------------ integration
def test_n_steps_is_robust_to_rounding():
    assert n_steps(2.5, 0.1) == 25
    assert n_steps(3.5, 0.1) == 35
    assert n_steps(0.0, 0.1) == 0


@pytest.mark.parametrize("T,dt", [(1.0, 0.0), (1.0, -0.1), (float("nan"), 0.1), (-1.0, 0.1)])
def test_bad_time_arguments(T, dt):
    with pytest.raises(ValueError):
        n_steps(T, dt)


def test_euler_returns_trajectory_with_initial_state():
    x0 = torch.full((2, 3), 0.3, dtype=torch.float64)
    xs, ys = euler(lambda x, y: wc_rhs(x, y, P, P.gamma), x0, x0, T=1.0, dt=0.1, return_trajectory=True)
    assert xs.shape == (11, 2, 3) and ys.shape == (11, 2, 3)
    assert torch.equal(xs[0], x0)


@pytest.fixture(scope="module")
def small_net():
    return WilsonCowanNetwork(16, 2, seed=0, dtype=torch.float64)


def test_forward_then_backward_returns_the_start(small_net):
    x0 = torch.rand(3, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    errors = []
    for dt in (1e-3, 1e-4):
        xT, yT = small_net.integrate(x0, T=0.5, dt=dt)
        xb, yb = small_net.integrate(xT, yT, T=0.5, dt=dt, backward=True)
        assert (xT - x0).abs().max() > 1e-2
        errors.append(max((xb - x0).abs().max().item(), (yb - x0).abs().max().item()))
    # Euler is first order: ten times smaller steps give about ten times smaller error.
    assert errors[1] < 5e-4 and errors[0] / errors[1] > 5


def test_perturbed_target_flows_back(small_net):
    x, y = small_net.target_state([0, 1])
    noise = 0.01 * torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(1))
    xT, yT = small_net.integrate(x + noise, y, T=20.0, dt=0.1)
    assert (xT - x).abs().max() < 1e-6 and (yT - y).abs().max() < 1e-6


@pytest.mark.parametrize(
    "x0,match",
    [
        (torch.zeros(16), "shape"),
        (torch.zeros(2, 15, dtype=torch.float64), "nodes"),
        (torch.full((2, 16), float("nan"), dtype=torch.float64), "NaN"),
    ],
)
def test_bad_states_are_rejected(small_net, x0, match):
    with pytest.raises(ValueError, match=match):
        small_net.integrate(x0, T=1.0)


def test_non_positive_gamma_is_rejected_at_integration():
    net = WilsonCowanNetwork(16, 2, seed=0)
    with torch.no_grad():
        net.gamma.fill_(-0.1)
    with pytest.raises(ValueError, match="gamma must be positive"):
        net.integrate(torch.zeros(1, 16), T=1.0)


# ------------------------------------------------------------------ targets and coupling
def test_targets_have_the_paper_block_structure():
    s = bistable_states(P)
    T = make_targets(784, 10, s.xbar1, s.xbar2)
    assert block_size(784, 10) == 65
    assert T.shape == (10, 784)
    for k in range(10):
        low = torch.nonzero(T[k] == s.xbar1).flatten()
        assert low.tolist() == list(range(65 * k, 65 * (k + 1)))
    assert (T[:, 650:] == s.xbar2).all()


@pytest.mark.parametrize("n,k", [(10, 9), (5, 5), (4, 3), (8, 0)])
def test_too_many_classes_for_the_nodes(n, k):
    with pytest.raises(ValueError):
        make_targets(n, k, 0.2, 0.4)


def test_spectral_coupling_properties():
    s = bistable_states(P)
    targets = make_targets(60, 4, s.xbar1, s.xbar2)
    g = torch.Generator().manual_seed(0)
    coupling = SpectralCoupling(targets, eig_mean=-math.sqrt(60), generator=g, dtype=torch.float64)
    A = coupling.matrix()
    assert torch.allclose(targets @ A.T, torch.zeros_like(targets), atol=1e-10)
    phi = coupling.phi()
    assert torch.allclose(phi.T @ phi, torch.eye(60, dtype=torch.float64), atol=1e-10)
    eig = torch.linalg.eigvals(A)
    expected = torch.sort(coupling.spectrum().detach()).values
    assert torch.allclose(torch.sort(eig.real).values, expected, atol=1e-8)
    n_trainable = sum(p.numel() for p in coupling.parameters())
    assert n_trainable == (60 - 4) * (60 + 1)
    assert coupling.eigenvalues.mean().item() == pytest.approx(-math.sqrt(60), abs=0.5)


def test_every_target_is_a_fixed_point_of_the_network(small_net):
    x, y = small_net.target_state(torch.arange(2))
    dx, dy = small_net.rhs(x, y)
    assert dx.abs().max() < 1e-12 and dy.abs().max() < 1e-12


def test_network_trainable_count_and_gradients():
    net = WilsonCowanNetwork(20, 3, seed=0)
    n = sum(p.numel() for p in net.parameters() if p.requires_grad)
    assert n == (20 - 3) * (20 + 1) + 1
    xT, _ = net.integrate(torch.rand(4, 20), T=1.0)
    xT.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_seed_makes_initialisation_reproducible():
    a = WilsonCowanNetwork(20, 3, seed=5).coupling.phi_free
    b = WilsonCowanNetwork(20, 3, seed=5).coupling.phi_free
    c = WilsonCowanNetwork(20, 3, seed=6).coupling.phi_free
    assert torch.equal(a, b) and not torch.equal(a, c)
