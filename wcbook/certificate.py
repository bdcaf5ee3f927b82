r"""An exact stability certificate for the planted attractors of a trained network.

The paper's criterion (Sec. 3, :mod:`wcbook.stability`) perturbs a planted state along one
eigenvector of A at a time and studies a 2x2 Jacobian per eigenvalue mu_i = Gamma lambda_i. That is
exact only when every node sits at the same state; a planted target mixes the two stable states
xbar1 and xbar2, and the eigenvectors of A mix nodes in both. The certificate therefore takes the
whole linearisation: with z = (x, y) in R^{2N},

.. math::

    J = \begin{pmatrix} D_1 + D_2 (w_{EE} I + \Gamma A) & -w_{EI} D_2 \\
                        w_{IE} D_4 / \gamma & (D_3 - w_{II} D_4) / \gamma \end{pmatrix}

where, element-wise over the nodes, D_1 = diag(-alpha_E - F_E(s_E)), D_2 = diag((1 - x) F_E'(s_E)),
D_3 = diag(-alpha_I - F_I(s_I)) and D_4 = diag((1 - y) F_I'(s_I)), at s_E = w_EE x - w_EI y + h_E +
Gamma A x and s_I = w_IE x - w_II y + h_I. A planted state is linearly stable when every eigenvalue
of J has negative real part.

:func:`certify` does, for every target k:

1. evaluates G at the planted state (x = T_k, y = y*) and refines it to the nearest fixed point with
   Newton's method on the full system (a trained model whose targets are not exact fixed points,
   e.g. the ablation with the planted eigenvalue 0.1, moves them a little);
2. computes the full 2N x 2N Jacobian there and its largest real eigenvalue part, and sets it
   beside the per-mode criterion (max over the N eigenvalues mu_i and over both node states of
   max Re s_+-);
3. measures the basins: perturbed targets (several noise levels) integrated for the model's
   evaluation horizon either return to their own attractor, end at another one, or elsewhere;
   so do test images (converged to the label's attractor, to another, or elsewhere).

Everything runs in float64 on the CPU, on a copy of the model.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .dynamics import check_time, n_steps
from .models import WilsonCowanClassifier, WilsonCowanNetwork
from .params import WCParams
from .stability import max_real_part, stability_interval, stable_mu_bound

__all__ = [
    "AttractorCheck",
    "BasinCheck",
    "ImageCheck",
    "Certificate",
    "coupled_jacobian",
    "network_jacobian",
    "flow_gain",
    "mode_abscissa",
    "critical_mode_mu",
    "certify",
    "final_stability",
]


# --------------------------------------------------------------------------------------------
# The full Jacobian
# --------------------------------------------------------------------------------------------
def coupled_jacobian(
    A: torch.Tensor,
    Gamma: float,
    gamma: float,
    params: WCParams,
    x: torch.Tensor,
    y: torch.Tensor,
) -> torch.Tensor:
    """The 2N x 2N Jacobian of G at the state (x, y) (each of shape (N,)), closed form.

    Rows and columns are ordered (x_1 .. x_N, y_1 .. y_N). ``A`` is the (N, N) coupling matrix,
    ``Gamma`` its factor, ``gamma`` the inhibitory time scale.
    """
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be a square matrix, got shape {tuple(A.shape)}")
    n = A.shape[0]
    if x.shape != (n,) or y.shape != (n,):
        raise ValueError(
            f"x and y must be single states of shape ({n},), got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if not gamma > 0:
        raise ValueError(f"gamma must be positive, got {gamma!r}")
    p = params
    s_E = p.w_EE * x - p.w_EI * y + p.h_E + Gamma * (A @ x)
    s_I = p.w_IE * x - p.w_II * y + p.h_I
    t_E, t_I = torch.tanh(p.beta_E * s_E), torch.tanh(p.beta_I * s_I)
    F_E, F_I = p.offset_E + p.amplitude_E * t_E, p.offset_I + p.amplitude_I * t_I
    dF_E = p.amplitude_E * p.beta_E * (1 - t_E * t_E)
    dF_I = p.amplitude_I * p.beta_I * (1 - t_I * t_I)
    D2, D4 = (1 - x) * dF_E, (1 - y) * dF_I
    eye = torch.eye(n, dtype=A.dtype, device=A.device)
    J_xx = torch.diag(-p.alpha_E - F_E) + D2[:, None] * (p.w_EE * eye + Gamma * A)
    J_xy = torch.diag(-p.w_EI * D2)
    J_yx = torch.diag(p.w_IE * D4 / gamma)
    J_yy = torch.diag((-p.alpha_I - F_I - p.w_II * D4) / gamma)
    return torch.cat([torch.cat([J_xx, J_xy], 1), torch.cat([J_yx, J_yy], 1)], 0)


def _as_network(model: nn.Module) -> WilsonCowanNetwork:
    """The first WilsonCowanNetwork among the modules of ``model`` (``model`` itself included)."""
    network = next((m for m in model.modules() if isinstance(m, WilsonCowanNetwork)), None)
    if network is None:
        raise TypeError(
            "expected a WilsonCowanNetwork or a model holding one (a WilsonCowanClassifier, an "
            f"encoder + Wilson-Cowan model), got {type(model).__name__}"
        )
    return network


def _horizon(model: nn.Module) -> tuple[float, float]:
    """(T_eval, dt) of the first WilsonCowanClassifier in ``model``, else (40, 0.1)."""
    classifier = next((m for m in model.modules() if isinstance(m, WilsonCowanClassifier)), None)
    return (40.0, 0.1) if classifier is None else (classifier.T_eval, classifier.dt)


def network_jacobian(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The full Jacobian (float64) of a network's dynamics at the state (x, y), each (N,)."""
    net = _as_network(model)
    with torch.no_grad():
        A = net.coupling.matrix().double().cpu()
        return coupled_jacobian(
            A, net.Gamma, float(net.gamma), net.params, x.double().cpu(), y.double().cpu()
        )


def mode_abscissa(
    net: WilsonCowanNetwork, mode: int, mu: float, x: torch.Tensor, y: torch.Tensor
) -> float:
    """The largest real part of the full Jacobian at (x, y) when trainable mode ``mode`` has
    Gamma * lambda = ``mu``; the mode's eigenvalue is put back afterwards."""
    eigenvalues = net.coupling.eigenvalues
    with torch.no_grad():
        kept = eigenvalues[mode].clone()
        eigenvalues[mode] = mu / net.Gamma
        try:
            return float(torch.linalg.eigvals(network_jacobian(net, x, y)).real.max())
        finally:
            eigenvalues[mode] = kept


def critical_mode_mu(
    net: WilsonCowanNetwork, mode: int, x: torch.Tensor, y: torch.Tensor,
    lo: float = 0.0, hi: float = 120.0, iterations: int = 30,
) -> float:
    """The Gamma * lambda of trainable mode ``mode`` at which the full Jacobian at (x, y) turns
    unstable, by bisection between ``lo`` (stable) and ``hi`` (unstable)."""
    if mode_abscissa(net, mode, lo, x, y) >= 0 or mode_abscissa(net, mode, hi, x, y) < 0:
        raise ValueError(f"mode {mode}: the full Jacobian must be stable at mu = {lo} and "
                         f"unstable at mu = {hi}; widen the bracket")
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if mode_abscissa(net, mode, mid, x, y) < 0 else (lo, mid)
    return 0.5 * (lo + hi)


def flow_gain(model: nn.Module, T: float, dt: float = 0.1) -> float:
    """The most that integrating for ``T`` multiplies a small perturbation at a planted target:
    the largest spectral norm, over the targets, of the linearised Euler map (I + dt J)^n with
    n = floor(T / dt) and J the full Jacobian at (T_k, y*). Backpropagation through those n
    steps multiplies a gradient by the transpose, so by as much. Below 1 every perturbation
    shrinks; an unstable mode makes it grow about like exp(T max Re s)."""
    check_time(T, dt)
    net = _as_network(model)
    steps = n_steps(T, dt)
    gains = []
    for k in range(net.n_classes):
        x, y = net.target_state(k)
        J = network_jacobian(net, x[0], y[0])
        step = torch.eye(J.shape[0], dtype=J.dtype) + dt * J
        gains.append(float(torch.linalg.matrix_norm(torch.linalg.matrix_power(step, steps), 2)))
    return max(gains)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AttractorCheck:
    """The linearisation at the attractor of one target.

    ``residual``: ``max |G|`` at the planted state (x = T_k, y = y*), 0 for an exact fixed
    point; ``newton_converged``: Newton found a fixed point from there; ``shift``:
    ``max |x - T_k|`` of that fixed point (NaN if none was found); ``max_real``: largest real
    part of the eigenvalues of the full Jacobian at the fixed point (at the planted state when
    Newton failed);
    ``max_real_x``: the same for the excitatory block J_xx alone, where the coupling enters (with
    w_IE = 0 the spectrum of J is that of J_xx together with the diagonal of J_yy).
    """

    target: int
    residual: float
    newton_converged: bool
    shift: float
    max_real: float
    max_real_x: float

    @property
    def stable(self) -> bool:
        """True when a fixed point was found and every eigenvalue of J there has Re < 0."""
        return self.newton_converged and self.max_real < 0


@dataclass(frozen=True)
class BasinCheck:
    """Perturbed targets at one noise level: where they end after the horizon (fractions)."""

    noise: float
    returned: float
    other_attractor: float
    elsewhere: float


@dataclass(frozen=True)
class ImageCheck:
    """Where initial states (test images) end after the horizon (fractions of ``n``).

    ``converged_to_label``: within the tolerance of the attractor of their label;
    ``converged_to_other``: of another attractor; ``elsewhere``: of none.
    """

    n: int
    converged_to_label: float
    converged_to_other: float
    elsewhere: float


@dataclass(frozen=True)
class Certificate:
    """Stability of every planted attractor of one network, per mode and in full, and its basins.

    ``mu_edges``: the per-mode stability edges in mu for (xbar1, xbar2) (stable below);
    ``per_mode_max_real``: the paper's criterion, max over all N eigenvalues mu_i of A (times
    Gamma) and both node states of max Re s_+- (negative: stable by that criterion);
    ``per_mode_max_real_x``: the same for the excitatory entry J_11(mu) alone, the per-mode
    counterpart of :attr:`AttractorCheck.max_real_x`;
    ``horizon`` / ``tolerance``: integration time of the basin tests and the RMS distance to an
    attractor that counts as having reached it.
    """

    n_nodes: int
    n_classes: int
    gamma: float
    Gamma: float
    mu_range: tuple[float, float]
    mu_edges: tuple[float, float]
    per_mode_max_real: float
    per_mode_max_real_x: float
    attractors: tuple[AttractorCheck, ...]
    basins: tuple[BasinCheck, ...]
    images: ImageCheck | None
    horizon: float
    tolerance: float

    @property
    def per_mode_stable(self) -> bool:
        """The paper's criterion: every mode stable for both node states."""
        return self.per_mode_max_real < 0

    @property
    def full_stable(self) -> bool:
        """Every planted attractor exists and is stable under the full Jacobian."""
        return all(a.stable for a in self.attractors)

    @property
    def max_real(self) -> float:
        """Largest real eigenvalue part of the full Jacobian over all attractors."""
        return max(a.max_real for a in self.attractors)

    @property
    def max_real_x(self) -> float:
        """Largest real eigenvalue part of the excitatory blocks J_xx over all attractors."""
        return max(a.max_real_x for a in self.attractors)

    @property
    def agree(self) -> bool:
        """The per-mode criterion and the full Jacobian give the same verdict."""
        return self.per_mode_stable == self.full_stable

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable fields, with the verdicts."""
        out = asdict(self)
        out.update(
            per_mode_stable=self.per_mode_stable,
            full_stable=self.full_stable,
            max_real=self.max_real,
            max_real_x=self.max_real_x,
            agree=self.agree,
        )
        return out

    def summary(self) -> str:
        """A few lines of text for a reader."""
        lines = [
            f"N = {self.n_nodes}, K = {self.n_classes}, gamma = {self.gamma:.4f}, "
            f"Gamma = {self.Gamma:.4g}",
            f"mu = Gamma*lambda in [{self.mu_range[0]:.3f}, {self.mu_range[1]:.3f}]; per-mode edges "
            f"{self.mu_edges[0]:.3f} (xbar1), {self.mu_edges[1]:.3f} (xbar2)",
            f"per-mode criterion: max Re s = {self.per_mode_max_real:+.4f} -> "
            f"{'stable' if self.per_mode_stable else 'UNSTABLE'}",
            f"full {2 * self.n_nodes}x{2 * self.n_nodes} Jacobian: max Re over attractors = "
            f"{self.max_real:+.4f} -> {'stable' if self.full_stable else 'UNSTABLE'} "
            f"({'agrees' if self.agree else 'DISAGREES'} with the per-mode criterion)",
            f"excitatory part: per mode max J_11 = {self.per_mode_max_real_x:+.4f}, "
            f"full J_xx max Re = {self.max_real_x:+.4f}",
            "target  residual   newton  shift      max Re J   max Re J_xx",
        ]
        for a in self.attractors:
            lines.append(
                f"{a.target:6d}  {a.residual:9.2e}  {'yes' if a.newton_converged else 'no ':3s}"
                f"     {a.shift:9.2e}  {a.max_real:+.4f}    {a.max_real_x:+.4f}"
            )
        lines.append(
            f"basins (horizon {self.horizon:g}, tolerance {self.tolerance:.3g} RMS): "
            "noise -> returned / other attractor / elsewhere"
        )
        for b in self.basins:
            lines.append(
                f"  {b.noise:6.3f} -> {b.returned:.3f} / {b.other_attractor:.3f} / {b.elsewhere:.3f}"
            )
        if self.images is not None:
            i = self.images
            lines.append(
                f"test states (n = {i.n}): converged to the label's attractor {i.converged_to_label:.3f}, "
                f"to another {i.converged_to_other:.3f}, elsewhere {i.elsewhere:.3f}"
            )
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The certificate
# --------------------------------------------------------------------------------------------
def _excitatory_entry(mu: np.ndarray, x: float, y: float, p: WCParams) -> np.ndarray:
    """J_11(mu) = -alpha_E - F_E(s) + (1 - x) F_E'(s) (w_EE + mu) of one node at coupling input 0."""
    t = np.tanh(p.beta_E * (p.w_EE * x - p.w_EI * y + p.h_E))
    F, dF = p.offset_E + p.amplitude_E * t, p.amplitude_E * p.beta_E * (1 - t * t)
    return -p.alpha_E - F + (1 - x) * dF * (p.w_EE + np.asarray(mu))


def _newton(
    net: WilsonCowanNetwork, A: torch.Tensor, x: torch.Tensor, y: torch.Tensor, iterations: int
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Newton's method on G(z) = 0 from (x, y); returns the last iterate and whether it converged."""
    n = x.shape[0]
    gamma = float(net.gamma)
    for _ in range(iterations):
        gx, gy = net.rhs(x[None], y[None], A)
        g = torch.cat([gx[0], gy[0]])
        if not torch.isfinite(g).all():
            return x, y, False
        if float(g.abs().max()) < 1e-11:
            return x, y, True
        J = coupled_jacobian(A, net.Gamma, gamma, net.params, x, y)
        step = torch.linalg.solve(J, g)
        x, y = x - step[:n], y - step[n:]
    gx, gy = net.rhs(x[None], y[None], A)
    return x, y, float(torch.cat([gx[0], gy[0]]).abs().max()) < 1e-11


def _max_real(J: torch.Tensor, n: int) -> tuple[float, float]:
    """(largest real eigenvalue part of J, of its excitatory block J_xx). When the block J_yx is
    exactly zero (w_IE = 0) J is block upper-triangular and its spectrum is that of J_xx with
    the diagonal of J_yy: the same exact answer from an N x N instead of a 2N x 2N problem."""
    max_real_x = float(torch.linalg.eigvals(J[:n, :n]).real.max())
    if bool((J[n:, :n] == 0).all()):
        return max(max_real_x, float(torch.linalg.eigvals(J[n:, n:]).real.max())), max_real_x
    return float(torch.linalg.eigvals(J).real.max()), max_real_x


def _per_mode(net: WilsonCowanNetwork, mu: np.ndarray, gamma: float) -> tuple[float, float]:
    """The paper's per-mode criterion over the modes ``mu`` and both node states: max Re s_+-,
    and the largest excitatory entry J_11(mu)."""
    states = net.states
    per_mode = max(
        float(np.max(max_real_part(mu, x, states.y_star, net.params, gamma)))
        for x in (states.xbar1, states.xbar2)
    )
    per_mode_x = max(
        float(np.max(_excitatory_entry(mu, x, states.y_star, net.params)))
        for x in (states.xbar1, states.xbar2)
    )
    return per_mode, per_mode_x


def _attractor_checks(
    net: WilsonCowanNetwork, A: torch.Tensor, gamma: float, newton_iterations: int
) -> tuple[list[AttractorCheck], list[torch.Tensor]]:
    """The linearisation at every target's attractor (Newton-refined), and the attractors' x."""
    checks, fixed_x = [], []
    for k in range(net.n_classes):
        x0, y0 = (t[0] for t in net.target_state(k))
        gx, gy = net.rhs(x0[None], y0[None], A)
        residual = float(torch.cat([gx[0], gy[0]]).abs().max())
        x, y, ok = _newton(net, A, x0, y0, newton_iterations)
        if not ok:
            x, y = x0, y0
        J = coupled_jacobian(A, net.Gamma, gamma, net.params, x, y)
        max_real, max_real_x = _max_real(J, net.n_nodes)
        shift = float((x - x0).abs().max()) if ok else math.nan
        checks.append(AttractorCheck(k, residual, ok, shift, max_real, max_real_x))
        fixed_x.append(x)
    return checks, fixed_x


@dataclass
class _SpectralChecks:
    """What both certificates open with: gamma, mu = Gamma * lambda, the per-mode criterion
    (its largest real part and where) and the full check of each Newton-refined attractor."""

    gamma: float
    mu: np.ndarray
    per_mode: float
    per_mode_x: float
    checks: list[AttractorCheck]
    fixed_x: list[torch.Tensor]


def _spectral_checks(net: WilsonCowanNetwork, newton_iterations: int) -> _SpectralChecks:
    """The spectral part of a certificate of ``net`` (float64, CPU); ValueError, saying why,
    where gamma is not positive or the coupling holds NaN or inf."""
    gamma = float(net.gamma.detach())
    if not gamma > 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    with torch.no_grad():
        A = net.coupling.matrix()
        if not torch.isfinite(A).all():
            raise ValueError("the coupling matrix A holds NaN or inf; the model is unusable")
        mu = (net.Gamma * net.coupling.spectrum()).numpy()
        per_mode, per_mode_x = _per_mode(net, mu, gamma)
        checks, fixed_x = _attractor_checks(net, A, gamma, newton_iterations)
    return _SpectralChecks(gamma, mu, per_mode, per_mode_x, checks, fixed_x)


def final_stability(model: nn.Module, newton_iterations: int = 30) -> dict[str, Any] | None:
    """A short certificate of a trained model, for its training record (None for a model that
    holds no Wilson-Cowan network): the largest mu = Gamma * lambda against the per-mode bound
    (:func:`~wcbook.stability.stable_mu_bound`), the paper's per-mode criterion and the largest
    real eigenvalue part of the full 2N x 2N Jacobian over the (Newton-refined) attractors."""
    if not any(isinstance(m, WilsonCowanNetwork) for m in model.modules()):
        return None
    net = copy.deepcopy(_as_network(model)).double().cpu()
    try:
        core = _spectral_checks(net, newton_iterations)
    except ValueError:
        return None
    return {
        "mu_max": float(core.mu.max()),
        "mu_bound": stable_mu_bound(net.params),
        "per_mode_max_real": core.per_mode,
        "max_real": max(c.max_real for c in core.checks),
        "residual_max": max(c.residual for c in core.checks),
        "full_stable": all(c.stable for c in core.checks),
    }


def _rms_distances(x: torch.Tensor, attractors: torch.Tensor) -> torch.Tensor:
    """RMS distance (over nodes) of every state (B, N) to every attractor (K, N): (B, K)."""
    return (x[:, None, :] - attractors[None]).square().mean(dim=2).sqrt()


def _outcomes(
    final: torch.Tensor, attractors: torch.Tensor, own: torch.Tensor, tolerance: float
) -> tuple[float, float, float]:
    """Fractions (own attractor, another attractor, none) of the final states."""
    d = _rms_distances(final, attractors)
    d = torch.where(torch.isfinite(d), d, torch.full_like(d, math.inf))
    nearest = d.argmin(dim=1)
    close = d.min(dim=1).values <= tolerance
    n = max(final.shape[0], 1)
    own_frac = float((close & (nearest == own)).sum()) / n
    other_frac = float((close & (nearest != own)).sum()) / n
    return own_frac, other_frac, 1.0 - own_frac - other_frac


def _basin_checks(
    net: nn.Module, attractors: torch.Tensor, noise_levels: Sequence[float], samples: int,
    T: float, dt: float, tolerance: float, seed: int,
) -> list[BasinCheck]:
    """Where ``samples`` noisy copies of each target go, per noise level (x and y perturbed by
    Gaussian noise of that standard deviation, clamped to [0, 1])."""
    generator = torch.Generator().manual_seed(seed)
    basins = []
    own = torch.arange(net.n_classes).repeat_interleave(samples)
    for noise in noise_levels:
        x0, y0 = net.target_state(own)
        x0 = (x0 + noise * torch.randn(x0.shape, generator=generator, dtype=x0.dtype)).clamp(0, 1)
        y0 = (y0 + noise * torch.randn(y0.shape, generator=generator, dtype=y0.dtype)).clamp(0, 1)
        final, _ = net.integrate(x0, y0, T=T, dt=dt)
        basins.append(BasinCheck(float(noise), *_outcomes(final, attractors, own, tolerance)))
    return basins


def _check_request(
    n_nodes: int,
    images: torch.Tensor | None,
    labels: torch.Tensor | None,
    noise_levels: Sequence[float],
    samples: int,
    newton_iterations: int,
) -> None:
    """Raise ValueError, saying what to pass instead, on arguments :func:`certify` cannot use."""
    if samples < 1 or newton_iterations < 1:
        raise ValueError("samples and newton_iterations must be positive integers")
    if any(not (math.isfinite(s) and s >= 0) for s in noise_levels):
        raise ValueError(f"noise levels must be finite and non-negative, got {list(noise_levels)}")
    if (images is None) != (labels is None):
        raise ValueError("pass images and labels together (or neither)")
    if images is not None and (images.ndim != 2 or images.shape[1] != n_nodes):
        raise ValueError(
            f"images must be flattened initial states of shape (B, {n_nodes}), "
            f"got {tuple(images.shape)}"
        )
    if labels is not None and labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")


def certify(
    model: nn.Module,
    images: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    *,
    noise_levels: Sequence[float] = (0.01, 0.03, 0.1, 0.3),
    samples: int = 20,
    T: float | None = None,
    dt: float | None = None,
    tolerance: float | None = None,
    newton_iterations: int = 30,
    seed: int = 0,
) -> Certificate:
    """The stability certificate of a trained network (see the module docstring).

    ``model``: a :class:`~wcbook.models.WilsonCowanNetwork` or any model holding one (a
    :class:`~wcbook.models.WilsonCowanClassifier`, an encoder + Wilson-Cowan model): the first
    network among its modules is certified. ``images`` (B, N) are initial states x(0) = y(0)
    (flattened test images for the from-scratch model; for a model with a front end, its
    outputs), with ``labels`` (B,); both optional. ``noise_levels``: standard
    deviations of the Gaussian noise added to x and y of each target (the result clamped to
    [0, 1]), ``samples`` perturbations per target and level. ``T``/``dt``: horizon and step of the
    basin integrations (default: the evaluation horizon and step of the first
    WilsonCowanClassifier in ``model``, else 40 and 0.1).
    ``tolerance``: the RMS distance (over nodes) to an attractor that counts as reached
    (default: a tenth of xbar2 - xbar1).
    """
    net = copy.deepcopy(_as_network(model)).double().cpu()
    default_T, default_dt = _horizon(model)
    T = float(default_T if T is None else T)
    dt = float(default_dt if dt is None else dt)
    check_time(T, dt)
    _check_request(net.n_nodes, images, labels, noise_levels, samples, newton_iterations)
    states = net.states
    tolerance = 0.1 * (states.xbar2 - states.xbar1) if tolerance is None else float(tolerance)
    core = _spectral_checks(net, newton_iterations)
    gamma, mu = core.gamma, core.mu
    edges = tuple(
        float(stability_interval(x, states.y_star, net.params, gamma).sup)
        for x in (states.xbar1, states.xbar2)
    )
    with torch.no_grad():
        attractors = torch.stack(core.fixed_x)
        basins = _basin_checks(net, attractors, noise_levels, samples, T, dt, tolerance, seed)

        image_check = None
        if images is not None:
            final, _ = net.integrate(images.double().cpu(), T=T, dt=dt)
            image_check = ImageCheck(
                images.shape[0], *_outcomes(final, attractors, labels.cpu(), tolerance)
            )

    return Certificate(
        n_nodes=net.n_nodes,
        n_classes=net.n_classes,
        gamma=gamma,
        Gamma=float(net.Gamma),
        mu_range=(float(mu.min()), float(mu.max())),
        mu_edges=edges,
        per_mode_max_real=core.per_mode,
        per_mode_max_real_x=core.per_mode_x,
        attractors=tuple(core.checks),
        basins=tuple(basins),
        images=image_check,
        horizon=T,
        tolerance=tolerance,
    )
