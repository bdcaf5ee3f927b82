"""The command line: one help tree, runs that leave the committed records alone, a finished run
that says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import wcbook.appendix as appendix
import wcbook.bench as bench
from wcbook import cli
from wcbook.experiments import get_experiment, get_profile, resolve
from wcbook.folders import HOME_ENV, folders_from_args, published, user_home, working

REPO = Path(__file__).resolve().parents[1]
#: The README's first run, on the smallest profile.
RUN = ["run", "mnist-scratch", "--profile", "smoke-scaling", "--no-progress"]
RECORD = Path("results") / "mnist-scratch" / "smoke-scaling" / "seed0.json"
CHECKPOINT = Path("checkpoints") / "mnist-scratch" / "smoke-scaling" / "seed0.pt"
COMMITTED = ("results", "certificates", "benchmarks")


def _wcbook(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """``python -m wcbook <args>`` from the repository root, one thread, captured."""
    return subprocess.run(
        [sys.executable, "-m", "wcbook", *args],
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def _committed_state() -> tuple[list[tuple[str, int, int]], str]:
    """Every file under the committed record folders (path, size, modification time) and, in a
    git checkout, their ``git status`` (untracked files included)."""
    files = sorted(
        (str(p.relative_to(REPO)), p.stat().st_size, p.stat().st_mtime_ns)
        for folder in COMMITTED
        for p in (REPO / folder).rglob("*")
        if p.is_file()
    )
    git = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--", *COMMITTED],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    return files, git.stdout if git.returncode == 0 else "not a git checkout"


def test_the_readme_shows_this_first_run():
    readme = (REPO / "README.md").read_text()
    assert f"python -m wcbook {' '.join(RUN[:4])}  # a first run" in readme


def test_the_readme_shows_every_subcommand():
    readme = (REPO / "README.md").read_text()
    missing = [sub.name for sub in cli.SUBCOMMANDS if f"python -m wcbook {sub.name} " not in readme]
    assert not missing, f"README.md has no example of: {missing}"


def test_every_subcommand_is_in_one_help_tree(capsys):
    names = [sub.name for sub in cli.SUBCOMMANDS]
    assert names == ["run", "bench", "appendix", "certify", "data", "list", "summary", "campaign",
                     "robustness", "trace"]
    for name in names:
        with pytest.raises(SystemExit) as exit_info:
            cli.main([name, "--help"])
        assert exit_info.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: python -m wcbook {name} [-h]")


@pytest.mark.parametrize("module, name", [(bench, "bench"), (appendix, "appendix")])
def test_old_entry_points_are_aliases(module, name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m wcbook {name} [-h]")


def test_run_options_are_kept(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    usage = capsys.readouterr().out
    for option in (
        "--profile", "--variant", "--seeds", "--seed-start", "--device", "--out", "--publish",
        "--results-dir", "--checkpoint-dir", "--no-resume", "--no-progress", "--engine",
        "--no-cuda-graph", "--data-parallel", "--ensemble", "--matmul",
    ):
        assert option in usage


def test_out_and_publish_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*RUN, "--out", "x", "--publish"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_bad_seeds_exit_with_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*RUN, "--seeds", "0"])
    assert exit_info.value.code == 2
    assert "--seeds must be at least 1" in capsys.readouterr().err


def test_folders(monkeypatch, tmp_path):
    monkeypatch.setenv(HOME_ENV, str(tmp_path))
    assert user_home() == tmp_path
    assert working().results == tmp_path / "results"
    assert working("elsewhere").checkpoints == Path("elsewhere") / "checkpoints"
    assert published().benchmarks == Path("benchmarks") / "results"
    monkeypatch.delenv(HOME_ENV)
    assert user_home() == Path("~/.cache/wcbook/runs").expanduser()


def test_run_with_out_leaves_the_committed_records_alone(tmp_path, data_root):
    before = _committed_state()
    done = _wcbook([*RUN, "--out", str(tmp_path)], {"WCBOOK_DATA": str(data_root)})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / RECORD).is_file() and (tmp_path / CHECKPOINT).is_file()
    assert f"-> {tmp_path / RECORD}" in done.stdout
    assert _committed_state() == before
    assert not (REPO / RECORD).exists() and not (REPO / CHECKPOINT).exists()


def test_default_run_goes_to_wcbook_home_and_a_rerun_says_finished(tmp_path, data_root):
    env = {"WCBOOK_DATA": str(data_root), HOME_ENV: str(tmp_path)}
    before = _committed_state()
    assert _wcbook(RUN, env).returncode == 0
    record = tmp_path / RECORD
    written = record.read_text()
    assert _committed_state() == before and not (REPO / RECORD).exists()

    again = _wcbook(RUN, env)
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"already finished: {record}\n"
    assert record.read_text() == written

    summary = _wcbook(["summary"], env)
    assert summary.returncode == 0 and f"records in {tmp_path / 'results'}" in summary.stdout
    assert "mnist-scratch" in summary.stdout and "smoke-scaling" in summary.stdout

    retrained = _wcbook([*RUN, "--no-resume"], env)
    assert retrained.returncode == 0 and "already finished" not in retrained.stdout
    assert json.loads(record.read_text())["started_utc"] != json.loads(written)["started_utc"]


def _record_for(tmp_path: Path, **changes) -> tuple[Path, object, object]:
    """A finished record of mnist-scratch / smoke-scaling seed 0 in ``tmp_path``, with
    ``changes`` applied to it."""
    profile = get_profile("smoke-scaling")
    config = resolve(get_experiment("mnist-scratch"), profile)
    record = {"config": config.to_dict(), "profile_config": profile.to_dict(), **changes}
    path = tmp_path / RECORD
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    return path, config, profile


def test_finished_record_matches_the_configuration(tmp_path):
    path, config, profile = _record_for(tmp_path)
    assert cli.finished_record(config, profile, 0, tmp_path / "results") == path
    assert cli.finished_record(config, profile, 1, tmp_path / "results") is None


@pytest.mark.parametrize(
    "changes",
    [{"status": "diverged"}, {"profile_config": {"name": "smoke-scaling", "epochs": 4}}],
)
def test_a_diverged_or_different_record_is_not_finished(tmp_path, changes):
    _, config, profile = _record_for(tmp_path, **changes)
    assert cli.finished_record(config, profile, 0, tmp_path / "results") is None


def test_a_truncated_record_is_not_finished(tmp_path):
    path, config, profile = _record_for(tmp_path)
    path.write_text(path.read_text()[:20])
    assert cli.finished_record(config, profile, 0, tmp_path / "results") is None


def test_every_committed_record_is_recognised_as_finished():
    """The check the CLI makes before training matches every finished published record (so a
    `--publish` rerun of one of them does not train again)."""
    for path in sorted((REPO / "results").rglob("seed*.json")):
        record = json.loads(path.read_text())
        if record.get("status", "finished") != "finished":
            continue
        profile = get_profile(record["profile"])
        config = resolve(get_experiment(record["experiment"], record["variant"]), profile)
        found = cli.finished_record(config, profile, record["seed"], REPO / "results")
        assert found == path, path


def test_certify_reads_and_writes_the_working_folder(tmp_path, capsys):
    assert cli.main(["certify", "--out", str(tmp_path), "--only", "mnist-scratch"]) == 0
    out = capsys.readouterr().out
    assert out == f"mnist-scratch smoke: no checkpoint in {tmp_path / 'checkpoints'}, skipped\n"


@pytest.mark.parametrize(
    "args, folder",
    [
        (["bench", "--publish"], Path("benchmarks") / "results"),
        (["bench", "--out", "w"], Path("w") / "benchmarks"),
        (["appendix", "ablations", "--publish"], Path("benchmarks") / "results"),
    ],
)
def test_every_writer_takes_out_or_publish(args, folder):
    assert folders_from_args(cli.build_parser().parse_args(args)).benchmarks == folder


def test_the_robustness_subcommand_reaches_its_handler(tmp_path, capsys):
    # its positional argument is called run, which once shadowed the subcommand's handler
    assert cli.main(["robustness", "mnist-mlp", "--profile", "smoke", "--models-dir",
                     str(tmp_path)]) == 2
    assert "no exported weights" in capsys.readouterr().err
