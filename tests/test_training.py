"""Tests of the classifiers, the experiment registry, the training loop, results and the CLI.

Training runs use the tiny synthetic MNIST of conftest.py, so they need no real data and take
seconds.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math

import pytest
import torch

from wcbook import __main__ as cli
from wcbook.experiments import (
    EXPERIMENTS,
    PROFILES,
    VARIANTS,
    ExperimentConfig,
    Profile,
    get_experiment,
    get_profile,
    resolve,
)
from wcbook.kinds import adam_options
from wcbook.models import MLPClassifier, WilsonCowanClassifier
from wcbook.results import format_table, load_records, mean_sem, pace_text, summarise
from wcbook.training import DivergenceError, checkpoint_path, load_trained, train
from wcbook.training.checkpoint import for_device

TINY = Profile(
    name="tiny",
    description="test scale",
    n_train=300,
    n_test=100,
    epochs=4,
    image_size=7,
    eval_every=2,
)

PROVENANCE = (
    "experiment",
    "variant",
    "profile",
    "seed",
    "metrics",
    "reference",
    "device",
    "torch_version",
    "commit",
    "dirty",
    "started_utc",
    "wall_time_s",
    "seconds_per_epoch",
    "epochs",
    "config",
    "profile_config",
    "history",
)


def _run(tmp_path, config="mnist-scratch", profile=TINY, seed=0, tag="run", progress=False):
    return train(
        config,
        profile,
        seed,
        device="cpu",
        results_dir=tmp_path / tag / "results",
        checkpoint_dir=tmp_path / tag / "checkpoints",
        progress=progress,
    )


# ------------------------------------------------------------------ classifiers
@pytest.fixture(scope="module")
def wc():
    return WilsonCowanClassifier(24, 3, seed=0, T_train=1.0, T_eval=3.0, dtype=torch.float64)


def test_a_target_state_is_classified_as_its_class(wc):
    x = wc.network.targets
    assert wc.classify(x).tolist() == [0, 1, 2]
    assert torch.allclose(wc.distances(x).diagonal(), torch.zeros(3, dtype=torch.float64))
    q = wc.scores(x)
    assert torch.allclose(q.sum(dim=1), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(q.diagonal(), torch.ones(3, dtype=torch.float64))


def test_distances_and_scores_follow_the_paper_formulas(wc):
    x = torch.rand(5, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    t = wc.network.targets
    for b in range(5):
        for k in range(3):
            d = ((x[b] - t[k]) ** 2).sum() / (x[b].norm() * t[k].norm())
            assert wc.distances(x)[b, k].item() == pytest.approx(d.item(), rel=1e-12)
    inv = 1 / wc.distances(x)
    assert torch.allclose(wc.scores(x), inv / inv.sum(dim=1, keepdim=True))
    assert torch.equal(wc.classify(x), wc.scores(x).argmax(dim=1))


def test_predict_uses_the_evaluation_horizon_and_keeps_targets(wc):
    x = wc.network.targets
    assert wc.predict(x).tolist() == [0, 1, 2]  # targets are fixed points
    images = torch.rand(6, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    expected = wc.classify(wc(images, T=3.0))
    assert torch.equal(wc.predict(images), expected)
    assert wc(images).shape == (6, 24)


def test_nonfinite_states_get_no_class(wc):
    x = wc.network.targets.clone()
    x[1, 0] = float("nan")
    assert wc.classify(x).tolist() == [0, -1, 2]


def test_forward_rejects_unflattened_images(wc):
    with pytest.raises(ValueError, match="flatten"):
        wc(torch.rand(2, 4, 6, dtype=torch.float64))


def test_loss_is_mse_to_the_label_targets(wc):
    x = torch.rand(4, 24, dtype=torch.float64)
    labels = torch.tensor([0, 2, 1, 2])
    expected = ((x - wc.network.targets[labels]) ** 2).mean()
    assert wc.loss(x, labels).item() == pytest.approx(expected.item())


def test_orthogonality_penalty_is_zero_at_init_and_positive_when_columns_align():
    model = WilsonCowanClassifier(24, 3, seed=0, dtype=torch.float64)
    assert model.penalty().item() == pytest.approx(0.0, abs=1e-12)
    with torch.no_grad():
        model.network.coupling.phi_free[:, 1] += model.network.coupling.phi_free[:, 0]
    assert model.penalty().item() > 0
    assert WilsonCowanClassifier(24, 3, ortho_factor=0.0).penalty().item() == 0.0


@pytest.mark.parametrize("kind", ["wc", "mlp"])
def test_loss_decreases_on_a_tiny_problem(kind):
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(40) % 4
    images = 0.2 * torch.rand(40, 36, generator=gen)
    for i, k in enumerate(labels):
        images[i, 9 * k : 9 * k + 9] = 1.0
    if kind == "wc":
        model, lr = WilsonCowanClassifier(36, 4, seed=0, T_train=2.5), 0.1
    else:
        model, lr = MLPClassifier(36, 4, hidden=16, seed=0), 0.01
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(15):
        loss = model.loss(model(images), labels)
        optimizer.zero_grad()
        (loss + model.penalty()).backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_mlp_interface():
    model = MLPClassifier(49, 10, hidden=32, seed=3)
    images = torch.rand(5, 49)
    assert model(images).shape == (5, 10)
    assert model.predict(images).shape == (5,)
    assert model.penalty().item() == 0.0
    assert model.invalid_parameter() is None and model.metrics() == {}
    same = MLPClassifier(49, 10, hidden=32, seed=3)
    assert torch.equal(model.hidden.weight, same.hidden.weight)


def test_invalid_parameters_are_reported():
    model = WilsonCowanClassifier(24, 3, seed=0)
    assert model.invalid_parameter() is None
    with torch.no_grad():
        model.network.gamma.fill_(-0.1)
    assert "gamma" in model.invalid_parameter()
    with torch.no_grad():
        model.network.gamma.fill_(0.3)
        model.network.coupling.eigenvalues[0] = float("inf")
    assert "eigenvalues" in model.invalid_parameter()


# ------------------------------------------------------------------ experiments
def test_registry_and_reference_values():
    assert {"mnist-scratch", "fashion-scratch", "mnist-mlp", "fashion-mlp"} <= set(EXPERIMENTS)
    mnist = get_experiment("mnist-scratch")
    assert (mnist.T_train, mnist.T_eval, mnist.epochs, mnist.lr, mnist.batch_size) == (
        2.5,
        40.0,
        350,
        0.1,
        200,
    )
    assert mnist.reference["test_accuracy"] == 0.9813 and mnist.reference["gamma"] == 0.839
    assert get_experiment("fashion-mlp").reference == {
        "test_accuracy": 0.8955,
        "test_accuracy_sem": 0.0030,
    }
    assert mnist.n_nodes == 784


def test_variants_apply_their_overrides():
    assert get_experiment("mnist-scratch", "text-T").T_train == 3.5
    assert get_experiment("mnist-scratch", "text-epochs").epochs == 525
    text_eval = get_experiment("fashion-scratch", "text-eval")
    assert text_eval.T_eval is None and text_eval.eval_horizon == 3.5
    assert get_experiment("mnist-scratch", "text-coupling").params.coupling_scale == "linear"
    text = get_experiment("mnist-scratch", "text")
    assert (text.T_train, text.epochs, text.eval_horizon, text.variant) == (3.5, 525, 3.5, "text")
    assert text.name == "mnist-scratch+text"
    with pytest.raises(ValueError, match="does not apply"):
        get_experiment("fashion-scratch", "text-T")
    with pytest.raises(ValueError, match="known variants"):
        get_experiment("mnist-scratch", "nope")
    assert all(v.overrides for v in VARIANTS.values())


def test_unknown_ids_raise_with_the_known_ones():
    with pytest.raises(ValueError, match="mnist-scratch, fashion-scratch, mnist-mlp, fashion-mlp"):
        get_experiment("cifar-scratch")
    with pytest.raises(ValueError, match="smoke, paper"):
        get_profile("huge")


def test_resolve_and_dict_round_trip():
    smoke = resolve(get_experiment("mnist-scratch", "text-coupling"), "smoke")
    assert smoke.epochs == PROFILES["smoke"].epochs and smoke.n_nodes == 14 * 14
    assert ExperimentConfig.from_dict(json.loads(json.dumps(smoke.to_dict()))) == smoke
    assert resolve(get_experiment("fashion-mlp"), "paper") == get_experiment("fashion-mlp")


# ------------------------------------------------------------------ training
def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path, synthetic_env):
    straight = _run(tmp_path, tag="straight")
    two = dataclasses.replace(TINY, epochs=2)
    _run(tmp_path, profile=two, tag="resumed")  # "interrupted" after epoch 2
    resumed = _run(tmp_path, tag="resumed")  # continues from the checkpoint to epoch 4
    assert resumed["history"]["loss"] == straight["history"]["loss"]
    assert resumed["metrics"] == straight["metrics"]
    a = torch.load(
        checkpoint_path(
            get_experiment("mnist-scratch"), TINY, 0, tmp_path / "straight" / "checkpoints"
        )
    )
    b = torch.load(
        checkpoint_path(
            get_experiment("mnist-scratch"), TINY, 0, tmp_path / "resumed" / "checkpoints"
        )
    )
    assert a["epoch"] == b["epoch"] == 4
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_a_run_begun_on_a_gpu_resumes_on_the_cpu_and_records_both_sessions(
    tmp_path, synthetic_env
):
    _run(tmp_path, profile=dataclasses.replace(TINY, epochs=2))
    config = get_experiment("mnist-scratch")
    path = checkpoint_path(config, TINY, 0, tmp_path / "run" / "checkpoints")
    state = torch.load(path, weights_only=True)
    # What a GPU session leaves: a capturable Adam and a CUDA environment.
    for group in state["optimizer"]["param_groups"]:
        group["capturable"] = True
    gpu = {"device": "A GPU", "device_type": "cuda"}
    state["environment"] = {**state["environment"], **gpu}
    state["sessions"] = [{**entry, **gpu} for entry in state["sessions"]]
    torch.save(state, path)
    record = _run(tmp_path)
    first, second = record["sessions"]
    assert (first["device"], first["first_epoch"], first["last_epoch"]) == ("A GPU", 1, 2)
    assert (second["device_type"], second["first_epoch"], second["last_epoch"]) == ("cpu", 3, 4)
    assert record["device"] == f"A GPU then {second['device']}"
    assert record["seconds_per_epoch"] is None and second["seconds_per_epoch"] > 0
    assert "on A GPU (epochs 1-2)" in pace_text(record) and "(epochs 3-4)" in pace_text(record)
    assert pace_text({"seconds_per_epoch": 1.5, "device": "cpu"}) == "1.50 s/epoch on cpu"
    shared = {"device": "A GPU", "seconds_per_epoch": 3.0, "first_epoch": 1, "last_epoch": 2}
    resumed = {"seconds_per_epoch": None, "ensemble": {"size": 4}, "sessions": [shared]}
    assert pace_text(resumed) == "0.75 s/epoch on A GPU (epochs 1-2)"
    assert len(record["history"]["loss"]) == 4


def test_an_optimizer_saved_looping_over_parameters_resumes_fused_on_the_cpu():
    weight = torch.nn.Parameter(torch.linspace(-1.0, 1.0, 5))
    looped = torch.optim.Adam([weight], lr=0.1)  # how a CPU run stepped before fused Adam
    weight.grad = torch.ones(5)
    looped.step()
    saved = looped.state_dict()
    fused = torch.optim.Adam([weight], lr=0.1, **adam_options(torch.device("cpu")))
    fused.load_state_dict(for_device(copy.deepcopy(saved), fused))
    assert fused.param_groups[0]["fused"] is True
    twin = torch.nn.Parameter(weight.detach().clone())
    reference = torch.optim.Adam([twin], lr=0.1)
    reference.load_state_dict(copy.deepcopy(saved))
    weight.grad, twin.grad = torch.full((5,), -2.0), torch.full((5,), -2.0)
    fused.step()
    reference.step()
    assert int(fused.state[weight]["step"]) == 2
    torch.testing.assert_close(weight, twin, rtol=1e-6, atol=1e-7)


def test_finished_run_is_not_retrained_and_fewer_epochs_is_refused(tmp_path, synthetic_env):
    first = _run(tmp_path, config="mnist-mlp")
    reworded = dataclasses.replace(TINY, description="reworded", eval_every=1)
    again = _run(tmp_path, config="mnist-mlp", profile=reworded)
    assert again["history"] == first["history"]
    assert (again["wall_time_s"], again["started_utc"]) == (
        first["wall_time_s"],
        first["started_utc"],
    )
    with pytest.raises(ValueError, match="more than"):
        _run(tmp_path, config="mnist-mlp", profile=dataclasses.replace(TINY, epochs=1))
    other = dataclasses.replace(TINY, n_train=200)
    with pytest.raises(ValueError, match="different configuration"):
        _run(tmp_path, config="mnist-mlp", profile=other)


def test_record_has_provenance_and_is_valid_json(tmp_path, synthetic_env):
    record = _run(tmp_path, progress=True)
    path = tmp_path / "run" / "results" / "mnist-scratch" / "tiny" / "seed0.json"
    on_disk = json.loads(path.read_text())
    assert on_disk == json.loads(json.dumps(record))
    for field in PROVENANCE:
        assert field in on_disk, field
    assert on_disk["experiment"] == "mnist-scratch" and on_disk["variant"] is None
    assert 0 <= on_disk["metrics"]["test_accuracy"] <= 1 and on_disk["metrics"]["gamma"] > 0
    assert on_disk["config"]["params"]["gamma"] == 0.25 and on_disk["config"]["image_size"] == 7
    assert on_disk["profile_config"]["n_train"] == 300
    assert len(on_disk["history"]["loss"]) == 4 and on_disk["history"]["test_epochs"] == [2, 4]
    assert on_disk["commit"] == "unknown" or len(on_disk["commit"]) == 40
    assert math.isfinite(on_disk["wall_time_s"]) and on_disk["seconds_per_epoch"] > 0
    (session,) = on_disk["sessions"]
    assert (session["first_epoch"], session["last_epoch"]) == (1, 4)
    assert session["device"] == on_disk["device"]
    assert not list(path.parent.glob("*.tmp"))


def test_trained_model_can_be_reloaded(tmp_path, synthetic_env):
    record = _run(tmp_path, config="mnist-mlp", profile=dataclasses.replace(TINY, epochs=8), seed=1)
    model = load_trained("mnist-mlp", "tiny", 1, checkpoint_dir=tmp_path / "run" / "checkpoints")
    assert isinstance(model, MLPClassifier) and not model.training
    # the synthetic classes are trivially separable: the MLP learns them
    assert record["metrics"]["test_accuracy"] > 0.5
    with pytest.raises(FileNotFoundError, match="wcbook run"):
        load_trained("mnist-mlp", "tiny", 7, checkpoint_dir=tmp_path / "run" / "checkpoints")


def test_divergence_raises_a_clear_error(tmp_path, synthetic_env, monkeypatch):
    monkeypatch.setattr(WilsonCowanClassifier, "penalty", lambda self: self.gamma * float("nan"))
    with pytest.raises(DivergenceError, match="epoch 1, step 2.*learning rate") as info:
        _run(tmp_path)
    assert (info.value.epoch, info.value.step) == (1, 2)
    record = json.loads(
        (tmp_path / "run" / "results" / "mnist-scratch" / "tiny" / "seed0.json").read_text()
    )
    assert record["status"] == "diverged" and record["metrics"] == {}
    assert record["diverged_at"] == {"epoch": 1, "step": 2}
    assert record["history"]["loss"] == [] and str(info.value) == record["message"]


def test_gamma_leaving_its_range_raises(tmp_path, synthetic_env, monkeypatch):
    monkeypatch.setattr(WilsonCowanClassifier, "penalty", lambda self: 1e3 * self.gamma)
    config = dataclasses.replace(get_experiment("mnist-scratch"), lr=1.0)  # gamma: 0.25 -> -0.75
    with pytest.raises(DivergenceError, match="gamma = .* left") as info:
        _run(tmp_path, config=config)
    assert info.value.epoch == 1 and info.value.step is None


def test_a_gradient_too_large_to_square_is_a_divergence(tmp_path, synthetic_env, monkeypatch):
    # d(penalty)/d(gamma) = 1e25: finite, but its square overflows Adam's second moment, after
    # which gamma never moves again while the loss stays finite
    monkeypatch.setattr(WilsonCowanClassifier, "penalty", lambda self: 1e25 * self.gamma)
    with pytest.raises(DivergenceError, match="second moment of network.gamma overflowed") as info:
        _run(tmp_path)
    assert info.value.epoch == 1 and info.value.step is None


def test_parameters_that_stop_moving_are_a_divergence(tmp_path, synthetic_env, monkeypatch):
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, closure=None: None)
    with pytest.raises(DivergenceError, match="no trained parameter changed.*stuck") as info:
        _run(tmp_path)
    assert info.value.epoch == 1


# ------------------------------------------------------------------ results
def _record(experiment, seed, accuracy, gamma=None, variant=None, profile="paper"):
    metrics = {"test_accuracy": accuracy}
    if gamma is not None:
        metrics["gamma"] = gamma
    return {
        "experiment": experiment,
        "variant": variant,
        "profile": profile,
        "seed": seed,
        "metrics": metrics,
        "reference": EXPERIMENTS[experiment].reference,
    }


def test_mean_and_sem():
    mean, sem = mean_sem([0.97, 0.98, 0.99])
    assert mean == pytest.approx(0.98)
    assert sem == pytest.approx(0.01 / math.sqrt(3))
    assert mean_sem([0.5]) == (0.5, None)


def test_summarise_groups_and_compares_with_the_paper(tmp_path):
    records = [
        _record("mnist-scratch", s, a, g) for s, (a, g) in enumerate([(0.97, 0.8), (0.99, 0.9)])
    ]
    records += [
        _record("mnist-scratch", 0, 0.5, 1.0, variant="text-T"),
        _record("mnist-mlp", 0, 0.98),
    ]
    rows = summarise(records)
    keys = [(r.experiment, r.variant, r.metric) for r in rows]
    assert keys == [
        ("mnist-mlp", None, "test_accuracy"),
        ("mnist-scratch", None, "test_accuracy"),
        ("mnist-scratch", None, "gamma"),
        ("mnist-scratch", "text-T", "test_accuracy"),
        ("mnist-scratch", "text-T", "gamma"),
    ]
    acc = rows[1]
    assert (acc.n, acc.mean, acc.paper, acc.paper_sem) == (2, pytest.approx(0.98), 0.9813, 0.0003)
    assert acc.sem == pytest.approx(0.01)
    assert acc.gap == pytest.approx(0.98 - 0.9813)
    gamma = rows[2]
    assert gamma.mean == pytest.approx(0.85) and gamma.paper == 0.839
    table = format_table(rows)
    assert "| mnist-scratch" in table and "0.9813" in table and "-0.0013" in table

    for i, record in enumerate(records):
        path = tmp_path / f"r{i}" / "seed.json"
        path.parent.mkdir()
        path.write_text(json.dumps(record))
    assert len(load_records(tmp_path)) == 4
    assert load_records(tmp_path / "missing") == []
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="bad.json"):
        load_records(tmp_path)


# ------------------------------------------------------------------ command line
def test_cli_list(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in [*EXPERIMENTS, *VARIANTS, *PROFILES]:
        assert name in out


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "nope"],
        ["run", "mnist-scratch", "--profile", "huge"],
        ["run", "fashion-mlp", "--variant", "text-T"],
    ],
)
def test_cli_rejects_unknown_names_with_exit_code_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "known" in err or "does not apply" in err


def test_cli_run_and_summary(tmp_path, synthetic_env, monkeypatch, capsys):
    monkeypatch.setitem(PROFILES, "tiny", dataclasses.replace(TINY, epochs=2))
    args = ["--results-dir", str(tmp_path / "results")]
    code = cli.main(
        [
            "run",
            "mnist-scratch",
            "--profile",
            "tiny",
            "--seeds",
            "2",
            "--seed-start",
            "3",
            "--device",
            "cpu",
            "--checkpoint-dir",
            str(tmp_path / "ckpt"),
            "--no-progress",
            *args,
        ]
    )
    assert code == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 2 and "seed 3: test accuracy" in out[0] and "gamma" in out[0]
    assert (tmp_path / "results" / "mnist-scratch" / "tiny" / "seed4.json").exists()
    assert cli.main(["summary", *args]) == 0
    table = capsys.readouterr().out
    assert "| mnist-scratch" in table and "| 2 " in table


def test_declared_commit_wins_over_git(monkeypatch):
    from wcbook.training import COMMIT_ENV, git_commit

    monkeypatch.setenv(COMMIT_ENV, "abc123+dirty")
    assert git_commit() == ("abc123", True)
    monkeypatch.setenv(COMMIT_ENV, "abc123")
    assert git_commit() == ("abc123", False)
    monkeypatch.delenv(COMMIT_ENV)
    commit, _ = git_commit()
    assert commit != "abc123"


def test_cli_records_a_divergence(tmp_path, synthetic_env, monkeypatch, capsys):
    monkeypatch.setitem(PROFILES, "tiny", TINY)
    monkeypatch.setattr(WilsonCowanClassifier, "penalty", lambda self: self.gamma * float("nan"))
    results = tmp_path / "results"
    code = cli.main(["run", "mnist-scratch", "--profile", "tiny", "--device", "cpu", "--no-progress",
                     "--results-dir", str(results), "--checkpoint-dir", str(tmp_path / "ckpt")])
    assert code == 1
    err = capsys.readouterr().err
    assert "diverged at epoch 1, step 2" in err and "recorded in" in err
    record = json.loads((results / "mnist-scratch" / "tiny" / "seed0.json").read_text())
    assert record["status"] == "diverged" and record["diverged_at"] == {"epoch": 1, "step": 2}
    assert record["metrics"] == {} and record["epochs"] == TINY.epochs and record["commit"]
