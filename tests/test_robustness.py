"""The robustness evaluation (wcbook.robustness): perturbations, attacks, exported weights and
records, on tiny models trained in the test and on the synthetic MNIST of conftest.py."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from wcbook import robustness as rb
from wcbook.encoded import EncodedSoftmax, EncodedWilsonCowan
from wcbook.encoders import DenseHead
from wcbook.folders import HOME_ENV, published
from wcbook.models import MLPClassifier, WilsonCowanClassifier
from wcbook.weights import MAX_WEIGHTS_BYTES, model_bytes

SIDE = 4


def _two_class_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """4 x 4 images: class 0 bright on the left half, class 1 on the right, plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    images = 0.2 * torch.rand(n, SIDE, SIDE, generator=g)
    for i, k in enumerate(labels.tolist()):
        images[i, :, 2 * k : 2 * k + 2] += 0.6
    return images.clamp(0, 1).reshape(n, -1), labels


def _fit(model: torch.nn.Module, lr: float, steps: int, loss=None) -> torch.nn.Module:
    images, labels = _two_class_data(200, seed=1)
    loss = model.loss if loss is None else loss
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        loss(model(images), labels).backward()
        optimizer.step()
    return model.eval()


def _tiny_encoder() -> torch.nn.Module:
    """One 3 x 3 convolution on 1 x 4 x 4 images, flattened to 64 features."""
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Flatten())


def _tiny_cnn() -> EncodedSoftmax:
    """An encoder model on 1 x 4 x 4 images: the tiny encoder, a 16-wide head, softmax."""
    return EncodedSoftmax(_tiny_encoder(), DenseHead(4 * SIDE * SIDE, (16,), seed=0), 2, seed=0)


def _tiny_wc_cnn() -> EncodedWilsonCowan:
    """The tiny encoder and head in front of a Wilson-Cowan layer (N = 16, K = 2)."""
    head = DenseHead(4 * SIDE * SIDE, (16,), seed=0)
    return EncodedWilsonCowan(_tiny_encoder(), head, 2, T_train=1.0, T_eval=2.0, seed=0)


@pytest.fixture(scope="module")
def tiny_models() -> dict[str, torch.nn.Module]:
    """A tiny MLP, a tiny Wilson-Cowan network (N = 16, K = 2), and a tiny encoder with a
    softmax readout and with a Wilson-Cowan layer (both seen on flattened pixels), trained on the
    two classes."""
    torch.manual_seed(0)
    mlp = _fit(MLPClassifier(SIDE * SIDE, 2, hidden=16, seed=0), lr=0.05, steps=40)
    wc = WilsonCowanClassifier(SIDE * SIDE, 2, T_train=1.0, T_eval=2.0, seed=0)
    cnn = _tiny_cnn()
    cnn = _fit(rb.PixelInput(cnn, (1, SIDE, SIDE)), lr=0.05, steps=40, loss=cnn.loss)
    wc_cnn = _tiny_wc_cnn()
    wc_cnn = _fit(rb.PixelWilsonCowan(wc_cnn, (1, SIDE, SIDE)), lr=0.05, steps=40,
                  loss=wc_cnn.loss)
    return {"mlp": mlp, "wc": _fit(wc, lr=0.1, steps=30), "cnn": cnn, "wc-cnn": wc_cnn}


@pytest.fixture(scope="module")
def test_data() -> tuple[torch.Tensor, torch.Tensor]:
    return _two_class_data(100, seed=2)


@pytest.mark.parametrize("kind", ["mlp", "wc", "cnn", "wc-cnn"])
def test_attacks_strictly_lower_the_accuracy(tiny_models, test_data, kind):
    model, (images, labels) = tiny_models[kind], test_data
    clean = rb.accuracy(model, images, labels)
    assert clean > 0.9
    fgsm, _ = rb.fgsm_accuracy(model, images, labels, [0.0, 0.4])
    assert fgsm[0] == clean
    assert fgsm[1] < clean
    fooled = rb.pgd_fooled(model, images, labels, 0.4, steps=5,
                           generator=torch.Generator().manual_seed(0))
    assert 1 - fooled.double().mean().item() < clean


@pytest.mark.parametrize("kind", ["mlp", "wc", "cnn", "wc-cnn"])
def test_zero_noise_and_zero_patch_give_the_clean_accuracy(tiny_models, test_data, kind):
    model, (images, labels) = tiny_models[kind], test_data
    g = torch.Generator().manual_seed(0)
    clean = rb.accuracy(model, images, labels)
    assert torch.equal(rb.gaussian_noise(images, 0.0, g), images)
    assert torch.equal(rb.occlude(images, 0, g), images)
    assert rb.accuracy(model, rb.gaussian_noise(images, 0.0, g), labels) == clean
    assert rb.accuracy(model, rb.occlude(images, 0, g), labels) == clean
    zero = rb.pgd_fooled(model, images, labels, 0.0, steps=2, generator=g)
    assert 1 - zero.double().mean().item() == clean


def test_perturbations_are_seeded_and_in_range():
    images = torch.rand(8, 14 * 14)
    first = rb.gaussian_noise(images, 0.3, torch.Generator().manual_seed(5))
    again = rb.gaussian_noise(images, 0.3, torch.Generator().manual_seed(5))
    assert torch.equal(first, again) and first.min() >= 0 and first.max() <= 1
    patched = rb.occlude(images, 4, torch.Generator().manual_seed(5))
    assert ((patched == 0) & (images != 0)).sum(dim=1).tolist() == [16] * 8
    assert rb.occlusion_sides(14) == [0, 2, 4, 6, 8]
    with pytest.raises(ValueError, match="does not fit"):
        rb.occlude(images, 15, torch.Generator())


def test_min_epsilon_is_zero_for_wrong_images_and_bounded_otherwise(tiny_models, test_data):
    images, labels = test_data
    model = tiny_models["mlp"]
    correct = torch.tensor(rb.accuracy_mask(model, images, labels))
    radii = rb.min_pgd_epsilon(model, images, labels, eps_max=0.5, rounds=3, steps=5)
    assert (radii[~correct] == 0).all()
    found = radii[correct]
    assert ((found > 0) & ((found <= 0.5) | found.isinf())).all()


def test_horizon_curve_starts_with_the_readout_of_the_image(tiny_models, test_data):
    model, (images, labels) = tiny_models["wc"], test_data
    curve = rb.horizon_curve(model, images, labels, [0.0, 1.0, 2.0])
    assert curve["T"] == [0.0, 1.0, 2.0]
    on_image = (model.classify(images) == labels).double().mean().item()
    assert curve["accuracy"][0] == pytest.approx(on_image)
    assert curve["accuracy"][-1] == pytest.approx(rb.accuracy(model, images, labels))
    assert all(0 <= f <= 1 for f in curve["within_10pct"] + curve["within_10pct_of_label"])
    assert curve["initial_state"] == "image"


def test_horizon_curve_of_an_encoder_starts_from_its_output(tiny_models, test_data):
    model, (images, labels) = tiny_models["wc-cnn"], test_data
    model.eval()
    curve = rb.horizon_curve(model, images, labels, [0.0, 2.0])
    with torch.no_grad():
        z = model.model.initial_state(images.reshape(-1, 1, SIDE, SIDE))
        on_z = (model.classify(z) == labels).double().mean().item()
        stage1 = model.model.stage
        model.model.stage = 1
        assert torch.equal(model.model(images.reshape(-1, 1, SIDE, SIDE)), z)
        model.model.stage = stage1
    assert curve["initial_state"] == "encoder output z"
    assert curve["accuracy"][0] == pytest.approx(on_z)
    readout = rb.InitialReadout(model)
    assert rb.accuracy(readout, images, labels) == pytest.approx(on_z)
    fgsm, _ = rb.fgsm_accuracy(readout, images, labels, [0.0, 0.4])
    assert fgsm[0] == pytest.approx(on_z) and fgsm[1] < on_z
    assert curve["accuracy"][1] == pytest.approx(rb.accuracy(model, images, labels))


def test_exported_weights_round_trip(tmp_path):
    config = rb.run_config("mnist-mlp", "smoke")
    model = config.build_model(3)
    path = rb.export_weights(model, "mnist-mlp", "smoke", 3, how="test", models_dir=tmp_path)
    note = json.loads(path.with_suffix(".json").read_text())
    assert (note["experiment"], note["profile"], note["seed"], note["how"]) == (
        "mnist-mlp", "smoke", 3, "test"
    )
    loaded, _ = rb.load_weights("mnist-mlp", "smoke", 3, tmp_path)
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value)


def test_bad_input_gives_a_clear_error(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown experiment 'no-such-run'"):
        rb.load_weights("no-such-run", "midscale", 0, tmp_path)
    with pytest.raises(FileNotFoundError, match="no exported weights"):
        rb.load_weights("mnist-mlp", "midscale", 0, tmp_path)
    with pytest.raises(ValueError, match="unknown profile"):
        rb.run_config("mnist-mlp", "huge")
    parser = argparse.ArgumentParser()
    rb.add_arguments(parser)
    args = parser.parse_args(["mnist-mlp", "--profile", "midscale", "--models-dir", str(tmp_path)])
    assert rb.run(args) == 2
    assert "no exported weights" in capsys.readouterr().err


TINY = rb.Settings(
    n_test=40, n_attack=10, fgsm_eps=(0.0, 0.1), pgd_eps=(0.1,), pgd_steps=2, eps_max=0.3,
    bisection_rounds=1, horizons=(0.0, 2.5, 40.0), batch_size=25, eval_gradient_n=4,
    eval_gradient_pgd_eps=(0.1,), sweep_n=4, sweep_horizons=(1.0, 2.5),
)


@pytest.mark.parametrize("run_id", ["mnist-mlp", "mnist-scratch"])
def test_records_validate(synthetic_env, tmp_path, run_id):
    config = rb.run_config(run_id, "smoke")
    rb.export_weights(config.build_model(0), run_id, "smoke", 0, how="test",
                      models_dir=tmp_path / "models")
    record = rb.evaluate_run(run_id, "smoke", 0, settings=TINY, models_dir=tmp_path / "models",
                             results_dir=tmp_path / "out")
    assert rb.load_record(run_id, "smoke", 0, tmp_path / "out") == record
    results = record["results"]
    assert results["noise"]["n"] == 40 and results["pgd"]["n"] == 10
    assert results["noise"]["accuracy"][0] == results["clean"]["accuracy"]
    assert results["occlusion"]["accuracy"][0] == results["clean"]["accuracy"]
    assert (results["horizon"] is None) == (run_id == "mnist-mlp")
    assert (results["gradient_sweep"] is None) == (run_id == "mnist-mlp")
    wanted = {"MNIST": {"evaluated": (run_id, "smoke"), "not yet": ("mnist-cnn", "smoke")}}
    found = rb.recorded_runs(wanted, 0, tmp_path / "out")
    assert found == {"MNIST": {"evaluated": (run_id, "smoke")}}
    row = rb.overview_row(record, tmp_path)
    assert row["clean accuracy"] == results["clean"]["accuracy"] and row["attacked images"] == 10
    assert row["weights (MiB)"] == record["weights"]["bytes"] / 2**20
    assert not row["weights committed"]
    broken = json.loads(json.dumps(record))
    broken["results"]["pgd"]["accuracy"].append(0.5)
    with pytest.raises(ValueError, match="pgd"):
        rb.validate_record(broken)
    del broken["results"]["noise"]
    with pytest.raises(ValueError, match="noise: missing"):
        rb.validate_record(broken)
    del broken["commit"]
    with pytest.raises(ValueError, match="commit: missing"):
        rb.validate_record(broken)


def test_settings_refuse_an_unknown_gradient():
    with pytest.raises(ValueError, match="gradient must be"):
        rb.Settings(gradient="halfway")


def test_command_writes_the_working_folder_unless_published(synthetic_env, tmp_path,
                                                             monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    config = rb.run_config("mnist-mlp", "smoke")
    out = tmp_path / "mine"
    rb.export_weights(config.build_model(0), "mnist-mlp", "smoke", 0, how="test",
                      models_dir=out / "models")
    parser = argparse.ArgumentParser()
    rb.add_arguments(parser)
    small = ["--n-test", "20", "--n-attack", "2"]
    assert rb.run(parser.parse_args(["mnist-mlp", "--profile", "smoke", "--out", str(out),
                                     *small])) == 0
    assert rb.load_record("mnist-mlp", "smoke", 0, out / "robustness")["run"] == "mnist-mlp"
    assert not (tmp_path / "robustness").exists()
    args = parser.parse_args(["mnist-mlp", "--profile", "smoke", "--publish", *small])
    assert rb.run(args) == 2
    assert "no exported weights" in capsys.readouterr().err
    rb.export_weights(config.build_model(0), "mnist-mlp", "smoke", 0, how="test",
                      models_dir=tmp_path / "models")
    assert rb.run(args) == 0
    assert (tmp_path / "robustness" / "mnist-mlp" / "smoke" / "seed0.json").exists()


def test_a_model_over_3_mib_is_attacked_whole_from_the_working_folder(synthetic_env, tmp_path,
                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    run_id, profile = "mnist-cnn-softmax", "smoke-encoded"
    config = rb.run_config(run_id, profile)
    model = config.build_model(0)
    model.stage = 2  # a finished run's model; the registry builds it in stage 1
    assert model_bytes(model) > MAX_WEIGHTS_BYTES
    folder = rb.export_for_attack(model, run_id, profile, 0, Path("models"), how="test",
                                  publish=True)
    assert folder == tmp_path / "home" / "models"
    assert not Path("models").exists()  # no Wilson-Cowan part: nothing may be committed
    assert rb.models_folder(run_id, profile, 0, published()) == folder
    record = rb.evaluate_run(run_id, profile, 0, settings=TINY, models_dir=folder,
                             results_dir=tmp_path / "out")
    assert rb.load_record(run_id, profile, 0, tmp_path / "out") == record
    assert record["model"] == "encoded" and record["weights"]["committed"] is False
    assert record["weights"]["bytes"] > MAX_WEIGHTS_BYTES
    results = record["results"]
    assert results["noise"]["accuracy"][0] == results["clean"]["accuracy"]
    assert results["occlusion"]["side"] == [0, 4, 8, 12, 16]
    assert results["horizon"] is None and len(results["min_eps"]["values"]) == 10
    loaded, _ = rb.load_weights(run_id, profile, 0, folder)
    assert loaded.stage == 2
    wrapped = rb.on_pixels(loaded, config)
    images = torch.rand(3, 28 * 28)
    with torch.no_grad():
        assert wrapped(images).shape == (3, 10)
        assert torch.equal(wrapped(images), model.eval()(images.reshape(3, 1, 28, 28)))


def test_an_encoder_in_front_of_the_dynamics_is_attacked_whole_not_from_its_committed_part(
        synthetic_env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    run_id, profile = "mnist-cnn", "smoke-encoded"
    config = rb.run_config(run_id, profile)
    model = config.build_model(0)
    model.stage = 2  # as after training
    folder = rb.export_for_attack(model, run_id, profile, 0, Path("models"), how="test",
                                  publish=True)
    committed = rb.weights_path(run_id, profile, 0, "models")
    assert json.loads(committed.with_suffix(".json").read_text())["part"] == "dynamics"
    assert committed.stat().st_size <= MAX_WEIGHTS_BYTES
    assert rb.models_folder(run_id, profile, 0, published()) == folder
    with pytest.raises(ValueError, match="dynamics part only"):
        rb.evaluate_run(run_id, profile, 0, settings=TINY, models_dir=Path("models"),
                        results_dir=None)
    at_eval = dataclasses.replace(TINY, horizons=(0.0, model.wc.T_eval))
    record = rb.evaluate_run(run_id, profile, 0, settings=at_eval, models_dir=folder,
                             results_dir=None)
    horizon = record["results"]["horizon"]
    assert horizon["initial_state"] == "encoder output z" and rb.has_dynamics(record)
    assert horizon["accuracy"][-1] == pytest.approx(record["results"]["clean"]["accuracy"])
    assert "through the encoder and the" in record["results"]["gradient"]
    without = record["results"]["without_dynamics"]
    assert without["pgd"]["n"] == TINY.n_attack and "no dynamics" in without["gradient"]
    broken = json.loads(json.dumps(record))
    broken["results"]["without_dynamics"]["pgd"]["accuracy"].append(0.5)
    with pytest.raises(ValueError, match="pgd"):
        rb.validate_record(broken)
    wrapped = rb.on_pixels(model, config)
    assert isinstance(wrapped, rb.PixelWilsonCowan) and wrapped.T_eval == model.wc.T_eval
    model.stage = 1
    with pytest.raises(ValueError, match="stage 2"):
        rb.on_pixels(model, config)
