"""The trained dynamics of a model as a small committed file: ``models/<run>/<profile>/seed<k>``.

A checkpoint (optimiser, generators, the whole encoder) is never committed; what the book needs to
redraw the paper's figures and certify a model without a GPU is the Wilson-Cowan part: the free
columns of Phi, their eigenvalues, gamma and the planted targets. :func:`export_dynamics` writes
them as float32 ``.safetensors`` (at most 3 MiB) with a JSON beside it saying how the model was
made; :func:`load_dynamics` puts them back into a freshly built model of the same experiment.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .experiments import ExperimentConfig

#: Largest file a committed model may be.
MAX_BYTES = 3 * 2**20


def _dynamics_prefix(model: nn.Module) -> str:
    """Where the Wilson-Cowan network sits in ``model``'s state: "" for a network on pixels,
    "wc." behind an encoder, "dynamics." behind a text encoder."""
    names = model.state_dict()
    for prefix in ("", "wc.", "dynamics."):
        if f"{prefix}network.coupling.phi_free" in names:
            return prefix
    raise ValueError(f"{type(model).__name__} has no Wilson-Cowan network to export")


def model_paths(root: str | os.PathLike, run: str, profile: str, seed: int) -> tuple[Path, Path]:
    """(``.safetensors``, ``.json``) of a run's seed under ``root`` (``models/``)."""
    base = Path(root) / run / profile / f"seed{seed}"
    return base.with_suffix(".safetensors"), base.with_suffix(".json")


def export_dynamics(
    model: nn.Module, record: dict[str, Any], root: str | os.PathLike = "models"
) -> Path:
    """Write the Wilson-Cowan part of a trained ``model`` and a description taken from its
    results ``record`` (run, profile, seed, commit, device, accuracy); returns the weights path.
    Raises ValueError when the file would exceed :data:`MAX_BYTES`."""
    from safetensors.torch import save_file

    prefix = _dynamics_prefix(model)
    tensors = {
        name[len(prefix):]: value.detach().to("cpu", torch.float32).contiguous()
        for name, value in model.state_dict().items()
        if name.startswith(prefix + "network.")
    }
    size = sum(t.numel() * 4 for t in tensors.values())
    if size > MAX_BYTES:
        raise ValueError(f"the dynamics take {size / 2**20:.1f} MiB, over the 3 MiB allowed")
    run = record["experiment"] + (f"+{record['variant']}" if record.get("variant") else "")
    weights, about = model_paths(root, run, record["profile"], record["seed"])
    weights.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(weights))
    keys = ("experiment", "variant", "profile", "seed", "commit", "dirty", "device", "config")
    description = {key: record.get(key) for key in keys}
    description["prefix"] = prefix
    description["metrics"] = record.get("metrics", {})
    about.write_text(json.dumps(description, indent=1) + "\n")
    return weights


def load_dynamics(root: str | os.PathLike, run: str, profile: str, seed: int) -> nn.Module:
    """The model of an exported run: built from the stored configuration, its Wilson-Cowan part
    loaded from the file (an encoder in front of it keeps its fresh initialisation)."""
    from safetensors.torch import load_file

    weights, about = model_paths(root, run, profile, seed)
    if not weights.exists() or not about.exists():
        raise FileNotFoundError(
            f"no exported model at {weights}; models are exported by `python -m wcbook campaign` "
            "or wcbook.weights.export_dynamics"
        )
    description = json.loads(about.read_text())
    model = ExperimentConfig.from_dict(description["config"]).build_model()
    tensors = load_file(str(weights))
    prefix = description["prefix"]
    state = model.state_dict()
    state.update({prefix + name: value.to(state[prefix + name].dtype)
                  for name, value in tensors.items()})
    model.load_state_dict(state)
    return model.eval()
