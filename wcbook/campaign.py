"""The paper's evidence as a plan: which records the paper profile needs, which exist, and how the
missing ones pack into commands that fit a device window.

``python -m wcbook campaign --profile paper --dry-run`` prints the plan; ``--archive FILE`` runs the
next pack (every run it starts is finished: each pack is a list of whole ensembles), writes the
records to the published ``results/`` and packs them, with the exported dynamics of seed 0
(:mod:`wcbook.weights`), into one archive; ``--import FILE`` checks an archive and unpacks it.

What is needed, in order of value: the 5 seeds of Tables 1-2, then Tables 3-4, one seed of each
scaling configuration (App. D), one of each ablation (App. E), of the learned-planted ablation's
faithful set-up (variant planted-span) and of three text-versus-code variants, the 5 seeds of
Table 5 with one seed of mnist-scratch with stability enforced (variant stable), and last the
further scaling seeds. A record counts only if it was made with the configuration the registry
holds now. A run's cost is estimated from the published records of the same run on the same kind
of device, those timed on the very hardware that plans it first (one 2-core CPU took 40 % longer
per epoch than another), else of the same kind of model, scaled by N^2 times the Euler steps for a
from-scratch Wilson-Cowan model (the products' operation count) and by N for any other; a record
counts only where its epochs cost alike (same model, encoder, head, batch, data of the same shape,
and text encoder frozen or fine-tuned). Before all that, a record of a staged run counts first
where it trained the run's mix of stages with its readout: a batch-10 stage-1 epoch costs several
batch-200 stage-2 epochs, so a softmax twin that must train its own stage 1 is priced by its
Wilson-Cowan sibling's full run, not by its own record of stage 2 alone. An ensemble of S
from-scratch runs costs S single runs times the ratio the newest ensemble benchmark
(``python -m wcbook bench --ensemble``) measured on that kind of device, at the nearest N and S: on
this CPU more than 1; on a GPU, where it should be less, the plan assumes exactly S single runs
until such a benchmark exists.

On a machine lent for a short window, send only the data a pack reads, as its own data root::

    python -m wcbook data --stage device-data --sets mnist,fashion        # here, 42 MB
    WCBOOK_DATA=device-data python -m wcbook campaign --only mnist,fashion \
        --archive pack.tar.gz                                             # there
    python -m wcbook campaign --import pack.tar.gz                        # here again

(``device-data/`` is ignored by git.)

On a CPU, ``--workers K`` runs the first K packs side by side, one process each with the threads
split between them; every run is then priced as one of K processes sharing the CPU, by the
``processes`` rows of the newest ensemble benchmark of this CPU model (else of any CPU; K times
one run alone where there is none). A lane ends with the command, however the command is
stopped (``kill`` included); rerunning the same command resumes each run from its checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from .experiments import ExperimentConfig, Profile, get_experiment, get_profile, resolve, run_name
from .results import load_records, member_pace

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks" / "results"
#: Largest archive a pack may bring back.
MAX_ARCHIVE = 16 * 2**20
#: Keys every training record has.
RECORD_KEYS = frozenset({"experiment", "variant", "profile", "seed", "metrics", "config",
                         "commit", "history", "epochs"})
_MEMBER = re.compile(
    r"^(results/[^/]+/[^/]+/seed\d+\.json|models/[^/]+/[^/]+/seed\d+\.(json|safetensors))$"
)


@dataclass(frozen=True)
class Need:
    """Records one run must have: ``seeds`` of them, the first ``first`` at ``rank`` (lower is
    more valuable), the rest at ``rest_rank``; ``export`` seed 0's dynamics to ``models/``."""

    experiment: str
    rank: int
    seeds: int = 5
    first: int = 5
    rest_rank: int = 9
    variant: str | None = None
    export: bool = False

    @property
    def run(self) -> str:
        """The run's name: the experiment, with ``+variant`` where there is one."""
        return run_name(self.experiment, self.variant)


def _required() -> list[Need]:
    scaling = [f"scaling-{d}-{n}" for d in ("mnist", "fashion")
               for n in (196, 289, 441, 576, 784, 961, 1225)]
    encoded = ["mnist-cnn", "mnist-cnn-softmax", "fashion-cnn", "fashion-cnn-softmax",
               "cifar10-vgg16", "cifar10-vgg16-softmax", "flowers-transfer",
               "flowers-transfer-softmax"]
    return [
        *(Need(e, 1, export=e.endswith("scratch")) for e in
          ("mnist-scratch", "fashion-scratch", "mnist-mlp", "fashion-mlp")),
        *(Need(e, 2, export=e in ("mnist-cnn", "fashion-cnn")) for e in encoded),
        *(Need(e, 3, first=1, export=e.endswith("-784")) for e in scaling),
        *(Need(e, 4, seeds=1, first=1) for e in
          ("ablation-unstable", "ablation-learned-planted", "ablation-not-in-kernel")),
        Need("ablation-learned-planted", 4, seeds=1, first=1, variant="planted-span"),
        *(Need("mnist-scratch", 4, seeds=1, first=1, variant=v) for v in
          ("text-T", "text-coupling", "no-ortho")),
        Need("mnist-scratch", 5, seeds=1, first=1, variant="stable"),
        *(Need(e, 5, variant="batch-32-bf16") for e in
          ("imdb-encoder", "imdb-distance-head", "imdb-wc")),
    ]


#: The paper profile's required records.
REQUIRED = _required()


@dataclass
class Item:
    """One ensemble to train: a run and its seeds, the estimated seconds, its data set."""

    need: Need
    seeds: list[int]
    seconds: float | None
    dataset: str
    nodes: int | None = None  # N of a from-scratch Wilson-Cowan run, which the benchmark prices

    def label(self) -> str:
        """One line for the plan: run, seeds, data set and estimated minutes."""
        seeds = ",".join(map(str, self.seeds))
        cost = "no estimate" if self.seconds is None else f"{self.seconds / 60:.1f} min"
        return f"{self.need.run} seeds {seeds} ({self.dataset}, {cost})"


@dataclass
class Plan:
    """What exists, what is missing, and the packs the missing records fill."""

    existing: list[str]
    missing: list[Item]
    packs: list[list[Item]] = field(default_factory=list)
    oversized: list[Item] = field(default_factory=list)


def valid_record(record: dict[str, Any]) -> str | None:
    """Why ``record`` is not a usable training record (None when it is)."""
    missing = RECORD_KEYS - record.keys()
    if missing:
        return f"missing {', '.join(sorted(missing))}"
    if record["commit"] in (None, "", "unknown"):
        return "no commit"
    return None


def _existing(
    records: Iterable[dict[str, Any]], profile: Profile
) -> dict[tuple[str, int], dict]:
    have = {}
    for r in records:
        if r.get("profile") == profile.name and valid_record(r) is None:
            have[(run_name(r["experiment"], r.get("variant")), int(r["seed"]))] = r
    return have


def _same_config(record: dict[str, Any], config: Any) -> bool:
    """Whether a record was made with ``config`` (wording aside): a record of a run whose design
    has changed since (the IMDB Wilson-Cowan arm) does not count as one of its seeds."""
    wording = ("description", "reference")

    def plain(value: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in json.loads(json.dumps(value)).items() if k not in wording}

    return plain(record.get("config", {})) == plain(config.to_dict())


def _paces(records: list[dict], device_type: str) -> list[tuple[dict, str | None, float]]:
    """(record, device name, seconds per member-epoch on ``device_type``) from each record's
    sessions (or its own device), scaled to the paper profile's training-set size."""
    paces = []
    for r in records:
        own = {key: r.get(key) for key in ("device", "device_type", "seconds_per_epoch")}
        sessions = r.get("sessions") or [own]
        full = 60000 / max(r.get("n_train") or 60000, 1) if r.get("profile") != "paper" else 1.0
        for entry in sessions:
            if entry.get("device_type") == device_type and entry.get("seconds_per_epoch"):
                paces.append((r, entry.get("device"), member_pace(r, entry) * full))
    return paces


#: Configuration keys (and text options) that set the cost of an epoch apart from its size.
_COST_KEYS = ("model", "hidden", "batch_size")
_TEXT_COST_KEYS = ("head", "frozen", "encoder_precision")
#: Data sets whose epochs cost alike: the IDX sets have the same image shape and split sizes.
_COST_DATA = {"fashion": "mnist"}


def _same_cost(record_config: dict[str, Any], config: dict[str, Any]) -> bool:
    """Whether a record's epochs cost what ``config``'s do up to their size (a frozen text
    encoder and a fine-tuned one, for instance, do not); the encoder's readout and its stage
    lengths aside, which :func:`_likeness` ranks."""
    text = record_config.get("text_options") or {}, config.get("text_options") or {}
    encoder = [{k: v for k, v in (c.get("encoder_options") or {}).items()
                if k not in ("readout", "stage1_epochs")} for c in (record_config, config)]
    data = [_COST_DATA.get(c.get("dataset"), c.get("dataset")) for c in (record_config, config)]
    return (all(record_config.get(key) == config.get(key) for key in _COST_KEYS)
            and data[0] == data[1] and encoder[0] == encoder[1]
            and all(text[0].get(key) == text[1].get(key) for key in _TEXT_COST_KEYS))


def _size(config: dict[str, Any]) -> float:
    """The size an epoch's cost scales with: N^2 times the Euler steps of training for a
    from-scratch Wilson-Cowan model (its N x N products), the pixels N for any other."""
    side = config.get("image_size") or 28
    if config.get("model") != "wc":
        return float(side**2)
    steps = (config.get("T_train") or 1.0) / (config.get("dt") or 1.0)
    return side**4 * steps


def _stage_mix(config: dict[str, Any], stage1_reused: bool = False) -> tuple[float, ...] | None:
    """The share of each training stage in a run's epochs (stage 1 counts none where the run
    took it from its Wilson-Cowan twin), None where ``config`` no longer loads."""
    try:
        epochs = [n for _, n, _ in ExperimentConfig.from_dict(config).stages]
    except (TypeError, KeyError, ValueError):
        return None
    if stage1_reused and len(epochs) > 1:
        epochs[0] = 0
    return tuple(round(n / max(sum(epochs), 1), 3) for n in epochs)


def _likeness(
    record: dict[str, Any], config: dict[str, Any], mix: tuple[float, ...] | None
) -> tuple[bool, bool, bool]:
    """How a record's epochs may differ in cost from ``config``'s (whose ``_stage_mix`` is
    ``mix``), worst first: a softmax
    readout pricing a Wilson-Cowan one (it lacks the dynamics' cost), another mix of training
    stages (a batch-10 stage-1 epoch can cost several stage-2 epochs: a smoke run's mean priced
    a paper CPU epoch at 79 s that took 128 s with the same Adam), then another readout."""
    readout = [(c.get("encoder_options") or {}).get("readout") for c in (record["config"], config)]
    own = _stage_mix(record["config"], bool(record.get("stage1_from")))
    return (readout == ["softmax", "wc"], own != mix, readout[0] != readout[1])


def _epoch_seconds(
    need: Need, profile: Profile, paces: list[tuple[dict, str | None, float]],
    device: str | None = None,
) -> float | None:
    """Seconds per epoch of one member: the fastest published pace of the same run (measured on
    the hardware named ``device`` first, then of its own profile), else of the same kind of model
    on the same data, then on data of the same shape, scaled by ``_size``; only records whose
    epochs cost alike count (see ``_same_cost``), those with the run's mix of stages and its
    readout first (``_likeness``)."""
    config = resolve(get_experiment(need.experiment, need.variant), profile)
    wanted = json.loads(json.dumps(config.to_dict()))
    mix = _stage_mix(wanted)
    alike = [(*_likeness(r, wanted, mix), r["experiment"] != need.experiment,
              r["config"].get("dataset") != wanted["dataset"],
              device is not None and name != device, r["profile"] != profile.name,
              t * _size(wanted) / _size(r["config"]))
             for r, name, t in paces if _same_cost(r["config"], wanted)]
    return min(alike)[-1] if alike else None


def plan(
    profile: str | Profile = "paper",
    budget_s: float = 540.0,
    device_type: str = "cuda",
    results_dir: str | Path = ROOT / "results",
    only: Sequence[str] | None = None,
    bench_dir: str | Path = BENCH_DIR,
    device: str | None = None,
    workers: int = 1,
) -> Plan:
    """The campaign's plan for ``profile`` (see the module docstring), limited to the data sets
    or runs (``<id>`` or ``<id>+<variant>``) in ``only`` where given; ``device`` names the
    hardware that will run it (``device_name``), whose own paces are preferred. With
    ``workers`` > 1 every run is priced as one of that many processes sharing the device (see
    :func:`side_by_side_slowdowns`), and each pack is one of them."""
    profile = get_profile(profile)
    records = load_records(results_dir)
    have = _existing(records, profile)
    paces = _paces(records, device_type)
    slowdowns = (side_by_side_slowdowns(device_type, workers, bench_dir, device)
                 if workers > 1 else {})
    existing, missing = [], []
    for need in sorted(REQUIRED, key=lambda n: n.rank):
        config = resolve(get_experiment(need.experiment, need.variant), profile)
        if only and config.dataset not in only and need.run not in only:
            continue
        per_epoch = _epoch_seconds(need, profile, paces, device)
        nodes = config.n_nodes if config.model == "wc" else None
        for seed in range(need.seeds):
            if (need.run, seed) in have and _same_config(have[(need.run, seed)], config):
                existing.append(f"{need.run} seed {seed}")
                continue
            seconds = None if per_epoch is None else (
                per_epoch * config.total_epochs * _lane_factor(nodes, slowdowns, workers))
            missing.append((need.rank if seed < need.first else need.rest_rank, need, seed,
                            seconds, config.dataset, nodes))
    missing.sort(key=lambda m: m[0])
    out = Plan(existing, [Item(n, [s], t, d, k) for _, n, s, t, d, k in missing])
    _pack(out, budget_s, ensemble_ratios(device_type, bench_dir))
    return out


def _newest_benchmark(
    device_type: str, directory: str | Path, device: str | None = None
) -> dict | None:
    """The newest ensemble benchmark record measured on ``device_type``, of the hardware named
    ``device`` where there is one; None where there is none."""
    found = []
    for path in Path(directory).glob("*-ensemble-*.json"):
        record = json.loads(path.read_text())
        provenance = record.get("provenance", {})
        if provenance.get("device") == device_type:
            found.append((provenance.get("device_name") == device,
                          provenance.get("started_utc", ""), record))
    return max(found, key=lambda f: f[:2])[2] if found else None


def _benchmark_rows(
    device_type: str, directory: str | Path, mode: str, device: str | None = None
) -> list[dict]:
    """The rows of ``mode`` of :func:`_newest_benchmark`; empty where there is none."""
    record = _newest_benchmark(device_type, directory, device)
    return [r for r in record["rows"] if r["mode"] == mode] if record else []


def ensemble_ratios(
    device_type: str, directory: str | Path = BENCH_DIR
) -> dict[int, dict[int, float]]:
    """N -> {S: seconds per member-epoch of an ensemble of S over those of one run}, from the
    newest ensemble benchmark (``python -m wcbook bench --ensemble``) measured on
    ``device_type``; empty where there is none."""
    rows = _benchmark_rows(device_type, directory, "ensemble")
    single = {r["n_nodes"]: r["model_epoch_s"] for r in rows if r["members"] == 1}
    ratios: dict[int, dict[int, float]] = {}
    for r in rows:
        if r["n_nodes"] in single:
            ratio = r["model_epoch_s"] / single[r["n_nodes"]]
            ratios.setdefault(r["n_nodes"], {})[r["members"]] = ratio
    return ratios


def side_by_side_slowdowns(
    device_type: str, workers: int, directory: str | Path = BENCH_DIR, device: str | None = None
) -> dict[int, float]:
    """:func:`processes_slowdowns` of the newest ensemble benchmark measured on ``device_type``
    (of the hardware named ``device`` where there is one); empty where none was measured."""
    record = _newest_benchmark(device_type, directory, device)
    return processes_slowdowns(record, workers) if record else {}


def processes_slowdowns(record: dict, workers: int) -> dict[int, float]:
    """N -> how many times longer one run's step takes while ``workers`` processes train side by
    side, from the ``processes`` rows of an ensemble benchmark ``record``: a step of the nearest
    measured number of processes over a step of one."""
    rows = [r for r in record["rows"] if r["mode"] == "processes"]
    alone = {r["n_nodes"]: r["step_s"] for r in rows if r["members"] == 1}
    by_size: dict[int, dict[int, float]] = {}
    for r in rows:
        if r["n_nodes"] in alone:
            by_size.setdefault(r["n_nodes"], {})[r["members"]] = r["step_s"] / alone[r["n_nodes"]]
    return {n: steps[min(steps, key=lambda k: abs(k - workers))]
            for n, steps in by_size.items()}


def _lane_factor(nodes: int | None, slowdowns: dict[int, float], workers: int) -> float:
    """How many times longer a run takes as one of ``workers`` side by side: the benchmark's
    slowdown at the nearest N (the largest measured one for a model the benchmark does not
    time), or ``workers`` itself where nothing was measured (no gain assumed)."""
    if workers == 1:
        return 1.0
    if not slowdowns:
        return float(workers)
    if nodes is None:
        return max(slowdowns.values())
    return slowdowns[min(slowdowns, key=lambda n: abs(n - nodes))]


def _ensemble_seconds(
    seconds: list[float], nodes: int | None, ratios: dict[int, dict[int, float]]
) -> float:
    """Estimated seconds of one ensemble whose members alone would take ``seconds``: their sum,
    times the benchmark's ratio at the nearest N and ensemble size (for a from-scratch
    Wilson-Cowan run where a benchmark exists)."""
    if nodes is None or not ratios or len(seconds) == 1:
        return sum(seconds)
    by_size = ratios[min(ratios, key=lambda n: abs(n - nodes))]
    return sum(seconds) * by_size[min(by_size, key=lambda k: abs(k - len(seconds)))]


def _pack(out: Plan, budget_s: float, ratios: dict[int, dict[int, float]]) -> None:
    """Group the missing seeds of a run into ensembles that fit the budget (priced by
    :func:`_ensemble_seconds`), then fill packs in order of value (first fit), each pack at most
    ``budget_s`` estimated seconds."""
    groups: list[Item] = []
    alone: list[list[float]] = []
    for item in out.missing:
        last = groups[-1] if groups else None
        if (last is not None and last.need == item.need and item.seconds is not None
                and last.seconds is not None):
            priced = _ensemble_seconds([*alone[-1], item.seconds], item.nodes, ratios)
            if priced <= budget_s:
                last.seeds.append(item.seeds[0])
                last.seconds = priced
                alone[-1].append(item.seconds)
                continue
        groups.append(Item(item.need, list(item.seeds), item.seconds, item.dataset, item.nodes))
        alone.append([item.seconds])
    loads: list[float] = []
    for group in groups:
        if group.seconds is None or group.seconds > budget_s:
            out.oversized.append(group)
            continue
        for k, load in enumerate(loads):
            if load + group.seconds <= budget_s:
                out.packs[k].append(group)
                loads[k] += group.seconds
                break
        else:
            out.packs.append([group])
            loads.append(group.seconds)


def format_plan(p: Plan, budget_s: float) -> str:
    """The plan as text: counts, each pack, and what fits no pack."""
    lines = [f"existing: {len(p.existing)} records; missing: {len(p.missing)} records"]
    for k, pack in enumerate(p.packs, 1):
        total = sum(item.seconds for item in pack)
        lines.append(f"pack {k} ({total / 60:.1f} of {budget_s / 60:.0f} min):")
        lines += [f"  {item.label()}" for item in pack]
    if p.oversized:
        lines.append("longer than one command, or without an estimate (run them where time "
                     "allows, or resume them across windows):")
        lines += [f"  {item.label()}" for item in p.oversized]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Archives
# ----------------------------------------------------------------------------------------------
def write_archive(paths: Sequence[Path], archive: Path, root: Path = ROOT) -> Path:
    """Pack ``paths`` (under ``root``) into a gzip tar of at most 16 MiB."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in paths:
            tar.add(path, arcname=str(Path(path).resolve().relative_to(root.resolve())))
    if archive.stat().st_size > MAX_ARCHIVE:
        archive.unlink()
        raise ValueError(f"the archive would be {archive.stat().st_size} bytes, over 16 MiB")
    return archive


def _commit_known(commit: str, root: Path) -> bool:
    done = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=root,
                          capture_output=True)
    return done.returncode == 0


def _worse(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """Whether ``new`` has worse provenance than ``old``: dirty over clean, or a divergence over
    a finished run."""
    if new.get("dirty") and not old.get("dirty"):
        return True
    return new.get("status") == "diverged" and old.get("status", "finished") != "diverged"


def import_archive(
    archive: Path, root: Path = ROOT, repo: Path = ROOT
) -> dict[str, list[str]]:
    """Check every file of ``archive`` and unpack it into ``root`` (commits are looked up in the
    git repository ``repo``); returns the paths added,
    replaced and left as they were. Raises ValueError with a one-line reason, writing nothing,
    when a file is not a record or model of the expected layout, a record lacks a field, names a
    commit unknown to this repository, or would replace a record of better provenance."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise ValueError(f"{archive}: not a readable archive ({exc})") from None
    report: dict[str, list[str]] = {"added": [], "replaced": [], "unchanged": []}
    for name, data in members.items():
        if not _MEMBER.match(name):
            raise ValueError(f"{archive}: {name} is not a record or model of the expected layout")
        target = root / name
        if name.endswith(".json") and name.startswith("results/"):
            _check_record(archive, name, data, target, repo)
        kind = "unchanged" if target.exists() and target.read_bytes() == data else (
            "replaced" if target.exists() else "added")
        report[kind].append(name)
    for name, data in members.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return report


def _check_record(archive: Path, name: str, data: bytes, target: Path, repo: Path) -> None:
    try:
        record = json.loads(data)
    except json.JSONDecodeError:
        raise ValueError(f"{archive}: {name} is not JSON") from None
    problem = valid_record(record) if isinstance(record, dict) else "not a record"
    if problem:
        raise ValueError(f"{archive}: {name} is not a training record ({problem})")
    if not _commit_known(record["commit"], repo):
        raise ValueError(f"{archive}: {name} was made at commit {record['commit'][:12]}, "
                         "unknown to this repository")
    if target.exists() and _worse(record, json.loads(target.read_text())):
        raise ValueError(f"{archive}: {name} would replace a record of better provenance")


# ----------------------------------------------------------------------------------------------
# Running a pack
# ----------------------------------------------------------------------------------------------
def run_pack(
    pack: list[Item], profile: str | Profile, device: str, root: Path = ROOT
) -> list[Path]:
    """Train every ensemble of ``pack`` to the end into the published folders and export the
    dynamics asked for; returns the files written."""
    from .training import load_trained, train_ensemble
    from .weights import export_weights

    profile = get_profile(profile)
    written: list[Path] = []
    for item in pack:
        records = train_ensemble(
            item.need.experiment if item.need.variant is None
            else get_experiment(item.need.experiment, item.need.variant),
            profile, item.seeds, device=device, results_dir=root / "results",
            checkpoint_dir=root / "checkpoints", progress=False, log=True,
        )
        for record in records:
            folder = root / "results" / item.need.run / profile.name
            written.append(folder / f"seed{record['seed']}.json")
            if item.need.export and record["seed"] == 0 and record.get("status") != "diverged":
                model = load_trained(item.need.experiment, profile.name, 0, root / "checkpoints",
                                     variant=item.need.variant)
                training = {k: record.get(k) for k in ("commit", "device", "metrics")}
                config = resolve(get_experiment(item.need.experiment, item.need.variant), profile)
                weights = export_weights(model, item.need.run, profile.name, 0, how="campaign",
                                         training=training, models_dir=root / "models",
                                         config=config)
                written += [weights, weights.with_suffix(".json")]
    return written


def _exit_with_parent(poll_s: float = 1.0) -> None:
    """End this process, checkpoints as they are, once the process that started it is gone: a
    campaign killed by a signal it cannot handle leaves no lane training on alone (rerunning the
    command resumes each run from its checkpoint)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _lane(
    pack: list[Item], profile: str | Profile, device: str, root: Path, threads: int
) -> tuple[list[Path], list[str]]:
    """One process's share of :func:`run_lanes`: its pack, run after run on ``threads``
    threads; returns the files written and, for each run that raised, why."""
    import torch

    torch.set_num_threads(threads)
    written: list[Path] = []
    failed: list[str] = []
    for item in pack:
        try:
            written += run_pack([item], profile, device, root)
        except Exception as exc:  # one failed run must not cost the lane's other runs
            failed.append(f"{item.need.run} seeds {item.seeds}: {type(exc).__name__}: {exc}")
    return written, failed


def run_lanes(
    packs: list[list[Item]], profile: str | Profile, device: str, threads: int,
    root: Path = ROOT,
) -> tuple[list[Path], list[str]]:
    """Train ``packs`` side by side, one process of ``threads`` threads each (whether that trains
    more models per hour on a CPU than one process with all its threads, ``python -m wcbook
    bench --ensemble`` measures); returns every file written and a line for each run that
    failed (the other runs go on)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")  # no CUDA or thread state forked
    with ProcessPoolExecutor(len(packs), mp_context=context,
                             initializer=_exit_with_parent) as pool:
        lanes = [pool.submit(_lane, pack, profile, device, root, threads) for pack in packs]
        results = [lane.result() for lane in lanes]
    return ([path for written, _ in results for path in written],
            [line for _, failed in results for line in failed])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m wcbook campaign``."""
    parser.add_argument("--profile", default="paper", help="profile (default paper)")
    parser.add_argument("--budget-min", type=float, default=9.0,
                        help="minutes one command may take (default 9)")
    parser.add_argument("--device", default="cuda", help="cuda or cpu: whose timings to plan with")
    parser.add_argument("--only", help="data sets carried or runs to plan, comma-separated "
                        "(mnist,fashion or scaling-fashion-289)")
    parser.add_argument("--workers", type=int, default=1,
                        help="on a CPU: run this many packs side by side, the threads split "
                        "between them (default 1)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan only")
    parser.add_argument("--archive", type=Path, help="run the next pack and archive it here")
    parser.add_argument("--import", dest="import_", type=Path, help="check and unpack an archive")


def _here(device_type: str) -> str | None:
    """The name of this machine's hardware of ``device_type``, None where it has none."""
    import torch

    from .training.provenance import device_name

    if device_type == "cuda" and not torch.cuda.is_available():
        return None
    return device_name(torch.device(device_type))


def run(args: argparse.Namespace) -> int:
    """``campaign``: plan, run a pack, or import one."""
    if args.import_:
        try:
            report = import_archive(args.import_)
        except ValueError as exc:
            print(f"error: {exc}")
            return 1
        for kind, names in report.items():
            print(f"{kind}: {len(names)}" + "".join(f"\n  {n}" for n in names))
        return 0
    get_profile(args.profile)
    budget = args.budget_min * 60
    device_type = "cpu" if args.device == "cpu" else "cuda"
    if args.workers < 1 or (args.workers > 1 and device_type != "cpu"):
        print("error: --workers takes 1, or on a CPU (--device cpu) the number of packs to run "
              "side by side; on a GPU, seeds share the device as one ensemble")
        return 2
    only = args.only.split(",") if args.only else None
    p = plan(args.profile, budget, device_type, only=only, device=_here(device_type),
             workers=args.workers)
    print(format_plan(p, budget))
    if args.dry_run or args.archive is None:
        return 0
    if not p.packs:
        print("nothing fits one command: see the list above")
        return 1
    if args.workers == 1:
        written, failed = run_pack(p.packs[0], args.profile, args.device), []
    else:
        import torch

        lanes = p.packs[:args.workers]
        threads = max(1, torch.get_num_threads() // len(lanes))
        print(f"packs 1-{len(lanes)} side by side, {threads} thread(s) each")
        written, failed = run_lanes(lanes, args.profile, args.device, threads)
    print(f"archive: {write_archive(written, args.archive)}")
    for line in failed:
        print(f"failed: {line}")
    return 1 if failed else 0
