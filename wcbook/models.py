"""Networks of Wilson-Cowan nodes as torch modules, and the classifiers trained on images."""

from __future__ import annotations

import math

import torch
from torch import nn

from .coupling import SpectralCoupling, make_targets
from .dynamics import check_state, check_time, euler, wc_rhs
from .engine import integrate_fast
from .params import WCParams
from .stability import (BistableStates, bistable_states, euler_gamma_floor, stability_interval,
                        stable_mu_bound)

#: How a network integrates: ``"autograd"`` (:func:`wcbook.dynamics.euler`, autograd records every
#: step), ``"fast"`` (:func:`wcbook.engine.integrate_fast`: no graph, hand-derived adjoint) and
#: ``"compiled"`` (the engine with its element-wise work fused by torch.compile). All three give the
#: same numbers up to float rounding.
ENGINES = ("autograd", "fast", "compiled")


#: How far inside the per-mode stable region ``enforce_stable`` keeps every Gamma * lambda (in
#: units of mu), so that the bound is never reached even when softplus rounds to zero.
ENFORCED_MARGIN = 0.01


def check_engine(engine: str) -> str:
    """``engine`` if it is one of :data:`ENGINES`, else a ValueError listing them."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    return engine


class WilsonCowanNetwork(nn.Module):
    """N coupled Wilson-Cowan nodes with K planted attractors.

    The trainable parts are the N - K free columns of Phi, their eigenvalues and gamma (the
    inhibitory time scale). ``targets`` holds the K planted excitatory states, shape (K, N).

    Keyword-only switches for the ablations of App. E (defaults: the paper's model):
    ``learn_planted``, ``planted_init`` and ``planted_eigenvalue`` are passed to
    :class:`~wcbook.coupling.SpectralCoupling`; ``force_unstable`` keeps every trainable
    Gamma * lambda above :func:`unstable_mu`, outside the per-mode stable region of both states;
    ``enforce_stable`` keeps every trainable Gamma * lambda at least :data:`ENFORCED_MARGIN`
    below :func:`~wcbook.stability.stable_mu_bound`, inside it, whatever training does.
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
        learn_planted: bool = False,
        planted_eigenvalue: float = 0.0,
        force_unstable: bool = False,
        planted_init: str = "random",
        enforce_stable: bool = False,
    ) -> None:
        super().__init__()
        if force_unstable and enforce_stable:
            raise ValueError("force_unstable and enforce_stable exclude each other")
        self.params = params
        self.states: BistableStates = bistable_states(params)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        targets = make_targets(n_nodes, n_classes, self.states.xbar1, self.states.xbar2)
        self.register_buffer("targets", targets.to(dtype))
        Gamma = params.coupling_factor(n_nodes)
        floor = unstable_mu(params, self.states) / Gamma if force_unstable else None
        ceiling = (stable_mu_bound(params) - ENFORCED_MARGIN) / Gamma if enforce_stable else None
        self.coupling = SpectralCoupling(
            targets,
            params.eigenvalue_init_mean(n_nodes),
            generator=generator,
            dtype=dtype,
            learn_planted=learn_planted,
            planted_eigenvalue=planted_eigenvalue,
            eigenvalue_floor=floor,
            planted_init=planted_init,
            eigenvalue_ceiling=ceiling,
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

    @torch.no_grad()
    def diagnostics(self) -> dict[str, float]:
        """Where the spectrum sits against the stable region, and, for learned planted columns,
        how well they carry the targets: ``mu_max`` (the largest Gamma * lambda, planted ones
        included), ``stability_margin`` (:func:`~wcbook.stability.stable_mu_bound` minus
        ``mu_max``: negative once a mode leaves the per-mode stable region of either state) and
        :meth:`~wcbook.coupling.SpectralCoupling.planted_alignment`."""
        mu_max = float(self.Gamma * self.coupling.spectrum().max())
        out = {"mu_max": mu_max, "stability_margin": stable_mu_bound(self.params) - mu_max}
        if self.coupling.learn_planted:
            out.update(self.coupling.planted_alignment(self.targets))
        return out

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
        engine: str = "autograd",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Integrate from (x0, y0) for time T (y0 defaults to x0, the paper's initial condition).

        A is built once per call. ``validate`` checks shapes, finiteness and gamma > 0 first.
        ``engine`` (one of :data:`ENGINES`) picks the integrator of the forward-in-time final
        state; trajectories and backward integration always take the autograd path.
        """
        check_engine(engine)
        y0 = x0 if y0 is None else y0
        if validate:
            check_time(T, dt)
            check_state(x0, y0, self.n_nodes)
            if not bool(self.gamma > 0):
                raise ValueError(f"gamma must be positive, got {float(self.gamma.detach()):.4g}")
        A = self.coupling.matrix()
        if engine != "autograd" and not backward and not return_trajectory:
            compiled = engine == "compiled"
            return integrate_fast(
                x0, y0, A, self.gamma, self.Gamma, self.params, T, dt, compiled=compiled
            )
        return euler(
            lambda x, y: self.rhs(x, y, A),
            x0,
            y0,
            T,
            dt,
            backward=backward,
            return_trajectory=return_trajectory,
        )


def unstable_mu(params: WCParams, states: BistableStates | None = None) -> float:
    """The smallest real mu = Gamma * lambda at which a mode is unstable for *both* stable states.

    It is the larger of the two per-mode stability edges of
    :func:`wcbook.stability.stability_interval` (at the initial gamma; with w_IE = 0 the edges do
    not depend on gamma).
    """
    states = bistable_states(params) if states is None else states
    edges = [
        float(stability_interval(x, states.y_star, params).sup) for x in (states.xbar1, states.xbar2)
    ]
    if not all(math.isfinite(e) for e in edges):
        raise ValueError(f"the per-mode stable region of {params} has no finite upper edge")
    return max(edges)


def _invalid_parameter(module: nn.Module) -> str | None:
    """Name of the first trainable parameter of ``module`` holding NaN or inf, else None.

    One host synchronisation for all parameters together.
    """
    named = list(module.named_parameters())
    if not named:
        return None
    finite = torch.stack([torch.isfinite(p.detach()).all() for _, p in named]).cpu()
    for (name, _), ok in zip(named, finite.tolist()):
        if not ok:
            return f"parameter {name} contains NaN or inf"
    return None


def _mark_nonfinite(classes: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """Replace the class of every row of ``outputs`` holding NaN or inf by -1 (never a label)."""
    return classes.masked_fill(~torch.isfinite(outputs).all(dim=1), -1)


def _check_images(images: torch.Tensor, n_nodes: int) -> None:
    """Shape check only (no host synchronisation): images must be flattened, (batch, N)."""
    if images.ndim != 2 or images.shape[1] != n_nodes:
        raise ValueError(
            f"expected flattened images of shape (batch, {n_nodes}), got {tuple(images.shape)}; "
            "use wcbook.data.flatten_images"
        )


class WilsonCowanClassifier(nn.Module):
    """The paper's classifier: the image is the initial state, the planted attractor the answer.

    ``forward`` integrates from x(0) = y(0) = image for the training horizon ``T_train`` and returns
    x(T). A state is assigned to the target it is closest to in the paper's normalised distance
    d_k = ||x - T_k||^2 / (||x|| ||T_k||); ``predict`` integrates for the (usually longer)
    evaluation horizon ``T_eval`` (None: the same as ``T_train``). The loss is the mean squared
    error between x(T) and the target of the label, averaged over nodes and batch, as Keras' ``mse``
    does.

    ``ortho_factor`` weighs the authors' orthogonality regulariser on the trainable eigenvectors
    (:meth:`penalty`; the text cites orthogonality regularisation but gives no formula; 0 turns it
    off). ``engine`` (see :data:`ENGINES`; an attribute, so it can be switched on a trained model)
    says how ``forward`` integrates; the default, ``"fast"``, is the engine of
    :mod:`wcbook.engine`. ``learn_planted``, ``planted_init``, ``planted_eigenvalue``,
    ``force_unstable`` (the ablations of App. E) and ``enforce_stable`` go to
    :class:`WilsonCowanNetwork`; ``planted_lr`` (None: the experiment's rate) is the learning rate
    of learned planted columns (:meth:`learning_rates`). With ``gamma_floor`` the training loop
    keeps gamma at or above :func:`~wcbook.stability.euler_gamma_floor` after every step
    (:meth:`parameter_bounds`), where explicit Euler with step ``dt`` stays stable; the paper
    leaves gamma free.
    """

    def __init__(
        self,
        n_nodes: int,
        n_classes: int,
        params: WCParams = WCParams(),
        *,
        T_train: float = 2.5,
        T_eval: float | None = 40.0,
        dt: float = 0.1,
        ortho_factor: float = 0.01,
        seed: int | None = None,
        learn_gamma: bool = True,
        dtype: torch.dtype = torch.float32,
        engine: str = "fast",
        learn_planted: bool = False,
        planted_eigenvalue: float = 0.0,
        force_unstable: bool = False,
        planted_init: str = "random",
        enforce_stable: bool = False,
        planted_lr: float | None = None,
        gamma_floor: bool = False,
    ) -> None:
        super().__init__()
        check_time(T_train, dt)
        self.gamma_min = euler_gamma_floor(params, dt) if gamma_floor and learn_gamma else None
        if self.gamma_min is not None and not float(params.gamma) >= self.gamma_min:
            raise ValueError(f"gamma starts at {params.gamma}, below its Euler floor "
                             f"{self.gamma_min:.4g} for dt = {dt}")
        if planted_lr is not None and not (learn_planted and planted_lr > 0):
            raise ValueError("planted_lr needs learn_planted and a positive rate")
        if T_eval is not None:
            check_time(T_eval, dt)
        if not ortho_factor >= 0:
            raise ValueError(f"ortho_factor must be non-negative, got {ortho_factor!r}")
        self.network = WilsonCowanNetwork(
            n_nodes,
            n_classes,
            params,
            seed=seed,
            learn_gamma=learn_gamma,
            dtype=dtype,
            learn_planted=learn_planted,
            planted_eigenvalue=planted_eigenvalue,
            force_unstable=force_unstable,
            planted_init=planted_init,
            enforce_stable=enforce_stable,
        )
        self.planted_lr = planted_lr
        self.T_train = float(T_train)
        self.T_eval = float(T_train if T_eval is None else T_eval)
        self.dt = float(dt)
        self.ortho_factor = float(ortho_factor)
        self.engine = check_engine(engine)

    @property
    def n_nodes(self) -> int:
        """N, the number of pixels of a flattened image."""
        return self.network.n_nodes

    @property
    def n_classes(self) -> int:
        """K."""
        return self.network.n_classes

    @property
    def gamma(self) -> torch.Tensor:
        """The (trainable) inhibitory time scale."""
        return self.network.gamma

    def forward(self, images: torch.Tensor, T: float | None = None) -> torch.Tensor:
        """x(T) from x(0) = y(0) = ``images`` (batch, N); T defaults to the training horizon.

        Only the shape is checked, so that a training step never waits for the device; the
        training loop checks the data once and the loss once per epoch.
        """
        _check_images(images, self.n_nodes)
        x, _ = self.network.integrate(
            images,
            T=self.T_train if T is None else T,
            dt=self.dt,
            validate=False,
            engine=self.engine,
        )
        return x

    def distances(self, x: torch.Tensor) -> torch.Tensor:
        """d_k = ||x - T_k||^2 / (||x|| ||T_k||) for every state and target, shape (batch, K)."""
        targets = self.network.targets
        squared = (x.unsqueeze(1) - targets).square().sum(dim=2)
        norms = x.norm(dim=1, keepdim=True) * targets.norm(dim=1)
        return squared / norms

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """q_k = (1/d_k) / sum_j (1/d_j), shape (batch, K); rows sum to 1.

        Computed as softmax(-log d), which is the same number but stays finite when a state sits
        exactly on a target (d_k = 0 then gives q_k = 1).
        """
        d = self.distances(x).clamp_min(torch.finfo(x.dtype).tiny)
        return torch.softmax(-torch.log(d), dim=1)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Classes argmax_k q_k (= argmin_k d_k) of final states x; -1 where x is not finite."""
        return _mark_nonfinite(self.distances(x).argmin(dim=1), x)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, T: float | None = None) -> torch.Tensor:
        """Predicted classes of flattened images, integrating for T (default: ``T_eval``)."""
        return self.classify(self(images, self.T_eval if T is None else T))

    def loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean squared error between x(T) and the targets T_label (mean over nodes and batch)."""
        return nn.functional.mse_loss(x, self.network.targets[labels])

    def penalty(self) -> torch.Tensor:
        """``ortho_factor`` times the mean ``abs(cos)`` of the angles between distinct trainable
        columns of Phi.

        This is the quantity of the Keras ``OrthogonalRegularizer(mode="columns")`` the authors put
        on those columns: zero while they stay orthogonal, whatever their lengths. The trainable
        columns are the free ones, and with ``learn_planted`` the planted ones too.
        """
        coupling = self.network.coupling
        phi = coupling.phi() if coupling.learn_planted else coupling.phi_free
        if self.ortho_factor == 0 or phi.shape[1] < 2:
            return phi.new_zeros(())
        unit = phi / phi.norm(dim=0, keepdim=True)
        cosines = (unit.T @ unit).abs()
        n = cosines.shape[0]
        off_diagonal = cosines.sum() - cosines.diagonal().sum()
        return self.ortho_factor * off_diagonal / (n * (n - 1))

    def invalid_parameter(self) -> str | None:
        """Why the parameters are unusable (NaN/inf, or gamma outside (0, inf)), or None."""
        problem = _invalid_parameter(self)
        if problem is not None:
            return problem
        gamma = float(self.gamma.detach())
        if not gamma > 0:
            return f"gamma = {gamma:.4g} left (0, inf)"
        return None

    def parameter_bounds(self) -> dict[str, tuple[float | None, float | None]]:
        """Trained parameters (by name) that the training loop clamps into (low, high) after
        every optimiser step (None: unbounded): gamma at or above its Euler floor with
        ``gamma_floor``, nothing otherwise."""
        return {} if self.gamma_min is None else {"network.gamma": (self.gamma_min, None)}

    def phi_condition(self) -> float:
        """The condition number of Phi (largest over smallest singular value; Phi must be
        finite): how close A = Phi Lambda Phi^-1 is to needing an inverse that float32 cannot
        give accurately."""
        return float(torch.linalg.cond(self.network.coupling.phi().detach().double()))

    def learning_rates(self) -> dict[str, float]:
        """Parameters (by name) that train at their own learning rate: the learned planted
        columns when ``planted_lr`` is set; the others use the experiment's."""
        if self.planted_lr is None:
            return {}
        return {"network.coupling.phi_learned": self.planted_lr}

    def metrics(self) -> dict[str, float]:
        """Scalars recorded after every epoch and at the end: the learned gamma and
        :meth:`WilsonCowanNetwork.diagnostics` (the stability margin and, for learned planted
        columns, their alignment with the targets)."""
        return {"gamma": float(self.gamma.detach()), **self.network.diagnostics()}


class MLPClassifier(nn.Module):
    """The baseline of the paper's Table 2: one tanh hidden layer, linear output, softmax + CE.

    Weights start Glorot-uniform with zero biases, the Keras defaults the authors' baseline used.
    ``forward`` returns the K logits; the interface (``loss``, ``classify``, ``predict``) matches
    :class:`WilsonCowanClassifier` so one training loop serves both.
    """

    def __init__(
        self,
        n_inputs: int,
        n_classes: int,
        hidden: int = 784,
        *,
        seed: int | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.hidden = nn.Linear(n_inputs, hidden, dtype=dtype)
        self.output = nn.Linear(hidden, n_classes, dtype=dtype)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        for layer in (self.hidden, self.output):
            bound = math.sqrt(6.0 / (layer.in_features + layer.out_features))
            with torch.no_grad():
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.zero_()

    @property
    def n_nodes(self) -> int:
        """Number of inputs (pixels), named as in the Wilson-Cowan classifier."""
        return self.hidden.in_features

    @property
    def n_classes(self) -> int:
        """K."""
        return self.output.out_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (batch, K) of flattened images (batch, N)."""
        _check_images(images, self.n_nodes)
        return self.output(torch.tanh(self.hidden(images)))

    def classify(self, logits: torch.Tensor) -> torch.Tensor:
        """Class indices argmax of the logits; -1 where the logits are not finite."""
        return _mark_nonfinite(logits.argmax(dim=1), logits)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted classes of flattened images."""
        return self.classify(self(images))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Softmax cross-entropy, mean over the batch."""
        return nn.functional.cross_entropy(logits, labels)

    def penalty(self) -> torch.Tensor:
        """No regulariser: a zero added to the loss, so both models train with one loop."""
        return self.output.weight.new_zeros(())

    def invalid_parameter(self) -> str | None:
        """Why the parameters are unusable (NaN/inf), or None."""
        return _invalid_parameter(self)

    def metrics(self) -> dict[str, float]:
        """Scalars worth recording after training (none beyond accuracy for the MLP)."""
        return {}
