"""The kinds of model an experiment trains, each declared once as a :class:`Kind`.

An :class:`~wcbook.experiments.ExperimentConfig` names its kind in ``model``: ``"wc"`` (the
Wilson-Cowan network on pixels, Tables 1-2, 6-7, App. E), ``"mlp"`` (the baseline of Table 2),
``"encoded"`` (an encoder in front of a Wilson-Cowan or softmax head, Tables 3-4) and ``"text"``
(IMDB, Table 5). A kind says how its model, data and optimiser are built and what the training
loop may do with it (stack members into an ensemble, capture a CUDA graph, shard a batch over
processes). The training loop (:mod:`wcbook.training`) reads only these answers: a new kind is a
new entry in :data:`KINDS`, and nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

from .data import COLOR_DATASETS, flatten_images, load_color_images, load_images

if TYPE_CHECKING:
    from .experiments import ExperimentConfig, Profile

__all__ = ["Kind", "KINDS", "Split", "kind_of"]


@dataclass(frozen=True)
class Split:
    """Inputs (images, features or token ids) and labels (n,) of one data split, on one device."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.labels.shape[0]


Splits = tuple[Split, Split]


#: What an optimiser is given: parameters, or parameter groups (dicts with their own ``lr``).
ParamsOrGroups = list[nn.Parameter] | list[dict]


def adam_options(device: torch.device) -> dict[str, bool]:
    """How Adam (and AdamW) run on ``device``: capturable on a GPU, so that eager and graphed
    steps do the same arithmetic; fused on a CPU, one kernel for every parameter instead of a
    loop over them (the same update up to float rounding; ``python -m wcbook bench --optimizer``
    times the three implementations on an experiment's own step, :mod:`wcbook.bench_optimizer`)."""
    return {"capturable": True} if device.type == "cuda" else {"fused": True}


def _adam(
    config: "ExperimentConfig", params: ParamsOrGroups, device: torch.device
) -> torch.optim.Optimizer:
    """Adam at the experiment's learning rate (see :func:`adam_options`)."""
    return torch.optim.Adam(params, lr=config.lr, **adam_options(device))


def _requiring_grad(model: nn.Module, stage: int | None) -> list[str]:
    return [name for name, p in model.named_parameters() if p.requires_grad]


def rate_groups(model: nn.Module, names: list[str]) -> list[tuple[list[str], dict]]:
    """The trainable ``names`` split into optimiser groups: first those at the experiment's
    learning rate (settings ``{}``), then one group per rate the model asks for in its
    ``learning_rates()`` (settings ``{"lr": rate}``); empty groups are left out."""
    asked = getattr(model, "learning_rates", dict)()
    rates = {name: asked[name] for name in names if name in asked}
    groups = [([n for n in names if n not in rates], {})]
    for rate in dict.fromkeys(rates.values()):
        groups.append(([n for n in names if rates.get(n) == rate], {"lr": rate}))
    return [(group, settings) for group, settings in groups if group]


def _model_groups(
    model: nn.Module, config: "ExperimentConfig", names: list[str], stage: int | None
) -> list[tuple[list[str], dict]]:
    """The groups of :func:`rate_groups`: the model's own rates, the experiment's elsewhere."""
    return rate_groups(model, names)


def _never(config: "ExperimentConfig") -> bool:
    return False


def _configure(model: nn.Module, stage: int | None, engine: str | None) -> None:
    """Switch an encoder model to ``stage``; give a model with dynamics its ``engine``."""
    if stage is not None:
        model.stage = stage
    if engine is not None:
        model.engine = engine


@dataclass(frozen=True)
class Kind:
    """How one kind of experiment is built and trained.

    ``build(config, seed)`` gives a freshly initialised model; ``load_data(config, profile,
    device)`` the training and test splits; ``prepare(model, splits)`` the splits the model trains
    on (features of a frozen encoder computed once); ``trainable(model, stage)`` the names of the
    parameters that train in ``stage`` (None: the only stage); ``groups(model, config, names,
    stage)`` splits them into optimiser groups with their settings (default
    :func:`rate_groups`); ``optimizer(config,
    params, device)`` (``params``: parameters or parameter groups) and ``scheduler(config,
    optimizer, total_steps)`` (None: a constant rate) the update rule; ``configure(model, stage, engine)`` sets the stage and the Wilson-Cowan engine
    (None for a model without dynamics);
    ``has_engine`` and ``has_attractors`` whether the model integrates dynamics and reports where
    its deciding states end. ``stackable``:
    members can be stacked into an ensemble (no random draws in training that a member would
    make alone); ``graphable``: a training step can be captured as a CUDA graph; ``shardable``:
    a batch can be split over data-parallel processes.
    """

    name: str
    build: Callable[["ExperimentConfig", int | None], nn.Module]
    load_data: Callable[["ExperimentConfig", "Profile", torch.device], Splits]
    trainable: Callable[[nn.Module, int | None], list[str]] = _requiring_grad
    groups: Callable[
        [nn.Module, "ExperimentConfig", list[str], int | None], list[tuple[list[str], dict]]
    ] = _model_groups
    optimizer: Callable[
        ["ExperimentConfig", ParamsOrGroups, torch.device], torch.optim.Optimizer
    ] = _adam
    has_engine: Callable[["ExperimentConfig"], bool] = _never
    has_attractors: Callable[["ExperimentConfig"], bool] = _never
    prepare: Callable[[nn.Module, Splits], Splits] = lambda model, splits: splits
    configure: Callable[[nn.Module, int | None, str | None], None] = _configure
    scheduler: Callable | None = None
    stackable: bool = True
    graphable: bool = True
    shardable: bool = True


def _adamw(
    config: "ExperimentConfig", params: ParamsOrGroups, device: torch.device
) -> torch.optim.Optimizer:
    """AdamW with weight decay 0.01, as BERT fine-tuning customarily uses (see
    :func:`adam_options`)."""
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=0.01, **adam_options(device))


def _stage_parameters(model: nn.Module, stage: int | None) -> list[str]:
    chosen = {id(p) for p in model.stage_parameters(stage)}
    return [name for name, p in model.named_parameters() if id(p) in chosen]


def _checked(
    config: "ExperimentConfig", split: str, images: torch.Tensor, labels: torch.Tensor
) -> None:
    if not (torch.isfinite(images).all() and images.min() >= 0 and images.max() <= 1):
        raise ValueError(f"{config.dataset} ({split}): pixel values must be finite and in [0, 1]")
    if labels.numel() and (labels.min() < 0 or labels.max() >= config.n_classes):
        raise ValueError(f"{config.dataset} ({split}): labels outside 0..{config.n_classes - 1}")


def _image_loader(shape: Callable[[torch.Tensor], torch.Tensor]) -> Callable[..., Splits]:
    """A loader of the profile's first ``n_train`` / ``n_test`` images, reshaped by ``shape``
    (flattened (n, N) for networks on pixels, (n, C, H, W) for encoders), checked once."""

    def load(config: "ExperimentConfig", profile: "Profile", device: torch.device) -> Splits:
        splits = []
        for split, n in (("train", profile.n_train), ("test", profile.n_test)):
            if config.dataset in COLOR_DATASETS:
                images, labels = load_color_images(
                    config.dataset, split, size=config.image_size, limit=n
                )
            else:
                images, labels = load_images(config.dataset, split, size=config.image_size)
                images, labels = shape(images[:n]), labels[:n]
            _checked(config, split, images, labels)
            splits.append(Split(images.to(device), labels.to(device)))
        return splits[0], splits[1]

    return load


def _load_text(config: "ExperimentConfig", profile: "Profile", device: torch.device) -> Splits:
    """IMDB reviews as token ids: ``n_train`` / ``n_test`` balanced, seeded reviews per split;
    with a frozen encoder, their cached features instead (:mod:`wcbook.text_features`)."""
    from .text import load_imdb, load_tokenizer, tokenize
    from .text_features import cached_features

    encoder, length = config.text_option("encoder"), config.text_option("max_length")
    frozen = config.text_option("frozen")
    tokenizer = None if frozen else load_tokenizer(encoder)
    splits = []
    for split, n in (("train", profile.n_train), ("test", profile.n_test)):
        if frozen:
            inputs, labels = cached_features(
                split, n, encoder=encoder, max_length=length,
                pooling=config.text_option("pooling"), device=device,
            )
        else:
            texts, labels = load_imdb(split, limit=n)
            inputs = tokenize(texts, tokenizer, length)
        splits.append(Split(inputs.to(device), labels.to(device)))
    return splits[0], splits[1]


def _text_groups(
    model: nn.Module, config: "ExperimentConfig", names: list[str], stage: int | None
) -> list[tuple[list[str], dict]]:
    """The Wilson-Cowan parameters at ``wc_lr`` (None: ``lr``); the encoder and dense layer at
    ``lr``, times ``stage2_lr_factor`` in stage 2; empty groups left out."""
    base = config.lr * (config.text_option("stage2_lr_factor") if stage == 2 else 1.0)
    wc_lr = config.text_option("wc_lr")
    dynamics = [n for n in names if n.startswith("dynamics.")]
    rest = [n for n in names if not n.startswith("dynamics.")]
    groups = [(rest, {"lr": base}), (dynamics, {"lr": config.lr if wc_lr is None else wc_lr})]
    return [(group, settings) for group, settings in groups if group]


def _frozen_features(model: nn.Module, splits: Splits) -> Splits:
    """A frozen encoder gives the same features every epoch: compute them once."""
    if not model.frozen_encoder:
        return splits
    model.features_input = True
    return tuple(Split(model.encode(s.images), s.labels) for s in splits)  # type: ignore


def _warmup_schedule(
    config: "ExperimentConfig", optimizer: torch.optim.Optimizer, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning rate rising linearly over the first ``warmup`` fraction of the steps, then
    falling linearly to zero at ``total_steps`` (the usual BERT fine-tuning schedule)."""
    rise = max(1, round(config.text_option("warmup") * total_steps))

    def factor(step: int) -> float:
        if step < rise:
            return (step + 1) / rise
        return max(0.0, (total_steps - step) / max(1, total_steps - rise))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _build_wc(config: "ExperimentConfig", seed: int | None) -> nn.Module:
    from .models import WilsonCowanClassifier

    return WilsonCowanClassifier(
        config.n_nodes,
        config.n_classes,
        config.params,
        T_train=config.T_train,
        T_eval=config.eval_horizon,
        dt=config.dt,
        ortho_factor=config.ortho_factor,
        seed=seed,
        **config.model_options,
    )


def _build_mlp(config: "ExperimentConfig", seed: int | None) -> nn.Module:
    from .models import MLPClassifier

    return MLPClassifier(config.n_nodes, config.n_classes, config.hidden, seed=seed)


def _build_text(config: "ExperimentConfig", seed: int | None) -> nn.Module:
    from .text import TextClassifier, encoder_width, load_encoder

    name = config.text_option("encoder")
    if config.text_option("frozen"):
        encoder, pad_id, width = None, 0, encoder_width(name)
    else:
        tokenizer, encoder = load_encoder(name)
        pad_id, width = tokenizer.pad_token_id, None
    return TextClassifier(
        encoder,
        config.text_option("head"),
        pad_id=pad_id,
        width=config.hidden,
        T=config.T_train,
        dt=config.dt,
        params=config.params,
        seed=seed,
        encoder_precision=config.text_option("encoder_precision"),
        features_width=width,
        start=config.text_option("start"),
        inhibitory=config.text_option("inhibitory"),
        stage=config.stages[0][0] or 2,
        pooling=config.text_option("pooling"),
        stage1_loss=config.text_option("stage1_loss"),
    )


def _build_encoded(config: "ExperimentConfig", seed: int | None) -> nn.Module:
    from .encoded import build_encoded_model

    readout = config.encoder_option("readout")
    wc_options = (
        {"T_train": config.T_train, "T_eval": config.eval_horizon, "dt": config.dt,
         "ortho_factor": config.ortho_factor}
        if readout == "wc"
        else {}
    )
    return build_encoded_model(
        readout,
        config.encoder_option("encoder"),
        config.n_classes,
        widths=config.encoder_option("widths"),
        in_channels=config.in_channels,
        image_size=config.side,
        pretrained=config.encoder_option("pretrained"),
        frozen=config.encoder_option("frozen"),
        tune_blocks=config.encoder_option("tune_blocks"),
        encoder_lr=config.encoder_option("encoder_lr"),
        params=config.params,
        seed=seed,
        stage=config.stages[0][0],
        **wc_options,
    )


KINDS: dict[str, Kind] = {
    "wc": Kind(
        "wc",
        build=_build_wc,
        load_data=_image_loader(flatten_images),
        has_engine=lambda config: True,
    ),
    "mlp": Kind("mlp", build=_build_mlp, load_data=_image_loader(flatten_images)),
    "encoded": Kind(
        "encoded",
        build=_build_encoded,
        load_data=_image_loader(lambda images: images.unsqueeze(1)),
        trainable=_stage_parameters,
        has_engine=lambda config: config.encoder_option("readout") == "wc",
        has_attractors=lambda config: config.encoder_option("readout") == "wc",
        prepare=_frozen_features,
        # stage 1 leaves the dynamics without gradients, which DistributedDataParallel refuses
        shardable=False,
    ),
    "text": Kind(
        "text",
        build=_build_text,
        load_data=_load_text,
        optimizer=_adamw,
        trainable=_stage_parameters,
        has_engine=lambda config: config.text_option("head") == "wc",
        has_attractors=lambda config: config.text_option("head") != "encoder",
        scheduler=_warmup_schedule,
        groups=_text_groups,
        # dropout draws from the global generator, and the rate changes every step
        stackable=False,
        graphable=False,
    ),
}


def kind_of(config: "ExperimentConfig") -> Kind:
    """The :class:`Kind` an experiment trains."""
    try:
        return KINDS[config.model]
    except KeyError:
        raise ValueError(
            f"unknown model kind {config.model!r}; choose one of {', '.join(KINDS)}"
        ) from None
