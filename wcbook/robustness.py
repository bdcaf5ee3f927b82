"""How robust are the trained classifiers, and does the Wilson-Cowan dynamics matter?

A trained model is read from exported weights, ``models/<run>/<profile>/seed<k>.safetensors``
(:func:`wcbook.weights.export_weights` writes them with a JSON note beside them,
:func:`wcbook.weights.load_weights` rebuilds the model from the registered experiment and that
file), and is evaluated on the test images of its profile under

- Gaussian pixel noise of standard deviation sigma (:data:`NOISE_SIGMAS`), clipped to [0, 1];
- occlusion: one square patch per image at a random place set to 0, of side 4, 8, 12 and 16 pixels
  on 28 x 28 images (:data:`OCCLUSION_SIDES_28`), scaled by side / 28 on smaller images (2, 4, 6, 8
  on the 14 x 14 images of the midscale profile);
- white-box L-infinity attacks, FGSM and PGD (:func:`fgsm_accuracy`, :func:`pgd_fooled`), whose
  gradient runs through the Euler integration the model is evaluated with (its engine, whose
  adjoint gives the gradient with respect to the initial state, and its dt), up to the training
  horizon T_train or the evaluation horizon T_eval (:class:`Settings`; at T_eval the states sit
  on attractors and the gradient says little), an image counting as fooled when its class at
  T_eval changes; :func:`gradient_horizon_sweep` compares the horizons;
- the smallest PGD radius that changes the class of each image, found by bisection
  (:func:`min_pgd_epsilon`), whose histogram shows the size of the basins;
- and, for the Wilson-Cowan network, the accuracy and the fraction of states within 10% of the
  targets' separation from a target at horizons T = 0 ... 40 (:func:`horizon_curve`); T = 0 is the
  same distance readout applied to the initial state: the image itself, or for an encoder in front
  of the dynamics (the CNN of Table 3, :class:`PixelWilsonCowan`) the encoder's output z; for
  such a model the readout on z alone (:class:`InitialReadout`) is also attacked, FGSM and PGD.

Every perturbation is drawn from a generator seeded by the evaluation seed and the level, so two
models evaluated on the same images (a Wilson-Cowan network and its MLP baseline) see the same
noise, patches and PGD starts. :func:`evaluate_run` writes one record per model,
``<folder>/<run>/<profile>/seed<k>.json``: the command line writes to ``<out>/robustness`` (the
working folder of :mod:`wcbook.folders`), or with ``--publish`` to the repository's
``robustness/`` (beside ``results/``, whose readers take every JSON file under it for a training
record); :func:`validate_record` checks one.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import nn

from .data import flatten_images, load_images
from .experiments import NATIVE_SIZE, ExperimentConfig, get_profile
from .folders import Folders, add_output_arguments, folders_from_args, published, working
from .training import Split, device_name, git_commit, load_trained
from .weights import (
    MAX_WEIGHTS_BYTES,
    export_weights,
    load_weights,
    model_bytes,
    run_config,
    weights_path,
)

__all__ = [
    "NOISE_SIGMAS",
    "OCCLUSION_SIDES_28",
    "Settings",
    "weights_path",
    "record_path",
    "export_weights",
    "load_weights",
    "gaussian_noise",
    "occlude",
    "occlusion_sides",
    "accuracy",
    "fgsm_accuracy",
    "pgd_fooled",
    "min_pgd_epsilon",
    "horizon_curve",
    "gradient_horizon_sweep",
    "evaluate_model",
    "evaluate_run",
    "validate_record",
    "has_dynamics",
    "load_record",
    "recorded_runs",
    "overview_row",
    "load_test_split",
    "run_config",
    "class_logits",
    "PixelInput",
    "PixelWilsonCowan",
    "InitialReadout",
    "on_pixels",
    "accuracy_mask",
    "add_arguments",
    "models_folder",
    "export_for_attack",
    "run",
]

SCHEMA = "wcbook.robustness/1"
#: Standard deviations of the Gaussian pixel noise.
NOISE_SIGMAS = (0.0, 0.1, 0.2, 0.3, 0.5)
#: Sides of the occluding patch on 28 x 28 images (0: no patch).
OCCLUSION_SIDES_28 = (0, 4, 8, 12, 16)
_LABEL_NOTES = {
    "midscale": "midscale profile: 14 x 14 images, 20 epochs; not the paper's scale",
    "midscale-encoded": "midscale-encoded profile: 28 x 28 images, stage 1 for 1 epoch and "
                        "stage 2 for 5; not the paper's scale",
    "paper": "paper profile: 28 x 28 images, the paper's epochs",
}


@dataclass(frozen=True)
class Settings:
    """What an evaluation runs: the levels of each perturbation and how many test images.

    ``n_test`` (None: the whole test split) images serve the noise, occlusion and horizon curves;
    the first ``n_attack`` of them the attacks (FGSM, PGD with ``pgd_steps`` steps of size
    2.5 eps / steps from a random start, and the bisection for the smallest flipping radius,
    ``bisection_rounds`` halvings of [0, ``eps_max``]). ``horizons`` are the evaluation horizons of
    the Wilson-Cowan network; ``seed`` seeds every perturbation.

    The attacks on a Wilson-Cowan network differentiate the Euler integration up to the training
    horizon T_train (``gradient="train"``) or up to the evaluation horizon T_eval (``"eval"``);
    either way an image counts as fooled when the class read at T_eval changes. With ``"train"``
    FGSM (on the attacked images) and PGD (radii ``eval_gradient_pgd_eps`` on the first
    ``eval_gradient_n``) are also run with the gradient through T_eval, as a check (unless the
    two horizons are one, as for the CNN of Table 3). The sweep
    runs PGD at radius ``sweep_eps`` on the first ``sweep_n`` images with the gradient through
    each horizon of ``sweep_horizons`` (the same random starts for every horizon).
    """

    seed: int = 0
    n_test: int | None = None
    n_attack: int = 1000
    noise_sigmas: tuple[float, ...] = NOISE_SIGMAS
    occlusion_sides_28: tuple[int, ...] = OCCLUSION_SIDES_28
    fgsm_eps: tuple[float, ...] = (0.0, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1)
    pgd_eps: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1)
    pgd_steps: int = 20
    eps_max: float = 0.2
    bisection_rounds: int = 5
    gradient: str = "train"
    eval_gradient_n: int = 100
    eval_gradient_pgd_eps: tuple[float, ...] = (0.02, 0.05, 0.1)
    sweep_n: int = 200
    sweep_eps: float = 0.02
    sweep_horizons: tuple[float, ...] = (1.0, 1.5, 2.5, 3.5, 5.0, 10.0, 20.0, 40.0)
    horizons: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.5, 3.5, 5.0, 10.0, 20.0, 40.0)
    batch_size: int = 250

    def __post_init__(self) -> None:
        if self.gradient not in ("train", "eval"):
            raise ValueError(f"gradient must be 'train' or 'eval', got {self.gradient!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable fields."""
        fields = dataclasses.asdict(self).items()
        return {k: list(v) if isinstance(v, tuple) else v for k, v in fields}


# ----------------------------------------------------------------------------------------------
# Exported weights
# ----------------------------------------------------------------------------------------------
def _split_run(run_id: str) -> tuple[str, str | None]:
    """(experiment id, variant) of a run name ``<id>`` or ``<id>+<variant>``."""
    experiment, _, variant = run_id.partition("+")
    return experiment, variant or None


def record_path(
    run_id: str, profile: str, seed: int, results_dir: str | Path = "robustness"
) -> Path:
    """``<results_dir>/<run>/<profile>/seed<k>.json``."""
    return Path(results_dir) / run_id / profile / f"seed{seed}.json"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------------------------
# Perturbations
# ----------------------------------------------------------------------------------------------
def _generator(seed: int, kind: str, level: int) -> torch.Generator:
    """A CPU generator seeded by the evaluation seed, the perturbation and its level index."""
    salt = int.from_bytes(hashlib.sha256(kind.encode()).digest()[:4], "big")
    return torch.Generator().manual_seed(seed * 1_000_003 + salt + 7919 * level)


def gaussian_noise(images: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """``images`` + sigma N(0, 1) noise, clipped to [0, 1]; sigma 0 returns a copy of ``images``."""
    if sigma == 0:
        return images.clone()
    noise = torch.randn(images.shape, generator=generator).to(images)
    return (images + sigma * noise).clamp(0.0, 1.0)


def occlude(images: torch.Tensor, side: int, generator: torch.Generator) -> torch.Tensor:
    """Flattened square ``images`` with one ``side`` x ``side`` patch per image, at a uniformly
    random place inside the image, set to 0; side 0 returns a copy."""
    n, pixels = images.shape
    width = math.isqrt(pixels)
    if width * width != pixels or not 0 <= side <= width:
        raise ValueError(f"a patch of side {side} does not fit {pixels}-pixel square images")
    if side == 0:
        return images.clone()
    corner = torch.randint(0, width - side + 1, (n, 2), generator=generator).to(images.device)
    grid = torch.arange(width, device=images.device)
    inside = [(grid >= corner[:, i, None]) & (grid < corner[:, i, None] + side) for i in (0, 1)]
    mask = (inside[0][:, :, None] & inside[1][:, None, :]).reshape(n, pixels)
    return images.masked_fill(mask, 0.0)


def occlusion_sides(width: int, sides_28: Sequence[int] = OCCLUSION_SIDES_28) -> list[int]:
    """The patch sides for ``width`` x ``width`` images: the 28 x 28 sides scaled by width / 28."""
    return [round(s * width / NATIVE_SIZE) for s in sides_28]


# ----------------------------------------------------------------------------------------------
# Evaluation and attacks
# ----------------------------------------------------------------------------------------------
class PixelInput(nn.Module):
    """A classifier on images ``(n, C, H, W)`` (an encoder model) seen as one on flattened pixels
    ``(n, C H W)``, the form every perturbation here works on; its outputs are unchanged."""

    def __init__(self, model: nn.Module, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.model = model
        self.shape = tuple(shape)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The model's output on ``images`` reshaped to ``(n, *shape)``."""
        return self.model(images.reshape(-1, *self.shape))


class PixelWilsonCowan(nn.Module):
    """An encoder in front of a Wilson-Cowan layer (:class:`~wcbook.encoded.EncodedWilsonCowan`,
    stage 2) seen as a Wilson-Cowan network on flattened pixels ``(n, C H W)``: the initial
    state is z = head(encoder(image)) (:meth:`initial_state`), and the horizons, readout and
    network are those of its dynamics, so every curve and attack here (gradients included) runs
    through the encoder and the Euler integration alike."""

    def __init__(self, model: nn.Module, shape: tuple[int, int, int]) -> None:
        super().__init__()
        if model.stage != 2:
            raise ValueError("the Wilson-Cowan layer runs in stage 2 only; set model.stage = 2")
        self.model = model
        self.shape = tuple(shape)

    @property
    def network(self) -> nn.Module:
        """The Wilson-Cowan network of the dynamics (its targets, its ``integrate``)."""
        return self.model.wc.network

    @property
    def dt(self) -> float:
        """The Euler step of the dynamics."""
        return self.model.wc.dt

    @property
    def engine(self) -> str:
        """How the dynamics integrate."""
        return self.model.engine

    @property
    def T_train(self) -> float:
        """The training horizon of the dynamics."""
        return self.model.wc.T_train

    @property
    def T_eval(self) -> float:
        """The evaluation horizon of the dynamics."""
        return self.model.wc.T_eval

    def initial_state(self, images: torch.Tensor) -> torch.Tensor:
        """z = head(encoder(image)) of ``images`` reshaped to ``(n, *shape)``: x(0) = y(0) = z."""
        return self.model.initial_state(images.reshape(-1, *self.shape))

    def forward(self, images: torch.Tensor, T: float | None = None) -> torch.Tensor:
        """x(T) from x(0) = y(0) = z (T defaults to the training horizon)."""
        return self.model.wc(self.initial_state(images), T)

    def distances(self, x: torch.Tensor) -> torch.Tensor:
        """The paper's normalised distances of states ``x`` to the targets, (batch, K)."""
        return self.model.wc.distances(x)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest target of states ``x``; -1 where not finite."""
        return self.model.wc.classify(x)


class InitialReadout(nn.Module):
    """The readout of a :class:`PixelWilsonCowan` applied to its initial state z, with no
    dynamics: the encoder and head alone, read by the distance to the targets (horizon 0). Its
    accuracy and attacks, beside the whole model's, say what the dynamics adds behind the
    encoder."""

    T_eval = 0.0

    def __init__(self, model: PixelWilsonCowan) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, T: float | None = None) -> torch.Tensor:
        """z of ``images`` (``T`` is ignored: nothing is integrated)."""
        return self.model.initial_state(images)

    def distances(self, x: torch.Tensor) -> torch.Tensor:
        """The paper's normalised distances of ``x`` to the targets, (batch, K)."""
        return self.model.distances(x)


def on_pixels(model: nn.Module, config: ExperimentConfig) -> nn.Module:
    """``model`` ready for flattened pixels: an encoder model wrapped in :class:`PixelInput` (its
    softmax twin) or :class:`PixelWilsonCowan` (an encoder in front of a Wilson-Cowan layer), one
    grey channel of ``config.side`` pixels a side; a network on pixels unchanged. ValueError for
    colour images."""
    if config.model != "encoded":
        return model
    if config.dataset not in ("mnist", "fashion"):
        raise ValueError(f"{config.id}: only grey 28 x 28 images (MNIST, Fashion) are evaluated")
    shape = (1, config.side, config.side)
    return PixelWilsonCowan(model, shape) if hasattr(model, "wc") else PixelInput(model, shape)


def _initial_state(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """x(0) = y(0) of the dynamics for ``images``: the image itself for a network on pixels, the
    encoder's z for :class:`PixelWilsonCowan`."""
    return model.initial_state(images) if isinstance(model, PixelWilsonCowan) else images


def _has_targets(model: nn.Module) -> bool:
    return hasattr(model, "distances") and hasattr(model, "T_eval")


def class_logits(
    model: nn.Module, images: torch.Tensor, T: float | None = None
) -> torch.Tensor:
    """Scores whose argmax is the model's class and whose softmax its class probabilities:
    -log d_k of x(T) for a network with planted targets (softmax gives the paper's q_k; T None:
    the evaluation horizon T_eval), the logits of a softmax classifier (T is ignored).
    Differentiable with respect to ``images``."""
    if _has_targets(model):
        x = model(images, model.T_eval if T is None else T)
        return -torch.log(model.distances(x).clamp_min(torch.finfo(x.dtype).tiny))
    return model(images)


def _classes(scores: torch.Tensor) -> torch.Tensor:
    """argmax of each row, -1 where a row holds NaN or inf (never a label)."""
    return scores.argmax(dim=1).masked_fill(~torch.isfinite(scores).all(dim=1), -1)


@contextlib.contextmanager
def _frozen(model: nn.Module) -> Iterator[None]:
    """Eval mode and no parameter gradients inside the block; both restored after it."""
    flags = [p.requires_grad for p in model.parameters()]
    was_training = model.training
    model.eval().requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        model.train(was_training)


def _batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


@torch.no_grad()
def accuracy(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 250
) -> float:
    """Fraction of ``images`` whose class (:func:`class_logits`) is the label."""
    with _frozen(model):
        correct = sum(
            int((_classes(class_logits(model, images[s])) == labels[s]).sum())
            for s in _batches(len(labels), batch)
        )
    return correct / max(len(labels), 1)


def _input_gradient(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, T: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(classes at the evaluation horizon, gradient of the summed cross-entropy of
    :func:`class_logits` at horizon ``T``) at ``images``; one integration when T is T_eval."""
    inputs = images.detach().clone().requires_grad_(True)
    scores = class_logits(model, inputs, T)
    loss = nn.functional.cross_entropy(scores, labels, reduction="sum")
    (grad,) = torch.autograd.grad(loss, inputs)
    if T is None or not _has_targets(model) or T == model.T_eval:
        return _classes(scores.detach()), grad
    with torch.no_grad():
        return _classes(class_logits(model, images)), grad


def fgsm_accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: Sequence[float],
    batch: int = 250,
    gradient_T: float | None = None,
) -> tuple[list[float], float]:
    """(accuracy on x + eps sign(grad), clipped to [0, 1], for each eps; the fraction of images
    whose input gradient is exactly zero, which FGSM cannot move). The gradient is that of
    :func:`class_logits` at horizon ``gradient_T`` (None: T_eval); the accuracy is always judged
    at T_eval. One gradient per image serves every eps; eps 0 gives the clean accuracy."""
    correct = torch.zeros(len(eps), dtype=torch.long)
    zero_grad = 0
    with _frozen(model):
        for s in _batches(len(labels), batch):
            _, grad = _input_gradient(model, images[s], labels[s], gradient_T)
            zero_grad += int((grad.abs().amax(dim=1) == 0).sum())
            with torch.no_grad():
                for i, e in enumerate(eps):
                    adv = (images[s] + e * grad.sign()).clamp(0.0, 1.0)
                    correct[i] += int((_classes(class_logits(model, adv)) == labels[s]).sum())
    n = max(len(labels), 1)
    return [int(c) / n for c in correct], zero_grad / n


def _pgd_batch(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: torch.Tensor,
    steps: int,
    generator: torch.Generator,
    gradient_T: float | None,
) -> torch.Tensor:
    """PGD on one batch with per-image radii ``eps`` (batch, 1); True where some iterate (or the
    clean image) is misclassified. Images drop out of the computation once fooled."""
    start = (2 * torch.rand(images.shape, generator=generator) - 1).to(images)
    delta = (images + eps * start).clamp(0.0, 1.0) - images
    step_size = 2.5 * eps / steps
    with torch.no_grad():
        fooled = _classes(class_logits(model, images)) != labels
    for _ in range(steps):
        idx = (~fooled).nonzero().squeeze(1)
        if idx.numel() == 0:
            return fooled
        classes, grad = _input_gradient(model, images[idx] + delta[idx], labels[idx], gradient_T)
        fooled[idx] |= classes != labels[idx]
        moved = delta[idx] + step_size[idx] * grad.sign()
        moved = torch.maximum(torch.minimum(moved, eps[idx]), -eps[idx])
        delta[idx] = (images[idx] + moved).clamp(0.0, 1.0) - images[idx]
    idx = (~fooled).nonzero().squeeze(1)
    with torch.no_grad():
        fooled[idx] |= _classes(class_logits(model, images[idx] + delta[idx])) != labels[idx]
    return fooled


def pgd_fooled(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float | torch.Tensor,
    *,
    steps: int = 20,
    generator: torch.Generator,
    batch: int = 250,
    gradient_T: float | None = None,
) -> torch.Tensor:
    """L-infinity PGD (random start in the ball, ``steps`` signed-gradient steps of 2.5 eps /
    steps, projection onto the ball and [0, 1]) on the cross-entropy of :func:`class_logits` at
    horizon ``gradient_T`` (None: T_eval). ``eps``: one radius or one per image. Returns a
    boolean per image: misclassified (judged at T_eval) at the clean image or at some iterate;
    the robust accuracy is the fraction of False."""
    radii = torch.as_tensor(eps, dtype=images.dtype, device=images.device)
    radii = radii.expand(len(labels)).reshape(-1, 1).clone()
    with _frozen(model):
        parts = [
            _pgd_batch(model, images[s], labels[s], radii[s], steps, generator, gradient_T)
            for s in _batches(len(labels), batch)
        ]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.bool)


def min_pgd_epsilon(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    eps_max: float,
    rounds: int,
    steps: int = 20,
    seed: int = 0,
    batch: int = 250,
    gradient_T: float | None = None,
) -> torch.Tensor:
    """Per image, the smallest L-infinity radius at which PGD (:func:`pgd_fooled`, gradient at
    horizon ``gradient_T``) found a misclassified input, by bisection of [0, eps_max] (``rounds``
    halvings; the value is the upper end, where a flip was found): 0 for images misclassified
    already, inf where PGD at eps_max found none."""
    n = len(labels)
    low = torch.zeros(n, dtype=images.dtype)
    high = torch.full((n,), float(eps_max), dtype=images.dtype)
    found = pgd_fooled(
        model, images, labels, high, steps=steps, generator=_generator(seed, "min-eps", 0),
        batch=batch, gradient_T=gradient_T,
    ).cpu()
    clean_wrong = torch.tensor(accuracy_mask(model, images, labels, batch)).logical_not()
    high[~found] = math.inf
    idx = (found & ~clean_wrong).nonzero().squeeze(1)
    for r in range(rounds if idx.numel() else 0):
        mid = (low[idx] + high[idx]) / 2
        fooled = pgd_fooled(
            model, images[idx], labels[idx], mid.to(images.device), steps=steps,
            generator=_generator(seed, "min-eps", r + 1), batch=batch, gradient_T=gradient_T,
        ).cpu()
        high[idx] = torch.where(fooled, mid, high[idx])
        low[idx] = torch.where(fooled, low[idx], mid)
    return high.masked_fill(clean_wrong, 0.0)


@torch.no_grad()
def accuracy_mask(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 250
) -> list[bool]:
    """Per image, whether its class (:func:`class_logits`) is the label."""
    with _frozen(model):
        masks = [
            (_classes(class_logits(model, images[s])) == labels[s]).cpu()
            for s in _batches(len(labels), batch)
        ]
    return torch.cat(masks).tolist() if masks else []


@torch.no_grad()
def horizon_curve(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    horizons: Sequence[float],
    batch: int = 250,
) -> dict[str, Any]:
    """Accuracy of the distance readout on x(T) for each horizon T (0: on the initial state, the
    image itself or an encoder's z), the fraction of states within 10% of the targets' smallest
    separation from the nearest target, and from the label's target. One integration per batch,
    continued from horizon to horizon."""
    network = model.network
    dt = model.dt
    marks = sorted({round(float(T) / dt) for T in horizons})
    targets = network.targets
    separation = float(torch.pdist(targets).min())
    counts = torch.zeros(3, len(marks), dtype=torch.long)
    with _frozen(model):
        for s in _batches(len(labels), batch):
            x = y = _initial_state(model, images[s])
            done = 0
            for j, mark in enumerate(marks):
                if mark > done:
                    x, y = network.integrate(
                        x, y, T=(mark - done) * dt, dt=dt, validate=False, engine=model.engine
                    )
                    done = mark
                distance = torch.cdist(x, targets)
                counts[0, j] += int((model.classify(x) == labels[s]).sum())
                counts[1, j] += int((distance.min(dim=1).values < 0.1 * separation).sum())
                own = distance.gather(1, labels[s, None]).squeeze(1)
                counts[2, j] += int((own < 0.1 * separation).sum())
    n = max(len(labels), 1)
    fractions = (counts.double() / n).tolist()
    return {
        "n": len(labels),
        "T": [round(m * dt, 6) for m in marks],
        "accuracy": fractions[0],
        "within_10pct": fractions[1],
        "within_10pct_of_label": fractions[2],
        "target_separation": separation,
        "initial_state": "encoder output z" if isinstance(model, PixelWilsonCowan) else "image",
    }


def _noise_and_occlusion(
    model: nn.Module, test: Split, settings: Settings, width: int
) -> dict[str, Any]:
    """The noise and occlusion curves on the ``test`` images."""
    noise = [
        accuracy(
            model,
            gaussian_noise(test.images, sigma, _generator(settings.seed, "noise", i)),
            test.labels,
            settings.batch_size,
        )
        for i, sigma in enumerate(settings.noise_sigmas)
    ]
    sides = occlusion_sides(width, settings.occlusion_sides_28)
    occluded = [
        accuracy(
            model,
            occlude(test.images, side, _generator(settings.seed, "occlusion", i)),
            test.labels,
            settings.batch_size,
        )
        for i, side in enumerate(sides)
    ]
    return {
        "noise": {"n": len(test), "sigma": list(settings.noise_sigmas), "accuracy": noise},
        "occlusion": {
            "n": len(test),
            "side_28": list(settings.occlusion_sides_28),
            "side": sides,
            "image_side": width,
            "accuracy": occluded,
        },
    }


def _attack_curves(
    model: nn.Module,
    attack: Split,
    settings: Settings,
    pgd_eps: Sequence[float],
    gradient_T: float | None,
) -> dict[str, Any]:
    """FGSM on all ``attack`` images and PGD at radii ``pgd_eps`` on them, gradient at
    ``gradient_T``."""
    n, batch = len(attack), settings.batch_size
    fgsm, zero_grad = fgsm_accuracy(
        model, attack.images, attack.labels, settings.fgsm_eps, batch, gradient_T
    )
    pgd = []
    for i, eps in enumerate(pgd_eps):
        fooled = pgd_fooled(
            model, attack.images, attack.labels, eps, steps=settings.pgd_steps,
            generator=_generator(settings.seed, "pgd", i), batch=batch, gradient_T=gradient_T,
        )
        pgd.append(1.0 - float(fooled.double().mean()))
    return {
        "fgsm": {"n": n, "eps": list(settings.fgsm_eps), "accuracy": fgsm,
                 "zero_gradient_fraction": zero_grad},
        "pgd": {"n": len(attack), "eps": list(pgd_eps), "steps": settings.pgd_steps,
                "step_size": "2.5 eps / steps", "random_start": True, "accuracy": pgd},
    }


def _gradient_note(model: nn.Module, T: float) -> str:
    encoder = "the encoder and " if isinstance(model, PixelWilsonCowan) else ""
    return (
        f"through {encoder}the {model.engine!r} Euler integration (dt = {model.dt:g}) up to T = {T:g} "
        f"({round(T / model.dt)} steps); fooled means misclassified at T_eval = {model.T_eval:g}"
    )


def _attacks(model: nn.Module, attack: Split, settings: Settings) -> dict[str, Any]:
    """The attack curves and the smallest flipping radii on the ``attack`` images; for a
    Wilson-Cowan network attacked through T_train, the check through T_eval."""
    wc = _has_targets(model)
    gradient_T = model.T_train if wc and settings.gradient == "train" else None
    out = _attack_curves(model, attack, settings, settings.pgd_eps, gradient_T)
    out["gradient"] = (
        _gradient_note(model, gradient_T or model.T_eval) if wc else "through the network"
    )
    radii = min_pgd_epsilon(
        model, attack.images, attack.labels, eps_max=settings.eps_max,
        rounds=settings.bisection_rounds, steps=settings.pgd_steps, seed=settings.seed,
        batch=settings.batch_size, gradient_T=gradient_T,
    )
    out["min_eps"] = {
        "n": len(attack),
        "eps_max": settings.eps_max,
        "rounds": settings.bisection_rounds,
        "resolution": settings.eps_max / 2**settings.bisection_rounds,
        "values": [None if math.isinf(v) else round(v, 6) for v in radii.tolist()],
    }
    out["eval_gradient"] = None
    if gradient_T is not None and gradient_T != model.T_eval:
        check = _attack_curves(model, attack, settings, (), None)
        k = settings.eval_gradient_n
        few = Split(attack.images[:k], attack.labels[:k])
        check["pgd"] = _attack_curves(
            model, few, dataclasses.replace(settings, fgsm_eps=()), settings.eval_gradient_pgd_eps,
            None,
        )["pgd"]
        check["gradient"] = _gradient_note(model, model.T_eval)
        out["eval_gradient"] = check
    return out


def gradient_horizon_sweep(
    model: nn.Module, attack: Split, settings: Settings
) -> dict[str, Any]:
    """PGD accuracy (judged at T_eval) at radius ``settings.sweep_eps`` on the first
    ``settings.sweep_n`` images, with the gradient through each of ``settings.sweep_horizons``."""
    k = settings.sweep_n
    images, labels = attack.images[:k], attack.labels[:k]
    accuracies = []
    for T in settings.sweep_horizons:
        fooled = pgd_fooled(
            model, images, labels, settings.sweep_eps, steps=settings.pgd_steps,
            generator=_generator(settings.seed, "pgd-sweep", 0), batch=settings.batch_size,
            gradient_T=T,
        )
        accuracies.append(1.0 - float(fooled.double().mean()))
    return {"n": len(labels), "eps": settings.sweep_eps, "steps": settings.pgd_steps,
            "T": list(settings.sweep_horizons), "accuracy": accuracies}


def evaluate_model(
    model: nn.Module, config: ExperimentConfig, test: Split, settings: Settings
) -> dict[str, Any]:
    """Every curve of one model on the ``test`` images (the attacks on the first
    ``settings.n_attack`` of them): the ``results`` part of a record."""
    n_attack = min(settings.n_attack, len(test))
    attack = Split(test.images[:n_attack], test.labels[:n_attack])
    wc = _has_targets(model)
    out: dict[str, Any] = {"clean": {"n": len(test), "accuracy": accuracy(
        model, test.images, test.labels, settings.batch_size)}}
    out.update(_noise_and_occlusion(model, test, settings, config.side))
    out.update(_attacks(model, attack, settings))
    out["horizon"] = (
        horizon_curve(model, test.images, test.labels, settings.horizons, settings.batch_size)
        if wc
        else None
    )
    out["gradient_sweep"] = gradient_horizon_sweep(model, attack, settings) if wc else None
    out["without_dynamics"] = (
        _without_dynamics(InitialReadout(model), attack, settings)
        if isinstance(model, PixelWilsonCowan)
        else None
    )
    return out


def _without_dynamics(readout: nn.Module, attack: Split, settings: Settings) -> dict[str, Any]:
    """Clean accuracy, FGSM and PGD of the readout on z alone (:class:`InitialReadout`), on the
    ``attack`` images."""
    out = _attack_curves(readout, attack, settings, settings.pgd_eps, None)
    out["clean"] = {"n": len(attack), "accuracy": accuracy(
        readout, attack.images, attack.labels, settings.batch_size)}
    out["gradient"] = "through the encoder and head; the readout on z, no dynamics"
    return out


# ----------------------------------------------------------------------------------------------
# Records
# ----------------------------------------------------------------------------------------------
def load_test_split(config: ExperimentConfig, n: int | None = None) -> Split:
    """The first ``n`` (None: all) test images of ``config``'s data set at its image size,
    flattened, with their labels."""
    images, labels = load_images(config.dataset, "test", size=config.image_size)
    return Split(flatten_images(images[:n]), labels[:n])


def _exported_part_of(weights: Path) -> str:
    """The part an export saved (its note's ``part``: "model" or "dynamics"; "model" when the
    note is missing or older than the field)."""
    note = weights.with_suffix(".json")
    return json.loads(note.read_text()).get("part", "model") if note.exists() else "model"


def _weights_entry(weights: Path) -> dict[str, Any]:
    """The record's account of the weights evaluated: path, checksum, size, and whether they sit
    in the repository's committed ``models/`` (a model over 3 MiB never does)."""
    resolved = weights.resolve()
    committed = resolved.is_relative_to(published().models.resolve())
    return {"path": weights.as_posix(), "sha256": _sha256(weights),
            "bytes": weights.stat().st_size, "committed": committed}


def evaluate_run(
    run_id: str,
    profile: str,
    seed: int = 0,
    *,
    settings: Settings = Settings(),
    models_dir: str | Path = "models",
    results_dir: str | Path | None = "robustness",
) -> dict[str, Any]:
    """Evaluate the exported model of one run (:func:`load_weights`) on the CPU; return its
    record and, unless ``results_dir`` is None, write it to :func:`record_path`."""
    wall = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    commit, dirty = git_commit()  # the code as it starts: HEAD may move during a long run
    weights = weights_path(run_id, profile, seed, models_dir)
    part = _exported_part_of(weights)
    if part != "model":
        raise ValueError(
            f"{weights} holds the {part} part only (an encoder rebuilt around it would be "
            "untrained); export the whole model with --export-from"
        )
    model, config = load_weights(run_id, profile, seed, models_dir)
    model = on_pixels(model, config)
    results = evaluate_model(model, config, load_test_split(config, settings.n_test), settings)
    record = {
        "schema": SCHEMA,
        "run": run_id,
        "experiment": config.id,
        "variant": config.variant,
        "profile": profile,
        "seed": seed,
        "model": config.model,
        "scale": _LABEL_NOTES.get(profile, f"{profile} profile"),
        "weights": _weights_entry(weights),
        "settings": settings.to_dict(),
        "results": results,
        "commit": commit,
        "dirty": dirty,
        "device": device_name(torch.device("cpu")),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "started_utc": started,
        "wall_time_s": round(time.perf_counter() - wall, 1),
        "config": config.to_dict(),
        "profile_config": get_profile(profile).to_dict(),
    }
    validate_record(record)
    if results_dir is not None:
        path = record_path(run_id, profile, seed, results_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1) + "\n")
    return record


#: Provenance every record carries.
_PROVENANCE = ("commit", "dirty", "device", "torch_threads", "torch_version", "started_utc",
               "wall_time_s")


def _fail(where: str, why: str) -> None:
    raise ValueError(f"invalid robustness record: {where}: {why}")


def _check_curve(record: Mapping[str, Any], name: str, levels: str) -> None:
    """A curve ``name`` holds ``n`` > 0 and one accuracy in [0, 1] per level of ``levels``."""
    curve = record["results"].get(name)
    if not isinstance(curve, Mapping):
        _fail(name, "missing")
    if not isinstance(curve.get("n"), int) or curve["n"] < 1:
        _fail(name, f"n must be a positive integer, got {curve.get('n')!r}")
    values, level_list = curve.get("accuracy"), curve.get(levels)
    if not isinstance(values, list) or not isinstance(level_list, list):
        _fail(name, f"accuracy and {levels} must be lists")
    if len(values) != len(level_list):
        _fail(name, f"{len(values)} accuracies for {len(level_list)} levels")
    if not all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in values):
        _fail(name, "accuracies must lie in [0, 1]")


def has_dynamics(record: Mapping[str, Any]) -> bool:
    """Whether a record's model classifies through the Wilson-Cowan dynamics: a network on
    pixels, or an encoder whose readout is not the softmax twin's."""
    if record["model"] == "wc":
        return True
    options = record.get("config", {}).get("encoder_options") or {}
    return record["model"] == "encoded" and options.get("readout", "wc") != "softmax"


def validate_record(record: Mapping[str, Any]) -> None:
    """Raise ValueError naming the first problem of a robustness record, if any."""
    for key in ("schema", "run", "profile", "seed", "model", "scale", "weights", "results",
                "settings", "config", *_PROVENANCE):
        if key not in record:
            _fail(key, "missing")
    if not isinstance(record["seed"], int) or not isinstance(record["wall_time_s"], (int, float)):
        _fail("seed / wall_time_s", "must be an integer / a number")
    if record["schema"] != SCHEMA:
        _fail("schema", f"expected {SCHEMA!r}, got {record['schema']!r}")
    if not isinstance(record["results"], Mapping):
        _fail("results", "must be a mapping")
    for name, levels in (("noise", "sigma"), ("occlusion", "side"), ("fgsm", "eps"),
                         ("pgd", "eps")):
        _check_curve(record, name, levels)
    values = record["results"].get("min_eps", {}).get("values")
    if not isinstance(values, list) or len(values) != record["results"]["pgd"]["n"]:
        _fail("min_eps", "one value (or null) per attacked image expected")
    if any(v is not None and not (isinstance(v, (int, float)) and v >= 0) for v in values):
        _fail("min_eps", "radii must be non-negative numbers or null")
    horizon = record["results"].get("horizon")
    if has_dynamics(record):
        if not isinstance(horizon, Mapping):
            _fail("horizon", "a Wilson-Cowan record needs the horizon curve")
        _check_curve(record, "horizon", "T")
        _check_curve(record, "gradient_sweep", "T")
    elif horizon is not None:
        _fail("horizon", "only a Wilson-Cowan record has a horizon curve")
    without = record["results"].get("without_dynamics")
    if without is not None:
        for name, levels in (("fgsm", "eps"), ("pgd", "eps")):
            _check_curve({"results": without}, name, levels)


def load_record(
    run_id: str, profile: str, seed: int = 0, results_dir: str | Path = "robustness"
) -> dict[str, Any]:
    """A validated record of :func:`evaluate_run` read back from :func:`record_path`."""
    path = record_path(run_id, profile, seed, results_dir)
    if not path.exists():
        raise FileNotFoundError(f"no robustness record at {path}; run python -m wcbook.robustness")
    record = json.loads(path.read_text())
    validate_record(record)
    return record


def recorded_runs(
    wanted: Mapping[str, Mapping[str, tuple[str, str]]], seed: int = 0,
    results_dir: str | Path = "robustness",
) -> dict[str, dict[str, tuple[str, str]]]:
    """The part of ``wanted`` (data set -> model label -> (run, profile)) that has a robustness
    record of ``seed`` in ``results_dir``, in the same nesting and order."""
    return {data: {label: (run, profile) for label, (run, profile) in models.items()
                   if record_path(run, profile, seed, results_dir).exists()}
            for data, models in wanted.items()}


def overview_row(record: Mapping[str, Any], root: str | Path = ".") -> dict[str, Any]:
    """One line about an evaluated model: its image side, clean accuracy, how many images were
    evaluated and attacked, its weights' size in MiB and whether they are committed, and the
    commit. ``root`` is the repository the record's weight path is relative to (older records
    did not store the size)."""
    weights, clean = record["weights"], record["results"]["clean"]
    size = weights.get("bytes") or (Path(root) / weights["path"]).stat().st_size
    return {
        "image side": record["config"].get("image_size") or NATIVE_SIZE,
        "clean accuracy": clean["accuracy"],
        "test images": clean["n"],
        "attacked images": record["results"]["pgd"]["n"],
        "weights (MiB)": size / 2**20,
        "weights committed": weights.get("committed", weights["path"].startswith("models/")),
        "commit": record["commit"][:8],
    }


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m wcbook.robustness`` (and of ``wcbook robustness``)."""
    parser.add_argument("run", help="experiment id, or <id>+<variant>")
    parser.add_argument("--profile", required=True, help="profile the model was trained at")
    parser.add_argument("--seed", type=int, default=0, help="training seed of the model")
    add_output_arguments(parser)
    parser.add_argument(
        "--models-dir",
        default=None,
        help="folder of the exported weights (default <out>/models where the model is there, "
        "else the committed models/)",
    )
    parser.add_argument(
        "--results-dir", default=None, help="records here instead (default <out>/robustness)"
    )
    parser.add_argument("--n-test", type=int, default=None, help="test images (default: all)")
    parser.add_argument("--n-attack", type=int, default=1000, help="images attacked")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--export-from",
        metavar="CHECKPOINT_DIR",
        help="first export the weights of the finished run found in this checkpoint folder "
        "(into <out>/models, or models/ with --publish)",
    )


def models_folder(run_id: str, profile: str, seed: int, folders: Folders) -> Path:
    """Where to read a model's weights: the first of the command's ``models/``, the default
    working folder's (where a model too large to commit is kept) and the repository's committed
    ``models/`` that holds the whole model; else the first that holds any part of it (which
    :func:`evaluate_run` refuses), else the committed one."""
    candidates = [folders.models, working().models, published().models]
    held = [d for d in candidates if weights_path(run_id, profile, seed, d).exists()]
    whole = [d for d in held
             if _exported_part_of(weights_path(run_id, profile, seed, d)) == "model"]
    return (whole or held or [published().models])[0]


def export_for_attack(
    model: nn.Module, run_id: str, profile: str, seed: int, models_dir: Path, *, how: str,
    publish: bool,
) -> Path:
    """Export ``model`` so that it can be evaluated whole; return the folder holding it.

    A model within 3 MiB goes to ``models_dir``. A larger one goes whole (no size limit) to the
    default working folder when ``models_dir`` is the committed ``models/`` (``publish``), else
    to ``models_dir``; with ``publish`` its Wilson-Cowan part, if it has one, is still committed
    to ``models_dir`` as :func:`export_weights` always does."""
    if model_bytes(model) <= MAX_WEIGHTS_BYTES:
        export_weights(model, run_id, profile, seed, models_dir=models_dir, how=how)
        return models_dir
    whole_dir = working().models if publish else models_dir
    export_weights(model, run_id, profile, seed, models_dir=whole_dir, how=how, max_bytes=None)
    print(f"note: {run_id} takes {model_bytes(model)} bytes, over the {MAX_WEIGHTS_BYTES} of a "
          f"committed model; the whole model is kept in {whole_dir} (not committed)")
    if publish:
        with contextlib.suppress(ValueError):  # no Wilson-Cowan part: nothing to commit
            export_weights(model, run_id, profile, seed, models_dir=models_dir, how=how)
    return whole_dir


def run(args: argparse.Namespace) -> int:
    """Export (with ``--export-from``) and evaluate one model; print a summary. 0 on success,
    2 on a missing model or an unknown run."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    settings = Settings(seed=args.seed, n_test=args.n_test, n_attack=args.n_attack)
    folders = folders_from_args(args)
    results_dir = args.results_dir or folders.robustness
    try:
        models_dir = args.models_dir
        if args.export_from:
            experiment, variant = _split_run(args.run)
            model = load_trained(experiment, args.profile, args.seed, args.export_from,
                                 variant=variant)
            models_dir = export_for_attack(
                model, args.run, args.profile, args.seed, Path(models_dir or folders.models),
                how=f"wcbook.training.train, exported from {args.export_from}",
                publish=folders.publish and args.models_dir is None,
            )
        models_dir = models_dir or models_folder(args.run, args.profile, args.seed, folders)
        record = evaluate_run(args.run, args.profile, args.seed, settings=settings,
                              models_dir=models_dir, results_dir=results_dir)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    _summary(args, record)
    print(f"record: {record_path(args.run, args.profile, args.seed, results_dir)}")
    return 0


def _summary(args: argparse.Namespace, record: Mapping[str, Any]) -> None:
    """Print the clean accuracy and every curve of a robustness record."""
    results = record["results"]
    print(f"{args.run} [{record['scale']}] seed {args.seed}: clean "
          f"{results['clean']['accuracy']:.4f}")
    for name, levels in (("noise", "sigma"), ("occlusion", "side"), ("fgsm", "eps"),
                         ("pgd", "eps")):
        pairs = ", ".join(f"{lv:g}: {a:.4f}" for lv, a in
                          zip(results[name][levels], results[name]["accuracy"]))
        print(f"  {name} ({levels}) {pairs}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m wcbook.robustness``."""
    parser = argparse.ArgumentParser(
        prog="python -m wcbook.robustness", description=__doc__.splitlines()[0]
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
