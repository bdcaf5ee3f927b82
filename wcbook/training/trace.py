"""Step by step: the first training steps of a run, replayed, with what the epoch means hide.

A run's history holds one number per epoch. Some failures happen inside an epoch: a parameter
crosses a boundary for a few steps and comes back, a gradient spikes once.
:func:`~wcbook.training.trace_steps` replays the first steps of one seed exactly as
:func:`~wcbook.training.train` takes them (same initialisation, same data order, same updates,
through the same step function) and records, after every step, the batch loss, the largest
absolute gradient entry, the largest Adam second moment, the model's ``metrics()`` (gamma,
mu_max, stability margin for a Wilson-Cowan model) and, for a model with a ``phi_condition``
method, the condition number of Phi. ``python -m wcbook trace`` writes the result, with the
provenance of a training record, to ``<out>/traces/<run>/<profile>/``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..experiments import Profile, get_experiment, get_profile, resolve, run_name
from ..folders import add_output_arguments, folders_from_args
from ..kinds import kind_of
from . import loop
from .checkpoint import atomic_write
from .provenance import environment, record_header

__all__ = ["trace_steps", "trace_path", "trace_summary", "add_arguments", "run"]


def trace_path(run: str, profile: str, seed: int, folder: str | os.PathLike) -> Path:
    """``<folder>/<run>/<profile>/seed<k>.json``."""
    return Path(folder) / run / profile / f"seed{seed}.json"


def _finite_or_none(value: Any) -> Any:
    """A float as it is, or None where it is NaN/inf (JSON has no such numbers)."""
    return value if not isinstance(value, float) or math.isfinite(value) else None


def _observe(ensemble: Any, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> dict:
    """What one step left behind: its loss, largest |gradient|, largest Adam second moment (None
    once it is inf, ``second_moment_overflow``, or NaN), the member's scalars, and
    ``finite``: whether the loss and every trained parameter are finite. Non-finite numbers are
    recorded as None."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    largest = max((float(p.grad.abs().max()) for p in params if p.grad is not None), default=0.0)
    moments = [optimizer.state[p]["exp_avg_sq"] for p in params
               if "exp_avg_sq" in optimizer.state.get(p, {})]
    top = max((float(v.max()) for v in moments), default=0.0)
    finite = math.isfinite(float(loss[0])) and all(bool(torch.isfinite(p).all()) for p in params)
    seen = {"loss": float(loss[0]), "max_gradient": largest, "max_second_moment": top,
            "second_moment_overflow": math.isinf(top), "finite": finite,
            **ensemble.member_call(0, "metrics")}
    if hasattr(ensemble.template, "phi_condition") and finite:
        seen["phi_condition"] = ensemble.member_call(0, "phi_condition")
    elif hasattr(ensemble.template, "phi_condition"):
        seen["phi_condition"] = None
    return {name: _finite_or_none(value) for name, value in seen.items()}


class _Enough(Exception):
    """Raised inside an epoch once the trace has all its steps."""


def _epochs(run: Any, opts: Any, train_data: Any, trace: dict[str, list], steps: int,
            bar: tqdm) -> None:
    """Train epoch after epoch through the loop's own epoch function, recording every step,
    until ``steps`` steps are recorded."""
    quiet = tqdm(total=0, disable=True)
    for epoch in range(1, run.config.total_epochs + 1):
        batch_size, _ = loop._enter_epoch(run, epoch, len(train_data), opts)
        step = loop._make_step(run, run.ensemble, torch.tensor([True], device=opts.device))

        def observed(images: torch.Tensor, labels: torch.Tensor) -> tuple:
            if len(trace["step"]) == steps:
                raise _Enough
            loss, right = step(images, labels)
            seen = _observe(run.ensemble, run.optimizer, loss)
            for name, value in seen.items():
                trace.setdefault(name, []).append(value)
            trace["step"].append(len(trace["step"]) + 1)
            bar.update()
            if not seen["finite"]:  # nothing after a NaN is worth replaying
                raise _Enough
            return loss, right

        try:
            loop._train_epoch(run, train_data, batch_size, observed, None, quiet, opts)
        except _Enough:
            return


def trace_steps(
    experiment: str, profile: Profile | str, seed: int = 0, steps: int = 100, *,
    variant: str | None = None, device: str | torch.device = "cpu", progress: bool = True,
) -> dict[str, Any]:
    """Replay the first ``steps`` training steps of ``experiment`` (seed ``seed``, under
    ``profile``) and return a record: the run's provenance and ``trace``, one list per quantity
    with one entry per step (``step`` counts from 1 across epochs; fewer steps when the run has
    fewer). Nothing is written; no checkpoint is read or made."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    prof = get_profile(profile)
    config = resolve(get_experiment(experiment, variant), prof)
    opts = loop._options(config, kind_of(config), device, "fast", False, False, "fp32",
                         False, False)
    run = loop._new_run(config, prof, [seed], opts)
    train_data, _, _ = loop._data(run, opts)
    trace: dict[str, list] = {"step": []}
    tick = time.perf_counter()
    with tqdm(total=steps, desc=f"{run_name(experiment, variant)} seed {seed} steps",
              disable=not progress) as bar:
        _epochs(run, opts, train_data, trace, steps, bar)
    header = record_header(config, prof, seed, environment(opts.device, "fast", 1, "fp32"))
    return {**header, "steps": len(trace["step"]), "wall_time_s": time.perf_counter() - tick,
            "trace": trace}


def trace_summary(trace: dict[str, list]) -> dict[str, Any]:
    """What a trace (the ``trace`` of a :func:`trace_steps` record) comes to: the steps traced,
    the first step after which Adam's second moment had overflowed and the step after which the
    loss or a parameter was NaN/inf, where the trace stops (each None: never), the largest
    gradient entry and condition number of Phi (finite values only; None for a model without
    Phi), the number of steps after which gamma was negative and the lowest gamma (None without
    a gamma)."""
    finite = trace.get("finite", [True] * len(trace["step"]))
    flags = zip(trace["step"], trace["second_moment_overflow"], finite)
    overflow = [step for step, bad, ok in flags if bad and ok]  # a NaN moment is no overflow

    def top(name: str) -> float | None:
        values = [v for v in trace.get(name, []) if v is not None]
        return max(values) if values else None

    gamma = [g for g in trace.get("gamma", []) if g is not None]
    return {
        "steps": len(trace["step"]),
        "overflow_step": overflow[0] if overflow else None,
        "nonfinite_step": next((step for step, ok in zip(trace["step"], trace.get("finite", []))
                                if not ok), None),
        "max_gradient": top("max_gradient"),
        "max_phi_condition": top("phi_condition"),
        "steps_gamma_negative": sum(g < 0 for g in gamma) if gamma else None,
        "min_gamma": min(gamma) if gamma else None,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m wcbook trace``."""
    parser.add_argument("run", help="experiment id, or <id>+<variant>")
    parser.add_argument("--profile", required=True, help="profile of the run to replay")
    parser.add_argument("--seed", type=int, default=0, help="its seed")
    parser.add_argument("--steps", type=int, default=100, help="training steps to record")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Replay, write ``<out>/traces/<run>/<profile>/seed<k>.json`` and print the largest
    gradient; 2 on an unknown experiment or bad arguments."""
    experiment, _, variant = args.run.partition("+")
    try:
        record = trace_steps(experiment, args.profile, args.seed, args.steps,
                             variant=variant or None, device=args.device)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    path = trace_path(args.run, args.profile, args.seed, folders_from_args(args).traces)
    atomic_write(path, lambda handle: json.dump(record, handle, indent=1), mode="w")
    summary = trace_summary(record["trace"])
    largest = summary["max_gradient"]
    print(f"{args.run} seed {args.seed}: {summary['steps']} steps; largest gradient entry "
          f"{'-' if largest is None else f'{largest:.3g}'}; Adam's second moment overflowed "
          f"after step {summary['overflow_step'] or '-'}; NaN/inf after step "
          f"{summary['nonfinite_step'] or '-'}")
    print(f"trace: {path}")
    return 0
