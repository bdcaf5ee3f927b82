"""The right-hand side G(z) of the Wilson-Cowan equations and an explicit Euler integrator.

For node i with excitatory rate x_i and inhibitory rate y_i (paper, eqs. 1-2):

    dx_i/dt = -alpha_E x_i + (1 - x_i) F_E(w_EE x_i - w_EI y_i + h_E + c_i)
    dy_i/dt = ( -alpha_I y_i + (1 - y_i) F_I(w_IE x_i - w_II y_i + h_I) ) / gamma

where c_i = Gamma (A x)_i is the coupling input. :func:`node_rhs` writes these equations once, for
any array type (torch tensors or SymPy expressions); everything else in the package calls it.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from .params import WCParams

Firing = Callable[[Any], Any]
Rhs = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def firing_functions(p: WCParams, tanh: Callable[[Any], Any]) -> tuple[Firing, Firing]:
    """F_E and F_I of the parameter object ``p``, built with the given ``tanh``."""

    def F_E(s: Any) -> Any:
        return p.offset_E + p.amplitude_E * tanh(p.beta_E * s)

    def F_I(s: Any) -> Any:
        return p.offset_I + p.amplitude_I * tanh(p.beta_I * s)

    return F_E, F_I


def node_rhs(
    x: Any, y: Any, c: Any, p: WCParams, gamma: Any, F_E: Firing, F_I: Firing
) -> tuple[Any, Any]:
    """(dx/dt, dy/dt) of one node, or element-wise of many, given the coupling input ``c``."""
    s_E = p.w_EE * x - p.w_EI * y + p.h_E + c
    s_I = p.w_IE * x - p.w_II * y + p.h_I
    dx = -p.alpha_E * x + (1 - x) * F_E(s_E)
    dy = (-p.alpha_I * y + (1 - y) * F_I(s_I)) / gamma
    return dx, dy


def wc_rhs(
    x: torch.Tensor,
    y: torch.Tensor,
    p: WCParams,
    gamma: torch.Tensor | float,
    coupling_input: torch.Tensor | float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """G(z) for a batch of states ``x``, ``y`` of shape (batch, N), in PyTorch.

    ``coupling_input`` is Gamma * (A x), already computed (0 for uncoupled nodes).
    """
    F_E, F_I = firing_functions(p, torch.tanh)
    return node_rhs(x, y, coupling_input, p, gamma, F_E, F_I)


def n_steps(T: float, dt: float) -> int:
    """Number of Euler steps floor(T / dt), robust to float rounding (2.5 / 0.1 gives 25)."""
    check_time(T, dt)
    return int(math.floor(T / dt + 1e-9))


def check_time(T: float, dt: float) -> None:
    """Raise a clear error unless 0 < dt and 0 <= T are finite numbers."""
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"the time step dt must be a positive finite number, got {dt!r}")
    if not (isinstance(T, (int, float)) and math.isfinite(T) and T >= 0):
        raise ValueError(f"the horizon T must be a non-negative finite number, got {T!r}")


def check_state(x: torch.Tensor, y: torch.Tensor, n_nodes: int | None = None) -> None:
    """Raise a clear error if ``x``/``y`` are not finite (batch, N) tensors of the same shape."""
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 2:
            raise ValueError(
                f"{name} must have shape (batch, N), got {tuple(t.shape)}; "
                "flatten images first and add a batch dimension for a single state"
            )
        if n_nodes is not None and t.shape[1] != n_nodes:
            raise ValueError(f"{name} has {t.shape[1]} nodes per state, the network has {n_nodes}")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise ValueError("the state contains NaN or infinite values; check the input data")


def euler(
    rhs: Rhs,
    x0: torch.Tensor,
    y0: torch.Tensor,
    T: float,
    dt: float,
    *,
    backward: bool = False,
    return_trajectory: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrate dz/dt = G(z) with explicit Euler for floor(T/dt) steps.

    With ``backward=True`` it integrates dz/dtau = -G(z) instead, which runs the dynamics back in
    time (the paper's Fig. 8). Returns the final ``(x, y)``, or with ``return_trajectory=True`` the
    whole trajectories, of shape (steps + 1, batch, N), starting with the initial state.
    """
    steps = n_steps(T, dt)
    h = -dt if backward else dt
    x, y = x0, y0
    xs, ys = [x], [y]
    for _ in range(steps):
        dx, dy = rhs(x, y)
        x = x + h * dx
        y = y + h * dy
        if return_trajectory:
            xs.append(x)
            ys.append(y)
    if return_trajectory:
        return torch.stack(xs), torch.stack(ys)
    return x, y
