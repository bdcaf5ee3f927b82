"""How many paper models a device trains per second: ensembles against separate processes.

One row per (N, members S, matmul precision, mode). Mode ``"ensemble"`` trains S Wilson-Cowan
classifiers as one :class:`~wcbook.ensemble.Ensemble` (one batched product per Euler step);
mode ``"processes"`` is the plain alternative measured in the same run: S processes, each
training one model, sharing the device. Each times steady training steps of the paper's
workload (batch 200, T = 2.5 in steps of 0.1: 25 Euler steps, forward and adjoint, Adam) and
reports ``model_epoch_s``: seconds per model per paper epoch (300 steps), the wall time of a
step times 300 divided by S. Both modes train on the CUDA graph of the training loop where the
device has one. ``python -m wcbook bench --ensemble`` writes the record as
``<device>-ensemble-<UTC stamp>.json`` (schema ``wcbook-bench-ensemble/1``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt_
import json
import subprocess
import sys
import time
from types import SimpleNamespace
from typing import Any, Sequence

import torch
from matplotlib.ticker import NullLocator

from .ensemble import Ensemble
from .experiments import get_experiment
from .kinds import adam_options
from .training.graph import GraphedStep
from .training.loop import _make_step
from .training.provenance import select_device

SCHEMA = "wcbook-bench-ensemble/1"
STEPS_PER_EPOCH, BATCH = 300, 200


def _step_seconds(
    n_nodes: int, members: int, matmul: str, device: torch.device, steps: int
) -> float:
    """Median wall time of one training step of an ensemble of ``members`` (after warm-up)."""
    torch.backends.cuda.matmul.allow_tf32 = matmul == "tf32"
    side = int(round(n_nodes**0.5))
    config = dataclasses.replace(get_experiment("mnist-scratch"), image_size=side)
    models = [config.build_model(k) for k in range(members)]
    ensemble = Ensemble(models).to(device)
    optimizer = torch.optim.Adam(ensemble.parameters(), lr=0.1, **adam_options(device))
    run = SimpleNamespace(ensemble=ensemble, optimizer=optimizer, scheduler=None)
    alive = torch.ones(members, dtype=torch.bool, device=device)
    step = _make_step(run, ensemble, alive)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(members, BATCH, n_nodes, generator=g).to(device)
    labels = torch.randint(0, 10, (members, BATCH), generator=g).to(device)
    if device.type == "cuda":
        step = GraphedStep(step, ensemble, optimizer, images, labels)
    step(images, labels)
    times = []
    for _ in range(steps):
        _sync(device)
        tick = time.perf_counter()
        step(images, labels)
        _sync(device)
        times.append(time.perf_counter() - tick)
    return sorted(times)[len(times) // 2]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _processes_seconds(
    n_nodes: int, members: int, matmul: str, device: torch.device, steps: int
) -> float:
    """Wall time per step of ``members`` processes training one model each, side by side."""
    # on a CPU the processes share the cores, as one process's threads would
    threads = max(1, torch.get_num_threads() // members) if device.type == "cpu" else None
    code = (
        "import torch; from wcbook.bench_ensemble import _step_seconds; "
        + (f"torch.set_num_threads({threads}); " if threads else "")
        + f"print(_step_seconds({n_nodes}, 1, {matmul!r}, torch.device({str(device)!r}), {steps}))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(members)
    ]
    per_step = [float(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return max(per_step)


def ensemble_benchmark(
    sizes: Sequence[int] = (196, 784, 1225),
    members: Sequence[int] = (1, 2, 5, 10, 20),
    matmuls: Sequence[str] = ("fp32", "tf32"),
    modes: Sequence[str] = ("ensemble", "processes"),
    device: str | torch.device | None = None,
    steps: int = 5,
) -> dict[str, Any]:
    """The rows of the record (see the module docstring); tf32 rows only on CUDA devices."""
    from .bench import _provenance

    dev = select_device(device or "auto")
    started, wall0 = dt_.datetime.now(dt_.timezone.utc), time.perf_counter()
    rows = []
    for n_nodes in sizes:
        for matmul in matmuls if dev.type == "cuda" else ("fp32",):
            for mode in modes:
                for count in members:
                    time_step = _step_seconds if mode == "ensemble" else _processes_seconds
                    seconds = time_step(n_nodes, count, matmul, dev, steps)
                    rows.append({
                        "n_nodes": n_nodes, "members": count, "matmul": matmul, "mode": mode,
                        "step_s": seconds,
                        "model_epoch_s": seconds * STEPS_PER_EPOCH / count,
                    })
                    print(json.dumps(rows[-1]), flush=True)
    return {
        "schema": SCHEMA,
        "workload": {"batch": BATCH, "euler_steps": 25, "steps_per_epoch": STEPS_PER_EPOCH,
                     "timed_steps": steps},
        "rows": rows,
        "provenance": _provenance(dev, started, wall0),
    }


def plot_throughput(record: dict[str, Any], ax: Any, matmul: str = "fp32") -> None:
    """Model-epochs per second against members, one colour per N, solid for the ensemble and
    dashed for separate processes, from a record."""
    rows = [r for r in record["rows"] if r["matmul"] == matmul]
    sizes = sorted({r["n_nodes"] for r in rows})
    for colour, n_nodes in zip(("C0", "C1", "C2", "C3"), sizes):
        for mode, style in (("ensemble", "-o"), ("processes", "--s")):
            line = sorted((r["members"], 1 / r["model_epoch_s"]) for r in rows
                          if r["n_nodes"] == n_nodes and r["mode"] == mode)
            if line:
                ax.plot(*zip(*line), style, color=colour, label=f"N = {n_nodes}, {mode}")
    members = sorted({r["members"] for r in rows})
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(members, [str(m) for m in members])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("models trained at once (S)")
    ax.set_ylabel("model-epochs per second")
    ax.legend(fontsize="small")


def ensemble_table(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (N, matmul, S): seconds per model-epoch of the ensemble and of S processes,
    and their ratio (above 1: the ensemble is faster)."""
    by_key = {(r["n_nodes"], r["matmul"], r["members"], r["mode"]): r["model_epoch_s"]
              for r in record["rows"]}
    table = []
    for (n_nodes, matmul, members, mode), seconds in sorted(by_key.items()):
        other = by_key.get((n_nodes, matmul, members, "processes"))
        if mode == "ensemble":
            table.append({"N": n_nodes, "matmul": matmul, "S": members,
                          "ensemble s/model-epoch": seconds,
                          "processes s/model-epoch": other,
                          "speed-up": None if other is None else other / seconds})
    return table
