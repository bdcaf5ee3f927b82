"""Test accuracy and where the deciding states end, for a model or every member of an ensemble."""

from __future__ import annotations

import torch
from torch import nn

from ..ensemble import Ensemble
from ..kinds import Split

#: Images per forward pass when measuring test accuracy (no gradients are kept).
EVAL_BATCH = 1000


@torch.no_grad()
def count_correct(ensemble: Ensemble, data: Split, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """(#correct, #NaN/inf outputs) of every member's ``predict`` on ``data``: shape (2, S), one
    device tensor (nothing here waits for the device)."""
    was_training = ensemble.training
    ensemble.eval()
    counts = torch.zeros(2, ensemble.size, dtype=torch.long, device=data.labels.device)
    for start in range(0, len(data), batch_size):
        predicted = ensemble.predict(data.images[start : start + batch_size])
        counts[0] += (predicted == data.labels[start : start + batch_size]).sum(dim=1)
        counts[1] += (predicted < 0).sum(dim=1)
    ensemble.train(was_training)
    return counts


def evaluate(model: nn.Module, data: Split, batch_size: int = EVAL_BATCH) -> tuple[float, int]:
    """(accuracy of ``model.predict`` on ``data``, number of outputs that were NaN/inf)."""
    was_training = model.training
    model.eval()
    correct = nonfinite = 0
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            predicted = model.predict(data.images[start : start + batch_size])
            correct += int((predicted == data.labels[start : start + batch_size]).sum())
            nonfinite += int((predicted < 0).sum())
    model.train(was_training)
    return correct / max(len(data), 1), nonfinite


@torch.no_grad()
def attractor_report(model: nn.Module, data: Split, batch_size: int = EVAL_BATCH) -> dict | None:
    """Where the deciding states end, for models with planted targets that report it
    (``attractor_distances``): medians of the initial and final distance to the nearest target,
    the fraction of final states within 10% of the targets' separation, and that separation.
    None for models without targets."""
    if len(data) == 0:
        return None
    was_training = model.training
    model.eval()
    pairs = [
        model.attractor_distances(data.images[start : start + batch_size])
        for start in range(0, len(data), batch_size)
    ]
    model.train(was_training)
    if pairs[0] is None:
        return None
    initial, final = (torch.cat([p[i] for p in pairs]) for i in (0, 1))
    separation = model.target_separation()
    return {
        "n": len(final),
        "initial_median": float(initial.median()),
        "final_median": float(final.median()),
        "final_within_10pct": float((final < 0.1 * separation).float().mean()),
        "target_separation": separation,
    }
