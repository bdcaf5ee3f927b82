"""Command line: ``python -m wcbook COMMAND``, one of run, bench, appendix, certify, data, list,
summary, campaign, robustness, trace.

Examples::

    python -m wcbook list
    python -m wcbook run mnist-scratch --profile smoke --seeds 5
    python -m wcbook run mnist-scratch --profile paper --variant text-T --seed-start 2 --seeds 3
    python -m wcbook run mnist-scratch --profile paper --publish      # the committed results/
    python -m wcbook summary
    python -m wcbook data
    python -m wcbook <command> --help

Runs write into a working folder (``--out DIR``, default ``$WCBOOK_HOME`` or
``~/.cache/wcbook/runs``; see :mod:`wcbook.folders`); the committed records are written only with
``--publish``. Under ``torchrun`` (see :mod:`wcbook.parallel`) the seeds are spread over the
processes, or, with ``--data-parallel``, every seed is trained by all of them together::

    torchrun --nproc_per_node=gpu -m wcbook run mnist-scratch --profile paper --seeds 5
    torchrun --nproc_per_node=2 -m wcbook run mnist-scratch --profile paper --data-parallel

Each subcommand is a pair of module-level functions, ``add_arguments(parser)`` and
``run(args) -> int``, listed once in :data:`SUBCOMMANDS`.

Exit codes: 0 success, 1 a run failed (divergence, missing data), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import torch

from . import appendix, bench, campaign, catalog, robustness
from .training import trace
from .data import DataRootError
from .experiments import (
    EXPERIMENTS,
    PROFILES,
    VARIANTS,
    ExperimentConfig,
    Profile,
    get_experiment,
    get_profile,
    resolve,
)
from .folders import (
    add_folder_overrides,
    add_output_arguments,
    folders_from_args,
    published,
    working,
)
from .models import ENGINES
from .parallel import Launch, close_data_parallel, device_for, init_data_parallel
from .results import format_table, load_records, pace_text, summarise
from .kinds import kind_of
from .training import (
    MATMUL_PRECISIONS,
    CheckpointError,
    results_path,
    train_ensemble,
)

__all__ = [
    "UsageError",
    "Subcommand",
    "SUBCOMMANDS",
    "add_run_arguments",
    "run_experiment",
    "finished_record",
    "build_parser",
    "main",
]

PROG = "python -m wcbook"
DESCRIPTION = (
    "Train, benchmark and certify the Wilson-Cowan reproduction, and check its data. "
    "`python -m wcbook COMMAND --help` shows a command's options."
)


class UsageError(ValueError):
    """Bad arguments found by a subcommand's ``run``: reported like argparse's (exit code 2)."""


class Subcommand(NamedTuple):
    """One subcommand: its name, its one-line help and its module-level function pair."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# ------------------------------------------------------------------------------------- run
def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``run``."""
    parser.add_argument("experiment", help=f"experiment id ({', '.join(EXPERIMENTS)})")
    parser.add_argument(
        "--profile", default="smoke", help=f"profile ({', '.join(PROFILES)}); default smoke"
    )
    parser.add_argument(
        "--variant", default=None, help=f"text-versus-code variant ({', '.join(VARIANTS)})"
    )
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds (default 1)")
    parser.add_argument("--seed-start", type=int, default=0, help="first seed (default 0)")
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ..."
    )
    add_output_arguments(parser)
    add_folder_overrides(parser)
    parser.add_argument(
        "--no-resume",
        action="store_true",
        help="ignore existing checkpoints and records: train again from the start",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--engine",
        default="fast",
        choices=ENGINES,
        help="Wilson-Cowan integrator (default fast; all agree up to float rounding)",
    )
    parser.add_argument(
        "--no-cuda-graph", action="store_true", help="run the training step eagerly on a GPU"
    )
    parser.add_argument(
        "--data-parallel",
        action="store_true",
        help="under torchrun: train each seed with DDP over all processes (default: spread seeds)",
    )
    parser.add_argument(
        "--ensemble",
        default="auto",
        type=_ensemble_size,
        help="seeds trained at once as one ensemble: auto (all of them on a GPU where the kind "
        "allows, one at a time on a CPU), off (one at a time) or a number (default auto)",
    )
    parser.add_argument(
        "--matmul",
        default="fp32",
        choices=MATMUL_PRECISIONS,
        help="precision of float32 matrix products: fp32, or tf32 on GPUs that have it "
        "(default fp32)",
    )


def _comparable(value: dict[str, Any], ignored: frozenset[str]) -> dict[str, Any]:
    """``value`` as JSON would store it, without the ``ignored`` keys."""
    return {k: v for k, v in json.loads(json.dumps(value)).items() if k not in ignored}


#: Fields of a configuration or profile that do not change what a run trains.
_WORDING = frozenset({"description", "reference"})


def finished_record(
    config: ExperimentConfig, profile: Profile, seed: int, results_dir: str | Path
) -> Path | None:
    """The path of the finished record of this run (``config`` resolved under ``profile``), or
    None when there is none, it is unreadable, it records a divergence, or it was made with
    another configuration or profile (wording aside)."""
    path = results_path(config, profile, seed, results_dir)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("status", "finished") != "finished":
        return None
    same_config = _comparable(record.get("config", {}), _WORDING) == _comparable(
        config.to_dict(), _WORDING
    )
    same_profile = _comparable(record.get("profile_config", {}), _WORDING) == _comparable(
        profile.to_dict(), _WORDING
    )
    return path if same_config and same_profile else None


def _run_folders(args: argparse.Namespace) -> tuple[Path, Path]:
    """(results, checkpoints) of ``run``: ``--results-dir``/``--checkpoint-dir`` win."""
    folders = folders_from_args(args)
    return (
        Path(args.results_dir) if args.results_dir else folders.results,
        Path(args.checkpoint_dir) if args.checkpoint_dir else folders.checkpoints,
    )


def _ensemble_size(text: str) -> int | None:
    """``--ensemble``: None for auto, 1 for off, else a positive number."""
    if text == "auto":
        return None
    if text == "off":
        return 1
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(
        f"--ensemble takes auto, off or a positive number, not {text!r}"
    )


def run_experiment(args: argparse.Namespace) -> int:
    """``run``: train an experiment for the seeds asked for, as ensembles; the exit code."""
    try:
        config = get_experiment(args.experiment, args.variant)
        profile = get_profile(args.profile)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.seeds < 1 or args.seed_start < 0:
        raise UsageError("--seeds must be at least 1 and --seed-start non-negative")
    try:
        launch = Launch.from_env()
        device = device_for(launch, args.device)
        if args.data_parallel:
            init_data_parallel(device)
    except (ValueError, RuntimeError) as exc:
        raise UsageError(str(exc)) from exc
    seeds = list(range(args.seed_start, args.seed_start + args.seeds))
    mine = seeds if args.data_parallel else launch.share(seeds)
    try:
        status = 0
        for group in _ensembles(args, config, profile, mine, launch, device):
            status = max(status, _run_seeds(args, config, profile, group, device, launch))
        return status
    finally:
        close_data_parallel()


def _ensembles(
    args: argparse.Namespace, config: ExperimentConfig, profile: Profile, seeds: list[int],
    launch: Launch, device: torch.device,
) -> list[list[int]]:
    """The seeds still to train, in ensembles of ``--ensemble`` members (auto: all of them on a
    GPU when the kind stacks and the run is not data-parallel, else one at a time)."""
    results_dir, _ = _run_folders(args)
    todo = []
    for seed in seeds:
        done = finished_record(resolve(config, profile), profile, seed, results_dir)
        if done is not None and not args.no_resume:
            if not args.data_parallel or launch.is_main:
                print(f"already finished: {done}", flush=True)
            continue
        todo.append(seed)
    size = args.ensemble
    if size is None:  # on a CPU an ensemble is slower per model than one run after another
        stack = kind_of(config).stackable and not args.data_parallel and device.type == "cuda"
        size = len(todo) if stack else 1
    return [todo[i : i + size] for i in range(0, len(todo), max(size, 1))]


def _run_seeds(
    args: argparse.Namespace,
    config: ExperimentConfig,
    profile: Profile,
    seeds: list[int],
    device: torch.device,
    launch: Launch,
) -> int:
    """Train one ensemble and print a summary line per member (rank 0 only under DDP); the
    exit code (1 when a member diverged: its record says where and what to try)."""
    results_dir, checkpoint_dir = _run_folders(args)
    main_rank = not args.data_parallel or launch.is_main
    try:
        records = train_ensemble(
            config,
            profile,
            seeds,
            device=device,
            results_dir=results_dir,
            checkpoint_dir=checkpoint_dir,
            resume=not args.no_resume,
            progress=not args.no_progress and sys.stderr.isatty(),
            log=args.no_progress or not sys.stderr.isatty(),
            engine=args.engine,
            cuda_graph=not args.no_cuda_graph,
            data_parallel=args.data_parallel,
            matmul=args.matmul,
        )
    except (DataRootError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    status = 0
    for record in records if main_rank else []:
        path = results_path(resolve(config, profile), profile, record["seed"], results_dir)
        if record.get("status") == "diverged":
            print(f"error: {record['message']}", file=sys.stderr)
            print(f"the divergence is recorded in {path}", file=sys.stderr)
            status = 1
        else:
            _print_summary(record, config, profile, record["seed"], path)
    return status


def _print_summary(
    record: dict[str, Any], config: ExperimentConfig, profile: Profile, seed: int, path: Path
) -> None:
    """The one line a finished run prints."""
    metrics = record["metrics"]
    extra = f", gamma {metrics['gamma']:.3f}" if "gamma" in metrics else ""
    print(
        f"{config.name} {profile.name} seed {seed}: "
        f"test accuracy {metrics['test_accuracy']:.4f}"
        f"{extra}, {record['wall_time_s']:.1f} s ({record['epochs']} epochs, "
        f"{pace_text(record)}) -> {path}",
        flush=True,
    )


# --------------------------------------------------------------------------- list, summary
def add_list_arguments(parser: argparse.ArgumentParser) -> None:
    """``list`` takes no options."""


def run_list(args: argparse.Namespace) -> int:
    """``list``: the experiments, variants and profiles."""
    print("experiments:")
    for config in EXPERIMENTS.values():
        print(f"  {config.id:16s} {config.description}")
    print("variants (where the paper's text and the authors' code disagree):")
    for variant in VARIANTS.values():
        print(f"  {variant.name:16s} [{', '.join(variant.overrides)}] {variant.description}")
    print("profiles:")
    for profile in PROFILES.values():
        print(f"  {profile.name:16s} {profile.description}")
    return 0


def add_summary_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``summary``: which records to read."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--out", metavar="DIR", default=None, help="read <DIR>/results (default: the working "
        "folder, $WCBOOK_HOME or ~/.cache/wcbook/runs)"
    )
    where.add_argument(
        "--published", action="store_true", help="read the committed results/ instead"
    )
    where.add_argument("--results-dir", default=None, help="read this folder of records")


def run_summary(args: argparse.Namespace) -> int:
    """``summary``: the table of all records, averaged over seeds."""
    if args.results_dir:
        folder = Path(args.results_dir)
    else:
        folder = published().results if args.published else working(args.out).results
    print(f"records in {folder}")
    print(format_table(summarise(load_records(folder))))
    return 0


# ------------------------------------------------------------------------------- the table
#: Every subcommand, in the order of the help; a new one is one more line.
SUBCOMMANDS: tuple[Subcommand, ...] = (
    Subcommand("run", "train an experiment for one or more seeds", add_run_arguments,
               run_experiment),
    Subcommand("bench", "benchmark the training step or the training loop's paths",
               bench.add_arguments, bench.run),
    Subcommand("appendix", "run the records of an appendix group, one after the other",
               appendix.add_arguments, appendix.run),
    Subcommand("certify", "stability certificates of trained checkpoints",
               appendix.add_certify_arguments, appendix.run_certify),
    Subcommand("data", "list the data sets (present, size, checksum, used by) or fetch one",
               catalog.add_arguments, catalog.run),
    Subcommand("list", "list experiments, variants and profiles", add_list_arguments,
               run_list),
    Subcommand("summary", "table of the results records, averaged over seeds",
               add_summary_arguments, run_summary),
    Subcommand("campaign", "plan, run and import the paper profile's missing records",
               campaign.add_arguments, campaign.run),
    Subcommand("robustness", "noise, occlusion and attacks on an exported model; its record",
               robustness.add_arguments, robustness.run),
    Subcommand("trace", "replay a run's first training steps and record each one",
               trace.add_arguments, trace.run),
)


def build_parser() -> argparse.ArgumentParser:
    """The one argparse tree of every subcommand."""
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for sub in SUBCOMMANDS:
        sub_parser = commands.add_parser(sub.name, help=sub.help, description=sub.help)
        sub.add_arguments(sub_parser)
        sub_parser.set_defaults(handler=sub.run, parser=sub_parser)  # not "run": a positional
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (bad arguments exit with 2)."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as exc:
        args.parser.error(str(exc))


if __name__ == "__main__":
    sys.exit(main())
