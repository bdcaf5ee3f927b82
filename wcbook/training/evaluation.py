"""Test accuracy and where the deciding states end, for a model or every member of an ensemble."""

from __future__ import annotations

import torch
from torch import nn

from ..attractors import (
    DISTINCT_OF,
    attractor_fractions,
    distinct_states,
    nearest_target_distances,
    relative_distances,
)
from ..ensemble import Ensemble
from ..kinds import Split

#: Images per forward pass when measuring test accuracy (no gradients are kept).
EVAL_BATCH = 1000
#: Test inputs whose end states' relative distances to every target the report keeps (a figure's
#: worth, in the order of the test set).
SAMPLE = 200


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
    (``deciding_pair``): medians of the initial and final distance to the nearest target,
    the fraction of final states within 10% of the targets' separation, and that separation,
    and the three numbers of :mod:`wcbook.attractors`, from one integration per batch. None for
    models without targets."""
    if len(data) == 0 or not hasattr(model, "deciding_pair"):
        return None
    was_training = model.training
    model.eval()
    pairs = [model.deciding_pair(data.images[start : start + batch_size])
             for start in range(0, len(data), batch_size)]
    model.train(was_training)
    if pairs[0] is None:
        return None
    initial, final = (torch.cat([p[i] for p in pairs]) for i in (0, 1))
    targets = model.attractor_targets
    initial_d, final_d = nearest_target_distances((initial, final), targets)
    separation = model.target_separation()
    return {
        "n": len(final),
        "initial_median": float(initial_d.median()),
        "final_median": float(final_d.median()),
        "final_within_10pct": float((final_d < 0.1 * separation).float().mean()),
        "target_separation": separation,
        **_end_states(model, final, data.labels),
    }


def _end_states(model: nn.Module, states: torch.Tensor, labels: torch.Tensor) -> dict:
    """attractor_fraction, attractor_fraction_correct and distinct_end_states of the model's
    end states (:mod:`wcbook.attractors`), and for the first :data:`SAMPLE` test inputs the
    relative distances of their end states to every target, their labels and predictions."""
    predicted = model.classify(states).cpu()
    states, labels = states.cpu(), labels.cpu()
    targets = model.attractor_targets.cpu()
    on_predicted, on_correct = attractor_fractions(states, predicted, labels, targets)
    sample = relative_distances(states[:SAMPLE], targets).float()
    return {
        "attractor_fraction": on_predicted,
        "attractor_fraction_correct": on_correct,
        "distinct_end_states": distinct_states(states[:DISTINCT_OF], targets),
        "distinct_of": min(len(states), DISTINCT_OF),
        "sample": {
            "relative_distances": [[round(v, 4) for v in row] for row in sample.tolist()],
            "labels": labels[:SAMPLE].tolist(),
            "predicted": predicted[:SAMPLE].tolist(),
        },
    }
