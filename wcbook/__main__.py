"""Command line: ``python -m wcbook {run,list,summary}``.

Examples::

    python -m wcbook list
    python -m wcbook run mnist-scratch --profile smoke --seeds 5
    python -m wcbook run mnist-scratch --profile paper --variant text-T --seed-start 2 --seeds 3
    python -m wcbook summary

Under ``torchrun`` (see :mod:`wcbook.parallel`) the seeds are spread over the processes, or, with
``--data-parallel``, every seed is trained by all of them together::

    torchrun --nproc_per_node=gpu -m wcbook run mnist-scratch --profile paper --seeds 5
    torchrun --nproc_per_node=2 -m wcbook run mnist-scratch --profile paper --data-parallel

Exit codes: 0 success, 1 a run failed (divergence, missing data), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys

import torch

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
from .models import ENGINES
from .parallel import Launch, close_data_parallel, device_for, init_data_parallel
from .results import format_table, load_records, pace_text, summarise
from .training import DivergenceError, results_path, train


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m wcbook", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="train an experiment for one or more seeds")
    run.add_argument("experiment", help=f"experiment id ({', '.join(EXPERIMENTS)})")
    run.add_argument(
        "--profile", default="smoke", help=f"profile ({', '.join(PROFILES)}); default smoke"
    )
    run.add_argument(
        "--variant", default=None, help=f"text-versus-code variant ({', '.join(VARIANTS)})"
    )
    run.add_argument("--seeds", type=int, default=1, help="number of seeds (default 1)")
    run.add_argument("--seed-start", type=int, default=0, help="first seed (default 0)")
    run.add_argument(
        "--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ..."
    )
    run.add_argument("--results-dir", default="results")
    run.add_argument("--checkpoint-dir", default="checkpoints")
    run.add_argument("--no-resume", action="store_true", help="ignore existing checkpoints")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument(
        "--engine",
        default="fast",
        choices=ENGINES,
        help="Wilson-Cowan integrator (default fast; all agree up to float rounding)",
    )
    run.add_argument(
        "--no-cuda-graph", action="store_true", help="run the training step eagerly on a GPU"
    )
    run.add_argument(
        "--data-parallel",
        action="store_true",
        help="under torchrun: train each seed with DDP over all processes (default: spread seeds)",
    )

    commands.add_parser("list", help="list experiments, variants and profiles")

    summary = commands.add_parser("summary", help="table of all results records")
    summary.add_argument("--results-dir", default="results")
    return parser


def _list() -> None:
    print("experiments:")
    for config in EXPERIMENTS.values():
        print(f"  {config.id:16s} {config.description}")
    print("variants (where the paper's text and the authors' code disagree):")
    for variant in VARIANTS.values():
        print(f"  {variant.name:16s} [{', '.join(variant.overrides)}] {variant.description}")
    print("profiles:")
    for profile in PROFILES.values():
        print(f"  {profile.name:16s} {profile.description}")


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        config = get_experiment(args.experiment, args.variant)
        profile = get_profile(args.profile)
    except ValueError as exc:
        parser.error(str(exc))
    if args.seeds < 1 or args.seed_start < 0:
        parser.error("--seeds must be at least 1 and --seed-start non-negative")
    try:
        launch = Launch.from_env()
        device = device_for(launch, args.device)
        if args.data_parallel:
            init_data_parallel(device)
    except (ValueError, RuntimeError) as exc:
        parser.error(str(exc))
    seeds = list(range(args.seed_start, args.seed_start + args.seeds))
    try:
        for seed in seeds if args.data_parallel else launch.share(seeds):
            status = _run_seed(args, config, profile, seed, device, launch)
            if status:
                return status
    finally:
        close_data_parallel()
    return 0


def _run_seed(
    args: argparse.Namespace,
    config: ExperimentConfig,
    profile: Profile,
    seed: int,
    device: torch.device,
    launch: Launch,
) -> int:
    """Train one seed and print its summary line (rank 0 only under DDP); the exit code."""
    try:
        record = train(
            config,
            profile,
            seed,
            device=device,
            results_dir=args.results_dir,
            checkpoint_dir=args.checkpoint_dir,
            resume=not args.no_resume,
            progress=not args.no_progress,
            engine=args.engine,
            cuda_graph=not args.no_cuda_graph,
            data_parallel=args.data_parallel,
        )
    except DivergenceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if not args.data_parallel or launch.is_main:
            path = results_path(resolve(config, profile), profile, seed, args.results_dir)
            print(f"the divergence is recorded in {path}", file=sys.stderr)
        return 1
    except DataRootError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.data_parallel or launch.is_main:
        metrics = record["metrics"]
        extra = f", gamma {metrics['gamma']:.3f}" if "gamma" in metrics else ""
        path = results_path(config, profile, seed, args.results_dir)
        print(
            f"{config.name} {profile.name} seed {seed}: "
            f"test accuracy {metrics['test_accuracy']:.4f}"
            f"{extra}, {record['wall_time_s']:.1f} s ({record['epochs']} epochs, "
            f"{pace_text(record)}) -> {path}",
            flush=True,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (argparse errors exit with 2)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "list":
        _list()
        return 0
    if args.command == "summary":
        print(format_table(summarise(load_records(args.results_dir))))
        return 0
    return _run(args, parser)


if __name__ == "__main__":
    sys.exit(main())
