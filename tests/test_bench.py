"""The benchmark's mechanics and record on a tiny workload (no assertion on any timing)."""

import json

import pytest
import torch

import wcbook.bench as bench
from wcbook.bench import (
    BenchSettings,
    ReferenceWilsonCowan,
    format_table,
    run_benchmark,
    write_record,
)
from wcbook.models import WilsonCowanNetwork

TINY = BenchSettings(
    n_nodes=(64,),
    steps=(5,),
    scaling_nodes=(32, 64),
    scaling_steps=5,
    batch=16,
    repeats=2,
    warmup=1,
    bf16=True,
    compiled=False,
)
TRAINING = ("reference", "autograd", "engine", "engine-bf16")


@pytest.fixture(scope="module")
def record():
    return run_benchmark(TINY, device="cpu", log=None)


def test_record_structure(record):
    prov = record["provenance"]
    keys = ("device", "device_name", "torch", "commit", "dirty", "started_utc", "wall_s", "threads")
    assert set(keys) <= set(prov)
    assert prov["device"] == "cpu" and prov["torch"] == torch.__version__
    assert prov["wall_s"] > 0 and prov["threads"] >= 1
    assert record["settings"] == TINY.to_dict()
    assert record["nominal_peak_flops"] is None and "unknown" in record["nominal_peak_source"]
    assert record["max_rss_bytes"] > 0
    assert [(r["n_nodes"], r["steps"]) for r in record["main"]] == [(64, 5)]
    assert [(r["n_nodes"], r["steps"]) for r in record["scaling"]] == [(32, 5), (64, 5)]


def test_every_implementation_is_timed(record):
    for run in record["main"] + record["scaling"]:
        impls = run["implementations"]
        expected = {"reference", "autograd", "engine", "gemm-floor"}
        if run in record["main"]:
            expected.add("engine-bf16")
        assert set(impls) == expected
        assert run["matmul_flops_per_step"] == 3 * 5 * 2 * 16 * run["n_nodes"] ** 2
        assert run["steps_per_epoch"] == 3750
        for name, row in impls.items():
            assert len(row["times_s"]) == TINY.repeats
            assert row["median_s"] > 0 and row["min_s"] <= row["median_s"]
            assert row["epoch_s"] == pytest.approx(row["median_s"] * 3750)
            assert row["matmul_gflops"] > 0 and row["fraction_of_peak"] is None
            assert (row["memory_bytes"] is None) == (name == "gemm-floor")
        assert impls["reference"]["speedup_vs_reference"] == 1.0
    deviation = record["main"][0]["bf16_deviation"]
    # x lies in [0, 1]: within two bfloat16 rounding steps (measured 2.8e-3); y does not see the
    # coupling's products (w_IE = 0), so bfloat16 leaves it exactly unchanged
    assert 0 < deviation["max_abs_dx"] < 2**-7 and deviation["max_abs_dy"] == 0.0
    assert deviation["fp32_vs_fp64_max_abs_dx"] < 1e-5


def test_engine_keeps_less_for_backward_than_reference(record):
    impls = record["main"][0]["implementations"]
    assert impls["engine"]["memory_bytes"] < impls["reference"]["memory_bytes"]


def test_record_written_atomically_and_readable(record, tmp_path):
    path = write_record(record, tmp_path / "results")
    assert path.parent == tmp_path / "results"
    assert path.name.startswith("cpu-") and path.name.endswith("Z.json")
    assert json.loads(path.read_text()) == json.loads(json.dumps(record))
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_table_names_every_row(record):
    table = format_table(record)
    for name in TRAINING + ("gemm-floor",):
        assert name in table
    assert "bf16 vs fp32" in table and "peak: unknown" in table


def test_reference_module_matches_the_network():
    net = WilsonCowanNetwork(30, 3, seed=1, dtype=torch.float64)
    c = net.coupling
    ref = ReferenceWilsonCowan(
        c.phi_fixed, c.phi_free, c.eigenvalues, float(net.gamma.detach()), net.Gamma, net.params
    )
    assert torch.allclose(ref.coupling_matrix(), c.matrix(), atol=1e-10)
    images = torch.rand(4, 30, dtype=torch.float64)
    x_net, _ = net.integrate(images, T=1.0, dt=0.1)
    assert torch.allclose(ref(images, 10, 0.1), x_net, atol=1e-12)


def test_command_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(bench, "QUICK", TINY)
    assert bench.main(["--quick", "--no-bf16", "--repeats", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "vs ref" in out
    (path,) = (tmp_path / "benchmarks").glob("*.json")
    saved = json.loads(path.read_text())
    assert saved["settings"]["repeats"] == 1 and saved["settings"]["bf16"] is False
    assert "engine-bf16" not in saved["main"][0]["implementations"]
    assert str(path) in out
