"""The runs of the appendices: the record ids, and a training call whose failure is a result.

Record ids: the scaling grid ``scaling-mnist-<N>`` / ``scaling-fashion-<N>`` (App. D),
the ablations ``ablation-unstable``, ``ablation-learned-planted``, ``ablation-not-in-kernel``
(App. E) and the text-versus-code variants of ``mnist-scratch`` (``variant-<name>``, stored as
``results/mnist-scratch+<name>/``).

An ablation may make training diverge; that is an outcome to record, not a crash.
:func:`train_outcome` calls :func:`wcbook.training.train` and, on a
:class:`~wcbook.training.DivergenceError`, writes a record with ``status: "diverged"``, where it
happened and the history of the epochs that did finish.

:func:`certificate_record` runs :func:`wcbook.certificate.certify` on a trained checkpoint and
writes ``certificates/<run>/<profile>/seed<k>.json`` (beside ``results/``, which holds training
records only).

Command line (sequential, one run after the other; ``python -m wcbook.appendix`` is an alias)::

    python -m wcbook appendix ablations --profile smoke
    python -m wcbook appendix variants --profile smoke
    python -m wcbook appendix scaling --profile smoke-scaling
    python -m wcbook certify --profile smoke      # or: python -m wcbook appendix certificates

They write into the working folder (``--out DIR``, see :mod:`wcbook.folders`), or with
``--publish`` into the committed ``results/`` and ``certificates/``.

:func:`ablation_table` and :func:`variant_table` set the records of one profile beside the code
default's and the paper's numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from .certificate import certify
from .data import flatten_images, load_images
from .experiments import (
    SCALING_SIDES,
    VARIANTS,
    ExperimentConfig,
    Profile,
    get_experiment,
    get_profile,
    resolve,
    run_name,
)
from .folders import add_folder_overrides, add_output_arguments, folders_from_args
from .training import (
    checkpoint_path,
    git_commit,
    load_data,
    load_trained,
    train_ensemble,
)

__all__ = [
    "ABLATION_IDS",
    "SCALING_IDS",
    "VARIANT_RUNS",
    "CERTIFIED_RUNS",
    "train_outcome",
    "certificate_record",
    "run_records",
    "ABLATION_COLUMNS",
    "VARIANT_COLUMNS",
    "ablation_rows",
    "ablation_table",
    "variant_rows",
    "variant_table",
    "add_arguments",
    "run",
    "add_certify_arguments",
    "run_certify",
    "main",
]

ABLATION_IDS = ("ablation-unstable", "ablation-learned-planted", "ablation-not-in-kernel")
SCALING_IDS = tuple(
    f"scaling-{name}-{side * side}" for name in ("mnist", "fashion") for side in SCALING_SIDES
)
#: (experiment, variant) of every ``variant-<name>`` record: mnist-scratch under each variant.
VARIANT_RUNS = tuple(
    ("mnist-scratch", name) for name, v in VARIANTS.items() if "mnist-scratch" in v.overrides
)
#: (experiment, variant) of the trained models whose certificates are recorded.
CERTIFIED_RUNS = (
    ("mnist-scratch", None),
    ("fashion-scratch", None),
    *((i, None) for i in ABLATION_IDS),
    ("mnist-cnn", None),
    ("fashion-cnn", None),
    ("scaling-mnist-196", None),
    ("scaling-fashion-196", None),
)
#: Test images per certificate record.
CERTIFICATE_IMAGES = 500


def train_outcome(
    config: ExperimentConfig | str,
    profile: Profile | str,
    seed: int,
    *,
    results_dir: str | os.PathLike = "results",
    checkpoint_dir: str | os.PathLike = "checkpoints",
    progress: bool = False,
    device: str | torch.device = "auto",
) -> dict[str, Any]:
    """:func:`~wcbook.training.train`, with divergence recorded instead of raised.

    A finished run returns its record with ``status: "finished"`` added (the file on disk is the
    one training wrote). A diverged run returns the record training wrote for it, with
    ``status: "diverged"``, ``diverged_at`` (1-based epoch and step, the step None when the
    parameters rather than the loss went bad), the error message, empty ``metrics`` and the
    history of the epochs before the divergence.
    """
    record = train_ensemble(
        config,
        profile,
        [seed],
        results_dir=results_dir,
        checkpoint_dir=checkpoint_dir,
        progress=progress,
        device=device,
    )[0]
    return {**record, "status": record.get("status", "finished")}


def certificate_record(
    experiment: str,
    profile: str | Profile,
    seed: int,
    *,
    variant: str | None = None,
    certificate_dir: str | os.PathLike = "certificates",
    checkpoint_dir: str | os.PathLike = "checkpoints",
    n_images: int = CERTIFICATE_IMAGES,
) -> dict[str, Any]:
    """Certify the model of a trained checkpoint with its first ``n_images`` test images; write and
    return the record (the checkpoint of a diverged run holds its last good epoch). For an
    encoder experiment the initial states are the head's outputs z of the test images."""
    prof = get_profile(profile)
    config = resolve(get_experiment(experiment, variant), prof)
    model = load_trained(experiment, prof.name, seed, checkpoint_dir, variant=variant)
    ckpt = torch.load(
        checkpoint_path(config, prof, seed, checkpoint_dir), map_location="cpu", weights_only=True
    )
    if config.model == "encoded":
        subset = dataclasses.replace(prof, n_train=1, n_test=n_images)
        _, test = load_data(config, subset, torch.device("cpu"))
        with torch.no_grad():
            states = model.initial_state(test.images)
        cert = certify(model, states, test.labels)
    else:
        images, labels = load_images(config.dataset, "test", size=config.image_size)
        cert = certify(model, flatten_images(images)[:n_images], labels[:n_images])
    commit, dirty = git_commit()
    record = {
        "experiment": config.id,
        "variant": config.variant,
        "profile": prof.name,
        "seed": seed,
        "checkpoint_epoch": ckpt["epoch"],
        "metrics": {
            "max_real": cert.max_real,
            "per_mode_max_real": cert.per_mode_max_real,
            "images_converged_to_label": cert.images.converged_to_label,
        },
        "certificate": cert.to_dict(),
        "summary": cert.summary(),
        "commit": commit,
        "dirty": dirty,
    }
    path = Path(certificate_dir) / config.name / prof.name / f"seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))
    return record


def run_records(
    experiment: str,
    profile: str,
    variant: str | None = None,
    results_dir: str | os.PathLike = "results",
) -> list[dict[str, Any]]:
    """Every seed's record of a run under ``profile``, by seed (empty when there is none)."""
    folder = Path(results_dir) / run_name(experiment, variant) / profile
    paths = sorted(folder.glob("seed*.json"), key=lambda path: int(path.stem[4:]))
    return [json.loads(path.read_text()) for path in paths]


def _accuracy(record: dict[str, Any]) -> float | None:
    return record["metrics"].get("test_accuracy")


def _fixed(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


ABLATION_COLUMNS = ("run", "status", "epochs", "test acc", "train acc", "gamma", "paper")
VARIANT_COLUMNS = ("variant", "T", "T_eval", "coupling", "ortho", "test acc", "gamma",
                   "vs default", "paper profile")


def ablation_rows(
    profile: str, results_dir: str | os.PathLike = "results"
) -> list[tuple[str, ...]]:
    """The rows of :func:`ablation_table` (columns :data:`ABLATION_COLUMNS`); a run without a
    record has its status ``no <profile> record`` and empty cells."""
    rows = []
    for name in ("mnist-scratch", *ABLATION_IDS):
        records = run_records(name, profile, results_dir=results_dir)
        if not records:
            rows.append((name, f"no {profile} record", "", "", "", "", ""))
            continue
        r = records[0]
        history = r["history"]
        train_accuracy = history.get("train_accuracy") or [None]
        gamma = history.get("gamma") or [None]
        rows.append((
            name,
            r.get("status", "finished"),
            str(len(history.get("loss", []))),
            _fixed(_accuracy(r), 4),
            _fixed(train_accuracy[-1], 4),
            _fixed(gamma[-1], 3),
            _fixed(r["reference"].get("test_accuracy"), 4),
        ))
    return rows


def ablation_table(profile: str, results_dir: str | os.PathLike = "results") -> str:
    """The code default (``mnist-scratch``) and the three ablations under ``profile``, seed 0:
    status, epochs trained, test and training accuracy, learned gamma and the paper's accuracy."""
    lines = [
        f"{'run':26s} {'status':9s} {'epochs':>6s} {'test acc':>8s} {'train acc':>9s} "
        f"{'gamma':>6s} {'paper':>6s}"
    ]
    for name, status, epochs, test, train, gamma, paper in ablation_rows(profile, results_dir):
        if not epochs:
            lines.append(f"{name:26s} {status}")
            continue
        lines.append(f"{name:26s} {status:9s} {epochs:>6s} {test:>8s} {train:>9s} {gamma:>6s} "
                     f"{paper:>6s}")
    return "\n".join(lines)


def variant_rows(
    profile: str, results_dir: str | os.PathLike = "results"
) -> tuple[str, list[tuple[str, ...]]]:
    """The spread of the default configuration (a sentence) and the rows of
    :func:`variant_table` (columns :data:`VARIANT_COLUMNS`). A variant without a usable record
    has only its name and, under ``vs default``, why. No rows without a default record.

    The spread that a difference must exceed to count is the range of test accuracies over the
    other runs of the default configuration: its further seeds and, under a profile that caps
    the epochs, the ``text-epochs`` variant (then the same configuration).
    """
    base = run_records("mnist-scratch", profile, results_dir=results_dir)
    if not base or _accuracy(base[0]) is None:
        return f"no finished {profile} record of mnist-scratch to compare the variants with", []
    base_accuracy = _accuracy(base[0])
    default = resolve(get_experiment("mnist-scratch"), profile)
    repeats = [*base[1:]]
    if get_profile(profile).epochs is not None:
        repeats += run_records("mnist-scratch", profile, "text-epochs", results_dir)[:1]
    repeats = [r for r in repeats if _accuracy(r) is not None]
    spread = max((abs(_accuracy(r) - base_accuracy) for r in repeats), default=0.0)
    rows = []
    for variant in (None, *(name for _, name in VARIANT_RUNS)):
        label = variant or "(code default)"
        records = run_records("mnist-scratch", profile, variant, results_dir)
        paper_records = run_records("mnist-scratch", "paper", variant, results_dir)
        paper_text = f"{_accuracy(paper_records[0]):.4f}" if paper_records else "none"
        config = get_experiment("mnist-scratch", variant)
        if not records or _accuracy(records[0]) is None:
            same = dataclasses.replace(resolve(config, profile), variant=None) == default
            why = (records[0].get("status", "no accuracy") if records else f"no {profile} record"
                   + (" (under this profile: the default's configuration)" if same else ""))
            rows.append((label, "", "", "", "", "", "", why, ""))
            continue
        accuracy = _accuracy(records[0])
        delta = accuracy - base_accuracy
        if variant is None:
            verdict = "-"
        elif accuracy < 0.2:
            verdict = "stuck at chance"
        elif abs(delta) <= spread:
            verdict = f"{delta:+.3f}, within the spread"
        else:
            verdict = f"{delta:+.3f}, {'better' if delta > 0 else 'worse'}"
        rows.append((label, f"{config.T_train:.1f}", f"{config.eval_horizon:.1f}",
                     config.params.coupling_scale, f"{config.ortho_factor:.2f}",
                     f"{accuracy:.4f}", f"{records[0]['metrics']['gamma']:.3f}", verdict,
                     paper_text))
    return f"spread of the default configuration over {len(repeats)} repeat(s): {spread:.4f}", rows


def variant_table(profile: str, results_dir: str | os.PathLike = "results") -> str:
    """Each text-versus-code variant of ``mnist-scratch`` under ``profile`` (seed 0) beside the
    code default under the same profile, with the paper-profile record where one exists (see
    :func:`variant_rows`)."""
    spread, rows = variant_rows(profile, results_dir)
    if not rows:
        return spread
    lines = [
        spread,
        f"{'variant':14s} {'T':>4s} {'T_eval':>6s} {'coupling':>8s} {'ortho':>5s} "
        f"{'test acc':>8s} {'gamma':>6s}  {'vs default':26s} paper profile",
    ]
    for label, T, T_eval, coupling, ortho, accuracy, gamma, verdict, paper in rows:
        if not T:
            lines.append(f"{label:14s} {verdict}")
            continue
        lines.append(f"{label:14s} {T:>4s} {T_eval:>6s} {coupling:>8s} {ortho:>5s} "
                     f"{accuracy:>8s} {gamma:>6s}  {verdict:26s} {paper}")
    return "\n".join(lines)


#: The groups of training records :func:`run` makes (``certificates`` is :func:`run_certify`).
GROUPS = ("ablations", "variants", "scaling")


def _runs(group: str) -> list[tuple[str, str | None]]:
    if group == "ablations":
        return [(i, None) for i in ABLATION_IDS]
    if group == "variants":
        return list(VARIANT_RUNS)
    if group == "scaling":
        return [(i, None) for i in SCALING_IDS]
    raise ValueError(f"unknown group {group!r}")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options that ``appendix`` and ``certify`` share."""
    parser.add_argument("--profile", default="smoke", help="profile (default smoke)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    add_output_arguments(parser)
    add_folder_overrides(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m wcbook appendix``."""
    parser.add_argument("group", choices=(*GROUPS, "certificates"), help="the records to make")
    _add_run_options(parser)
    parser.add_argument("--only", nargs="*", default=None, help="experiment ids or variant names")


def add_certify_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m wcbook certify``."""
    _add_run_options(parser)
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        help=f"experiment ids (default every certified run: "
        f"{', '.join(e for e, _ in CERTIFIED_RUNS)})",
    )


def _folders(args: argparse.Namespace) -> tuple[Path, Path, Path]:
    """(results, checkpoints, certificates) chosen by the options; explicit folders win."""
    folders = folders_from_args(args)
    return (
        Path(args.results_dir) if args.results_dir else folders.results,
        Path(args.checkpoint_dir) if args.checkpoint_dir else folders.checkpoints,
        folders.certificates,
    )


def run_certify(args: argparse.Namespace) -> int:
    """Certify the trained checkpoint of every certified run (seed ``args.seed``); exit code."""
    _, checkpoint_dir, certificate_dir = _folders(args)
    for experiment, variant in CERTIFIED_RUNS:
        if args.only and experiment not in args.only:
            continue
        config = resolve(get_experiment(experiment, variant), args.profile)
        profile = get_profile(args.profile)
        if not checkpoint_path(config, profile, args.seed, checkpoint_dir).exists():
            print(f"{experiment} {args.profile}: no checkpoint in {checkpoint_dir}, skipped")
            continue
        record = certificate_record(
            experiment,
            args.profile,
            args.seed,
            variant=variant,
            certificate_dir=certificate_dir,
            checkpoint_dir=checkpoint_dir,
        )
        print(f"{experiment} {args.profile} (epoch {record['checkpoint_epoch']}):")
        print(record["summary"], flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run every record of a group for one seed, one after the other; returns the exit code."""
    if args.group == "certificates":
        return run_certify(args)
    results_dir, checkpoint_dir, _ = _folders(args)
    for experiment, variant in _runs(args.group):
        if args.only and experiment not in args.only and variant not in args.only:
            continue
        record = train_outcome(
            get_experiment(experiment, variant),
            args.profile,
            args.seed,
            results_dir=results_dir,
            checkpoint_dir=checkpoint_dir,
        )
        name = run_name(experiment, variant)
        metrics = record["metrics"]
        per_epoch = record.get("seconds_per_epoch")
        print(
            f"{name} {args.profile}: {record['status']}"
            + (f", test accuracy {metrics['test_accuracy']:.4f}" if metrics else "")
            + (f", gamma {metrics['gamma']:.3f}" if "gamma" in metrics else "")
            + (f", {per_epoch:.2f} s/epoch" if per_epoch else ""),
            flush=True,
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m wcbook.appendix ...``: an alias of ``python -m wcbook appendix ...``."""
    from .cli import main as cli_main

    return cli_main(["appendix", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
