"""Did the deciding states end on the planted attractors? Three numbers that say so.

For final states ``x`` (n, N) of a model with planted targets ``T_k`` (K, N):

``attractor_fraction``
    the fraction of states within 10% relative distance of the target of their *predicted*
    class, ||x - T_pred|| <= 0.1 ||T_pred||;
``attractor_fraction_correct``
    the same for the target of the *correct* class;
``distinct_end_states``
    how many different states the first 1000 test inputs end in. Two states count as one when
    they lie within 10% of the smallest distance between two targets of each other: every state
    joins the first earlier representative that close, or becomes a representative itself
    (leader clustering, in the order of the test set). A head whose dynamics carry every input
    onto an attractor ends in at most K states; one that collapses every input to one state, in
    1; one whose states scatter and are read out by distance alone, in about as many as inputs.
"""

from __future__ import annotations

import torch

__all__ = ["TOLERANCE", "DISTINCT_OF", "relative_distances", "attractor_fractions",
           "distinct_states"]

#: Relative distance within which a state counts as on a target (and two states as one).
TOLERANCE = 0.1
#: How many test states :func:`distinct_states` counts in the records.
DISTINCT_OF = 1000


def nearest_target_distances(
    pair: tuple[torch.Tensor, torch.Tensor], targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distance of each state (B, D) of both members of ``pair`` to its nearest
    target (K, D): two (B,) tensors."""
    first, second = (torch.cdist(state, targets).min(dim=1).values for state in pair)
    return first, second


def relative_distances(states: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """||x - T_k|| / ||T_k|| for every state and target, shape (n, K)."""
    return torch.cdist(states.double(), targets.double()) / targets.double().norm(dim=1)


def attractor_fractions(
    states: torch.Tensor, predicted: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor,
    tolerance: float = TOLERANCE,
) -> tuple[float, float]:
    """(fraction within ``tolerance`` of the predicted class's target, fraction within it of the
    correct class's target). A prediction of -1 (a state that is not finite) counts as off."""
    if len(states) == 0:
        return 0.0, 0.0
    near = relative_distances(states, targets) <= tolerance
    rows = torch.arange(len(states))
    on_predicted = near[rows, predicted.clamp_min(0)] & (predicted >= 0)
    on_correct = near[rows, labels]
    return float(on_predicted.double().mean()), float(on_correct.double().mean())


def distinct_states(
    states: torch.Tensor, targets: torch.Tensor, tolerance: float = TOLERANCE
) -> int:
    """The number of distinct end states (module docstring): leader clustering at ``tolerance``
    times the smallest distance between two targets. States that are not finite count as one."""
    finite = torch.isfinite(states).all(dim=1)
    states = states[finite].double()
    radius = tolerance * float(torch.pdist(targets.double()).min())
    leaders = states.new_empty(states.shape)
    count = 0
    for state in states:
        if count and bool((leaders[:count] - state).norm(dim=1).min() <= radius):
            continue
        leaders[count] = state
        count += 1
    return count + int(not bool(finite.all()))
