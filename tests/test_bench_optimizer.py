"""The Adam benchmark's mechanics and record on synthetic MNIST (no assertion on any timing)."""

import json

import pytest

import wcbook.bench as bench
from wcbook.bench_optimizer import IMPLEMENTATIONS, SCHEMA, optimizer_benchmark, optimizer_table


@pytest.fixture(scope="module")
def record(data_root):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WCBOOK_DATA", str(data_root))
        return optimizer_benchmark("mnist-cnn-softmax", device="cpu", rounds=3, steps=2)


def test_every_round_times_every_implementation(record):
    assert record["schema"] == SCHEMA
    assert record["workload"] == {"experiment": "mnist-cnn-softmax", "stage": 1, "batch": 10,
                                  "steps_per_epoch": 30, "timed_steps": 2, "rounds": 3}
    for row in record["rows"]:
        assert set(row["step_s"]) == set(IMPLEMENTATIONS)
        assert all(s > 0 for s in row["step_s"].values())
        assert row["ratio_to_loop"]["for-loop"] == 1.0


def test_the_implementations_take_the_same_step(record):
    assert 0 <= record["agree"] < 1e-6


def test_table_has_a_row_per_implementation(record):
    table = optimizer_table(record)
    assert [row["Adam"] for row in table] == list(IMPLEMENTATIONS)
    assert table[0]["ratio to for-loop"] == 1.0
    for row in table:
        assert row["epoch s"] == pytest.approx(row["step ms"] * 30 / 1e3)


def test_command_line(synthetic_env, tmp_path, capsys):
    argv = ["--optimizer", "mnist-cnn-softmax", "--quick", "--repeats", "1", "--device", "cpu",
            "--out", str(tmp_path)]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    (path,) = (tmp_path / "benchmarks").glob("*-optimizer-*.json")
    saved = json.loads(path.read_text())
    assert saved["workload"]["rounds"] == 1 and saved["workload"]["timed_steps"] == 5
    assert "fused" in out and str(path) in out


def test_a_later_stage_runs_the_dynamics(synthetic_env):
    record = optimizer_benchmark("mnist-cnn", device="cpu", rounds=1, steps=1, stage=2)
    assert record["workload"]["stage"] == 2 and record["workload"]["batch"] == 200
    assert record["workload"]["steps_per_epoch"] == 2  # 300 synthetic images
    assert 0 <= record["agree"] < 1e-6


def test_a_stage_the_experiment_lacks_is_refused(synthetic_env, capsys):
    with pytest.raises(ValueError, match="mnist-scratch has no stage 2"):
        optimizer_benchmark("mnist-scratch", device="cpu", stage=2)
    with pytest.raises(SystemExit) as stop:
        bench.main(["--optimizer", "mnist-cnn", "--stage", "3", "--device", "cpu"])
    assert stop.value.code == 2
    assert "mnist-cnn has no stage 3; its stages: [1, 2]" in capsys.readouterr().err
