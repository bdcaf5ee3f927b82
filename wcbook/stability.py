"""Fixed points of a single node and their linear stability, derived with SymPy.

Fixed points are found numerically from the equations in :mod:`wcbook.dynamics` (never typed in).
The 2x2 Jacobian of the paper's eqs. (6)-(8) is derived symbolically from the *same*
:func:`~wcbook.dynamics.node_rhs` the torch code integrates: a perturbation along an eigenvector of A
with eigenvalue lambda changes the coupling input by Gamma * lambda * dx, so

    J = dG/d(x, y) + dG/dc * [Gamma lambda, 0]

evaluated at c = 0 (a planted target is in the kernel of A). Because J depends on Gamma and lambda
only through mu = Gamma * lambda, stability is a property of mu; :func:`stability_interval` gives the
exact set of real mu where both eigenvalues s_+- have negative real part.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import sympy as sp

from .dynamics import firing_functions, node_rhs
from .params import WCParams

#: Symbols of the state, the coupling and the eigenvalue variable.
x_sym, y_sym = sp.symbols("x y", real=True)
c_sym = sp.Symbol("c", real=True)
Gamma_sym = sp.Symbol(r"\Gamma", positive=True)
lam_sym = sp.Symbol(r"\lambda", real=True)
mu_sym = sp.Symbol(r"\mu", real=True)
s_sym = sp.Symbol("s")


# --------------------------------------------------------------------------------------------
# Fixed points of one uncoupled node
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FixedPoint:
    """A fixed point (x, y) of one uncoupled node with the eigenvalues of its Jacobian."""

    x: float
    y: float
    eigenvalues: tuple[complex, complex]

    @property
    def stable(self) -> bool:
        """True when both eigenvalues have negative real part."""
        return max(e.real for e in self.eigenvalues) < 0


@dataclass(frozen=True)
class BistableStates:
    """The two stable excitatory states xbar1 < xbar2, the unstable one, and y*."""

    xbar1: float
    xbar2: float
    x_unstable: float
    y_star: float


def _bisect(f: Any, lo: np.ndarray, hi: np.ndarray, iterations: int = 80) -> np.ndarray:
    """Vectorised bisection for roots of ``f`` with f(lo) and f(hi) of opposite sign."""
    f_lo = f(lo)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        f_mid = f(mid)
        same = np.sign(f_mid) == np.sign(f_lo)
        lo = np.where(same, mid, lo)
        f_lo = np.where(same, f_mid, f_lo)
        hi = np.where(same, hi, mid)
    return 0.5 * (lo + hi)


def _numpy_rhs(p: WCParams, gamma: float) -> Any:
    F_E, F_I = firing_functions(p, np.tanh)
    return lambda x, y: node_rhs(x, y, 0.0, p, gamma, F_E, F_I)


def y_nullcline(x: np.ndarray | float, p: WCParams = WCParams()) -> np.ndarray:
    """The y with dy/dt = 0 at each x (unique in (0, 1) when F_I takes values in (0, 1))."""
    rhs = _numpy_rhs(p, 1.0)
    x = np.asarray(x, dtype=float)
    lo, hi = np.zeros_like(x), np.ones_like(x)
    g_lo, g_hi = rhs(x, lo)[1], rhs(x, hi)[1]
    if np.any(g_lo <= 0) or np.any(g_hi >= 0):
        raise ValueError(
            "dy/dt does not change sign on 0 <= y <= 1; the inhibitory firing function must take "
            "values in (0, 1) (check f_I1, f_I2 and the reading)"
        )
    return _bisect(lambda y: rhs(x, y)[1], lo, hi)


def x_nullcline(y: np.ndarray | float, x: np.ndarray | float, p: WCParams = WCParams()) -> np.ndarray:
    """dx/dt on a grid, whose zero level set is the x-nullcline (for contour plots)."""
    return _numpy_rhs(p, 1.0)(np.asarray(x, float), np.asarray(y, float))[0]


def node_fixed_points(
    p: WCParams = WCParams(), x_range: tuple[float, float] = (-3.0, 3.0), grid: int = 60001
) -> list[FixedPoint]:
    """All fixed points of one uncoupled node with x in ``x_range``, sorted by x.

    On the y-nullcline y(x) the fixed points are the roots of dx/dt(x, y(x)); sign changes on a
    fine grid are refined by bisection to machine precision.
    """
    rhs = _numpy_rhs(p, float(p.gamma))

    def g(x: np.ndarray) -> np.ndarray:
        return rhs(x, y_nullcline(x, p))[0]

    xs = np.linspace(*x_range, grid)
    values = g(xs)
    idx = np.nonzero(np.sign(values[:-1]) * np.sign(values[1:]) <= 0)[0]
    idx = idx[values[idx] != 0] if len(idx) else idx
    roots = _bisect(g, xs[idx], xs[idx + 1]) if len(idx) else np.array([])
    exact = xs[values == 0]
    roots = np.unique(np.concatenate([roots, exact]))
    points = []
    for x in roots:
        y = float(y_nullcline(x, p))
        eig = node_eigenvalues(float(x), y, 0.0, p, float(p.gamma))
        points.append(FixedPoint(float(x), y, eig))
    return points


def bistable_states(p: WCParams = WCParams()) -> BistableStates:
    """xbar1 < xbar2 (stable), the unstable state between them, and y*; error if not bistable."""
    points = node_fixed_points(p)
    stable = [fp for fp in points if fp.stable]
    unstable = [fp for fp in points if not fp.stable]
    if len(stable) != 2 or len(unstable) != 1:
        raise ValueError(
            f"expected two stable and one unstable fixed point, found {len(stable)} stable and "
            f"{len(unstable)} unstable for {p}; the node is not bistable with these parameters"
        )
    return BistableStates(stable[0].x, stable[1].x, unstable[0].x, stable[0].y)


# --------------------------------------------------------------------------------------------
# The symbolic Jacobian
# --------------------------------------------------------------------------------------------
def symbolic_rhs(p: WCParams, abstract_firing: bool = False) -> sp.Matrix:
    """G(x, y; c) as a SymPy column, with parameter symbols from ``p.symbolic()``.

    With ``abstract_firing`` the firing functions stay undefined functions F_E, F_I (for display,
    as in the paper); otherwise they are the tanh functions of the chosen reading.
    """
    ps = p.symbolic()
    gamma = ps.gamma
    if abstract_firing:
        F_E, F_I = sp.Function("F_E"), sp.Function("F_I")
    else:
        F_E, F_I = firing_functions(ps, sp.tanh)
    dx, dy = node_rhs(x_sym, y_sym, c_sym, ps, gamma, F_E, F_I)
    return sp.Matrix([dx, dy])


def symbolic_jacobian(p: WCParams = WCParams(), abstract_firing: bool = False) -> sp.Matrix:
    """The 2x2 Jacobian of eqs. (6)-(8) for a mode with eigenvalue lambda of A, at c = 0."""
    G = symbolic_rhs(p, abstract_firing)
    J = G.jacobian([x_sym, y_sym]) + G.diff(c_sym) * sp.Matrix([[Gamma_sym * lam_sym, 0]])
    return J.subs(c_sym, 0)


def characteristic_polynomial(J: sp.Matrix) -> sp.Expr:
    """det(s I - J) as a polynomial in s."""
    return sp.expand((s_sym * sp.eye(2) - J).det())


def eigenvalue_expressions(J: sp.Matrix) -> tuple[sp.Expr, sp.Expr]:
    """``s_+`` and ``s_-`` = (tr J +- sqrt(tr^2 J - 4 det J)) / 2."""
    tr, det = J.trace(), J.det()
    root = sp.sqrt(tr**2 - 4 * det)
    return (tr + root) / 2, (tr - root) / 2


def _jacobian_in_mu(p: WCParams) -> sp.Matrix:
    """J with the constants of ``p`` substituted, in the symbols x, y, mu and gamma."""
    ps = p.symbolic()
    subs = {k: v for k, v in p.substitutions(ps).items() if k != ps.gamma}
    return symbolic_jacobian(p).subs(Gamma_sym * lam_sym, mu_sym).subs(subs)


def _mu_args(p: WCParams) -> tuple[sp.Symbol, ...]:
    return (x_sym, y_sym, mu_sym, p.symbolic().gamma)


@lru_cache(maxsize=16)
def _numeric_trace_det(p: WCParams) -> tuple[Any, Any]:
    """tr J and det J as numpy functions of (x, y, mu, gamma) for the constants of ``p``."""
    J = _jacobian_in_mu(p)
    return (
        sp.lambdify(_mu_args(p), J.trace(), "numpy"),
        sp.lambdify(_mu_args(p), sp.expand(J.det()), "numpy"),
    )


@lru_cache(maxsize=16)
def numeric_jacobian(p: WCParams) -> Any:
    """J as a numpy function of (x, y, mu, gamma), mu = Gamma * lambda, returning a 2x2 array."""
    return sp.lambdify(_mu_args(p), _jacobian_in_mu(p), "numpy")


def node_eigenvalues(
    x: float, y: float, mu: complex, p: WCParams = WCParams(), gamma: float | None = None
) -> tuple[complex, complex]:
    """``s_+`` and ``s_-`` at (x, y) for a mode with Gamma * lambda = ``mu``."""
    s = _eigenvalues(np.asarray(mu), x, y, p, p.gamma if gamma is None else gamma)
    return complex(s[0]), complex(s[1])


def _eigenvalues(mu: np.ndarray, x: float, y: float, p: WCParams, gamma: float) -> np.ndarray:
    trace, det = _numeric_trace_det(p)
    tr = trace(x, y, mu, gamma) + 0j * mu
    dt = det(x, y, mu, gamma) + 0j * mu
    root = np.sqrt(tr * tr - 4 * dt)
    return np.stack([(tr + root) / 2, (tr - root) / 2])


def max_real_part(
    mu: np.ndarray | float, x: float, y: float, p: WCParams = WCParams(), gamma: float | None = None
) -> np.ndarray:
    """max Re s_+- at (x, y) as a function of mu = Gamma * lambda (vectorised over ``mu``)."""
    mu = np.asarray(mu, dtype=complex)
    return _eigenvalues(mu, x, y, p, p.gamma if gamma is None else gamma).real.max(axis=0)


def stability_interval(
    x: float, y: float, p: WCParams = WCParams(), gamma: float | None = None
) -> sp.Set:
    """The exact set of real mu = Gamma * lambda where the state (x, y) is linearly stable.

    For a real 2x2 matrix both eigenvalues have negative real part exactly when tr J < 0 and
    det J > 0; both are polynomials in mu, and SymPy solves the two inequalities.
    """
    gamma = p.gamma if gamma is None else gamma
    values = {p.symbolic().gamma: float(gamma), x_sym: float(x), y_sym: float(y)}
    J = _jacobian_in_mu(p).subs(values)
    tr, det = sp.expand(J.trace()), sp.expand(J.det())
    on_trace = sp.solve_univariate_inequality(tr < 0, mu_sym, relational=False)
    on_det = sp.solve_univariate_inequality(det > 0, mu_sym, relational=False)
    return sp.Intersection(on_trace, on_det)


def lambda_interval(mu_set: sp.Set, n_nodes: int, p: WCParams = WCParams()) -> sp.Set:
    """The stable set in lambda itself for a network of ``n_nodes`` (mu divided by Gamma)."""
    Gamma = p.coupling_factor(n_nodes)
    return sp.imageset(sp.Lambda(mu_sym, mu_sym / sp.Float(Gamma)), mu_set)


def jacobian_for_display(p: WCParams = WCParams()) -> sp.Matrix:
    """The Jacobian written as in the paper: F_E(s_E), F_E'(s_E), F_I(s_I), F_I'(s_I)."""
    ps = p.symbolic()
    s_E, s_I = sp.symbols("s_E s_I", real=True)
    names = {"F_E": (s_E, sp.Function("F_E"), sp.Function(r"F_E^{\prime}")),
             "F_I": (s_I, sp.Function("F_I"), sp.Function(r"F_I^{\prime}"))}

    def prime(e: sp.Subs) -> sp.Expr:
        s, _, dF = names[e.expr.expr.func.__name__]
        return dF(s)

    J = symbolic_jacobian(p, abstract_firing=True)
    J = J.replace(lambda e: isinstance(e, sp.Subs), prime)
    arg_E = ps.w_EE * x_sym - ps.w_EI * y_sym + ps.h_E
    arg_I = ps.w_IE * x_sym - ps.w_II * y_sym + ps.h_I
    return J.subs({names["F_E"][1](arg_E): names["F_E"][1](s_E),
                   names["F_I"][1](arg_I): names["F_I"][1](s_I)})


@lru_cache(maxsize=16)
def stable_mu_bound(p: WCParams = WCParams()) -> float:
    """The largest mu = Gamma * lambda below which a mode is stable at *both* stable states.

    It is the smaller of the upper edges of :func:`stability_interval` at xbar1 and xbar2 (each
    interval is a half-line: tr J and det J are linear in mu). With w_IE = 0 the edges do not
    depend on gamma, so the initial gamma of ``p`` is used.
    """
    states = bistable_states(p)
    edges = [float(stability_interval(x, states.y_star, p).sup) for x in (states.xbar1, states.xbar2)]
    return min(edges)


def euler_gamma_floor(p: WCParams = WCParams(), dt: float = 0.1) -> float:
    """The smallest gamma at which one explicit Euler step of size ``dt`` keeps the inhibitory
    equation stable at every rate y in [0, 1].

    With w_IE = 0 the inhibitory rate obeys dy/dt = g(y) / gamma on its own, with
    g(y) = -alpha_I y + (1 - y) F_I(h_I - w_II y). An Euler step multiplies a deviation by
    1 + dt g'(y) / gamma, which stays within [-1, 1] when gamma >= dt L / 2, L the largest
    absolute value of g'(y) on [0, 1] (found on a fine grid). Raises ValueError when w_IE is not
    0 (then y is not alone).
    """
    if float(p.w_IE) != 0.0:
        raise ValueError("the Euler floor of gamma assumes w_IE = 0 (the inhibitory rate alone)")
    y = np.linspace(0.0, 1.0, 100001)
    _, F_I = firing_functions(p, np.tanh)
    s_I = float(p.h_I) - float(p.w_II) * y
    slope = float(p.amplitude_I) * float(p.beta_I) * (1.0 - np.tanh(float(p.beta_I) * s_I) ** 2)
    derivative = -float(p.alpha_I) - F_I(s_I) - (1.0 - y) * slope * float(p.w_II)
    return dt * float(np.abs(derivative).max()) / 2.0
