"""Benchmark of one training step: a plain reference, the project's autograd path, the engine.

Run ``python -m wcbook bench`` (full form) or ``python -m wcbook bench --quick`` (CI, small sizes);
``python -m wcbook.bench`` is an alias.

What is timed is one full training step of the classifier workload: A is built from its spectral
parameters, x(0) = y(0) = images are integrated for n Euler steps, the MSE to the class targets is
back-propagated and Adam takes a step. The implementations are

``reference``
    :class:`ReferenceWilsonCowan`, kept here on purpose: a straightforward module that rebuilds
    A = Phi diag(lambda) inv(Phi) with an explicit inverse every forward, loops over the steps with
    the element-wise operations written out plainly, and leaves the backward pass to autograd. The
    speed-up over it is the figure of merit.
``autograd``
    the project's :meth:`wcbook.models.WilsonCowanNetwork.integrate` (A by a solve, autograd).
``engine``
    :func:`wcbook.engine.integrate_fast`, A from :meth:`wcbook.coupling.SpectralCoupling.matrix`.
``engine-compiled``
    the engine with ``compiled=True``: each step's element-wise work fused by torch.compile
    (compilation happens in the warm-up and is not timed).
``engine-bf16``
    an experiment, not a default: the engine with bfloat16 matrix products. The record also holds
    the largest deviation of x(T) and y(T) from float32 on the same inputs, next to the deviation
    of float32 from float64 as a yardstick.
``engine-tf32`` (CUDA only)
    the engine with TF32 tensor-core products allowed, its deviation recorded the same way.
``engine-graph``, ``compiled-graph`` (CUDA only)
    the engine (plain, or compiled) with the whole step, Adam included, captured once as a CUDA
    graph and replayed: what :func:`wcbook.training.train` does on a GPU.
``gemm-floor``
    not a training step: only the matrix products a step cannot avoid (n forward, n adjoint, and
    the dL/dA products as one stacked product), the bound for any fp32 implementation.

The implementations are timed in turn within each repetition (rotating the order), so that a
machine whose load changes during the run penalises them alike; warm-up steps are excluded and the
median is reported. FLOPs counted are the matrix products of the step: 2 B N^2 per product, n in
the forward pass and 2 n in the backward pass; building A (O(N^3) once per step) is not counted.

Memory: on CUDA the peak of ``torch.cuda.max_memory_allocated`` over one step. On CPU the bytes
held for the backward pass (the distinct storages packed by autograd's saved-tensor hooks during one
step, parameters included), which is what separates the implementations; the process-wide
``resource.getrusage`` maximum RSS at the end of the run is recorded too, for the run as a whole.

The record goes to ``<out>/benchmarks/<device-slug>-<UTC timestamp>.json`` in the working folder
(:mod:`wcbook.folders`), or with ``--publish`` to the committed ``benchmarks/results/`` (written
atomically).

``python -m wcbook bench --training <experiment> [--profile P --epochs E]`` instead compares the
execution paths of the real training loop (:func:`compare_training`): the same experiment, seed and
data trained for a few epochs with the autograd path, the engine, and on a GPU the engine with its
CUDA-graph step (and the compiled engine). Its record (``...-training-<timestamp>.json``) holds
every path's loss per epoch, seconds per epoch and test accuracy, and the largest relative
difference of the per-epoch losses from the autograd path: the proof that the fast paths compute
the same training up to float rounding.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime as dt_
import json
import math
import os
import platform
import re
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.autograd.graph import saved_tensors_hooks

from .engine import integrate_fast
from .experiments import get_experiment, get_profile
from .folders import add_output_arguments, folders_from_args
from .models import WilsonCowanNetwork
from .params import WCParams
from .training import device_name, git_commit, select_device, train

__all__ = [
    "BenchSettings",
    "QUICK",
    "FULL",
    "ReferenceWilsonCowan",
    "run_benchmark",
    "write_record",
    "format_table",
    "compare_training",
    "format_training",
    "rounding_divergence",
    "plot_scaling",
    "load_bench_records",
    "add_arguments",
    "run",
    "main",
]

IMPLEMENTATIONS = (
    "reference",
    "autograd",
    "engine",
    "engine-compiled",
    "engine-bf16",
    "engine-tf32",
    "engine-graph",
    "compiled-graph",
    "gemm-floor",
)
#: Implementations that exist only on a CUDA device.
CUDA_ONLY = frozenset({"engine-tf32", "engine-graph", "compiled-graph"})
EPOCH_IMAGES = 60_000
RESULTS_DIR = Path("benchmarks") / "results"

#: Vendor FP32 (non-tensor-core) peaks, FLOP/s; TF32 is off in PyTorch's matmul by default.
NOMINAL_FP32_PEAK = {"H100 PCIe": 51.2e12, "H100": 66.9e12, "H200": 66.9e12, "A100": 19.5e12}


@dataclass(frozen=True)
class BenchSettings:
    """What one benchmark run measures.

    ``n_nodes`` and ``steps`` span the main workload (every pair is timed); ``scaling_nodes`` are
    timed at ``scaling_steps`` to show how the cost grows with N.
    """

    n_nodes: tuple[int, ...] = (784,)
    steps: tuple[int, ...] = (25, 35)
    scaling_nodes: tuple[int, ...] = (196, 441, 784, 1225)
    scaling_steps: int = 25
    n_classes: int = 10
    batch: int = 200
    dt: float = 0.1
    repeats: int = 11
    warmup: int = 2
    lr: float = 1e-3
    seed: int = 0
    bf16: bool = True
    compiled: bool = True
    dtype: str = "float32"

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for the record."""
        return dataclasses.asdict(self)


QUICK = BenchSettings(
    n_nodes=(196,), scaling_nodes=(100, 196), repeats=3, warmup=1, bf16=False, compiled=False
)
FULL = BenchSettings()


class ReferenceWilsonCowan(nn.Module):
    """The plain baseline the speed-up is measured against.

    A = Phi diag(lambda) inv(Phi) is rebuilt every forward with an explicit inverse, the Euler steps
    are a Python loop of unfused element-wise operations, autograd does the backward pass. Phi is
    (N, N): K fixed columns (a buffer) and N - K trainable ones; lambda holds the N - K trainable
    eigenvalues (the K fixed ones are 0); gamma is trainable.
    """

    def __init__(
        self,
        phi_fixed: torch.Tensor,
        phi_free: torch.Tensor,
        eigenvalues: torch.Tensor,
        gamma: float,
        Gamma: float,
        params: WCParams,
    ) -> None:
        super().__init__()
        self.register_buffer("phi_fixed", phi_fixed.detach().clone())
        self.phi_free = nn.Parameter(phi_free.detach().clone())
        self.eigenvalues = nn.Parameter(eigenvalues.detach().clone())
        self.gamma = nn.Parameter(torch.tensor(float(gamma), dtype=phi_free.dtype))
        self.Gamma = Gamma
        self.params = params

    def coupling_matrix(self) -> torch.Tensor:
        """A = Phi diag(lambda) Phi^-1 with an explicit inverse."""
        phi = torch.cat([self.phi_fixed, self.phi_free], dim=1)
        zeros = torch.zeros(self.phi_fixed.shape[1], dtype=phi.dtype, device=phi.device)
        lam = torch.cat([zeros, self.eigenvalues])
        return phi @ torch.diag(lam) @ torch.linalg.inv(phi)

    def forward(self, images: torch.Tensor, steps: int, dt: float) -> torch.Tensor:
        """x after ``steps`` Euler steps from x = y = images."""
        p = self.params
        A = self.coupling_matrix()
        x = images
        y = images
        for _ in range(steps):
            coupling = self.Gamma * (x @ A.T)
            s_E = p.w_EE * x - p.w_EI * y + p.h_E + coupling
            s_I = p.w_IE * x - p.w_II * y + p.h_I
            F_E = p.offset_E + p.amplitude_E * torch.tanh(p.beta_E * s_E)
            F_I = p.offset_I + p.amplitude_I * torch.tanh(p.beta_I * s_I)
            dx = -p.alpha_E * x + (1 - x) * F_E
            dy = (-p.alpha_I * y + (1 - y) * F_I) / self.gamma
            x = x + dt * dx
            y = y + dt * dy
        return x


# ------------------------------------------------------------------------------ workload
@dataclass
class _Workload:
    """One (N, steps) configuration: images, their class targets and the initial network."""

    n_nodes: int
    steps: int
    images: torch.Tensor
    targets: torch.Tensor
    network: WilsonCowanNetwork


def _make_workload(s: BenchSettings, n_nodes: int, steps: int, device: torch.device) -> _Workload:
    """Random images in [0, 1], random labels' targets and a seeded network."""
    dtype = getattr(torch, s.dtype)
    gen = torch.Generator().manual_seed(s.seed)
    network = WilsonCowanNetwork(n_nodes, s.n_classes, seed=s.seed, dtype=dtype).to(device)
    images = torch.rand(s.batch, n_nodes, generator=gen, dtype=dtype).to(device)
    labels = torch.randint(0, s.n_classes, (s.batch,), generator=gen)
    targets = network.targets[labels.to(device)]
    return _Workload(n_nodes, steps, images, targets, network)


def _training_step(name: str, w: _Workload, s: BenchSettings) -> Callable[[], torch.Tensor]:
    """A closure running one training step of implementation ``name`` on its own model copy."""
    T = w.steps * s.dt
    net = copy.deepcopy(w.network)
    if name == "reference":
        c = net.coupling
        model: nn.Module = ReferenceWilsonCowan(
            c.phi_fixed, c.phi_free, c.eigenvalues, float(net.gamma.detach()), net.Gamma, net.params
        )

        def forward() -> torch.Tensor:
            return model(w.images, w.steps, s.dt)

    elif name == "autograd":
        model = net

        def forward() -> torch.Tensor:
            return net.integrate(w.images, T=T, dt=s.dt, validate=False)[0]

    else:
        model = net
        options = {
            "matmul_dtype": torch.bfloat16 if name == "engine-bf16" else None,
            "compiled": name in ("engine-compiled", "compiled-graph"),
        }

        def forward() -> torch.Tensor:
            A = net.coupling.matrix()
            x, _ = integrate_fast(
                w.images, w.images, A, net.gamma, net.Gamma, net.params, T, s.dt, **options
            )
            return x

    graph = name.endswith("-graph")
    opt = torch.optim.Adam(model.parameters(), lr=s.lr, capturable=graph)

    def step() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(forward(), w.targets)
        loss.backward()
        opt.step()
        return loss.detach()

    if name == "engine-tf32":
        return _with_tf32(step)
    return _graphed(step, w.images.device) if graph else step


def _with_tf32(run: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    """``run`` with TF32 matrix products allowed while it runs (PyTorch's default is off)."""

    def tf32_run() -> torch.Tensor:
        saved = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = True
        try:
            return run()
        finally:
            torch.backends.cuda.matmul.allow_tf32 = saved

    return tf32_run


def _graphed(step: Callable[[], torch.Tensor], device: torch.device) -> Callable[[], torch.Tensor]:
    """``step`` captured as a CUDA graph (after warm-up steps on a side stream), as a replayer."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        loss = step()

    def replay() -> torch.Tensor:
        graph.replay()
        return loss

    return replay


def _gemm_floor(w: _Workload) -> Callable[[], torch.Tensor]:
    """The matrix products of one training step alone, on preallocated buffers."""
    b, n = w.images.shape
    A = w.network.coupling.matrix().detach()
    X = torch.rand(w.steps, b, n, dtype=A.dtype, device=A.device)
    out = torch.empty(b, n, dtype=A.dtype, device=A.device)

    def run() -> torch.Tensor:
        for k in range(w.steps):
            torch.mm(X[k], A.t(), out=out)
        for k in range(w.steps):
            torch.mm(X[k], A, out=out)
        return torch.mm(X.view(-1, n).t(), X.view(-1, n))

    return run


# ------------------------------------------------------------------------------ measuring
def _sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that a timing covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _saved_bytes(step: Callable[[], torch.Tensor]) -> int:
    """Bytes of the distinct storages autograd keeps for the backward pass during one step."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with saved_tensors_hooks(pack, lambda t: t):
        step()
    return sum(storages.values())


def _peak_cuda_bytes(step: Callable[[], torch.Tensor], device: torch.device) -> int:
    """Peak bytes allocated on the GPU during one step."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device))


def _matmul_flops(batch: int, n_nodes: int, steps: int) -> int:
    """2 B N^2 per product; n products forward, 2 n backward (adjoint and dL/dA)."""
    return 3 * steps * 2 * batch * n_nodes * n_nodes


def _nominal_peak(device: torch.device) -> tuple[float | None, str]:
    """(FLOP/s, source) of the device's nominal fp32 peak; None where not known."""
    if device.type != "cuda":
        return None, "unknown: no vendor figure for this (virtualised) CPU's fp32 matmul peak"
    name = torch.cuda.get_device_name(device)
    for key, peak in NOMINAL_FP32_PEAK.items():
        if key in name:
            return peak, f"vendor datasheet, FP32 non-tensor-core ({key})"
    return None, f"unknown for {name}"


def _bf16_deviation(w: _Workload, s: BenchSettings) -> dict[str, float]:
    """Largest |x(T)|, |y(T)| deviations: bf16 (and, on CUDA, TF32) products from float32, float32
    from float64."""
    net = w.network
    T = w.steps * s.dt
    with torch.no_grad():
        A = net.coupling.matrix()
        args = (w.images, w.images, A, net.gamma, net.Gamma, net.params, T, s.dt)
        x32, y32 = integrate_fast(*args)
        x16, y16 = integrate_fast(*args, matmul_dtype=torch.bfloat16)
        img, A64, g64 = w.images.double(), A.double(), net.gamma.double()
        x64, y64 = integrate_fast(img, img, A64, g64, net.Gamma, net.params, T, s.dt)
        deviation = {
            "max_abs_dx": float((x16 - x32).abs().max()),
            "max_abs_dy": float((y16 - y32).abs().max()),
            "fp32_vs_fp64_max_abs_dx": float((x32.double() - x64).abs().max()),
            "fp32_vs_fp64_max_abs_dy": float((y32.double() - y64).abs().max()),
        }
        if A.is_cuda:
            xt, yt = _with_tf32(lambda: integrate_fast(*args))()
            deviation["tf32_max_abs_dx"] = float((xt - x32).abs().max())
            deviation["tf32_max_abs_dy"] = float((yt - y32).abs().max())
    return deviation


def _time_configuration(
    s: BenchSettings, n_nodes: int, steps: int, names: Sequence[str], device: torch.device
) -> dict[str, Any]:
    """Time every implementation on one (N, steps) workload, interleaved, and summarise."""
    w = _make_workload(s, n_nodes, steps, device)
    runners: dict[str, Callable[[], torch.Tensor]] = {}
    memory: dict[str, int] = {}
    for name in names:
        if name == "gemm-floor":
            runners[name] = _gemm_floor(w)
            continue
        step = _training_step(name, w, s)
        runners[name] = step
        memory[name] = (
            _peak_cuda_bytes(step, device) if device.type == "cuda" else _saved_bytes(step)
        )
    for _ in range(s.warmup):
        for run in runners.values():
            run()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in names}
    order = list(names)
    for r in range(s.repeats):
        rotated = order[r % len(order) :] + order[: r % len(order)]
        for name in rotated:
            _sync(device)
            start = time.perf_counter()
            runners[name]()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    flops = _matmul_flops(s.batch, n_nodes, steps)
    peak, _ = _nominal_peak(device)
    steps_per_epoch = math.ceil(EPOCH_IMAGES / s.batch)
    median = {name: statistics.median(t) for name, t in times.items()}
    ref = median.get("reference")
    rows = {}
    for name in names:
        rows[name] = {
            "median_s": median[name],
            "min_s": min(times[name]),
            "times_s": times[name],
            "speedup_vs_reference": None if ref is None else ref / median[name],
            "epoch_s": median[name] * steps_per_epoch,
            "matmul_gflops": flops / median[name] / 1e9,
            "fraction_of_peak": None if peak is None else flops / median[name] / peak,
            "memory_bytes": memory.get(name),
        }
    result: dict[str, Any] = {
        "n_nodes": n_nodes,
        "steps": steps,
        "batch": s.batch,
        "matmul_flops_per_step": flops,
        "steps_per_epoch": steps_per_epoch,
        "implementations": rows,
    }
    if "engine-bf16" in names:
        result["bf16_deviation"] = _bf16_deviation(w, s)
    return result


# ------------------------------------------------------------------------------ provenance
def _slug(text: str) -> str:
    """Lower-case letters and digits joined by hyphens, for file names."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _provenance(device: torch.device, started: dt_.datetime, wall0: float) -> dict[str, Any]:
    """How a benchmark record was made: hardware, software, commit, start and wall time."""
    return {
        "device": device.type,
        "device_name": device_name(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        **dict(zip(("commit", "dirty"), git_commit())),
        "started_utc": started.isoformat(timespec="seconds"),
        "wall_s": time.perf_counter() - wall0,
        "threads": torch.get_num_threads(),
    }


def _load() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (other processes competing for the cores)."""
    try:
        return list(os.getloadavg())
    except OSError:
        return None


# ------------------------------------------------------------------------------ running
def run_benchmark(
    settings: BenchSettings = FULL,
    *,
    device: str | torch.device | None = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Run the benchmark and return its record (see the module docstring); nothing is written."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    skip = {
        "engine-bf16": not settings.bf16,
        "engine-compiled": not settings.compiled,
        "compiled-graph": not settings.compiled,
    }
    names = [
        n
        for n in IMPLEMENTATIONS
        if not skip.get(n, False) and (dev.type == "cuda" or n not in CUDA_ONLY)
    ]
    started = dt_.datetime.now(dt_.timezone.utc)
    wall0 = time.perf_counter()
    load_start = _load()
    main_runs = []
    for n_nodes in settings.n_nodes:
        for steps in settings.steps:
            if log:
                log(f"timing N = {n_nodes}, {steps} steps ...")
            main_runs.append(_time_configuration(settings, n_nodes, steps, names, dev))
            if log:
                log("\n".join(_format_run(main_runs[-1])))
    scaling_names = [n for n in names if n not in ("engine-bf16", "engine-tf32")]
    scaling_runs = []
    for n_nodes in settings.scaling_nodes:
        if log:
            log(f"timing N = {n_nodes}, {settings.scaling_steps} steps (scaling) ...")
        scaling_runs.append(
            _time_configuration(settings, n_nodes, settings.scaling_steps, scaling_names, dev)
        )
        if log:
            log("\n".join(_format_run(scaling_runs[-1])))
    peak, peak_source = _nominal_peak(dev)
    return {
        "schema": "wcbook-bench/1",
        "provenance": {
            **_provenance(dev, started, wall0),
            "cpu_count": os.cpu_count(),
            "load_average_start": load_start,
            "load_average_end": _load(),
        },
        "settings": settings.to_dict(),
        "nominal_peak_flops": peak,
        "nominal_peak_source": peak_source,
        "memory_measure": (
            "torch.cuda.max_memory_allocated over one step"
            if dev.type == "cuda"
            else "bytes of distinct storages saved for backward in one step (saved-tensor hooks)"
        ),
        "max_rss_bytes": _max_rss_bytes(),
        "main": main_runs,
        "scaling": scaling_runs,
    }


def _training_paths(device: torch.device, compiled: bool) -> list[tuple[str, bool]]:
    """(engine, cuda_graph) pairs compared by :func:`compare_training` on ``device``."""
    paths = [("autograd", False), ("fast", False)]
    if device.type == "cuda":
        paths.append(("fast", True))
    if compiled:
        paths.append(("compiled", device.type == "cuda"))
    return paths


def _train_path(
    config: Any, profile: Any, seed: int, dev: torch.device, engine: str, graph: bool,
    folder: Path,
) -> tuple[bool, dict[str, Any]]:
    """Train one seed along one execution path into ``folder``: whether a CUDA graph ran, and
    the run's losses, test accuracy and seconds per epoch."""
    record = train(config, profile, seed, device=dev, results_dir=folder, checkpoint_dir=folder,
                   resume=False, progress=False, engine=engine, cuda_graph=graph)
    state = torch.load(folder / config.name / profile.name / f"seed{seed}.pt", weights_only=True)
    return bool(state["environment"]["cuda_graph"]), {
        "seed": seed,
        "loss": record["history"]["loss"],
        "test_accuracy": record["metrics"]["test_accuracy"],
        "seconds_per_epoch": state["histories"][0]["seconds"],
    }


def _summarise_paths(rows: dict[str, dict[str, Any]]) -> None:
    """Add to each path's row its steady seconds per epoch (median after each run's first), the
    mean and standard error of its test accuracy, its largest relative loss deviation from the
    autograd path (first seed) and its speed-up over that path."""
    reference = rows["autograd"]["runs"][0]["loss"]
    for row in rows.values():
        accuracies = [run["test_accuracy"] for run in row["runs"]]
        steady = [t for run in row["runs"] for t in run["seconds_per_epoch"][1:]]
        row["steady_epoch_s"] = statistics.median(
            steady or [t for run in row["runs"] for t in run["seconds_per_epoch"]]
        )
        row["test_accuracy_mean"] = statistics.fmean(accuracies)
        row["test_accuracy_sem"] = (
            statistics.stdev(accuracies) / math.sqrt(len(accuracies))
            if len(accuracies) > 1
            else None
        )
        row["max_rel_loss_difference"] = max(
            abs(a - b) / abs(b) for a, b in zip(row["runs"][0]["loss"], reference)
        )
    for row in rows.values():
        row["speedup_vs_autograd"] = rows["autograd"]["steady_epoch_s"] / row["steady_epoch_s"]


def compare_training(
    experiment: str,
    profile: str = "smoke",
    epochs: int | None = 3,
    *,
    seeds: Sequence[int] = (0,),
    device: str | torch.device = "auto",
    compiled: bool = True,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Train ``experiment`` under ``profile`` (cut to ``epochs``) along every execution path.

    For each seed every path starts from the same initialisation and sees the same batches. The
    record holds per-path runs (loss per epoch, seconds per epoch, test accuracy), the median
    seconds per epoch after each run's first (which includes compilation and graph capture), the
    mean and standard error of the test accuracy over seeds, and the largest relative deviation of
    the per-epoch losses from the autograd path (first seed).
    """
    dev = select_device(device)
    config = get_experiment(experiment)
    base = get_profile(profile)
    short = base if epochs is None else dataclasses.replace(base, epochs=epochs, eval_every=epochs)
    started = dt_.datetime.now(dt_.timezone.utc)
    wall0 = time.perf_counter()
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            for engine, graph in _training_paths(dev, compiled):
                label = engine + ("+graph" if graph else "")
                cuda_graph, run = _train_path(config, short, seed, dev, engine, graph,
                                              Path(tmp) / label)
                row = rows.setdefault(label, {"engine": engine, "cuda_graph": cuda_graph})
                row.setdefault("runs", []).append(run)
                if log:
                    log(f"{label:<16} seed {seed}: loss {run['loss'][-1]:.6f}, "
                        f"test accuracy {run['test_accuracy']:.4f}")
    _summarise_paths(rows)
    return {
        "schema": "wcbook-bench-training/1",
        "provenance": {**_provenance(dev, started, wall0), "load_average": _load()},
        "experiment": experiment,
        "profile": short.to_dict(),
        "seeds": list(seeds),
        "paths": rows,
    }


def format_training(record: dict[str, Any]) -> str:
    """The training-path comparison as a short text table."""
    prov = record["provenance"]
    lines = [
        f"{record['experiment']} ({record['profile']['name']}, {record['profile']['epochs']} "
        f"epochs, seeds {record['seeds']}) on {prov['device_name']} | torch {prov['torch']}",
        f"{'path':<16} {'s/epoch':>9} {'speedup':>8} {'max rel dloss':>13} {'test acc':>16}",
    ]
    for label, row in record["paths"].items():
        sem = row["test_accuracy_sem"]
        accuracy = f"{row['test_accuracy_mean']:.4f}" + ("" if sem is None else f" ({sem:.4f})")
        lines.append(
            f"{label:<16} {row['steady_epoch_s']:>9.3f} {row['speedup_vs_autograd']:>7.2f}x "
            f"{row['max_rel_loss_difference']:>13.1e} {accuracy:>16}"
        )
    lines.append(
        "s/epoch: median over epochs after the first; max rel dloss: per-epoch loss vs autograd "
        "(first seed); test acc: mean (SEM) over seeds"
    )
    return "\n".join(lines)


def rounding_divergence(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    steps: int = 30,
    lr: float = 0.1,
    batch: int = 200,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
) -> list[float]:
    """Per Adam step, ``abs(loss_fast - loss_autograd) / abs(loss_autograd)`` of two identical
    classifiers.

    Both start from the same seed and see the same batches (cycling through ``images``, flattened,
    (n, N)); one integrates with the autograd path, the other with the engine. The first entry is
    the deviation before any update, i.e. of the forward pass alone; its growth over later steps
    shows how strongly training amplifies rounding at this learning rate.
    """
    from .models import WilsonCowanClassifier

    n_nodes = images.shape[1]
    n_classes = int(labels.max()) + 1
    images = images.to(dtype)
    losses: dict[str, list[float]] = {}
    for engine in ("autograd", "fast"):
        model = WilsonCowanClassifier(n_nodes, n_classes, seed=seed, dtype=dtype, engine=engine)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        losses[engine] = []
        for step in range(steps):
            start = (step * batch) % max(len(images) - batch + 1, 1)
            x, y = images[start : start + batch], labels[start : start + batch]
            loss = model.loss(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            (loss + model.penalty()).backward()
            optimizer.step()
            losses[engine].append(float(loss.detach()))
    return [abs(f - a) / abs(a) for a, f in zip(losses["autograd"], losses["fast"])]


def load_bench_records(directory: str | Path = RESULTS_DIR) -> list[dict[str, Any]]:
    """Every benchmark record in ``directory`` (step timings and training-path comparisons)."""
    return [json.loads(p.read_text()) for p in sorted(Path(directory).glob("*.json"))]


def plot_scaling(record: dict[str, Any], ax: Any, names: Sequence[str] | None = None) -> None:
    """Median time of one training step against N (log-log) for each implementation of a step
    benchmark record, with an N^2 line through the GEMM floor's largest N for reference."""
    runs = record["scaling"]
    nodes = [run["n_nodes"] for run in runs]
    names = names or list(runs[0]["implementations"])
    for name in names:
        ax.plot(
            nodes,
            [run["implementations"][name]["median_s"] * 1e3 for run in runs],
            "o-",
            label=name,
        )
    if "gemm-floor" in runs[-1]["implementations"]:
        last = runs[-1]["implementations"]["gemm-floor"]["median_s"] * 1e3
        ax.plot(nodes, [last * (n / nodes[-1]) ** 2 for n in nodes], "k:", label="N^2")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="N (nodes)",
        ylabel="ms per training step",
        title=f"{record['provenance']['device_name']}, {record['scaling'][0]['steps']} steps",
    )
    ax.legend(fontsize=7)


def _max_rss_bytes() -> int:
    """Process-wide maximum resident set size so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def write_record(
    record: dict[str, Any], directory: str | Path = RESULTS_DIR, *, kind: str | None = None
) -> Path:
    """Write ``record`` as ``<device-slug>[-<kind>]-<UTC timestamp>.json`` in ``directory``,
    atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    prov = record["provenance"]
    stamp = dt_.datetime.fromisoformat(prov["started_utc"]).strftime("%Y%m%dT%H%M%SZ")
    slug = _slug(prov["device"] + "-" + prov["device_name"] + (f"-{kind}" if kind else ""))
    path = directory / f"{slug}-{stamp}.json"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def _format_run(run: dict[str, Any]) -> list[str]:
    """Table rows of one (N, steps) configuration."""
    lines = []
    for name, row in run["implementations"].items():
        speed, mem = row["speedup_vs_reference"], row["memory_bytes"]
        frac = row["fraction_of_peak"]
        lines.append(
            f"{run['n_nodes']:>5} {run['steps']:>5} {name:<15} {row['median_s'] * 1e3:>10.1f} "
            f"{'' if speed is None else f'{speed:.2f}x':>7} {row['epoch_s']:>8.1f} "
            f"{row['matmul_gflops']:>8.1f} {'' if frac is None else f'{100 * frac:.1f}':>6} "
            f"{'' if mem is None else f'{mem / 2**20:.1f}':>8}"
        )
    if "bf16_deviation" in run:
        d = run["bf16_deviation"]
        lines.append(
            f"{'':>11} bf16 vs fp32: max|dx| = {d['max_abs_dx']:.1e}, max|dy| = "
            f"{d['max_abs_dy']:.1e} (fp32 vs fp64: {d['fp32_vs_fp64_max_abs_dx']:.1e}, "
            f"{d['fp32_vs_fp64_max_abs_dy']:.1e})"
        )
        if "tf32_max_abs_dx" in d:
            lines.append(
                f"{'':>11} tf32 vs fp32: max|dx| = {d['tf32_max_abs_dx']:.1e}, max|dy| = "
                f"{d['tf32_max_abs_dy']:.1e}"
            )
    return lines


def format_table(record: dict[str, Any]) -> str:
    """The record's timings as a short text table."""
    prov = record["provenance"]
    peak = record["nominal_peak_flops"]
    load = prov["load_average_start"]
    lines = [
        f"{prov['device_name']} | torch {prov['torch']} | {prov['threads']} threads | "
        f"load avg at start {'?' if load is None else f'{load[0]:.2f}'} | fp32 peak: "
        + (f"{peak / 1e12:.1f} TFLOP/s" if peak else "unknown"),
        f"{'N':>5} {'steps':>5} {'implementation':<15} {'median ms':>10} {'vs ref':>7} "
        f"{'s/epoch':>8} {'GFLOP/s':>8} {'% peak':>6} {'mem MiB':>8}",
    ]
    for run in record["main"] + record["scaling"]:
        lines.extend(_format_run(run))
    lines.append("gemm-floor: the matrix products alone (not a training step)")
    lines.append(f"memory: {record['memory_measure']}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m wcbook bench``."""
    parser.add_argument("--quick", action="store_true", help="CI form: small sizes, few repeats")
    parser.add_argument("--repeats", type=int, help="timed repetitions per implementation")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time the engine with bfloat16 matrix products (default: on in the full form)",
    )
    parser.add_argument(
        "--compiled",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time the engine with torch.compile'd element-wise steps (default: full form)",
    )
    add_output_arguments(parser)
    parser.add_argument(
        "--training",
        metavar="EXPERIMENT",
        help="compare the training loop's execution paths on this experiment instead",
    )
    parser.add_argument("--profile", default="smoke", help="profile for --training")
    parser.add_argument(
        "--epochs", type=int, help="epochs for --training (default: the profile's)"
    )
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..n-1 for --training")
    parser.add_argument(
        "--ensemble",
        action="store_true",
        help="model-epochs per second of ensembles against separate processes instead",
    )
    parser.add_argument(
        "--members", type=int, nargs="+", help="ensemble sizes for --ensemble (1 2 5 10 20)"
    )
    parser.add_argument("--sizes", type=int, nargs="+", help="N for --ensemble (196 784 1225)")
    parser.add_argument(
        "--optimizer",
        metavar="EXPERIMENT",
        help="Adam's for-loop, foreach and fused steps on this experiment's first stage instead "
        "(--repeats: rounds, default 5; --quick: 5 steps a round instead of 50)",
    )
    parser.add_argument(
        "--stage", type=int, help="the stage --optimizer times (default: the experiment's first)"
    )


def run(args: argparse.Namespace) -> int:
    """Run the benchmark, print the table, write the record (``<out>/benchmarks/``, or with
    ``--publish`` ``benchmarks/results/``); returns the exit code."""
    out = folders_from_args(args).benchmarks
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.ensemble:
        from .bench_ensemble import ensemble_benchmark

        record = ensemble_benchmark(
            sizes=args.sizes or (196, 784, 1225),
            members=args.members or (1, 2, 5, 10, 20),
            device=args.device,
        )
        print(f"record: {write_record(record, out, kind='ensemble')}")
        return 0
    if args.optimizer:
        from .bench_optimizer import format_optimizer, optimizer_benchmark, stage_entry
        from .cli import UsageError

        try:
            stage_entry(get_experiment(args.optimizer), args.stage)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        record = optimizer_benchmark(args.optimizer, args.device, rounds=args.repeats or 5,
                                     steps=5 if args.quick else 50, stage=args.stage)
        print(format_optimizer(record))
        print(f"record: {write_record(record, out, kind='optimizer')}")
        return 0
    if args.training:
        record = compare_training(
            args.training,
            args.profile,
            args.epochs,
            seeds=range(args.seeds),
            device=args.device or "auto",
            compiled=args.compiled is not False,
        )
        path = write_record(record, out, kind="training")
        print(format_training(record))
        print(f"record: {path}")
        return 0
    settings = QUICK if args.quick else FULL
    changes: dict[str, Any] = {}
    if args.repeats is not None:
        changes["repeats"] = args.repeats
    if args.bf16 is not None:
        changes["bf16"] = args.bf16
    if args.compiled is not None:
        changes["compiled"] = args.compiled
    settings = dataclasses.replace(settings, **changes)
    record = run_benchmark(settings, device=args.device)
    path = write_record(record, out)
    print(format_table(record))
    print(f"record: {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m wcbook.bench ...``: an alias of ``python -m wcbook bench ...``."""
    from .cli import main as cli_main

    return cli_main(["bench", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
