"""Adam's three implementations on the training loop's own step: for-loop, foreach, fused.

PyTorch's Adam updates the parameters one tensor at a time (``foreach=False``), with one
multi-tensor kernel per operation (``foreach=True``), or in one fused kernel (``fused=True``);
the three do the same arithmetic up to float rounding. This benchmark times the step the
training loop takes in one stage of an experiment (forward, loss, backward, Adam, clamps; in
a stage with dynamics, their integration by the loop's default engine) on batches of that
stage's size drawn from the real training images (a frozen encoder's features computed once, as
the loop does), once with each implementation. Rounds interleave the three, in a rotating
order, so that a machine whose speed drifts slows all of them alike; each round gives every
implementation's median step, and the ratio to the for-loop is taken within a round.
``agree`` is the largest parameter difference after one step of each from the same start.
``python -m wcbook bench --optimizer EXPERIMENT [--stage S]`` writes the record as
``<device>-optimizer-<UTC stamp>.json`` (schema ``wcbook-bench-optimizer/1``).
"""

from __future__ import annotations

import copy
import datetime as dt_
import math
import statistics
import time
from types import SimpleNamespace
from typing import Any

import torch

from .bench import _provenance, _sync
from .ensemble import Ensemble
from .experiments import ExperimentConfig, get_experiment, get_profile
from .kinds import Kind, Split, kind_of
from .training.loop import _make_step
from .training.provenance import select_device

__all__ = [
    "IMPLEMENTATIONS", "SCHEMA", "format_optimizer", "optimizer_benchmark", "optimizer_table",
    "stage_entry",
]

SCHEMA = "wcbook-bench-optimizer/1"

#: The options that pick each implementation of Adam (and AdamW).
IMPLEMENTATIONS: dict[str, dict[str, bool]] = {
    "for-loop": {"foreach": False, "fused": False},
    "foreach": {"foreach": True, "fused": False},
    "fused": {"foreach": False, "fused": True},
}
_CHOSEN = ("foreach", "fused", "capturable", "differentiable")


def stage_entry(config: ExperimentConfig, stage: int | None) -> tuple[int | None, int, int]:
    """The ``(stage, epochs, batch)`` entry of ``config.stages`` for ``stage`` (None: the
    first); an error names the experiment's stages when it has no such stage."""
    if stage is None:
        return config.stages[0]
    for entry in config.stages:
        if entry[0] == stage:
            return entry
    have = [s for s, _, _ in config.stages if s is not None]
    raise ValueError(f"{config.name} has no stage {stage}; its stages: {have or 'one, unnamed'}"
                     " (leave --stage out for the first)")


def _setups(
    config: ExperimentConfig, kind: Kind, device: torch.device, stage: int | None
) -> tuple[Any, dict[str, Any]]:
    """One model of the experiment in ``stage`` (an entry of ``config.stages``), stacked as an
    ensemble of one, with a training step per implementation; returns (ensemble, steps by
    name)."""
    ensemble = Ensemble([kind.build(config, 0)]).to(device)
    kind.configure(ensemble.template, stage, "fast" if kind.has_engine(config) else None)
    names = kind.trainable(ensemble.template, stage)
    groups = [{"params": ensemble.parameters_of(group), **settings}
              for group, settings in kind.groups(ensemble.template, config, names, stage)]
    base = kind.optimizer(config, [dict(g) for g in groups], device)
    settings = {k: v for k, v in base.defaults.items() if k not in _CHOSEN}
    alive = torch.ones(1, dtype=torch.bool, device=device)
    steps = {}
    for name, options in IMPLEMENTATIONS.items():
        optimizer = type(base)([dict(g) for g in groups], **settings, **options)
        run = SimpleNamespace(ensemble=ensemble, optimizer=optimizer, scheduler=None)
        steps[name] = _make_step(run, ensemble, alive)
    return ensemble, steps


def _agreement(
    ensemble: Any, steps: dict[str, Any], images: torch.Tensor, labels: torch.Tensor
) -> float:
    """Largest difference between the parameters after one step of each implementation
    from the same start (and the same fresh optimiser state)."""
    start = copy.deepcopy(ensemble.state_dict())
    after = []
    for step in steps.values():
        ensemble.load_state_dict(start)
        step(images, labels)
        after.append([p.detach().clone() for p in ensemble.parameters()])
    ensemble.load_state_dict(start)
    return max(float((a - b).abs().max()) for other in after[1:]
               for a, b in zip(after[0], other))


def _median_step(step: Any, batches: list, device: torch.device) -> float:
    """Median wall time of ``step`` over ``batches`` (the device synchronised around each)."""
    times = []
    for images, labels in batches:
        _sync(device)
        tick = time.perf_counter()
        step(images, labels)
        _sync(device)
        times.append(time.perf_counter() - tick)
    return statistics.median(times)


def optimizer_benchmark(
    experiment: str = "fashion-cnn-softmax",
    device: str | None = None,
    rounds: int = 5,
    steps: int = 50,
    stage: int | None = None,
) -> dict[str, Any]:
    """Per-round median step of each Adam implementation in ``stage`` (None: the first) and
    the ratios to the for-loop (see the module docstring); the record also prices a paper
    epoch of the stage."""
    dev = select_device(device or "auto")
    started, wall0 = dt_.datetime.now(dt_.timezone.utc), time.perf_counter()
    config = get_experiment(experiment)
    kind = kind_of(config)
    stage, _, batch = stage_entry(config, stage)
    train, _ = kind.load_data(config, get_profile("paper"), dev)
    ensemble, by_name = _setups(config, kind, dev, stage)
    g = torch.Generator().manual_seed(0)
    picks = torch.randint(0, len(train), ((steps + 2) * batch,), generator=g).to(dev)
    drawn = Split(train.images[picks], train.labels[picks])
    one = Split(drawn.images[:1], drawn.labels[:1])  # prepare wants a test split too
    drawn, _ = kind.prepare(ensemble.template, (drawn, one))  # a frozen encoder's features
    batches = [(drawn.images[k:k + batch].unsqueeze(0), drawn.labels[k:k + batch].unsqueeze(0))
               for k in range(0, len(drawn), batch)]
    agree = _agreement(ensemble, by_name, *batches[0])
    names = list(by_name)
    rows = []
    for r in range(rounds):
        seconds = {}
        for name in names[r % len(names):] + names[:r % len(names)]:
            by_name[name](*batches[0])
            seconds[name] = _median_step(by_name[name], batches[2:], dev)
        rows.append({"round": r, "step_s": seconds,
                     "ratio_to_loop": {n: s / seconds["for-loop"] for n, s in seconds.items()}})
    return {
        "schema": SCHEMA,
        "workload": {"experiment": experiment, "stage": stage, "batch": batch,
                     "steps_per_epoch": math.ceil(len(train) / batch), "timed_steps": steps,
                     "rounds": rounds},
        "agree": agree,
        "rows": rows,
        "provenance": _provenance(dev, started, wall0),
    }


def optimizer_table(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per implementation: median over rounds of its step, of its ratio to the
    for-loop (below 1: faster) and the seconds of a paper epoch of the stage at that step."""
    per_epoch = record["workload"]["steps_per_epoch"]
    table = []
    for name in IMPLEMENTATIONS:
        step = statistics.median(row["step_s"][name] for row in record["rows"])
        ratios = [row["ratio_to_loop"][name] for row in record["rows"]]
        table.append({"Adam": name, "step ms": 1e3 * step,
                      "ratio to for-loop": statistics.median(ratios),
                      "ratio range": f"{min(ratios):.3f}-{max(ratios):.3f}",
                      "epoch s": step * per_epoch})
    return table


def format_optimizer(record: dict[str, Any]) -> str:
    """The rows of :func:`optimizer_table` as text, under the workload and device."""
    work, prov = record["workload"], record["provenance"]
    lines = [f"{work['experiment']} stage {work['stage']}, batch {work['batch']}: "
             f"{work['rounds']} rounds of {work['timed_steps']} steps on {prov['device_name']} "
             f"({prov['threads']} threads); largest parameter difference after one step "
             f"{record['agree']:.1e}"]
    for row in optimizer_table(record):
        lines.append(f"  {row['Adam']:9s} {row['step ms']:8.2f} ms/step, "
                     f"{row['ratio to for-loop']:.3f} of the for-loop's ({row['ratio range']}), "
                     f"{row['epoch s']:.1f} s per paper epoch")
    return "\n".join(lines)
