"""The training loop: every experiment, any number of seeds trained at once as one ensemble.

:func:`train_ensemble` trains the members of one experiment (one per seed) as an
:class:`~wcbook.ensemble.Ensemble` and writes one record per member; :func:`train` is the
ensemble of one. What the loop does with a model comes from its kind (:mod:`wcbook.kinds`),
never from its name. Each member is the run it would be alone: its initialisation comes from its
seed, its data order from its own generator (a fresh permutation per epoch), its gradient from
its own batch mean, and Adam's element-wise update keeps the stacked members apart.

A member whose loss, parameters or test states turn NaN/inf (or whose gamma leaves (0, inf)), or
whose parameters the optimiser can no longer move (a gradient spike overflowed an Adam second
moment), is frozen at its last good epoch and recorded as diverged; the others train on
untouched. After every epoch one checkpoint of the whole ensemble is written; an interrupted run
resumes from it (also on another machine or kind of device) and ends as an uninterrupted one would.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..certificate import final_stability
from ..ensemble import Ensemble
from ..experiments import (
    ExperimentConfig,
    Profile,
    get_experiment,
    get_profile,
    resolve,
    run_name,
)
from ..kinds import Kind, Split, kind_of
from ..models import check_engine
from ..parallel import data_parallel_group
from . import checkpoint as ckpt
from .evaluation import EVAL_BATCH, attractor_report, count_correct
from .graph import GraphedStep
from .provenance import check_matmul, environment, select_device, session_entry
from .records import member_record, write_record
from .stages import encoder_and_head, stage1_end, stage1_path, stage_at


class DivergenceError(RuntimeError):
    """Training produced NaN/inf (loss, state or parameters) or gamma left (0, inf).

    ``epoch`` is 1-based; ``step`` (1-based within the epoch) is known when the loss went bad.
    """

    def __init__(self, message: str, *, epoch: int, step: int | None = None) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.step = step


@dataclass
class Options:
    """How a run executes (none of it changes the numbers beyond float rounding)."""

    device: torch.device
    engine: str = "fast"
    cuda_graph: bool = True
    matmul: str = "fp32"
    progress: bool = True
    log: bool = False
    rank: int = 0
    world: int = 1


@dataclass
class Run:
    """Everything a run carries from epoch to epoch (and its checkpoint holds)."""

    config: ExperimentConfig
    profile: Profile
    kind: Kind
    seeds: list[int]
    ensemble: Ensemble
    shuffles: list[torch.Generator]
    histories: list[dict[str, list]]
    status: list[dict[str, Any] | None]
    started: str
    epoch: int = 0
    attractors: list[dict | None] = field(default_factory=list)
    stability: list[dict | None] = field(default_factory=list)
    stage1_from: list[str | None] = field(default_factory=list)
    wall_before: float = 0.0
    sessions_before: list[dict[str, Any]] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    optimizer: torch.optim.Optimizer | None = None
    optimizer_stage: int | None = None
    scheduler: Any = None
    saved_optimizer: dict[str, Any] | None = None
    saved_scheduler: dict[str, Any] | None = None
    session: dict[str, Any] = field(default_factory=dict)
    session_started: str = ""
    session_first: int = 1
    clock: float = field(default_factory=time.perf_counter)
    seconds: list[float] = field(default_factory=list)
    epoch_seconds: float = 0.0
    wall_now: float = 0.0

    @property
    def alive(self) -> list[int]:
        """Members still training."""
        return [k for k, s in enumerate(self.status) if s is None]

    @property
    def wall_seconds(self) -> float:
        """Wall-clock time of every session up to the last epoch trained."""
        if not self.seconds:
            return self.wall_before
        return self.wall_before + self.wall_now - self.clock

    @property
    def sessions(self) -> list[dict[str, Any]]:
        """The sessions that trained the run, this one included once it trained an epoch."""
        if not self.seconds:
            return list(self.sessions_before)
        entry = session_entry(self.session, self.session_started, self.session_first, self.seconds)
        return [*self.sessions_before, entry]


# ----------------------------------------------------------------------------------------------
# Building a run
# ----------------------------------------------------------------------------------------------
def _new_history(metric_names: list[str]) -> dict[str, list]:
    names = ["loss", "train_accuracy", "seconds", "test_epochs", "test_accuracy", *metric_names]
    return {name: [] for name in names}


def _members(config: ExperimentConfig, seeds: list[int]) -> list[nn.Module]:
    """One freshly initialised model per seed, each built exactly as its single run builds it."""
    models = []
    for seed in seeds:
        ckpt.seed_everything(seed)
        # train(): pretrained submodules (a Hugging Face encoder) come in eval mode, dropout off.
        models.append(config.build_model(seed).train())
    return models


def _new_run(config: ExperimentConfig, profile: Profile, seeds: list[int], opts: Options) -> Run:
    kind = kind_of(config)
    if len(seeds) > 1 and not kind.stackable:
        raise ValueError(
            f"{config.name}: a {kind.name} model cannot train as an ensemble (its training draws "
            "random numbers a member would draw alone); run its seeds one at a time "
            "(--ensemble off)"
        )
    ensemble = Ensemble(_members(config, seeds)).to(opts.device).train()
    ckpt.seed_everything(seeds[0])
    ensemble.template.train()
    names = list(ensemble.member_call(0, "metrics"))
    return Run(
        config=config,
        profile=profile,
        kind=kind,
        seeds=list(seeds),
        ensemble=ensemble,
        shuffles=[torch.Generator().manual_seed(seed) for seed in seeds],
        histories=[_new_history(names) for _ in seeds],
        status=[None] * len(seeds),
        started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        attractors=[None] * len(seeds),
        stability=[None] * len(seeds),
        stage1_from=[None] * len(seeds),
    )


def _restore(run: Run, state: dict[str, Any]) -> None:
    """Continue ``run`` from a checkpoint of it."""
    run.ensemble.load_state_dict(state["model"])
    run.epoch, run.histories, run.status = state["epoch"], state["histories"], state["status"]
    run.attractors, run.stage1_from = state["attractors"], state["stage1_from"]
    run.stability = state.get("stability", [None] * len(run.seeds))
    for generator, saved in zip(run.shuffles, state["shuffle_rng"]):
        generator.set_state(saved)
    ckpt.set_rng_states(state["rng"])
    run.started, run.wall_before = state["started_utc"], state["wall_seconds"]
    run.environment, run.sessions_before = state["environment"], list(state["sessions"])
    run.optimizer_stage = state["optimizer_stage"]
    run.saved_optimizer, run.saved_scheduler = state["optimizer"], state["scheduler"]


def _restore_stage1(run: Run, snapshots: list[dict[str, Any]]) -> None:
    """Start stage 2 from the stage-1 snapshots a run differing only in stage 2 left (the
    softmax twin of a Wilson-Cowan run, or the reverse), one per member."""
    for k, snap in enumerate(snapshots):
        run.ensemble.set_member(k, snap["model"])
        history = run.histories[k]
        for name in history:
            history[name] = list(snap["history"].get(name, []))
        for name, value in run.ensemble.member_call(k, "metrics").items():  # constant in stage 1
            history[name] = [value] * len(history["loss"])
        run.shuffles[k].set_state(snap["shuffle_rng"])
        run.stage1_from[k] = snap["run"]
    first = snapshots[0]
    ckpt.set_rng_states(first["rng"])
    run.epoch = run.config.stages[0][1]
    run.started, run.wall_before = first["started_utc"], first["wall_seconds"]
    run.environment, run.sessions_before = first["environment"], list(first["sessions"])


def _checkpoint_state(run: Run, opts: Options) -> dict[str, Any]:
    return {
        "format": ckpt.CHECKPOINT_FORMAT,
        "config": run.config.to_dict(),
        "profile": run.profile.to_dict(),
        "seeds": run.seeds,
        "epoch": run.epoch,
        "model": run.ensemble.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "optimizer_stage": run.optimizer_stage,
        "scheduler": None if run.scheduler is None else run.scheduler.state_dict(),
        "shuffle_rng": [g.get_state() for g in run.shuffles],
        "rng": ckpt.rng_states(),
        "histories": run.histories,
        "status": run.status,
        "attractors": run.attractors,
        "stability": run.stability,
        "stage1_from": run.stage1_from,
        "started_utc": run.started,
        "wall_seconds": run.wall_seconds,
        "environment": run.environment,
        "sessions": run.sessions,
    }


# ----------------------------------------------------------------------------------------------
# One step, one epoch
# ----------------------------------------------------------------------------------------------
def _optimizer_for(run: Run, stage: int | None, opts: Options, steps_per_epoch: int) -> None:
    """A fresh optimiser (and schedule) for ``stage`` (App. A: a fresh Adam per stage), with
    the checkpoint's state when the run resumes inside that stage."""
    template = run.ensemble.template
    engine = opts.engine if run.kind.has_engine(run.config) else None
    run.kind.configure(template, stage, engine)
    names = run.kind.trainable(template, stage)
    groups = [{"params": run.ensemble.parameters_of(group), **settings}
              for group, settings in run.kind.groups(template, run.config, names, stage)]
    run.optimizer = run.kind.optimizer(run.config, groups, opts.device)
    run.scheduler = None
    if run.kind.scheduler is not None:
        epochs = next(e for s, e, _ in run.config.stages if s == stage)  # this stage's
        run.scheduler = run.kind.scheduler(run.config, run.optimizer, epochs * steps_per_epoch)
    if run.saved_optimizer is not None and run.optimizer_stage == stage:
        run.optimizer.load_state_dict(ckpt.for_device(run.saved_optimizer, run.optimizer))
        if run.scheduler is not None and run.saved_scheduler:
            run.scheduler.load_state_dict(run.saved_scheduler)
            # Building the scheduler reset the rates to the first step's; restore the saved ones.
            for group, lr in zip(run.optimizer.param_groups, run.scheduler.get_last_lr()):
                group["lr"] = lr
    run.saved_optimizer = run.saved_scheduler = None
    run.optimizer_stage = stage


def _enter_epoch(run: Run, epoch: int, n_train: int, opts: Options) -> tuple[int, bool]:
    """The batch size of ``epoch``'s stage, and whether a fresh optimiser was built for it (the
    first epoch of the run or of a new stage)."""
    stage, batch_size = stage_at(run.config, epoch)
    fresh = run.optimizer is None or stage != run.optimizer_stage
    if fresh:
        _optimizer_for(run, stage, opts, math.ceil(n_train / batch_size))
    return batch_size, fresh


def _make_step(run: Run, net: nn.Module, alive: torch.Tensor):
    """The training step on a batch of every member: forward, each member's batch-mean loss
    plus its regulariser, summed over the live members (so gradients never mix), backward,
    optimiser, then the clamp of any parameter the model bounds (``parameter_bounds``). Returns
    the members' losses and #correct, as device tensors."""
    ensemble, optimizer = run.ensemble, run.optimizer
    bounds = getattr(ensemble.template, "parameter_bounds", dict)()
    bounded = list(zip(ensemble.parameters_of(list(bounds)), bounds.values()))

    def step(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        optimizer.zero_grad(set_to_none=True)
        outputs = net(images)
        losses = ensemble.loss(outputs, labels)
        total = torch.where(alive, losses + ensemble.penalty(), 0.0).sum()
        total.backward()
        optimizer.step()
        with torch.no_grad():
            for param, (low, high) in bounded:
                param.clamp_(min=low, max=high)
        if run.scheduler is not None:
            run.scheduler.step()
        correct = (ensemble.classify(outputs.detach()) == labels).sum(dim=1)
        return losses.detach(), correct

    return step


def _train_epoch(
    run: Run, data: Split, batch_size: int, step, graphed: GraphedStep | None, bar: tqdm,
    opts: Options,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One pass over each member's shuffled data: per-step losses (steps, S), batch sizes and
    #correct (S,). With ``opts.world`` > 1 this process trains on its contiguous part of each
    batch; the losses are then ``local mean x local size``, to be summed over processes and
    divided by the batch sizes. Nothing here waits for the device."""
    device = data.labels.device
    order = torch.stack(
        [torch.randperm(len(data), generator=g) for g in run.shuffles]
    ).to(device)
    total = math.ceil(len(data) / batch_size)
    losses = torch.empty(total, run.ensemble.size, dtype=torch.float64, device=device)
    sizes = torch.empty(total, dtype=torch.float64)
    correct = torch.zeros(run.ensemble.size, dtype=torch.long, device=device)
    bar.reset(total=total)
    for k, start in enumerate(range(0, len(data), batch_size)):
        index = order[:, start : start + batch_size]
        sizes[k] = index.shape[1]
        if opts.world > 1:
            index = index.tensor_split(opts.world, dim=1)[opts.rank]
        images, labels = data.images[index], data.labels[index]
        full = graphed is not None and index.shape[1] == batch_size
        loss, right = graphed(images, labels) if full else step(images, labels)
        losses[k] = loss * index.shape[1] if opts.world > 1 else loss
        correct += right
        bar.update()
    return losses, sizes, correct


# ----------------------------------------------------------------------------------------------
# Checks after an epoch
# ----------------------------------------------------------------------------------------------
def _diverge(run: Run, member: int, epoch: int, what: str, step: int | None = None) -> None:
    where = f"epoch {epoch}" + (f", step {step}" if step is not None else "")
    run.status[member] = {
        "epoch": epoch,
        "step": step,
        "message": (
            f"{run.config.name} seed {run.seeds[member]}: training diverged at {where}: {what}. "
            f"Try a smaller learning rate (lr is {run.config.lr:g}), check the data (finite "
            "pixels in [0, 1], labels in range) and the model parameters; the state of the last "
            "good epoch is kept."
        ),
    }


def _check_training(run: Run, epoch: int, losses: torch.Tensor) -> None:
    """Mark members whose loss went NaN/inf this epoch, or whose parameters are unusable."""
    for k in run.alive:
        bad = (~torch.isfinite(losses[:, k])).nonzero()
        if len(bad):
            step = int(bad[0]) + 1
            _diverge(run, k, epoch, f"the loss is {losses[step - 1, k].item()}", step)
            continue
        problem = run.ensemble.member_call(k, "invalid_parameter")
        if problem is not None:
            _diverge(run, k, epoch, problem)


def _check_optimizer(run: Run, epoch: int, last_good: dict[str, torch.Tensor]) -> None:
    """Mark members the optimiser can no longer move, which leave the loss finite and would
    otherwise train on at chance for the rest of the run: an Adam second moment gone inf (a
    gradient too large to square in float32), or, at a constant learning rate, no trained
    parameter changed over the whole epoch (a gradient spike left a second moment so large that
    every step rounds to nothing). One host synchronisation for all parameters."""
    names = {p: n for n, p in run.ensemble.named_parameters()}
    trained = [(names[p], p, run.optimizer.state.get(p, {}))
               for group in run.optimizer.param_groups if group["lr"] > 0 for p in group["params"]]
    if not trained:
        return
    size = run.ensemble.size
    with torch.no_grad():
        moved = [(p != last_good[n]).reshape(size, -1).any(dim=1) for n, p, _ in trained]
        squares = [state["exp_avg_sq"].reshape(size, -1).float() if "exp_avg_sq" in state
                   else p.new_zeros(size, 1, dtype=torch.float32) for _, p, state in trained]
        overflow = [~torch.isfinite(v).all(dim=1) for v in squares]
        largest = torch.stack([v.amax(dim=1) for v in squares]).amax(dim=0)
        table = torch.stack([torch.stack(moved).any(dim=0), *overflow]).float()
        table = torch.cat([table, largest[None]]).cpu()  # rows: moved, overflow per param, largest
    shown = [name.removeprefix("stacked.").replace("/", ".") for name, _, _ in trained]
    for k in run.alive:
        bad = [name for name, broken in zip(shown, table[1:-1, k].tolist()) if broken]
        if bad:
            _diverge(run, k, epoch, f"Adam's second moment of {bad[0]} overflowed to inf (a "
                     "gradient too large to square in float32), so those parameters can no longer "
                     "move")
        elif run.scheduler is None and not table[0, k]:
            _diverge(run, k, epoch, "no trained parameter changed during the epoch: the optimiser "
                     f"is stuck (largest Adam second moment {table[-1, k].item():.3g}, as a "
                     "gradient spike leaves it)")


def _test(run: Run, epoch: int, test: Split, n_test: int, opts: Options) -> list[float]:
    """Test accuracy of every member (evaluation horizon); a live member with NaN/inf test
    states diverges."""
    counts = count_correct(run.ensemble, test, EVAL_BATCH)
    if opts.world > 1:
        torch.distributed.all_reduce(counts)
    correct, nonfinite = counts.tolist()
    for k in run.alive:
        if nonfinite[k]:
            _diverge(
                run, k, epoch,
                f"{nonfinite[k]} test states are NaN/inf at the evaluation horizon "
                f"T = {run.config.eval_horizon:g}",
            )
    return [c / max(n_test, 1) for c in correct]


def _append(
    run: Run, epoch: int, losses: torch.Tensor, sizes: torch.Tensor, correct: list[int],
    n_train: int, accuracies: list[float] | None,
) -> None:
    """Add the epoch to the history of every member still live after it."""
    run.seconds.append(run.epoch_seconds)
    for k in run.alive:
        history = run.histories[k]
        history["loss"].append(float((losses[:, k] * sizes).sum() / sizes.sum()))
        history["train_accuracy"].append(correct[k] / n_train)
        history["seconds"].append(run.epoch_seconds)
        for name, value in run.ensemble.member_call(k, "metrics").items():
            history[name].append(value)
        if accuracies is not None:
            history["test_epochs"].append(epoch)
            history["test_accuracy"].append(accuracies[k])


def _freeze(run: Run, members: list[int], last_good: dict[str, torch.Tensor]) -> None:
    """Put members that diverged back to their last good epoch and stop them moving: their
    parameters restored, their optimiser moments zeroed (their loss is masked from now on)."""
    with torch.no_grad():
        for name, param in run.ensemble.named_parameters():
            state = run.optimizer.state.get(param, {})
            for k in members:
                param[k].copy_(last_good[name][k])
                for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
                    if key in state:
                        state[key][k].zero_()


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------
def _start(
    config: ExperimentConfig, profile: Profile, seeds: list[int], opts: Options,
    checkpoint_dir: str | os.PathLike, resume: bool,
) -> Run:
    """A new run, or the run of the checkpoint (or of the stage-1 snapshots) to continue."""
    run = _new_run(config, profile, seeds, opts)
    path = ckpt.checkpoint_path(config, profile, seeds, checkpoint_dir)
    state = ckpt.load(path) if resume else None
    if state is not None:
        ckpt.check_resumable(
            state, path, config.to_dict(), profile.to_dict(), seeds, config.total_epochs
        )
        _restore(run, state)
        return run
    snapshots = [stage1_path(config, profile.to_dict(), s, checkpoint_dir) for s in seeds]
    if resume and snapshots[0] is not None and all(p.exists() for p in snapshots):
        _restore_stage1(run, [ckpt.load(p) for p in snapshots])
    return run


def _data(run: Run, opts: Options) -> tuple[Split, Split, int]:
    """The training and test splits the model sees (a process's share of the test split under
    data parallelism) and the size of the whole test split."""
    train_data, test_data = run.kind.load_data(run.config, run.profile, opts.device)
    if len(train_data) == 0:
        raise ValueError(
            f"{run.config.name}: the profile {run.profile.name!r} selects no training images"
        )
    train_data, test_data = run.kind.prepare(run.ensemble.template, (train_data, test_data))
    n_test = len(test_data)
    if opts.world > 1:
        test_data = Split(test_data.images[opts.rank :: opts.world],
                          test_data.labels[opts.rank :: opts.world])
    return train_data, test_data, n_test


def _epoch(run: Run, epoch: int, data: tuple[Split, Split, int], opts: Options, loop: dict) -> None:
    """Train one epoch, check it, evaluate when due and add it to the histories."""
    train_data, test_data, n_test = data
    batch_size, fresh = _enter_epoch(run, epoch, len(train_data), opts)
    if fresh:
        loop["graph"] = None
    net = loop["net"]
    step = _make_step(run, net, loop["alive"])
    if loop["graph"] is None and loop["graphable"] and len(train_data) >= batch_size:
        index = torch.arange(batch_size, device=opts.device).expand(run.ensemble.size, -1)
        loop["graph"] = GraphedStep(
            step, run.ensemble, run.optimizer, train_data.images[index], train_data.labels[index]
        )
        run.session["cuda_graph"] = True
    tick = time.perf_counter()
    losses, sizes, correct = _train_epoch(
        run, train_data, batch_size, step, loop["graph"], loop["bar"], opts
    )
    if opts.world > 1:
        torch.distributed.all_reduce(losses)
        torch.distributed.all_reduce(correct)
        losses = losses.cpu() / sizes[:, None]
    else:
        losses = losses.cpu()  # the one host synchronisation of the epoch
    run.epoch_seconds = time.perf_counter() - tick
    live_before = run.alive
    _check_training(run, epoch, losses)
    _check_optimizer(run, epoch, loop["last_good"])
    due = epoch % run.profile.eval_every == 0 or epoch in (
        stage1_end(run.config), run.config.total_epochs
    )
    accuracies = _test(run, epoch, test_data, n_test, opts) if due else None
    _append(run, epoch, losses, sizes, correct.tolist(), len(train_data), accuracies)
    if epoch == run.config.total_epochs:
        for k in run.alive:
            member = run.ensemble.member(k)
            run.stability[k] = final_stability(member)
            if run.kind.has_attractors(run.config):
                run.attractors[k] = attractor_report(member, test_data)
    dead = [k for k in live_before if k not in run.alive]
    if dead:
        _freeze(run, dead, loop["last_good"])
        loop["alive"].copy_(torch.tensor([s is None for s in run.status]))
    loop["last_good"] = {n: p.detach().clone() for n, p in run.ensemble.named_parameters()}
    run.epoch, run.wall_now = epoch, time.perf_counter()


_STAGE1_SHARED = ("format", "config", "profile", "epoch", "rng", "started_utc", "wall_seconds",
                  "environment", "sessions")


def _save(run: Run, opts: Options, checkpoint_dir: str | os.PathLike) -> None:
    """The epoch's checkpoint, and after stage 1 each member's stage-1 snapshot."""
    if opts.rank != 0:
        return
    state = _checkpoint_state(run, opts)
    ckpt.save(ckpt.checkpoint_path(run.config, run.profile, run.seeds, checkpoint_dir), state)
    if run.epoch != stage1_end(run.config) or run.epoch == 0:
        return
    for k, seed in enumerate(run.seeds):
        path = stage1_path(run.config, run.profile.to_dict(), seed, checkpoint_dir)
        if path is None:  # a stage 1 no other run shares
            return
        # what _restore_stage1 reads: one member, no optimiser (stage 2 starts a fresh one)
        snapshot = {
            **{key: state[key] for key in _STAGE1_SHARED},
            "model": encoder_and_head(run.ensemble.member_state_dict(k)),
            "history": run.histories[k],
            "shuffle_rng": run.shuffles[k].get_state(),
            "run": run.config.name,
        }
        ckpt.save(path, snapshot)


def _report(run: Run, epoch: int, bar: tqdm, opts: Options) -> None:
    """The epoch on the progress bar, or as one log line."""
    live = run.alive or [0]
    last = {k: run.histories[k] for k in live}

    def joined(name: str, digits: str) -> str:
        values = [h[name][-1] for h in last.values() if h[name]]
        return "/".join(f"{v:{digits}}" for v in values) or "-"

    text = {"loss": joined("loss", ".4g"), "acc": joined("train_accuracy", ".3f"),
            "test": joined("test_accuracy", ".3f")}
    bar.set_postfix(text)
    bar.update()
    if opts.log and opts.rank == 0:
        print(
            f"{run.config.name} seed{'s' if len(run.seeds) > 1 else ''} "
            f"{','.join(map(str, run.seeds))} epoch {epoch}/{run.config.total_epochs}: "
            f"loss {text['loss']}, train accuracy {text['acc']}, test accuracy {text['test']}, "
            f"{run.epoch_seconds:.1f} s" + (f", diverged: {len(run.seeds) - len(run.alive)}"
                                            if len(run.alive) < len(run.seeds) else ""),
            file=sys.stderr,
            flush=True,
        )


def _options(
    config: ExperimentConfig, kind: Kind, device: str | torch.device, engine: str,
    cuda_graph: bool, data_parallel: bool, matmul: str, progress: bool, log: bool,
) -> Options:
    """Check the execution options against the run and the process group."""
    dev = select_device(device)
    check_engine(engine)
    check_matmul(matmul)
    group = data_parallel_group() if data_parallel else None
    if data_parallel and group is None:
        raise RuntimeError(
            "data_parallel=True needs an initialised process group: launch with torchrun and "
            "call wcbook.parallel.init_data_parallel first (the CLI's --data-parallel does both)"
        )
    rank, world = group or (0, 1)
    if world > 1 and not kind.shardable:
        raise ValueError(
            f"{config.name}: data-parallel training of {kind.name} experiments is not "
            "supported (stage 1 leaves the dynamics without gradients, which DDP refuses); "
            "run one process per seed instead (torchrun without --data-parallel)"
        )
    if world > 1 and config.batch_size < world:
        raise ValueError(
            f"batch size {config.batch_size} cannot be split over {world} processes; "
            "use fewer processes"
        )
    return Options(dev, engine, cuda_graph, matmul, progress, log, rank, world)


def train_ensemble(
    config: ExperimentConfig | str,
    profile: Profile | str,
    seeds: list[int],
    *,
    device: str | torch.device = "auto",
    results_dir: str | os.PathLike = "results",
    checkpoint_dir: str | os.PathLike = "checkpoints",
    resume: bool = True,
    progress: bool = True,
    log: bool = False,
    engine: str = "fast",
    cuda_graph: bool = True,
    data_parallel: bool = False,
    matmul: str = "fp32",
) -> list[dict[str, Any]]:
    """Train one experiment for every seed in ``seeds`` at once, as one ensemble, under a
    profile; write and return one results record per seed (diverged members included, with
    ``status: "diverged"``).

    ``config`` may be an experiment id, ``profile`` a profile name. With ``resume`` the
    checkpoint of the same run (same configuration, profile up to the number of epochs, and
    seeds) is continued; a finished one only has its records rewritten. ``engine`` is the
    Wilson-Cowan integrator (:data:`wcbook.models.ENGINES`); ``cuda_graph`` allows capturing the
    training step on a GPU; ``data_parallel`` shards every batch over the processes of
    :mod:`wcbook.parallel`; ``matmul`` is the precision of float32 products ("fp32" or "tf32",
    which only GPUs have); ``log`` prints one line per epoch (for logs without a terminal).
    """
    profile = get_profile(profile)
    config = resolve(get_experiment(config) if isinstance(config, str) else config, profile)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {seeds}")
    kind = kind_of(config)
    opts = _options(config, kind, device, engine, cuda_graph, data_parallel, matmul, progress, log)
    with _matmul_precision(opts.matmul):
        run = _start(config, profile, list(seeds), opts, checkpoint_dir, resume)
        _train_run(run, opts, checkpoint_dir)
    return _finish(run, opts, results_dir)


@dataclass(frozen=True)
class TwinRuns:
    """An encoder experiment and its softmax twin trained over the same seeds
    (:func:`train_twins`): their records, and the seconds each took (the twin's stage 1 is the
    Wilson-Cowan run's, shared, so ``twin_seconds`` is its stage 2 only)."""

    records: list[dict[str, Any]]
    twins: list[dict[str, Any]]
    seconds: float
    twin_seconds: float


def train_twins(
    experiment: str, profile: Profile | str, seeds: list[int], **options: Any
) -> TwinRuns:
    """Train ``experiment`` (an encoder experiment with the Wilson-Cowan readout) and then its
    softmax twin ``<experiment>-softmax`` for ``seeds``, each with :func:`train_ensemble` and
    ``options``; the twin starts from the stage 1 the first one wrote."""
    tick = time.perf_counter()
    records = train_ensemble(experiment, profile, seeds, **options)
    middle = time.perf_counter()
    twins = train_ensemble(f"{experiment}-softmax", profile, seeds, **options)
    return TwinRuns(records, twins, middle - tick, time.perf_counter() - middle)


class _matmul_precision:
    """Float32 products in TF32 (``"tf32"``) or exact float32 inside the block."""

    def __init__(self, matmul: str) -> None:
        self.matmul = matmul

    def __enter__(self) -> None:
        self.saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        tf32 = self.matmul == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32

    def __exit__(self, *exc: Any) -> None:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self.saved


def _train_run(run: Run, opts: Options, checkpoint_dir: str | os.PathLike) -> None:
    """The epochs left of a run, with a checkpoint after each."""
    engine = opts.engine if run.kind.has_engine(run.config) else None
    run.session = environment(opts.device, engine, opts.world, opts.matmul)
    run.session["cuda_graph"] = False
    run.session_started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    run.session_first = run.epoch + 1
    if not run.environment:
        run.environment = run.session
    total = run.config.total_epochs
    if run.epoch >= total or not run.alive:
        return
    data = _data(run, opts)
    ddp = opts.world > 1
    device_ids = [opts.device] if opts.device.type == "cuda" else None
    show = opts.progress and opts.rank == 0
    loop: dict[str, Any] = {
        "net": (DistributedDataParallel(run.ensemble, device_ids=device_ids) if ddp
                else run.ensemble),
        "graph": None,
        "graphable": (opts.cuda_graph and opts.device.type == "cuda" and not ddp
                      and run.kind.graphable),
        "alive": torch.tensor([s is None for s in run.status], device=opts.device),
        "last_good": {n: p.detach().clone() for n, p in run.ensemble.named_parameters()},
        "bar": tqdm(total=0, desc="batches", leave=False, disable=not show, dynamic_ncols=True),
    }
    name = f"{run.config.name} seed{'s' if len(run.seeds) > 1 else ''} "
    epochs_bar = tqdm(total=total, initial=run.epoch, unit="epoch", disable=not show,
                      desc=name + ",".join(map(str, run.seeds)), dynamic_ncols=True)
    try:
        for epoch in range(run.epoch + 1, total + 1):
            _epoch(run, epoch, data, opts, loop)
            run.environment = run.session
            _save(run, opts, checkpoint_dir)
            _report(run, epoch, epochs_bar, opts)
            if not run.alive:
                break
    finally:
        loop["bar"].close()
        epochs_bar.close()
    if opts.rank == 0:
        ckpt.drop_previous(ckpt.checkpoint_path(run.config, run.profile, run.seeds, checkpoint_dir))


def _finish(run: Run, opts: Options, results_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Write (on the main process) and return one record per member."""
    records = []
    state = {
        "histories": run.histories, "status": run.status, "attractors": run.attractors,
        "stability": run.stability,
        "stage1_from": run.stage1_from, "started_utc": run.started,
        "wall_seconds": run.wall_seconds, "environment": run.environment,
        "sessions": run.sessions,
    }
    for k in range(len(run.seeds)):
        metrics = run.ensemble.member_call(k, "metrics") if run.status[k] is None else None
        record = member_record(run.config, run.profile, run.seeds, k, state, metrics)
        if opts.rank == 0:
            write_record(record, run.config, run.profile, results_dir)
        records.append(record)
    if opts.world > 1:
        torch.distributed.barrier()  # the others return once rank 0's files are written
    return records


def train(
    config: ExperimentConfig | str,
    profile: Profile | str,
    seed: int,
    **options: Any,
) -> dict[str, Any]:
    """Train one experiment for one seed (an ensemble of one, see :func:`train_ensemble`, whose
    keyword options it takes); write and return its results record. A run that diverges has its
    record written with ``status: "diverged"`` and raises :class:`DivergenceError`."""
    record = train_ensemble(config, profile, [seed], **options)[0]
    if record.get("status") == "diverged":
        where = record["diverged_at"]
        raise DivergenceError(record["message"], epoch=where["epoch"], step=where["step"])
    return record


def load_data(
    config: ExperimentConfig, profile: Profile, device: torch.device
) -> tuple[Split, Split]:
    """The profile's training and test data on ``device``, as the experiment's kind loads them:
    flattened images ``(n, N)`` for the networks on pixels, ``(n, C, H, W)`` for an encoder
    experiment, token ids for a text experiment. Raises ValueError when images are not finite
    values in [0, 1] or labels are out of range (checked once, here)."""
    return kind_of(config).load_data(config, profile, device)


def load_trained(
    experiment: str,
    profile: str,
    seed: int,
    checkpoint_dir: str | os.PathLike = "checkpoints",
    *,
    variant: str | None = None,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """The model of seed ``seed`` of a finished (or interrupted) run, rebuilt from its checkpoint
    (that of the run alone, or of an ensemble it trained in), in eval mode.

    The configuration stored in the checkpoint is used, so the model matches the weights even
    if the registry has changed since.
    """
    folder = Path(checkpoint_dir) / run_name(experiment, variant) / profile
    found = _checkpoint_with(folder, seed)
    if found is None:
        raise FileNotFoundError(
            f"no checkpoint of seed {seed} in {folder}; run `python -m wcbook run {experiment} "
            f"--profile {profile}` first (checkpoints are not kept in git)"
        )
    state, member = found
    config = ExperimentConfig.from_dict(state["config"])
    model = config.build_model()
    template = Ensemble([model])
    template.load_state_dict({k: v[member : member + 1] for k, v in state["model"].items()})
    model = template.member(0).to(select_device(device))
    stage = stage_at(config, state["epoch"])[0]
    if stage is not None:
        model.stage = stage
    return model.eval()


def _checkpoint_with(folder: Path, seed: int) -> tuple[dict[str, Any], int] | None:
    """The checkpoint in ``folder`` that holds ``seed``, and the seed's member index."""
    candidates = [folder / f"seed{seed}.pt", *sorted(folder.glob("seeds*.pt"))]
    for path in candidates:
        if path.exists():
            state = ckpt.load(path)
            if state is not None and seed in state.get("seeds", []):
                return state, list(state["seeds"]).index(seed)
    return None
