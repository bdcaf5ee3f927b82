"""Planted targets and the spectral coupling A = Phi Lambda Phi^-1 (paper, Sec. 2 and Fig. 4).

Target T_k (k = 0..K-1) has every entry at the high stable state xbar2 except the block
[k b, (k+1) b), b = floor(N / (K + 2)), which sits at the low state xbar1. The first K columns of Phi
are an orthonormal basis of the span of the targets (QR) and keep eigenvalue 0, so A T_k = 0 and each
target, with y = y* everywhere, is a fixed point of the coupled network. The other N - K columns and
their eigenvalues are trainable.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def block_size(n_nodes: int, n_classes: int) -> int:
    """b = floor(N / (K + 2)), the length of the low block of each target."""
    if n_classes < 1:
        raise ValueError(f"the number of classes K must be at least 1, got {n_classes}")
    b = n_nodes // (n_classes + 2)
    if b < 1 or n_classes >= n_nodes:
        raise ValueError(
            f"K = {n_classes} classes is too many for N = {n_nodes} nodes: each target needs a block "
            f"of floor(N/(K+2)) >= 1 nodes, so N must be at least K + 2 = {n_classes + 2}"
        )
    return b


def make_targets(n_nodes: int, n_classes: int, low: float, high: float) -> torch.Tensor:
    """The K planted targets as a (K, N) float64 tensor (rows are targets)."""
    b = block_size(n_nodes, n_classes)
    targets = torch.full((n_classes, n_nodes), float(high), dtype=torch.float64)
    for k in range(n_classes):
        targets[k, k * b : (k + 1) * b] = float(low)
    return targets


def inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    """theta with softplus(theta) = y, for y > 0, without overflow for large y."""
    return y + torch.log(-torch.expm1(-y))


def principal_cosines(columns: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cosines of the principal angles between span(columns) (N, K) and the span of the rows of
    ``targets`` (K, N), largest first: all 1 when the two spans coincide."""
    q_columns = torch.linalg.qr(columns.to(torch.float64))[0]
    q_targets = torch.linalg.qr(targets.T.to(torch.float64))[0]
    return torch.linalg.svdvals(q_columns.T @ q_targets).clamp(max=1.0)


def kernel_residuals(A: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``||A T_k|| / ||T_k||`` for every target (rows of ``targets``): 0 when T_k is in the
    kernel of A, ``abs(lambda)`` when T_k is an eigenvector of eigenvalue lambda."""
    t = targets.to(A.dtype)
    return (t @ A.T).norm(dim=1) / t.norm(dim=1)


def orthonormal_completion(basis: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """N - K orthonormal columns orthogonal to the K orthonormal columns of ``basis`` (N, K)."""
    n, k = basis.shape
    noise = torch.randn(n, n - k, dtype=basis.dtype, generator=generator)
    noise = noise - basis @ (basis.T @ noise)
    q, r = torch.linalg.qr(noise)
    return q * torch.sign(torch.diagonal(r)).unsqueeze(0)


#: Where learned planted columns start (see :class:`SpectralCoupling`).
PLANTED_INITS = ("random", "span")


def solve(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The solution of ``a x = b`` (``torch.linalg.solve_ex``, no check for a singular ``a``).

    On the CPU a batched solve (an ensemble's members under ``vmap``, or leading batch axes) runs
    its LU factorisation on one thread: with more, PyTorch's batched CPU factorisation of matrices
    above about 150 rows hangs or returns invalid pivots (MKL's "Parameter 6 was incorrect on
    entry to SLASWP", pytorch/pytorch#142815). Unbatched solves and other devices are untouched.
    """
    threads = torch.get_num_threads()
    batched = a.dim() > 2 or torch._C._functorch.is_batchedtensor(a)
    if a.device.type != "cpu" or threads == 1 or not batched:
        return torch.linalg.solve_ex(a, b)[0]
    torch.set_num_threads(1)
    try:
        return torch.linalg.solve_ex(a, b)[0]
    finally:
        torch.set_num_threads(threads)


class SpectralCoupling(nn.Module):
    """A = Phi diag(lambda) Phi^-1 with K fixed target directions of eigenvalue 0.

    Parameters
    ----------
    targets:
        (K, N) planted targets; their span gives the fixed columns of Phi.
    eig_mean, eig_std:
        initial trainable eigenvalues are drawn from N(eig_mean, eig_std^2).
    generator:
        torch random generator, for reproducible initialisation.

    Keyword-only switches change the construction for the paper's ablations (App. E) and for
    stability enforcement; their defaults give the model above, with the same parameters and the
    same random draws:

    ``learn_planted``
        the K planted columns are trainable (their eigenvalue stays ``planted_eigenvalue``); the
        targets are fixed points only while the columns span them.
    ``planted_init``
        where learned planted columns start: ``"random"`` (random orthonormal directions, the
        targets then have to be found by training) or ``"span"`` (the orthonormal basis of the
        targets' span the fixed model uses, so training starts from the paper's model).
    ``planted_eigenvalue``
        the eigenvalue of the K planted columns (0: the targets lie in the kernel of A).
    ``eigenvalue_floor``
        when a number, the trainable eigenvalues are ``floor + softplus(theta)`` with ``theta``
        trainable (stored as ``eigenvalue_excess``), so they can never go below the floor; they
        start near ``floor - eig_mean`` (as far above the floor as the default starts below 0).
    ``eigenvalue_ceiling``
        when a number, the trainable eigenvalues are ``ceiling - softplus(theta)`` with ``theta``
        trainable (stored as ``eigenvalue_slack``), so they stay below the ceiling whatever the
        optimiser does; they start at the same values as without it.
    """

    def __init__(
        self,
        targets: torch.Tensor,
        eig_mean: float,
        eig_std: float = 1.0,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        *,
        learn_planted: bool = False,
        planted_eigenvalue: float = 0.0,
        eigenvalue_floor: float | None = None,
        planted_init: str = "random",
        eigenvalue_ceiling: float | None = None,
    ) -> None:
        super().__init__()
        if targets.ndim != 2:
            raise ValueError(f"targets must have shape (K, N), got {tuple(targets.shape)}")
        if not math.isfinite(planted_eigenvalue):
            raise ValueError(f"planted_eigenvalue must be finite, got {planted_eigenvalue!r}")
        for name, bound in (("eigenvalue_floor", eigenvalue_floor),
                            ("eigenvalue_ceiling", eigenvalue_ceiling)):
            if bound is not None and not math.isfinite(bound):
                raise ValueError(f"{name} must be finite or None, got {bound!r}")
        if eigenvalue_floor is not None and eigenvalue_ceiling is not None:
            raise ValueError("set eigenvalue_floor or eigenvalue_ceiling, not both")
        if planted_init not in PLANTED_INITS:
            raise ValueError(
                f"planted_init must be one of {', '.join(PLANTED_INITS)}, got {planted_init!r}"
            )
        k, n = targets.shape
        block_size(n, k)
        q, r = torch.linalg.qr(targets.T.to(torch.float64))
        if torch.diagonal(r).abs().min() < 1e-10:
            raise ValueError("the targets are linearly dependent; they cannot span K directions")
        self.learn_planted = bool(learn_planted)
        self.planted_eigenvalue = float(planted_eigenvalue)
        self.eigenvalue_floor = None if eigenvalue_floor is None else float(eigenvalue_floor)
        self.eigenvalue_ceiling = None if eigenvalue_ceiling is None else float(eigenvalue_ceiling)
        if self.learn_planted and planted_init == "span":
            self.phi_learned = nn.Parameter(q.to(dtype))
            free = orthonormal_completion(q, generator)
        elif self.learn_planted:
            basis = orthonormal_completion(q.new_zeros(n, 0), generator)
            self.phi_learned = nn.Parameter(basis[:, :k].to(dtype))
            free = basis[:, k:]
        else:
            self.register_buffer("phi_fixed", q.to(dtype))
            free = orthonormal_completion(q, generator)
        eig = eig_mean + eig_std * torch.randn(n - k, dtype=torch.float64, generator=generator)
        self.phi_free = nn.Parameter(free.to(dtype))
        if self.eigenvalue_ceiling is not None:
            slack = (self.eigenvalue_ceiling - eig).clamp_min(1e-3)
            self.eigenvalue_slack = nn.Parameter(inverse_softplus(slack).to(dtype))
        elif self.eigenvalue_floor is None:
            self.eigenvalues = nn.Parameter(eig.to(dtype))
        else:
            # softplus(theta) = -eig: as far above the floor as the default starts below zero
            excess = (-eig).clamp_min(1e-3)
            self.eigenvalue_excess = nn.Parameter(torch.log(torch.expm1(excess)).to(dtype))

    @property
    def planted(self) -> torch.Tensor:
        """The K columns of Phi that carry the planted eigenvalue, shape (N, K)."""
        return self.phi_learned if self.learn_planted else self.phi_fixed

    @property
    def n_nodes(self) -> int:
        """N."""
        return self.planted.shape[0]

    @property
    def n_classes(self) -> int:
        """K."""
        return self.planted.shape[1]

    def phi(self) -> torch.Tensor:
        """Phi = [planted columns | trainable columns], shape (N, N)."""
        return torch.cat([self.planted, self.phi_free], dim=1)

    def free_eigenvalues(self) -> torch.Tensor:
        """The N - K trainable eigenvalues (above ``eigenvalue_floor`` or below
        ``eigenvalue_ceiling`` when one is set)."""
        if self.eigenvalue_ceiling is not None:
            return self.eigenvalue_ceiling - nn.functional.softplus(self.eigenvalue_slack)
        if self.eigenvalue_floor is None:
            return self.eigenvalues
        return self.eigenvalue_floor + nn.functional.softplus(self.eigenvalue_excess)

    def spectrum(self) -> torch.Tensor:
        """All N eigenvalues of A: K planted ones (0 by default) followed by the trainable ones."""
        free = self.free_eigenvalues()
        if self.planted_eigenvalue == 0:
            planted = free.new_zeros(self.n_classes)
        else:
            planted = free.new_full((self.n_classes,), self.planted_eigenvalue)
        return torch.cat([planted, free])

    def matrix(self) -> torch.Tensor:
        """A = Phi Lambda Phi^-1, computed with a linear solve instead of an explicit inverse.

        A^T = Phi^-T (Phi Lambda)^T, so A is the transpose of solve(Phi^T, (Phi Lambda)^T).
        The solve (:func:`solve`) does not check for a singular Phi, so building A never waits for
        the device (and can be captured in a CUDA graph); a singular Phi gives NaN/inf entries,
        which the training loop's divergence check reports.
        """
        phi = self.phi()
        return solve(phi.T, (phi * self.spectrum()).T).T

    @torch.no_grad()
    def planted_alignment(self, targets: torch.Tensor) -> dict[str, float]:
        """How far the planted columns are from carrying ``targets`` (K, N) as fixed points: the
        smallest principal-angle cosine between the columns and the targets' span, and the
        largest ||A T_k|| / ||T_k|| (1 and 0 for the paper's model)."""
        cosines = principal_cosines(self.planted, targets)
        residuals = kernel_residuals(self.matrix().to(torch.float64), targets)
        return {
            "planted_cosine_min": float(cosines.min()),
            "target_residual_max": float(residuals.max()),
        }
