"""The multi-process paths: seeds spread over torchrun's processes, and DDP on two CPU processes
(gloo), whose training must match a single process's up to float rounding."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from wcbook.parallel import Launch, device_for
from wcbook.training import train
from wcbook.experiments import get_experiment

from test_training import TINY


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=2 <args>``, one thread per process, captured."""
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
        + list(args),
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=600,
    )


def test_launch_reads_torchrun_variables(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    launch = Launch.from_env()
    assert launch == Launch(rank=1, world_size=3, local_rank=1)
    assert not launch.is_main
    assert launch.share([0, 1, 2, 3, 4]) == [1, 4]


def test_a_lone_process_takes_every_seed(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    launch = Launch.from_env()
    assert launch.is_main and launch.share([3, 4]) == [3, 4]


def test_bad_launch_variables_are_explained(monkeypatch):
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="RANK 2 is outside"):
        Launch.from_env()
    monkeypatch.setenv("RANK", "zero")
    with pytest.raises(ValueError, match="torchrun sets them"):
        Launch.from_env()


def test_device_for_cpu():
    assert device_for(Launch(), "cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert device_for(Launch(), "auto") == torch.device("cpu")
        with pytest.raises(RuntimeError, match="no CUDA device"):
            device_for(Launch(), "cuda")


def test_data_parallel_without_a_process_group_is_refused(tmp_path, synthetic_env):
    with pytest.raises(RuntimeError, match="torchrun"):
        train("mnist-scratch", TINY, 0, device="cpu", results_dir=tmp_path, data_parallel=True)


#: A learning rate small enough that float rounding is not amplified over a few steps (at the
#: experiment's lr = 0.1 early training is chaotic: see wcbook.bench.compare_training).
LR = 1e-3

_DDP_SCRIPT = """
import dataclasses, json, sys
import torch
from wcbook.experiments import Profile, get_experiment
from wcbook.parallel import Launch, close_data_parallel, device_for, init_data_parallel
from wcbook.training import train

torch.set_num_threads(1)
profile = Profile(**json.loads(sys.argv[1]))
launch = Launch.from_env()
device = device_for(launch, "cpu")
init_data_parallel(device)
config = dataclasses.replace(get_experiment("mnist-scratch"), lr=float(sys.argv[3]))
record = train(config, profile, 0, device=device,
               results_dir=sys.argv[2], checkpoint_dir=sys.argv[2], progress=False,
               data_parallel=True)
close_data_parallel()
with open(f"{sys.argv[2]}/rank{launch.rank}.txt", "w") as handle:
    handle.write(str(record["world_size"]))
"""


def test_ddp_on_two_cpu_processes_matches_one_process(tmp_path, synthetic_env):
    """torchrun starts two gloo processes; each trains on half of every batch. Per-epoch losses
    and accuracies equal those of one process on whole batches, up to float rounding."""
    script = tmp_path / "ddp.py"
    script.write_text(textwrap.dedent(_DDP_SCRIPT))
    profile = json.dumps(TINY.to_dict())
    result = _torchrun(str(script), profile, str(tmp_path / "ddp"), str(LR))
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in (0, 1):
        assert (tmp_path / "ddp" / f"rank{rank}.txt").read_text() == "2"
    ddp = json.loads((tmp_path / "ddp" / "mnist-scratch" / "tiny" / "seed0.json").read_text())

    single = train(
        dataclasses.replace(get_experiment("mnist-scratch"), lr=LR),
        TINY,
        0,
        device="cpu",
        results_dir=tmp_path / "one",
        checkpoint_dir=tmp_path / "one",
        progress=False,
    )
    assert ddp["world_size"] == 2 and single["world_size"] == 1
    assert ddp["history"]["loss"] == pytest.approx(single["history"]["loss"], rel=1e-4)
    assert ddp["history"]["train_accuracy"] == single["history"]["train_accuracy"]
    assert ddp["history"]["test_accuracy"] == single["history"]["test_accuracy"]
    assert ddp["history"]["gamma"] == pytest.approx(single["history"]["gamma"], rel=1e-4)


def test_torchrun_spreads_seeds_over_processes(tmp_path, synthetic_env):
    """Without --data-parallel each of torchrun's processes trains its own share of the seeds."""
    result = _torchrun(
        "-m",
        "wcbook",
        "run",
        "mnist-scratch",
        "--profile",
        "smoke",
        "--seeds",
        "3",
        "--device",
        "cpu",
        "--no-progress",
        "--results-dir",
        str(tmp_path / "results"),
        "--checkpoint-dir",
        str(tmp_path / "checkpoints"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "results" / "mnist-scratch" / "smoke"
    records = {p.name: json.loads(p.read_text()) for p in folder.glob("seed*.json")}
    assert sorted(records) == ["seed0.json", "seed1.json", "seed2.json"]
    assert all(r["world_size"] == 1 for r in records.values())
    assert result.stdout.count("test accuracy") == 3
