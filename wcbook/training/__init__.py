"""Training: one loop for every experiment, many seeds trained at once as one ensemble.

* :func:`train_ensemble` trains the seeds of an experiment as one
  :class:`~wcbook.ensemble.Ensemble` (every parameter stacked on a member axis, every product
  batched over the members) and writes one record per seed; :func:`train` is the run of one seed
  (:mod:`.loop`).
* Everything random is seeded from each member's seed: its initialisation, its shuffling
  generator (a fresh permutation per epoch), and the global generators (from the first seed).
* The profile's data are loaded once and moved to the device once, by the experiment's kind
  (:mod:`wcbook.kinds`), which also says how the model and its optimiser are built.
* After every epoch each member's loss, parameters and optimiser state are checked; a member
  that turned NaN/inf (or whose gamma left (0, inf)), or that the optimiser can no longer move
  (a gradient spike overflowed Adam's second moment), is frozen at its last good epoch and
  recorded as diverged, and the others train on. :func:`trace_steps` replays the first steps of
  a run one at a time, to see what happened inside an epoch (:mod:`.trace`). Test accuracy (evaluation horizon) every ``profile.eval_every`` epochs and
  after the last one.
* On a CUDA device the whole training step of the ensemble (forward, adjoint, Adam) is captured
  once as a CUDA graph and replayed for every full batch (:mod:`.graph`).
* With ``data_parallel=True`` (processes started by ``torchrun``, see :mod:`wcbook.parallel`)
  every batch is sharded over the processes and the gradients averaged.
* One checkpoint per run (:mod:`.checkpoint`) after every epoch, written so that a crash leaves a
  complete one; with ``resume`` an interrupted run continues from it, also on another machine or
  kind of device, and ends exactly as an uninterrupted run would. Its records list every
  session that trained it (:mod:`.provenance`).
* An encoder experiment trains in the two stages of App. A with a fresh Adam each, and shares its
  stage 1 with its softmax twin (:mod:`.stages`).
* Records (:mod:`.records`) go to ``<results_dir>/<experiment>/<profile>/seed<k>.json``.

History (one entry per epoch, per member): ``loss`` (mean data loss over the epoch's batches,
without the regulariser), ``train_accuracy`` (on those batches, at the training horizon, as they
were seen), ``gamma`` (Wilson-Cowan models), ``seconds`` (the ensemble's epoch, kept in the
checkpoint); ``test_epochs`` / ``test_accuracy`` hold the evaluations (evaluation horizon).
"""

from ..kinds import Split
from .checkpoint import CHECKPOINT_FORMAT, CheckpointError, checkpoint_path, results_path
from .evaluation import EVAL_BATCH, attractor_report, evaluate
from .loop import (DivergenceError, TwinRuns, load_data, load_trained, train, train_ensemble,
                   train_twins)
from .provenance import (
    COMMIT_ENV,
    MATMUL_PRECISIONS,
    device_name,
    git_commit,
    record_header,
    select_device,
)
from .trace import trace_steps

__all__ = [
    "CHECKPOINT_FORMAT",
    "COMMIT_ENV",
    "EVAL_BATCH",
    "MATMUL_PRECISIONS",
    "CheckpointError",
    "DivergenceError",
    "Split",
    "TwinRuns",
    "attractor_report",
    "checkpoint_path",
    "device_name",
    "evaluate",
    "git_commit",
    "load_data",
    "load_trained",
    "record_header",
    "results_path",
    "select_device",
    "train",
    "train_ensemble",
    "trace_steps",
]
