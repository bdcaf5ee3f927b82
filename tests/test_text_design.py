"""The Wilson-Cowan text head on a frozen encoder: cached features, the two stages and the
attractor metrics, on a synthetic archive and a tiny randomly initialised BERT (no downloads)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

transformers = pytest.importorskip("transformers")

from synthetic_text import save_tiny_bert, write_imdb_archive  # noqa: E402

from wcbook.attractors import attractor_fractions, distinct_states  # noqa: E402
from wcbook.data import DATA_ENV  # noqa: E402
from wcbook.experiments import Profile, get_experiment  # noqa: E402
from wcbook.text import load_imdb  # noqa: E402
from wcbook.text_features import FEATURES_ENV, cache_path, cached_features  # noqa: E402
from wcbook.text_features import _digests  # noqa: E402
from wcbook.training import loop, train  # noqa: E402

POSITIVE = ["good", "great", "fine", "love", "superb"]
NEGATIVE = ["bad", "awful", "poor", "hate", "dull"]
NEUTRAL = ["movie", "plot", "actor", "scene"]
PER_CLASS = 100
FROZEN = Profile(name="tiny-frozen", description="test", n_train=160, n_test=80, epochs=2,
                 stage1_epochs=2, eval_every=1, max_length=10)


@pytest.fixture(scope="module")
def text_root(tmp_path_factory):
    """A data root whose archive holds 100 reviews per split and class, each two words of its
    class among neutral ones."""
    root = tmp_path_factory.mktemp("imdb-design")
    generator = torch.Generator().manual_seed(0)

    def review(words: list[str]) -> str:
        picks = torch.randint(0, 5, (2,), generator=generator).tolist()
        filler = torch.randint(0, 4, (3,), generator=generator).tolist()
        return " ".join([NEUTRAL[filler[0]], words[picks[0]], NEUTRAL[filler[1]],
                         words[picks[1]], NEUTRAL[filler[2]]])

    write_imdb_archive(root, (
        (split, polarity, i, 5, review(words))
        for split in ("train", "test")
        for polarity, words in (("pos", POSITIVE), ("neg", NEGATIVE))
        for i in range(PER_CLASS)
    ))
    return root


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A 1-layer, 32-wide BERT with a word-level vocabulary, saved like a checkpoint."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert-design"),
                          POSITIVE + NEGATIVE + NEUTRAL, layers=1, max_positions=16)


@pytest.fixture
def frozen_env(tmp_path, text_root, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(text_root))
    monkeypatch.setenv(FEATURES_ENV, str(tmp_path / "features"))
    return tmp_path


def _frozen_config(tiny_bert: str, **text):
    """imdb-wc on the frozen tiny encoder, 16 nodes, with the chosen design unless overridden."""
    config = get_experiment("imdb-wc", "frozen")
    options = {**config.text_options, "encoder": tiny_bert, **text}
    return dataclasses.replace(config, hidden=16, lr=1e-2, batch_size=8, text_options=options)


def test_features_are_cached_once_and_served_to_smaller_requests(frozen_env, tiny_bert):
    features, labels = cached_features("train", 40, encoder=tiny_bert, max_length=10,
                                       pooling="mean", progress=False)
    path = cache_path(tiny_bert, 10, "train", 40)
    assert path.exists() and features.shape == (40, 32) and int(labels.sum()) == 20
    again, _ = cached_features("train", 40, encoder=tiny_bert, max_length=10, pooling="mean")
    assert torch.equal(again, features)
    # a balanced subset of 20 is part of the 40: read from that file, nothing encoded
    fewer, fewer_labels = cached_features("train", 20, encoder=tiny_bert, max_length=10,
                                          pooling="mean")
    assert not cache_path(tiny_bert, 10, "train", 20).exists()
    rows = [next(i for i in range(40) if torch.equal(features[i], f)) for f in fewer]
    assert torch.equal(labels[rows], fewer_labels)
    pooler, _ = cached_features("train", 40, encoder=tiny_bert, max_length=10, pooling="pooler")
    assert not torch.equal(pooler, features)


def _plant_features(tiny_bert: str) -> None:
    """Cache files for the FROZEN profile's reviews whose features are two Gaussian clusters
    (class means 1.5 apart in every one of 32 directions, unit noise): the frozen path reads
    them as it reads an encoder's."""
    generator = torch.Generator().manual_seed(1)
    direction = torch.randn(32, generator=generator).sign() * 0.75
    for split, n in (("train", FROZEN.n_train), ("test", FROZEN.n_test)):
        texts, labels = load_imdb(split, limit=n)
        features = (2 * labels[:, None] - 1) * direction + torch.randn(n, 32, generator=generator)
        path = cache_path(tiny_bert, FROZEN.max_length, split, n)
        path.parent.mkdir(parents=True, exist_ok=True)
        saved = {"pooler": features, "mean": features, "labels": labels, "digests": _digests(texts)}
        torch.save(saved, path)


def test_the_frozen_head_learns_above_chance(frozen_env, tiny_bert):
    _plant_features(tiny_bert)
    record = train(_frozen_config(tiny_bert), FROZEN, 0, device="cpu", progress=False,
                   results_dir=frozen_env / "results", checkpoint_dir=frozen_env / "ckpt")
    metrics = record["metrics"]
    assert metrics["test_accuracy"] >= 0.8 and record["n_test"] == 80
    assert metrics["stage1_test_accuracy"] >= 0.8
    assert {"attractor_fraction", "attractor_fraction_correct", "distinct_end_states"} <= set(
        metrics
    )
    assert 0 <= metrics["attractor_fraction"] <= 1 and metrics["distinct_end_states"] >= 1


def test_stage_two_starts_from_the_stage_one_projection(frozen_env, tiny_bert, monkeypatch):
    """The dense layer at the first step of stage 2 is the one stage 1 ended with, and stage 1
    trained it and left the dynamics alone."""
    seen: dict[str, dict[str, torch.Tensor]] = {}
    real_save, real_optimizer = loop._save, loop._optimizer_for

    def weights(run):
        return {n: p.detach()[0].clone() for n, p in run.ensemble.named_parameters()}

    def save(run, *args):
        seen[f"saved{run.epoch}"] = weights(run)
        return real_save(run, *args)

    def optimizer_for(run, stage, *args):
        seen[f"built{stage}"] = weights(run)
        return real_optimizer(run, stage, *args)

    monkeypatch.setattr(loop, "_save", save)
    monkeypatch.setattr(loop, "_optimizer_for", optimizer_for)
    train(_frozen_config(tiny_bert), FROZEN, 0, device="cpu", progress=False,
          results_dir=frozen_env / "results", checkpoint_dir=frozen_env / "ckpt")
    dense = [n for n in seen["saved2"] if "dense" in n]
    dynamics = [n for n in seen["saved2"] if "dynamics" in n]
    assert dense and dynamics
    for name in dense:
        assert not torch.equal(seen["built1"][name], seen["saved2"][name])  # stage 1 trained it
        assert torch.equal(seen["saved2"][name], seen["built2"][name])  # the handover kept it
        assert not torch.equal(seen["built2"][name], seen["saved4"][name])  # stage 2 trains it
    for name in dynamics:
        assert torch.equal(seen["built1"][name], seen["built2"][name])


def test_attractor_metrics_of_a_constructed_case():
    targets = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    states = torch.tensor([
        [1.0, 0.0, 0.0, 0.0],     # on target 0
        [1.0, 0.05, 0.0, 0.0],    # 5% from target 0, the same end state as the first
        [0.0, 1.0, 0.0, 0.0],     # on target 1
        [0.5, 0.5, 0.0, 0.0],     # half way: on neither
        [0.0, 1.0, 0.3, 0.0],     # 30% from target 1: off
    ])
    predicted = torch.tensor([0, 0, 1, 0, 1])
    labels = torch.tensor([0, 1, 1, 1, 1])
    on_predicted, on_correct = attractor_fractions(states, predicted, labels, targets)
    assert on_predicted == pytest.approx(3 / 5) and on_correct == pytest.approx(2 / 5)
    # 10% of the targets' distance sqrt(2) is 0.141: rows 0 and 1 are one end state
    assert distinct_states(states, targets) == 4
    assert distinct_states(states[[0, 0, 2, 2]], targets) == 2
    nan = torch.full((1, 4), float("nan"))
    assert distinct_states(torch.cat([states[:1], nan, nan]), targets) == 2
    assert attractor_fractions(nan, torch.tensor([-1]), torch.tensor([0]), targets)[0] == 0.0


def test_the_axis_start_lies_between_the_targets_around_the_threshold():
    from wcbook.text import TextClassifier

    model = TextClassifier(None, "wc", features_width=8, width=16, seed=0, start="axis",
                           inhibitory="rest")
    network = model.dynamics.network
    x0, y0, drive = model.initial_state(torch.stack([torch.full((16,), 0.5), torch.rand(16)]))
    differ = network.targets[0] != network.targets[1]
    assert drive is None and torch.allclose(y0, torch.full_like(y0, network.states.y_star))
    assert torch.allclose(x0[0, differ], torch.full_like(x0[0, differ], network.states.x_unstable))
    assert torch.equal(x0[:, ~differ], network.targets[:, ~differ][[0, 0]])
    # on the line through the targets: the offset from x_u is one number times T_0 - T_1
    offset = (x0[1] - x0[0])[differ] / (network.targets[0] - network.targets[1])[differ]
    assert torch.allclose(offset, offset[0].expand_as(offset))


def test_stage_two_scales_the_projection_rate_and_keeps_the_dynamics_rate():
    from wcbook.kinds import KINDS

    config = get_experiment("imdb-wc", "frozen-axis")
    names = ["dense.weight", "dynamics.network.gamma"]
    groups = {tuple(g): s["lr"] for g, s in KINDS["text"].groups(None, config, names, 2)}
    assert groups == {("dense.weight",): 1e-3 * 0.01, ("dynamics.network.gamma",): 1e-3}
    first = {tuple(g): s["lr"] for g, s in KINDS["text"].groups(None, config, names[:1], 1)}
    assert first[("dense.weight",)] == 1e-3
