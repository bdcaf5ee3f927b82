"""Networks of Wilson-Cowan nodes as torch modules."""

from __future__ import annotations

import torch
from torch import nn

from .coupling import SpectralCoupling, make_targets
from .dynamics import check_state, check_time, euler, wc_rhs
from .params import WCParams
from .stability import BistableStates, bistable_states


class WilsonCowanNetwork(nn.Module):
    """N coupled Wilson-Cowan nodes with K planted attractors.

    The trainable parts are the N - K free columns of Phi, their eigenvalues and gamma (the
    inhibitory time scale). ``targets`` holds the K planted excitatory states, shape (K, N).
    """

    def __init__(
        self,
        n_nodes: int,
        n_classes: int,
        params: WCParams = WCParams(),
        *,
        seed: int | None = None,
        learn_gamma: bool = True,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.params = params
        self.states: BistableStates = bistable_states(params)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        targets = make_targets(n_nodes, n_classes, self.states.xbar1, self.states.xbar2)
        self.register_buffer("targets", targets.to(dtype))
        self.coupling = SpectralCoupling(
            targets, params.eigenvalue_init_mean(n_nodes), generator=generator, dtype=dtype
        )
        gamma = torch.tensor(float(params.gamma), dtype=dtype)
        if learn_gamma:
            self.gamma = nn.Parameter(gamma)
        else:
            self.register_buffer("gamma", gamma)
        self.Gamma = params.coupling_factor(n_nodes)

    @property
    def n_nodes(self) -> int:
        """N."""
        return self.targets.shape[1]

    @property
    def n_classes(self) -> int:
        """K."""
        return self.targets.shape[0]

    def target_state(self, k: int | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The planted fixed point of class ``k``: (x = T_k, y = y* everywhere), batched."""
        x = self.targets[torch.as_tensor(k).reshape(-1)]
        return x, torch.full_like(x, self.states.y_star)

    def rhs(
        self, x: torch.Tensor, y: torch.Tensor, A: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """G(z) of the coupled network for states of shape (batch, N); pass A to reuse it."""
        A = self.coupling.matrix() if A is None else A
        return wc_rhs(x, y, self.params, self.gamma, self.Gamma * (x @ A.T))

    def integrate(
        self,
        x0: torch.Tensor,
        y0: torch.Tensor | None = None,
        *,
        T: float,
        dt: float = 0.1,
        backward: bool = False,
        return_trajectory: bool = False,
        validate: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Integrate from (x0, y0) for time T (y0 defaults to x0, the paper's initial condition).

        A is built once per call. ``validate`` checks shapes, finiteness and gamma > 0 first.
        """
        y0 = x0 if y0 is None else y0
        if validate:
            check_time(T, dt)
            check_state(x0, y0, self.n_nodes)
            if not bool(self.gamma > 0):
                raise ValueError(f"gamma must be positive, got {float(self.gamma.detach()):.4g}")
        A = self.coupling.matrix()
        return euler(
            lambda x, y: self.rhs(x, y, A),
            x0,
            y0,
            T,
            dt,
            backward=backward,
            return_trajectory=return_trajectory,
        )
