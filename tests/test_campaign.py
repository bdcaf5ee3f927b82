"""The campaign: the plan from made-up records, a pack run end to end and its archive imported,
and archives that are refused, each with a one-line reason and nothing written."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from wcbook import campaign
from wcbook.campaign import (Item, Need, import_archive, plan, run_lanes, run_pack,
                             write_archive)
from wcbook.cli import main
from wcbook.experiments import Profile, get_experiment
from wcbook.training import git_commit
from wcbook.weights import load_weights

TINY = Profile(name="tiny", description="test", n_train=300, n_test=100, epochs=2, image_size=7,
               eval_every=1)


def _record(experiment, seed, seconds=2.0, device_type="cuda", profile="paper", **extra):
    config = get_experiment(experiment).to_dict()
    return {"experiment": experiment, "variant": None, "profile": profile, "seed": seed,
            "metrics": {"test_accuracy": 0.9}, "config": config, "commit": "abc", "history": {},
            "epochs": config["epochs"], "n_train": 60000, "device_type": device_type,
            "seconds_per_epoch": seconds, **extra}


def test_the_plan_lists_what_is_missing_in_order_of_value_and_packs_it(tmp_path):
    records = [_record("mnist-scratch", 0, 1.0), _record("mnist-scratch", 1, 1.0),
               _record("mnist-mlp", 0, 0.1), _record("mnist-mlp", 1, commit="unknown")]
    for r in records:
        path = tmp_path / r["experiment"] / "paper" / f"seed{r['seed']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**r, "commit": r.get("commit", "abc")}))
    p = plan("paper", budget_s=540, results_dir=tmp_path, only=["mnist"], bench_dir=tmp_path)
    assert p.existing == ["mnist-scratch seed 0", "mnist-scratch seed 1", "mnist-mlp seed 0"]
    first = p.missing[:5]
    assert [(i.need.run, i.seeds) for i in first] == [
        ("mnist-scratch", [2]), ("mnist-scratch", [3]), ("mnist-scratch", [4]),
        ("mnist-mlp", [1]), ("mnist-mlp", [2]),
    ]
    assert first[0].seconds == pytest.approx(350 * 1.0)
    assert first[3].seconds == pytest.approx(get_experiment("mnist-mlp").epochs * 0.1)
    # 350 s per scratch seed: one per pack; the MLP's four seeds stack into the first pack
    pack = p.packs[0]
    assert [(i.need.run, i.seeds) for i in pack][:2] == [("mnist-scratch", [2]),
                                                         ("mnist-mlp", [1, 2, 3, 4])]
    assert all(sum(i.seconds for i in k) <= 540 for k in p.packs)
    assert {i.need.run for i in p.oversized} >= {"scaling-mnist-1225"}  # over 9 min alone
    assert all(i.dataset == "mnist" for i in p.missing)


def test_a_pack_runs_end_to_end_and_its_archive_imports(tmp_path, synthetic_env):
    root = tmp_path / "machine"
    pack = [Item(Need("mnist-scratch", 1, export=True), [0, 1], None, "mnist")]
    written = run_pack(pack, TINY, "cpu", root=root)
    names = sorted(str(p.relative_to(root)) for p in written)
    assert names == ["models/mnist-scratch/tiny/seed0.json",
                     "models/mnist-scratch/tiny/seed0.safetensors",
                     "results/mnist-scratch/tiny/seed0.json",
                     "results/mnist-scratch/tiny/seed1.json"]
    archive = write_archive(written, tmp_path / "pack.tgz", root=root)
    home = tmp_path / "home"
    report = import_archive(archive, root=home)
    assert sorted(report["added"]) == names and report["replaced"] == []
    assert import_archive(archive, root=home)["unchanged"] == report["added"]
    record = json.loads((home / names[2]).read_text())
    assert record["commit"] == git_commit()[0] and record["ensemble"]["seeds"] == [0, 1]
    model, _ = load_weights("mnist-scratch", "tiny", 0, home / "models")
    assert model.metrics()["gamma"] == pytest.approx(record["metrics"]["gamma"], rel=1e-5)


def _archive(tmp_path, files: dict[str, bytes]):
    path = tmp_path / "bad.tgz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


GOOD = _record("mnist-mlp", 3, commit=None)


@pytest.mark.parametrize(
    "files, reason",
    [
        ({"results/mnist-mlp/paper/seed3.json": b"{not json"}, "not JSON"),
        ({"results/mnist-mlp/paper/seed3.json":
          json.dumps({**GOOD, "commit": "0" * 40}).encode()}, "unknown to this repository"),
        ({"results/mnist-mlp/paper/seed3.json":
          json.dumps({"experiment": "mnist-mlp", "profile": "paper"}).encode()},
         "not a training record"),
        ({"../../etc/passwd": b"x"}, "expected layout"),
    ],
    ids=["corrupt record", "unknown commit", "other schema", "path outside"],
)
def test_bad_archives_are_refused_and_nothing_is_written(tmp_path, files, reason):
    home = tmp_path / "home"
    with pytest.raises(ValueError, match=reason) as info:
        import_archive(_archive(tmp_path, files), root=home)
    assert "\n" not in str(info.value) and not home.exists()


def test_a_truncated_archive_and_a_worse_record_are_refused(tmp_path):
    broken = tmp_path / "broken.tgz"
    broken.write_bytes(b"\x1f\x8b\x08 truncated")
    with pytest.raises(ValueError, match="not a readable archive"):
        import_archive(broken, root=tmp_path)
    commit = git_commit()[0]
    home = tmp_path / "home"
    target = home / "results/mnist-mlp/paper/seed3.json"
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps({**GOOD, "commit": commit, "dirty": False}))
    worse = json.dumps({**GOOD, "commit": commit, "dirty": True}).encode()
    with pytest.raises(ValueError, match="better provenance"):
        import_archive(_archive(tmp_path, {"results/mnist-mlp/paper/seed3.json": worse}),
                       root=home)
    assert json.loads(target.read_text())["dirty"] is False


def test_the_required_set_covers_the_papers_tables():
    runs = {n.run for n in campaign.REQUIRED}
    assert {"mnist-scratch", "fashion-mlp", "cifar10-vgg16", "imdb-wc+batch-32-bf16",
            "scaling-fashion-1225", "ablation-learned-planted"} <= runs
    assert len([n for n in campaign.REQUIRED if n.experiment.startswith("scaling-")]) == 14
    assert len([n for n in campaign.REQUIRED if n.variant and n.rank == 4]) >= 3


def test_estimates_come_from_records_whose_epochs_cost_alike(tmp_path):
    small = get_experiment("scaling-mnist-196").to_dict()
    frozen = get_experiment("imdb-encoder", "frozen").to_dict()
    records = [_record("scaling-mnist-196", 0, 1.0, config=small),
               _record("imdb-encoder", 0, 0.5, variant="frozen", config=frozen)]
    for r in records:
        path = tmp_path / f"{r['experiment']}+{r['variant'] or ''}" / "paper" / "seed0.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r))
    seconds = {i.need.run: i.seconds
               for i in plan("paper", results_dir=tmp_path, bench_dir=tmp_path).missing}
    # N = 196 -> 784 costs (784 / 196)^2 = 16 times as much per epoch
    epochs = get_experiment("scaling-mnist-784").epochs
    assert seconds["scaling-mnist-784"] == pytest.approx(16 * 1.0 * epochs)
    # a frozen encoder's pace says nothing about fine-tuning one
    assert seconds["imdb-encoder+batch-32-bf16"] is None


def test_a_staged_run_is_priced_by_records_with_its_mix_of_stages(tmp_path):
    # A smoke run's mean over 3 + 3 epochs undersells 35 batch-10 epochs before 70 at batch 200;
    # a twin that took its stage 1 from its sibling timed stage 2 alone.
    def smoke(experiment, seconds):  # the smoke-encoded profile: 3 + 3 epochs of 2000 images
        config = get_experiment(experiment)
        options = {**config.encoder_options, "stage1_epochs": 3}
        return _record(experiment, 0, seconds, "cpu", "smoke-encoded", n_train=2000,
                       config=config.to_dict() | {"epochs": 3, "encoder_options": options})

    twin = "fashion-cnn-softmax"
    records = [
        smoke(twin, 2.0),
        _record(twin, 0, 1.0, stage1_from="fashion-cnn"),
        _record("fashion-cnn", 0, 3.0),
        _record("mnist-cnn-softmax", 0, 100.0, "cpu"),
        smoke("mnist-cnn", 5.0),
    ]
    for r in records:
        path = tmp_path / r["experiment"] / r["profile"] / f"seed{r['seed']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r))
    epochs = get_experiment(twin).encoder_option("stage1_epochs") + get_experiment(twin).epochs

    def seconds(run, device_type):
        p = plan("paper", device_type=device_type, results_dir=tmp_path, only=[run],
                 bench_dir=tmp_path)
        return p.missing[0].seconds

    # on a GPU: the sibling's full run (another readout), not the twin's stage 2 alone
    assert seconds(twin, "cuda") == pytest.approx(3.0 * epochs)
    # on a CPU: the paper record of the other IDX set, not its own smoke record
    assert seconds(twin, "cpu") == pytest.approx(100.0 * epochs)
    assert seconds("mnist-cnn", "cuda") == pytest.approx(3.0 * epochs)
    # but a Wilson-Cowan readout is priced by its own smoke record before a softmax one, which
    # lacks the dynamics' cost (2000 of 60000 images: 30 times the smoke pace)
    assert seconds("mnist-cnn", "cpu") == pytest.approx(30 * 5.0 * epochs)


def test_an_ensemble_is_priced_by_the_devices_ensemble_benchmark(tmp_path):
    records = [_record("mnist-scratch", 0, 0.25)]
    path = tmp_path / "results" / "mnist-scratch" / "paper" / "seed0.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(records[0]))
    rows = [{"n_nodes": 784, "members": m, "mode": "ensemble", "model_epoch_s": s}
            for m, s in ((1, 1.0), (2, 0.6), (4, 0.5))]
    bench = {"rows": rows, "provenance": {"device": "cuda", "started_utc": "2026-12-01"}}
    (tmp_path / "cuda-h200-ensemble-20261201T000000Z.json").write_text(json.dumps(bench))
    assert campaign.ensemble_ratios("cuda", tmp_path) == {784: {1: 1.0, 2: 0.6, 4: 0.5}}
    assert campaign.ensemble_ratios("cpu", tmp_path) == {}
    p = plan("paper", budget_s=540, results_dir=tmp_path / "results", only=["mnist"],
             bench_dir=tmp_path)
    first = p.packs[0][0]
    # one seed alone costs 350 epochs x 0.25 s; four in one ensemble half as much each
    assert (first.need.run, first.seeds) == ("mnist-scratch", [1, 2, 3, 4])
    assert first.seconds == pytest.approx(4 * 350 * 0.25 * 0.5)


def test_a_plan_can_be_limited_to_named_runs(tmp_path):
    p = plan("paper", results_dir=tmp_path, only=["scaling-fashion-289"], bench_dir=tmp_path)
    assert {i.need.run for i in p.missing} == {"scaling-fashion-289"}
    assert [i.seeds for i in p.missing] == [[0], [1], [2], [3], [4]]


def test_paces_timed_on_the_planning_hardware_come_first(tmp_path):
    for seed, (name, seconds) in enumerate((("Fast CPU", 10.0), ("Slow CPU", 15.0))):
        record = _record("scaling-mnist-289", seed, seconds, device_type="cpu",
                         config=get_experiment("scaling-mnist-289").to_dict(), device=name)
        path = tmp_path / "scaling-mnist-289" / "paper" / f"seed{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
    epochs = get_experiment("scaling-mnist-289").epochs

    def seconds(device):
        p = plan("paper", device_type="cpu", results_dir=tmp_path, only=["scaling-mnist-289"],
                 bench_dir=tmp_path, device=device)
        return p.missing[0].seconds

    assert seconds(None) == pytest.approx(10.0 * epochs)
    assert seconds("Slow CPU") == pytest.approx(15.0 * epochs)
    assert seconds("Another CPU") == pytest.approx(10.0 * epochs)


def test_side_by_side_runs_are_priced_by_the_processes_benchmark(tmp_path):
    config = get_experiment("scaling-mnist-196").to_dict()
    record = _record("scaling-mnist-196", 0, 1.0, device_type="cpu", config=config)
    path = tmp_path / "results" / "scaling-mnist-196" / "paper" / "seed0.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    rows = [{"n_nodes": n, "members": m, "mode": "processes", "step_s": s}
            for n, m, s in ((196, 1, 0.1), (196, 2, 0.15), (784, 1, 0.2), (784, 2, 0.35))]
    (tmp_path / "bench").mkdir()
    for name, day, scale in (("This CPU", "01", 1.0), ("Other CPU", "02", 4.0)):
        bench = {"rows": [{**r, "step_s": r["step_s"] * (scale if r["members"] > 1 else 1)}
                          for r in rows],
                 "provenance": {"device": "cpu", "device_name": name,
                                "started_utc": f"2026-12-{day}"}}
        path = tmp_path / "bench" / f"cpu-{name[0]}-ensemble-202612{day}T000000Z.json"
        path.write_text(json.dumps(bench))
    # the newest record of any CPU, unless the planning hardware has one of its own
    assert campaign.side_by_side_slowdowns("cpu", 2, tmp_path / "bench") == pytest.approx(
        {196: 6.0, 784: 7.0})
    slowdowns = campaign.side_by_side_slowdowns("cpu", 2, tmp_path / "bench", "This CPU")
    assert slowdowns == pytest.approx({196: 1.5, 784: 1.75})
    assert campaign._lane_factor(None, slowdowns, 2) == pytest.approx(1.75)
    # from one record, four workers priced by the nearest measured count (two processes)
    assert campaign.processes_slowdowns({"rows": rows}, 4) == pytest.approx({196: 1.5, 784: 1.75})

    def seconds(workers, bench_dir):
        p = plan("paper", device_type="cpu", results_dir=tmp_path / "results", workers=workers,
                 only=["scaling-mnist-196"], bench_dir=bench_dir, device="This CPU")
        return p.missing[0].seconds

    alone = seconds(1, tmp_path / "bench")
    assert alone == pytest.approx(config["epochs"] * 1.0)
    assert seconds(2, tmp_path / "bench") == pytest.approx(1.5 * alone)
    assert seconds(2, tmp_path) == pytest.approx(2 * alone)  # nothing measured: no gain assumed


def test_lanes_run_side_by_side_and_a_failed_run_spares_the_others(tmp_path, synthetic_env):
    packs = [[Item(Need("mnist-scratch", 1), [0], None, "mnist")],
             [Item(Need("no-such-run", 1), [0], None, "mnist"),
              Item(Need("mnist-mlp", 1), [0], None, "mnist")]]
    written, failed = run_lanes(packs, TINY, "cpu", threads=1, root=tmp_path)
    assert sorted(str(p.relative_to(tmp_path)) for p in written) == [
        "results/mnist-mlp/tiny/seed0.json", "results/mnist-scratch/tiny/seed0.json"]
    assert len(failed) == 1 and failed[0].startswith("no-such-run seeds [0]: ")
    assert "\n" not in failed[0]
    assert all(json.loads(p.read_text())["torch_threads"] == 1 for p in written)


LANE_SCRIPT = """
import multiprocessing, os, time
from concurrent.futures import ProcessPoolExecutor
from wcbook.campaign import _exit_with_parent

if __name__ == "__main__":
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_exit_with_parent, initargs=(0.1,))
    print(pool.submit(os.getpid).result(), flush=True)
    pool.submit(time.sleep, 120)
    time.sleep(120)
"""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_lane_ends_when_its_campaign_is_killed(tmp_path):
    script = tmp_path / "lanes.py"
    script.write_text(LANE_SCRIPT)
    with subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                          text=True) as parent:
        lane = int(parent.stdout.readline())
        assert _alive(lane)
        parent.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 20
    while _alive(lane) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(lane)


def test_workers_are_refused_on_a_gpu(capsys):
    assert main(["campaign", "--workers", "2", "--dry-run"]) == 2
    assert "--device cpu" in capsys.readouterr().out
