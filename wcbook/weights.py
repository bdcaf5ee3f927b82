"""Trained models as small committed files: ``models/<run>/<profile>/seed<k>.safetensors``.

A checkpoint (optimiser, generators, a whole encoder) is never committed. What the book needs to
redraw the paper's figures, certify a model or attack it without a GPU is a model's weights where
they are small (a network on pixels, an MLP), and the Wilson-Cowan part (the free columns of Phi,
their eigenvalues, gamma, the planted targets) of a model whose encoder is large.
:func:`export_weights` writes them as float32 ``.safetensors`` (at most 3 MiB) with a JSON note
beside it saying how the model was made; :func:`load_weights` builds the experiment afresh and puts
them back (an encoder in front of an exported Wilson-Cowan part keeps its fresh initialisation).
A model that must be used whole although it exceeds 3 MiB (an encoder model under attack in
:mod:`wcbook.robustness`) is exported with ``max_bytes=None`` into a working folder, never into
the committed ``models/``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from .experiments import ExperimentConfig, Profile, get_experiment, get_profile, resolve

__all__ = [
    "MAX_WEIGHTS_BYTES",
    "FigureModel",
    "export_weights",
    "figure_model",
    "load_weights",
    "model_bytes",
    "run_config",
    "weights_path",
]

#: Largest file a committed model may be.
MAX_WEIGHTS_BYTES = 3 * 2**20
#: Where the Wilson-Cowan network sits in a model's state: on pixels, behind an encoder, behind
#: a text encoder.
_DYNAMICS_PREFIXES = ("network.", "wc.network.", "dynamics.network.")


def run_config(run_id: str, profile: str) -> ExperimentConfig:
    """The registered configuration of ``run_id`` (``<id>`` or ``<id>+<variant>``) under
    ``profile``; a ValueError naming the known runs and profiles otherwise."""
    experiment, _, variant = run_id.partition("+")
    try:
        return resolve(get_experiment(experiment, variant or None), get_profile(profile))
    except ValueError as error:
        raise ValueError(f"no run {run_id!r} at profile {profile!r}: {error}") from None


def weights_path(run_id: str, profile: str, seed: int, models_dir: str | Path = "models") -> Path:
    """``<models_dir>/<run>/<profile>/seed<k>.safetensors`` (its note: ``.json`` beside it)."""
    return Path(models_dir) / run_id / profile / f"seed{seed}.safetensors"


def _float32_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", torch.float32).contiguous()
            for k, v in model.state_dict().items()}


def _float32_bytes(state: Mapping[str, torch.Tensor]) -> int:
    return sum(t.numel() * 4 for t in state.values())


def model_bytes(model: nn.Module) -> int:
    """Size of the whole of ``model``'s state as float32, as :func:`export_weights` saves it."""
    return _float32_bytes(model.state_dict())


def _exported_part(
    model: nn.Module, max_bytes: int | None
) -> tuple[str, dict[str, torch.Tensor]]:
    """("model", the whole state) when it fits ``max_bytes`` (None: no limit), else
    ("dynamics", the Wilson-Cowan part)."""
    state = _float32_state(model)
    if max_bytes is None or _float32_bytes(state) <= max_bytes:
        return "model", state
    dynamics = {k: v for k, v in state.items() if k.startswith(_DYNAMICS_PREFIXES)}
    if not dynamics:
        raise ValueError(
            f"{type(model).__name__} takes more than {max_bytes} bytes and has no Wilson-Cowan "
            "part to export"
        )
    return "dynamics", dynamics


def export_weights(
    model: nn.Module,
    run_id: str,
    profile: str,
    seed: int,
    *,
    how: str,
    training: Mapping[str, Any] | None = None,
    models_dir: str | Path = "models",
    config: ExperimentConfig | None = None,
    max_bytes: int | None = MAX_WEIGHTS_BYTES,
) -> Path:
    """Save ``model`` (the whole of it when it fits in ``max_bytes``, by default the 3 MiB of a
    committed model, else its Wilson-Cowan part; None: the whole model, whatever its size) as
    :func:`weights_path` with a note beside it: run, profile, seed, ``how`` the weights were made,
    ``training`` (facts about the training run, such as its commit and test accuracy), the
    configuration (``config``, default the registered run under ``profile``), which part was saved
    and a checksum. ValueError when even the Wilson-Cowan part exceeds ``max_bytes``."""
    from safetensors.torch import save_file

    from .training import git_commit

    config = run_config(run_id, profile) if config is None else config
    part, tensors = _exported_part(model, max_bytes)
    size = sum(t.numel() * 4 for t in tensors.values())
    if max_bytes is not None and size > max_bytes:
        raise ValueError(f"{run_id}: {size} bytes of weights exceed {max_bytes}")
    path = weights_path(run_id, profile, seed, models_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    commit, dirty = git_commit()
    note = {
        "experiment": config.id, "variant": config.variant, "profile": profile, "seed": seed,
        "commit": commit, "dirty": dirty, "how": how, "part": part,
        "stage": getattr(model, "stage", None),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "training": dict(training or {}), "config": config.to_dict(),
    }
    path.with_suffix(".json").write_text(json.dumps(note, indent=1) + "\n")
    return path


def load_weights(
    run_id: str, profile: str, seed: int, models_dir: str | Path = "models"
) -> tuple[nn.Module, ExperimentConfig]:
    """(model in eval mode on the CPU, its configuration): the registered experiment under
    ``profile``, built afresh and loaded from :func:`weights_path` (every saved tensor must
    match); the configuration stored in the note wins, so the model matches its weights even if the
    registry changed. FileNotFoundError when the file is missing, ValueError for an unknown run."""
    from safetensors.torch import load_file

    path = weights_path(run_id, profile, seed, models_dir)
    note = path.with_suffix(".json")
    stored = json.loads(note.read_text()).get("config") if note.exists() else None
    config = run_config(run_id, profile) if stored is None else ExperimentConfig.from_dict(stored)
    if not path.exists():
        raise FileNotFoundError(
            f"no exported weights at {path}; train the run and export it with "
            "wcbook.weights.export_weights (python -m wcbook campaign exports the paper models)"
        )
    model = config.build_model(seed)
    saved = load_file(str(path))
    state = model.state_dict()
    unknown = set(saved) - set(state)
    if unknown:
        raise ValueError(f"{path} holds tensors the model has not: {sorted(unknown)[:3]}")
    state.update({k: v.to(state[k].dtype) for k, v in saved.items()})
    model.load_state_dict(state)
    _set_stage(model, json.loads(note.read_text()).get("stage") if note.exists() else None, config)
    return model.eval(), config


def _set_stage(model: nn.Module, stage: int | None, config: ExperimentConfig) -> None:
    """Put a model with training stages (an encoder model, built in stage 1) in ``stage``, by
    default the last of ``config``: the exported model is a finished run's."""
    if hasattr(model, "stage"):
        last = config.stages[-1][0]
        model.stage = stage if stage is not None else last


@dataclass(frozen=True)
class FigureModel:
    """The model a chapter draws a figure of the paper from, and what it is: run, profile, seed."""

    model: nn.Module
    config: ExperimentConfig
    run_id: str
    profile: str
    seed: int

    @property
    def is_paper(self) -> bool:
        """Whether the model was trained at the paper's scale (only then may a figure carry the
        paper's figure number)."""
        return self.profile == "paper"

    def caption(self, text: str, paper_figure: str | None = None) -> str:
        """``text`` with the model it shows (run, profile, seed, image side), prefixed by the
        paper's figure number ``paper_figure`` (e.g. "Fig. 7") only for a paper-profile model."""
        side = self.config.image_size or 28
        label = f"{paper_figure}, " if paper_figure and self.is_paper else ""
        return (f"{label}{text}: {self.run_id}, profile {self.profile}, seed {self.seed}, "
                f"{side} x {side} images")


def figure_model(
    run_id: str,
    seed: int,
    fallback: nn.Module,
    fallback_profile: str | Profile,
    models_dir: str | Path = "models",
) -> FigureModel:
    """The paper-profile model of ``run_id`` and ``seed`` from its exported weights
    (:func:`weights_path`) when the file exists, else ``fallback`` (a model the chapter trained
    itself at ``fallback_profile``, a profile or its registered name, with the same seed), in
    eval mode."""
    if weights_path(run_id, "paper", seed, models_dir).exists():
        model, config = load_weights(run_id, "paper", seed, models_dir)
        return FigureModel(model, config, run_id, "paper", seed)
    profile = get_profile(fallback_profile)
    return FigureModel(fallback.eval(), run_config(run_id, profile), run_id, profile.name, seed)
