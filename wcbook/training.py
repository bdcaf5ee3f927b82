"""The one training loop every experiment uses, with checkpoints, resumption and provenance.

:func:`train` runs an :class:`~wcbook.experiments.ExperimentConfig` under a
:class:`~wcbook.experiments.Profile` for one seed and returns (and writes) a results record:

* everything random is seeded from ``seed`` (model initialisation, the shuffling generator, and the
  global torch / numpy / python generators);
* the profile's data are loaded once and moved to the device once; every epoch draws a fresh
  permutation from a dedicated torch generator and slices batches from the device tensors;
* Adam on ``loss + penalty`` (the data loss plus the model's regulariser);
* after every epoch the loss (accumulated on the device, read once per epoch) and the parameters
  are checked: NaN/inf or gamma outside (0, inf) raises :class:`DivergenceError` naming the epoch
  and step, rather than training on garbage;
* test accuracy (evaluation horizon) every ``profile.eval_every`` epochs and after the last one;
* the Wilson-Cowan classifier integrates with the fast engine of :mod:`wcbook.engine` (``engine``;
  ``"autograd"`` is the plain path, equal up to float rounding);
* on a CUDA device, when every batch has the same size, the whole training step (forward,
  adjoint, Adam) is captured once as a CUDA graph and replayed for every batch (``cuda_graph``),
  which removes the launch overhead of the hundreds of small kernels a step runs; the numbers are
  those of the eager step;
* with ``data_parallel=True`` (processes started by ``torchrun``, see :mod:`wcbook.parallel`) the
  model is wrapped in DistributedDataParallel, each process takes its contiguous share of every
  batch, gradients are averaged, and rank 0 alone writes checkpoints and the record;
* a checkpoint (model, optimiser, random-generator states, epoch, history) is written atomically
  after every epoch to ``<checkpoint_dir>/<experiment>/<profile>/seed<k>.pt``; with ``resume=True``
  an interrupted run continues from it and ends exactly as an uninterrupted run would. The final
  checkpoint stays: :func:`load_trained` rebuilds the trained model from it. The run may resume
  on another machine or kind of device (begun on a GPU, finished on a CPU); the record's
  ``sessions`` lists each session that trained it, with its hardware, epochs and time per epoch;
* an encoder experiment trains in the two stages of App. A (:attr:`ExperimentConfig.stages`), a
  fresh Adam and, on a GPU, a fresh CUDA graph for each; after stage 1 its encoder and head are
  also saved as a snapshot under ``<checkpoint_dir>/stage1/``, keyed by everything stage 1
  depends on, and a run that differs only in stage 2 (the softmax twin) starts from it, so that
  both readouts see the same stage 1. Such a record names the run in ``stage1_from``, and its
  history, ``started_utc`` and ``wall_time_s`` include that shared stage 1. A frozen encoder's
  features are computed once, before the first epoch;
* the results record (JSON, written atomically) goes to
  ``<results_dir>/<experiment>/<profile>/seed<k>.json``, ``<experiment>`` being the id or
  ``<id>+<variant>``.

History (one entry per epoch): ``loss`` (mean data loss over the epoch's batches, without the
regulariser), ``train_accuracy`` (on those batches, classified at the *training* horizon as they
were seen during the epoch), ``gamma`` (Wilson-Cowan only), ``seconds`` (training time of the
epoch, kept in the checkpoint; the record holds its mean); ``test_epochs`` / ``test_accuracy`` hold
the evaluations (evaluation horizon).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import random
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from .data import COLOR_DATASETS, flatten_images, load_color_images, load_images
from .experiments import (
    ExperimentConfig,
    Profile,
    data_caveat,
    get_experiment,
    get_profile,
    resolve,
    run_name,
)
from .models import check_engine
from .parallel import data_parallel_group

__all__ = [
    "DivergenceError",
    "Split",
    "train",
    "evaluate",
    "attractor_report",
    "record_header",
    "load_data",
    "load_trained",
    "checkpoint_path",
    "results_path",
    "select_device",
    "device_name",
    "git_commit",
]

#: Version of the checkpoint layout; bumped when it changes incompatibly.
CHECKPOINT_FORMAT = 2

#: Environment variable naming the commit of a tree that is not a git checkout.
COMMIT_ENV = "WCBOOK_COMMIT"

#: Images per forward pass when measuring test accuracy (no gradients are kept).
EVAL_BATCH = 1000

_PACKAGE_DIR = Path(__file__).resolve().parent


class DivergenceError(RuntimeError):
    """Training produced NaN/inf (loss, state or parameters) or gamma left (0, inf).

    ``epoch`` is 1-based; ``step`` (1-based within the epoch) is known when the loss went bad.
    """

    def __init__(self, message: str, *, epoch: int, step: int | None = None) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.step = step


@dataclass(frozen=True)
class Split:
    """Flattened images (n, N) and labels (n,) of one data split, on one device."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.labels.shape[0]


# ----------------------------------------------------------------------------------------------
# Devices, paths and provenance
# ----------------------------------------------------------------------------------------------
def select_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU; anything else goes to :class:`torch.device`."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def device_name(device: torch.device) -> str:
    """A human-readable name of the hardware: the GPU model, or the CPU model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def git_commit() -> tuple[str, bool | None]:
    """(HEAD commit of the checkout holding this package, whether tracked files are modified).

    The environment variable ``WCBOOK_COMMIT``, when set, wins: it names the commit a copy of the
    tree was made from (a copy shipped to a GPU machine, whose ``.git`` may be stale or missing),
    with ``+dirty`` appended when the copy held changes. Without it and outside a git checkout:
    ``("unknown", None)``. Read-only: ``--no-optional-locks`` keeps ``git status`` from touching
    the index.
    """
    declared = os.environ.get(COMMIT_ENV, "").strip()
    if declared:
        commit, _, flag = declared.partition("+")
        return commit, flag == "dirty"

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "--no-optional-locks", *args],
            cwd=_PACKAGE_DIR,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return "unknown", None
    return commit, dirty


def checkpoint_path(
    config: ExperimentConfig,
    profile: Profile,
    seed: int,
    checkpoint_dir: str | os.PathLike = "checkpoints",
) -> Path:
    """``<checkpoint_dir>/<experiment>/<profile>/seed<k>.pt``."""
    return Path(checkpoint_dir) / config.name / profile.name / f"seed{seed}.pt"


def results_path(
    config: ExperimentConfig,
    profile: Profile,
    seed: int,
    results_dir: str | os.PathLike = "results",
) -> Path:
    """``<results_dir>/<experiment>/<profile>/seed<k>.json``."""
    return Path(results_dir) / config.name / profile.name / f"seed{seed}.json"


def _atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write through a temporary file in the same folder, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------------------------
# Data and evaluation
# ----------------------------------------------------------------------------------------------
def _load_text(
    config: ExperimentConfig, profile: Profile, device: torch.device
) -> tuple[Split, Split]:
    """IMDB reviews as token ids: ``n_train`` / ``n_test`` balanced, seeded reviews per split."""
    from .text import load_imdb, load_tokenizer, tokenize

    tokenizer = load_tokenizer(config.text_option("encoder"))
    splits = []
    for split, n in (("train", profile.n_train), ("test", profile.n_test)):
        texts, labels = load_imdb(split, limit=n)
        ids = tokenize(texts, tokenizer, config.text_option("max_length"))
        splits.append(Split(ids.to(device), labels.to(device)))
    return splits[0], splits[1]


def load_data(
    config: ExperimentConfig, profile: Profile, device: torch.device
) -> tuple[Split, Split]:
    """The profile's training and test images (first ``n_train`` / ``n_test``) on ``device``:
    flattened ``(n, N)`` for the networks on pixels, ``(n, C, H, W)`` for an encoder experiment;
    for a text experiment, token ids of the reviews (see :mod:`wcbook.text`).

    Raises ValueError when the data are not finite values in [0, 1] (checked once, here).
    """
    if config.model == "text":
        return _load_text(config, profile, device)
    splits = []
    for split, n in (("train", profile.n_train), ("test", profile.n_test)):
        if config.dataset in COLOR_DATASETS:
            images, labels = load_color_images(
                config.dataset, split, size=config.image_size, limit=n
            )
        else:
            images, labels = load_images(config.dataset, split, size=config.image_size)
            images, labels = images[:n], labels[:n]
            # (n, N) pixels for the networks on pixels, (n, 1, H, W) images for an encoder
            images = images.unsqueeze(1) if config.model == "encoded" else flatten_images(images)
        if not (torch.isfinite(images).all() and images.min() >= 0 and images.max() <= 1):
            raise ValueError(
                f"{config.dataset} ({split}): pixel values must be finite and in [0, 1]"
            )
        if labels.numel() and (labels.min() < 0 or labels.max() >= config.n_classes):
            raise ValueError(
                f"{config.dataset} ({split}): labels outside 0..{config.n_classes - 1}"
            )
        splits.append(Split(images.to(device), labels.to(device)))
    return splits[0], splits[1]


@torch.no_grad()
def _count_correct(model: nn.Module, data: Split, batch_size: int) -> torch.Tensor:
    """(#correct, #NaN/inf outputs) of ``model.predict`` on ``data``, as one device tensor."""
    was_training = model.training
    model.eval()
    counts = torch.zeros(2, dtype=torch.long, device=data.labels.device)
    for start in range(0, len(data), batch_size):
        predicted = model.predict(data.images[start : start + batch_size])
        counts[0] += (predicted == data.labels[start : start + batch_size]).sum()
        counts[1] += (predicted < 0).sum()
    model.train(was_training)
    return counts


@torch.no_grad()
def attractor_report(model: nn.Module, data: Split, batch_size: int = EVAL_BATCH) -> dict | None:
    """Where the deciding states end, for models with planted targets that report it
    (``attractor_distances``): medians of the initial and final distance to the nearest target,
    the fraction of final states within 10% of the targets' separation, and that separation.
    None for models without targets."""
    if not hasattr(model, "attractor_distances") or len(data) == 0:
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


def evaluate(model: nn.Module, data: Split, batch_size: int = EVAL_BATCH) -> tuple[float, int]:
    """(accuracy of ``model.predict`` on ``data``, number of outputs that were NaN/inf)."""
    correct, nonfinite = _count_correct(model, data, batch_size).tolist()
    return correct / max(len(data), 1), nonfinite


# ----------------------------------------------------------------------------------------------
# Random generators
# ----------------------------------------------------------------------------------------------
def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_states() -> dict[str, Any]:
    """Global generator states in types ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------
def _as_config(config: ExperimentConfig | str) -> ExperimentConfig:
    return get_experiment(config) if isinstance(config, str) else config


def _divergence(
    config: ExperimentConfig, epoch: int, what: str, step: int | None = None
) -> DivergenceError:
    where = f"epoch {epoch}" + (f", step {step}" if step is not None else "")
    return DivergenceError(
        f"{config.name}: training diverged at {where}: {what}. Try a smaller learning rate "
        f"(lr is {config.lr:g}), check the data (finite pixels in [0, 1], labels in range) and the "
        "model parameters; the checkpoint of the last good epoch is kept.",
        epoch=epoch,
        step=step,
    )


def _new_history(model: nn.Module) -> dict[str, list]:
    history: dict[str, list] = {
        "loss": [],
        "train_accuracy": [],
        "seconds": [],
        "test_epochs": [],
        "test_accuracy": [],
    }
    for name in model.metrics():
        history[name] = []
    return history


#: Fields that may change between a checkpoint and its resumption: they do not affect the
#: training itself (a run may be resumed to more epochs, or evaluated on another schedule).
_RESUMABLE_CHANGES = frozenset({"epochs", "eval_every", "description", "reference"})


def _comparable(config: dict[str, Any], profile: dict[str, Any]) -> tuple[dict, dict]:
    """Config and profile without the fields a resumed run may change."""
    return (
        {k: v for k, v in config.items() if k not in _RESUMABLE_CHANGES},
        {k: v for k, v in profile.items() if k not in _RESUMABLE_CHANGES},
    )


def _load_checkpoint(
    path: Path, config: dict[str, Any], profile: dict[str, Any], total_epochs: int
) -> dict[str, Any]:
    """The checkpoint to resume, checked to belong to this run and not to be past its end."""
    # On the CPU: generator states must stay CPU tensors; load_state_dict moves the rest.
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"the checkpoint {path} has layout {state.get('format')}, this version writes "
            f"{CHECKPOINT_FORMAT}; pass resume=False to start over"
        )
    if _comparable(state["config"], state["profile"]) != _comparable(config, profile):
        raise ValueError(
            f"the checkpoint {path} belongs to a different configuration or profile; "
            "delete it or pass resume=False to start over"
        )
    if state["epoch"] > total_epochs:
        raise ValueError(
            f"the checkpoint {path} already holds {state['epoch']} epochs, more than the "
            f"{total_epochs} asked for; pass resume=False to start over"
        )
    return state


def _stage_at(config: ExperimentConfig, epoch: int) -> tuple[int | None, int]:
    """(stage, batch size) of 1-based ``epoch`` (the last stage's past the end)."""
    end = 0
    for stage, epochs, batch_size in config.stages:
        end += epochs
        if epoch <= end:
            return stage, batch_size
    return config.stages[-1][0], config.stages[-1][2]


# Fields that do not affect stage 1 of an encoder experiment: runs that differ only in them (the
# Wilson-Cowan model and its softmax twin) share one stage-1 snapshot.
_STAGE2_FIELDS = frozenset(
    {"id", "variant", "description", "reference", "epochs", "batch_size", "T_train", "T_eval",
     "dt", "ortho_factor"}
)


def _stage1_path(
    config: ExperimentConfig, profile: dict[str, Any], seed: int, checkpoint_dir: str | os.PathLike
) -> Path | None:
    """Where the stage-1 snapshot of an encoder run lives, named by a hash of everything stage 1
    depends on (None when the run has no stage 1)."""
    if config.stages[0][0] != 1:
        return None
    key = {k: v for k, v in config.to_dict().items() if k not in _STAGE2_FIELDS}
    key["encoder_options"] = {
        k: v for k, v in config.encoder_options.items() if k != "readout"
    }
    key["profile"] = {k: v for k, v in profile.items() if k not in ("name", "description", "epochs")}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(checkpoint_dir) / "stage1" / digest / f"seed{seed}.pt"


def _encoder_and_head(model: nn.Module) -> dict[str, torch.Tensor]:
    """The part of an encoder model's state that stage 1 trains."""
    return {k: v for k, v in model.state_dict().items() if k.startswith(("encoder.", "head."))}


class _GraphedStep:
    """One training step (forward, loss, backward, Adam) captured as a CUDA graph.

    The step reads a fixed batch from two static input tensors; :meth:`__call__` copies the batch
    in and replays the graph. Capturing needs a few warm-up steps, which would train the model:
    parameters and optimiser state are therefore restored afterwards, so that the run is the same
    as an eager one. The number of correct training predictions is accumulated inside the graph.
    """

    def __init__(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, data: Split, batch_size: int
    ) -> None:
        device = data.labels.device
        self.images = data.images[:batch_size].clone()
        self.labels = data.labels[:batch_size].clone()
        self.correct = torch.zeros((), dtype=torch.long, device=device)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        saved_params = [p.detach().clone() for p in params]
        buffers = list(model.buffers())  # batch-norm statistics move in the warm-up steps too
        saved_buffers = [b.clone() for b in buffers]
        saved_state = {p: {k: v.clone() for k, v in optimizer.state[p].items()} for p in params}
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(3):
                optimizer.zero_grad(set_to_none=True)
                self._step(model, optimizer)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            self.loss = self._step(model, optimizer)
        with torch.no_grad():
            for p, value in zip(params, saved_params):
                p.copy_(value)
            for b, value in zip(buffers, saved_buffers):
                b.copy_(value)
            for p in params:
                for key, value in optimizer.state[p].items():
                    if key in saved_state[p]:
                        value.copy_(saved_state[p][key])
                    else:
                        value.zero_()  # Adam's moments and step count start at zero
        self.correct.zero_()

    def _step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        output = model(self.images)
        loss = model.loss(output, self.labels)
        (loss + model.penalty()).backward()
        optimizer.step()
        self.correct += (model.classify(output.detach()) == self.labels).sum()
        return loss.detach()

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Train on one batch; returns the (static) loss tensor the replay wrote."""
        self.images.copy_(images)
        self.labels.copy_(labels)
        self.graph.replay()
        return self.loss


def _for_device(saved: dict[str, Any], optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """A saved optimizer state made loadable by ``optimizer``, which may live on another kind of
    device than the one that saved it (a run begun on a GPU and resumed on a CPU, or the
    reverse): each group takes the new optimizer's ``capturable`` flag, which decides where
    Adam keeps its step counts."""
    groups = [
        {**group, "capturable": new["capturable"]} if "capturable" in new else group
        for group, new in zip(saved["param_groups"], optimizer.param_groups)
    ]
    return {**saved, "param_groups": groups}


def _make_optimizer(
    config: ExperimentConfig, model: nn.Module, device: torch.device
) -> torch.optim.Optimizer:
    """Adam on every trainable parameter (capturable on GPUs, so that eager and graphed steps do
    the same arithmetic); AdamW with weight decay 0.01 for the text experiments, as BERT
    fine-tuning customarily uses. An encoder model gives the parameters of its current stage."""
    if hasattr(model, "stage_parameters"):
        params = list(model.stage_parameters())
    else:
        params = [p for p in model.parameters() if p.requires_grad]
    if config.model == "text":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=0.01)
    return torch.optim.Adam(params, lr=config.lr, capturable=device.type == "cuda")


def _warmup_schedule(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning rate rising linearly over the first ``warmup`` fraction of the steps, then
    falling linearly to zero at ``total_steps`` (the usual BERT fine-tuning schedule)."""
    rise = max(1, round(warmup * total_steps))

    def factor(step: int) -> float:
        if step < rise:
            return (step + 1) / rise
        return max(0.0, (total_steps - step) / max(1, total_steps - rise))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _can_graph(data: Split, batch_size: int) -> bool:
    """A CUDA graph of full batches fits when the data live on a GPU and hold one batch; a last,
    smaller batch of an epoch then runs eagerly."""
    return data.labels.is_cuda and len(data) >= batch_size


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: Split,
    batch_size: int,
    generator: torch.Generator,
    bar: tqdm,
    *,
    net: nn.Module | None = None,
    graphed: _GraphedStep | None = None,
    shard: tuple[int, int] = (0, 1),
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One pass over shuffled data: per-step losses, batch sizes and #correct.

    ``net`` is what the forward pass calls (a DDP wrapper of ``model``), ``graphed`` the captured
    step of full batches (a smaller last batch runs eagerly). With ``shard = (rank, world)`` this
    process trains on its contiguous part of each batch; the returned per-step losses are then
    ``local mean x local size``, to be summed over processes and divided by the batch sizes.
    Nothing here waits for the device.
    """
    device = data.labels.device
    rank, world = shard
    net = model if net is None else net
    order = torch.randperm(len(data), generator=generator).to(device)
    total = math.ceil(len(data) / batch_size)
    losses = torch.empty(total, dtype=torch.float64, device=device)
    sizes = torch.empty(total, dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.long, device=device)
    if graphed is not None:
        graphed.correct.zero_()
    bar.reset(total=total)
    for step, start in enumerate(range(0, len(data), batch_size)):
        index = order[start : start + batch_size]
        sizes[step] = len(index)
        if world > 1:
            index = index.tensor_split(world)[rank]
        images, labels = data.images[index], data.labels[index]
        if graphed is not None and len(index) == batch_size:
            loss = graphed(images, labels)
        else:
            output = net(images)
            loss = model.loss(output, labels)
            optimizer.zero_grad(set_to_none=True)
            (loss + model.penalty()).backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            correct += (model.classify(output.detach()) == labels).sum()
        losses[step] = loss.detach() * len(index) if world > 1 else loss.detach()
        bar.update()
    if graphed is not None:
        correct += graphed.correct
    return losses, sizes, correct


def train(
    config: ExperimentConfig | str,
    profile: Profile | str,
    seed: int,
    *,
    device: str | torch.device = "auto",
    results_dir: str | os.PathLike = "results",
    checkpoint_dir: str | os.PathLike = "checkpoints",
    resume: bool = True,
    progress: bool = True,
    engine: str = "fast",
    cuda_graph: bool = True,
    data_parallel: bool = False,
) -> dict[str, Any]:
    """Train one experiment for one seed under a profile; write and return the results record.

    ``config`` may be an experiment id; ``profile`` a profile name. With ``resume`` an existing
    checkpoint of the same run (same configuration and profile up to the number of epochs)
    is continued; a finished one only has its record rewritten. ``engine`` is the Wilson-Cowan
    integrator (:data:`wcbook.models.ENGINES`); ``cuda_graph`` allows capturing the training step
    on a GPU (used when every batch has the same size and the run is not data-parallel);
    ``data_parallel`` trains with DDP over the process group of :mod:`wcbook.parallel`.
    """
    wall_start = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    profile = get_profile(profile)
    config = resolve(_as_config(config), profile)
    config_dict, profile_dict = config.to_dict(), profile.to_dict()
    ckpt_file = checkpoint_path(config, profile, seed, checkpoint_dir)
    dev = select_device(device)
    check_engine(engine)
    group = data_parallel_group() if data_parallel else None
    if data_parallel and group is None:
        raise RuntimeError(
            "data_parallel=True needs an initialised process group: launch with torchrun and "
            "call wcbook.parallel.init_data_parallel first (the CLI's --data-parallel does both)"
        )
    rank, world = group or (0, 1)
    if world > 1 and config.model == "encoded":
        raise ValueError(
            f"{config.name}: data-parallel training of the two-stage encoder experiments is not "
            "supported (stage 1 leaves the dynamics without gradients, which DDP refuses); "
            "run one process per seed instead (torchrun without --data-parallel)"
        )
    if world > 1 and config.batch_size < world:
        raise ValueError(
            f"batch size {config.batch_size} cannot be split over {world} processes; "
            "use fewer processes"
        )
    main = rank == 0

    _seed_everything(seed)
    # train(): pretrained submodules (a Hugging Face encoder) come in eval mode, dropout off.
    model = config.build_model(seed).to(dev).train()
    if hasattr(model, "engine"):
        model.engine = engine
    # Text models change their learning rate every step (warm-up), which a graph would freeze.
    use_graph = cuda_graph and dev.type == "cuda" and world == 1 and config.model != "text"
    total_epochs = config.total_epochs
    stage1_end = config.stages[0][1] if config.stages[0][0] == 1 else 0
    stage1_file = _stage1_path(config, profile_dict, seed, checkpoint_dir)
    resumed: dict[str, Any] = {}
    attractors, stage1_from = None, None
    shuffle = torch.Generator().manual_seed(seed)
    history = _new_history(model)
    done, previous_wall, wall_seconds = 0, 0.0, 0.0
    session = _environment(dev, engine=engine if hasattr(model, "engine") else None, world=world)
    environment, session_started, sessions = session, started, []

    state = None
    if resume and ckpt_file.exists():
        state = resumed = _load_checkpoint(ckpt_file, config_dict, profile_dict, total_epochs)
        model.load_state_dict(state["model"])
        history, done = state["history"], state["epoch"]
        attractors, stage1_from = state.get("attractors"), state.get("stage1_from")
    elif resume and stage1_file is not None and stage1_file.exists():
        # Stage 1 of this run was trained by a run that differs only in stage 2 (the softmax twin
        # of a Wilson-Cowan run, or the reverse): start stage 2 from its encoder and head.
        state = torch.load(stage1_file, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"], strict=False)
        for name in history:
            history[name] = list(state["history"].get(name, []))
        for name, value in model.metrics().items():  # constant in stage 1
            history[name] = [value] * len(history["loss"])
        done, stage1_from = stage1_end, state["run"]
    if state is not None:
        shuffle.set_state(state["shuffle_rng"])
        _set_rng_states(state["rng"])
        previous_wall, started = state["wall_seconds"], state["started_utc"]
        wall_seconds, environment = previous_wall, state["environment"]
        sessions = _sessions_of(state)
    trained_before = list(sessions)

    # The optimiser of the stage the run continues in: a fresh Adam per stage (App. A).
    optimizer_stage = _stage_at(config, min(done + 1, total_epochs))[0]
    if optimizer_stage is not None:
        model.stage = optimizer_stage
    optimizer = _make_optimizer(config, model, dev)
    if resumed and resumed.get("optimizer_stage") == optimizer_stage:
        optimizer.load_state_dict(_for_device(resumed["optimizer"], optimizer))

    if done < total_epochs:
        train_data, test_data = load_data(config, profile, dev)
        if len(train_data) == 0:
            raise ValueError(
                f"{config.name}: the profile {profile.name!r} selects no training images"
            )
        if getattr(model, "frozen_encoder", False):
            # A frozen encoder gives the same features every epoch: compute them once.
            train_data, test_data = (
                Split(model.encode(split.images), split.labels) for split in (train_data, test_data)
            )
            model.features_input = True
        n_test = len(test_data)
        if world > 1:
            test_data = Split(test_data.images[rank::world], test_data.labels[rank::world])
    scheduler = None
    if config.model == "text" and done < total_epochs:
        total = config.epochs * math.ceil(len(train_data) / config.batch_size)
        scheduler = _warmup_schedule(optimizer, total, config.text_option("warmup"))
        if resumed.get("scheduler"):
            scheduler.load_state_dict(resumed["scheduler"])
            # Building the scheduler reset the rates to the first step's; restore the saved ones.
            for param_group, lr in zip(optimizer.param_groups, scheduler.get_last_lr()):
                param_group["lr"] = lr
    net = (
        DistributedDataParallel(model, device_ids=[dev] if dev.type == "cuda" else None)
        if world > 1
        else model
    )
    graphed, graph_stage = None, "none yet"
    session["cuda_graph"] = False

    epochs_bar = tqdm(
        total=total_epochs,
        initial=done,
        desc=f"{config.name} seed {seed}",
        unit="epoch",
        disable=not (progress and main),
        dynamic_ncols=True,
    )
    steps_bar = tqdm(
        total=0, desc="batches", leave=False, disable=not (progress and main), dynamic_ncols=True
    )
    try:
        for epoch in range(done + 1, total_epochs + 1):
            stage, batch_size = _stage_at(config, epoch)
            if stage != optimizer_stage:
                model.stage = optimizer_stage = stage
                optimizer = _make_optimizer(config, model, dev)
            if use_graph and graph_stage != stage:
                graph_stage = stage
                graphed = None
                if _can_graph(train_data, batch_size):
                    graphed = _GraphedStep(model, optimizer, train_data, batch_size)
                    session["cuda_graph"] = True
            tick = time.perf_counter()
            losses, sizes, correct = _train_epoch(
                model,
                optimizer,
                train_data,
                batch_size,
                shuffle,
                steps_bar,
                net=net,
                graphed=graphed,
                shard=(rank, world),
                scheduler=scheduler,
            )
            if world > 1:
                dist.all_reduce(losses)
                dist.all_reduce(correct)
                losses = losses.cpu() / sizes
            else:
                losses = losses.cpu()  # the one host synchronisation of the epoch
            seconds = time.perf_counter() - tick
            bad = (~torch.isfinite(losses)).nonzero()
            if len(bad):
                step = int(bad[0]) + 1
                raise _divergence(config, epoch, f"the loss is {losses[step - 1].item()}", step)
            problem = model.invalid_parameter()
            if problem is not None:
                raise _divergence(config, epoch, problem)

            history["loss"].append(float((losses * sizes).sum() / sizes.sum()))
            history["train_accuracy"].append(correct.item() / len(train_data))
            history["seconds"].append(seconds)
            for name, value in model.metrics().items():
                history[name].append(value)
            if epoch % profile.eval_every == 0 or epoch in (stage1_end, total_epochs):
                counts = _count_correct(model, test_data, EVAL_BATCH)
                if world > 1:
                    dist.all_reduce(counts)
                correct_test, nonfinite = counts.tolist()
                accuracy = correct_test / max(n_test, 1)
                if nonfinite:
                    raise _divergence(
                        config,
                        epoch,
                        f"{nonfinite} test states are NaN/inf at the evaluation horizon "
                        f"T = {config.eval_horizon:g}",
                    )
                history["test_epochs"].append(epoch)
                history["test_accuracy"].append(accuracy)
                if epoch == total_epochs:
                    attractors = attractor_report(model, test_data)

            wall_seconds = previous_wall + time.perf_counter() - wall_start
            environment = session
            sessions = trained_before + [
                _session_entry(session, session_started, done + 1, history["seconds"][done:])
            ]
            state = {
                "format": CHECKPOINT_FORMAT,
                "config": config_dict,
                "profile": profile_dict,
                "seed": seed,
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "optimizer_stage": optimizer_stage,
                "stage1_from": stage1_from,
                "scheduler": None if scheduler is None else scheduler.state_dict(),
                "attractors": attractors,
                "shuffle_rng": shuffle.get_state(),
                "rng": _rng_states(),
                "history": history,
                "started_utc": started,
                "wall_seconds": wall_seconds,
                "environment": environment,
                "sessions": sessions,
            }
            if main:
                _atomic_write(ckpt_file, lambda handle: torch.save(state, handle))
                if epoch == stage1_end and stage1_file is not None:
                    snapshot = {**state, "model": _encoder_and_head(model), "run": config.name}
                    _atomic_write(stage1_file, lambda handle: torch.save(snapshot, handle))

            postfix = {
                "loss": f"{history['loss'][-1]:.4g}",
                "acc": f"{history['train_accuracy'][-1]:.3f}",
            }
            if history["test_accuracy"]:
                postfix["test"] = f"{history['test_accuracy'][-1]:.3f}"
            postfix.update({k: f"{v:.3f}" for k, v in model.metrics().items()})
            epochs_bar.set_postfix(postfix)
            epochs_bar.update()
    finally:
        steps_bar.close()
        epochs_bar.close()

    record = _record(
        config, profile, seed, model, history, started, wall_seconds, environment, sessions
    )
    if attractors is not None:
        record["attractors"] = attractors
    if stage1_from is not None:
        record["stage1_from"] = stage1_from
    if main:
        _atomic_write(
            results_path(config, profile, seed, results_dir),
            lambda handle: json.dump(record, handle, indent=1),
            mode="w",
        )
    if world > 1:
        dist.barrier()  # the others return once rank 0's checkpoint and record are written
    return record


def _rounded(values: list, digits: int = 6) -> list:
    return [float(f"{v:.{digits}g}") if isinstance(v, float) else v for v in values]


def _environment(device: torch.device, engine: str | None, world: int) -> dict[str, Any]:
    """Hardware, software and execution path of the session that trains (stored with every
    checkpoint): ``engine`` None for models without one, ``world_size`` > 1 for DDP runs."""
    return {
        "device": device_name(device),
        "device_type": device.type,
        "torch_threads": torch.get_num_threads(),
        "torch_version": str(torch.__version__),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "engine": engine,
        "world_size": world,
    }


def _session_entry(
    environment: dict[str, Any], started: str, first_epoch: int, seconds: list[float]
) -> dict[str, Any]:
    """One session of a run: its hardware and software, when it began, the epochs it trained
    and their mean duration."""
    return {
        **environment,
        "started_utc": started,
        "first_epoch": first_epoch,
        "last_epoch": first_epoch + len(seconds) - 1,
        "seconds_per_epoch": round(sum(seconds) / max(len(seconds), 1), 4),
    }


def _sessions_of(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The sessions that trained a checkpoint; a checkpoint written before sessions were kept
    counts as one session on the hardware of its ``environment``."""
    if state.get("sessions"):
        return list(state["sessions"])
    return [
        _session_entry(
            state["environment"], state["started_utc"], 1, state["history"]["seconds"]
        )
    ]


def _record(
    config: ExperimentConfig,
    profile: Profile,
    seed: int,
    model: nn.Module,
    history: dict[str, list],
    started: str,
    wall_seconds: float,
    environment: dict[str, Any],
    sessions: list[dict[str, Any]],
) -> dict[str, Any]:
    """The JSON results record of a finished run.

    ``wall_seconds`` sums the sessions that trained it (up to the last checkpoint), each listed
    in ``sessions``; the other hardware and software fields are those of the last session. A
    run whose sessions ran on different devices names them all in ``device`` and has no single
    ``seconds_per_epoch`` (each session has its own); the commit is read now.
    """
    train_seconds = sum(history["seconds"])
    devices = list(dict.fromkeys(entry["device"] for entry in sessions))
    metrics = {
        "test_accuracy": history["test_accuracy"][-1],
        "train_accuracy": history["train_accuracy"][-1],
        "train_loss": history["loss"][-1],
        **model.metrics(),
    }
    if config.stages[0][0] == 1:  # what stage 2 adds is read against this
        metrics["stage1_test_accuracy"] = history["test_accuracy"][
            history["test_epochs"].index(config.stages[0][1])
        ]
    metrics = dict(zip(metrics, _rounded(list(metrics.values()))))
    return {
        **record_header(config, profile, seed, environment),
        **({"device": " then ".join(devices)} if len(devices) > 1 else {}),
        "metrics": metrics,
        "started_utc": started,
        "wall_time_s": round(wall_seconds, 3),
        "seconds_per_epoch": (
            round(train_seconds / max(len(history["seconds"]), 1), 4)
            if len(devices) <= 1
            else None
        ),
        "sessions": sessions,
        "history": {
            name: _rounded(values) for name, values in history.items() if name != "seconds"
        },
    }


def record_header(
    config: ExperimentConfig, profile: Profile, seed: int, environment: dict[str, Any]
) -> dict[str, Any]:
    """What every results record says of how it was made: the run (experiment, variant,
    profile, seed, configurations), the paper's numbers, the hardware and software
    (``environment``) and the commit, read now."""
    commit, dirty = git_commit()
    caveat = data_caveat(config)
    return {
        **({"caveat": caveat} if caveat else {}),
        "experiment": config.id,
        "variant": config.variant,
        "profile": profile.name,
        "seed": seed,
        "reference": dict(config.reference),
        "epochs": config.epochs,
        "n_train": profile.n_train,
        "n_test": profile.n_test,
        **environment,
        "commit": commit,
        "dirty": dirty,
        "config": config.to_dict(),
        "profile_config": profile.to_dict(),
    }


def load_trained(
    experiment: str,
    profile: str,
    seed: int,
    checkpoint_dir: str | os.PathLike = "checkpoints",
    *,
    variant: str | None = None,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """The model of a finished (or interrupted) run, rebuilt from its checkpoint, in eval mode.

    The configuration stored in the checkpoint is used, so the model matches the weights even
    if the registry has changed since.
    """
    path = Path(checkpoint_dir) / run_name(experiment, variant) / profile / f"seed{seed}.pt"
    if not path.exists():
        raise FileNotFoundError(
            f"no checkpoint at {path}; run `python -m wcbook run {experiment} --profile {profile}` "
            "first (checkpoints are not kept in git)"
        )
    dev = select_device(device)
    state = torch.load(path, map_location=dev, weights_only=True)
    config = ExperimentConfig.from_dict(state["config"])
    model = config.build_model().to(dev)
    model.load_state_dict(state["model"])
    stage = _stage_at(config, state["epoch"])[0]
    if stage is not None:
        model.stage = stage
    return model.eval()
