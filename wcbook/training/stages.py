"""The two training stages of the encoder experiments (App. A) and their shared stage 1.

Stage 1 fits the encoder and head to the targets; stage 2 trains the whole model. A run that
differs from another only in stage 2 (the softmax twin of a Wilson-Cowan run) starts stage 2 from
the other's stage-1 snapshot, kept per seed under ``<checkpoint_dir>/stage1/<key>/`` where the key
hashes everything stage 1 depends on, so that both readouts see the same stage 1.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..experiments import ExperimentConfig

# Fields that do not affect stage 1 of an encoder experiment: runs that differ only in them (the
# Wilson-Cowan model and its softmax twin) share one stage-1 snapshot.
_STAGE2_FIELDS = frozenset(
    {"id", "variant", "description", "reference", "epochs", "batch_size", "T_train", "T_eval",
     "dt", "ortho_factor"}
)


def stage_at(config: ExperimentConfig, epoch: int) -> tuple[int | None, int]:
    """(stage, batch size) of 1-based ``epoch`` (the last stage's past the end)."""
    end = 0
    for stage, epochs, batch_size in config.stages:
        end += epochs
        if epoch <= end:
            return stage, batch_size
    return config.stages[-1][0], config.stages[-1][2]


def stage1_end(config: ExperimentConfig) -> int:
    """The last epoch of stage 1 (0 without a stage 1)."""
    return config.stages[0][1] if config.stages[0][0] == 1 else 0


def stage1_path(
    config: ExperimentConfig, profile: dict[str, Any], seed: int, checkpoint_dir: str | os.PathLike
) -> Path | None:
    """Where the stage-1 snapshot of an encoder run lives, named by a hash of everything stage 1
    depends on (None when the run has no stage 1, or shares it with no other run)."""
    if config.stages[0][0] != 1 or not config.shares_stage1:
        return None
    key = {k: v for k, v in config.to_dict().items() if k not in _STAGE2_FIELDS}
    key["encoder_options"] = {
        k: v for k, v in config.encoder_options.items() if k != "readout"
    }
    ignored = ("name", "description", "epochs")
    key["profile"] = {k: v for k, v in profile.items() if k not in ignored}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(checkpoint_dir) / "stage1" / digest / f"seed{seed}.pt"


def encoder_and_head(state: dict[str, Any]) -> dict[str, Any]:
    """The part of an encoder model's state that stage 1 trains."""
    return {k: v for k, v in state.items() if k.startswith(("encoder.", "head."))}
