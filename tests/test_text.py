"""The IMDB pipeline: the archive reader, the three heads and the training loop on text, with a
synthetic archive and a tiny randomly initialised BERT saved to a temporary folder (no
downloads)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

transformers = pytest.importorskip("transformers")

from synthetic_text import save_tiny_bert, write_imdb_archive  # noqa: E402

from wcbook.data import DATA_ENV, DataRootError  # noqa: E402
from wcbook.experiments import Profile, get_experiment, resolve  # noqa: E402
from wcbook.text import HEADS, TextClassifier, load_imdb, tokenize  # noqa: E402
from wcbook.training import loop  # noqa: E402
from wcbook.training import train  # noqa: E402

WORDS = ["good", "great", "fine", "love", "bad", "awful", "poor", "hate", "movie", "plot"]
TINY = Profile(
    name="tiny-text", description="test", n_train=16, n_test=8, epochs=2, eval_every=1,
    max_length=12,
)


@pytest.fixture(scope="module")
def imdb_root(tmp_path_factory):
    """A data root whose imdb archive holds 12 reviews per split and class."""
    root = tmp_path_factory.mktemp("imdb-data")
    write_imdb_archive(root, (
        (split, polarity, i, 7 if polarity == "pos" else 2,
         f"{words[i % 4]} movie<br />{words[(i + 1) % 4]} plot")
        for split in ("train", "test")
        for polarity, words in (("pos", WORDS[:4]), ("neg", WORDS[4:8]))
        for i in range(12)
    ))
    return root


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    """A 2-layer, 32-wide BERT with a word-level vocabulary, saved like a checkpoint."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), WORDS, layers=2, max_positions=32)


def test_archive_reader_balances_and_cleans(imdb_root):
    texts, labels = load_imdb("train", root=imdb_root)
    assert len(texts) == 24 and labels.tolist() == [0] * 12 + [1] * 12
    assert all("<br />" not in t for t in texts)
    subset, sub_labels = load_imdb("test", root=imdb_root, limit=6, seed=1)
    assert len(subset) == 6 and int(sub_labels.sum()) == 3
    again, _ = load_imdb("test", root=imdb_root, limit=6, seed=1)
    assert again == subset


def test_missing_archive_and_bad_arguments_are_explained(tmp_path, imdb_root):
    with pytest.raises(DataRootError, match="WCBOOK_DATA"):
        load_imdb("train", root=tmp_path)
    with pytest.raises(ValueError, match="split"):
        load_imdb("validation", root=imdb_root)
    with pytest.raises(ValueError, match="more reviews"):
        load_imdb("train", root=imdb_root, limit=100)


@pytest.mark.parametrize("head", HEADS)
def test_each_head_trains_and_classifies(head, tiny_encoder, imdb_root):
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_encoder)
    encoder = transformers.AutoModel.from_pretrained(tiny_encoder)
    model = TextClassifier(encoder, head, pad_id=tokenizer.pad_token_id, width=16, seed=0)
    texts, labels = load_imdb("train", root=imdb_root, limit=8)
    ids = tokenize(texts, tokenizer, 12)
    output = model(ids)
    assert output.shape == ((8,) if head == "encoder" else (8, 16))
    loss = model.loss(output, labels)
    loss.backward()
    assert torch.isfinite(loss)
    # finite outputs: class 1 exactly where the positive class is the more probable
    detached = output.detach()
    expected = (model.positive_probability(detached) > 0.5).long()
    assert torch.equal(model.classify(detached), expected)
    trained = {n for n, p in model.named_parameters() if p.grad is not None}
    assert ("dynamics.network.gamma" in trained) == (head == "wc")
    assert hasattr(model, "engine") == (head == "wc")
    distances = model.attractor_distances(ids)
    if head == "encoder":
        assert distances is None and model.metrics() == {}
    else:
        initial, final = distances
        moved = not torch.allclose(initial, final)
        assert moved == (head == "wc")


def test_token_ids_are_checked(tiny_encoder):
    encoder = transformers.AutoModel.from_pretrained(tiny_encoder)
    model = TextClassifier(encoder, "wc", width=16)
    with pytest.raises(ValueError, match="token ids"):
        model(torch.rand(2, 5))
    with pytest.raises(ValueError, match="unknown head"):
        TextClassifier(encoder, "lstm")
    with pytest.raises(ValueError, match="encoder_precision"):
        TextClassifier(encoder, "wc", encoder_precision="float8")


def test_a_bfloat16_encoder_feeds_a_float32_head(tiny_encoder):
    """Mixed precision covers the encoder alone: h and the dynamics stay float32, and h is close
    to the float32 encoder's."""
    encoder = transformers.AutoModel.from_pretrained(tiny_encoder)
    ids = torch.randint(5, encoder.config.vocab_size, (3, 10))
    full, mixed = (
        TextClassifier(encoder, "wc", width=16, seed=0, encoder_precision=p).eval()
        for p in ("float32", "bfloat16")
    )
    h_full, h_mixed = full.features(ids), mixed.features(ids)
    assert h_mixed.dtype == torch.float32 and mixed(ids).dtype == torch.float32
    # within one bfloat16 rounding step (2^-8) of values of size 1: the worst of 200 random
    # inputs measured 4.5e-4 with |h| <= 0.55
    assert not torch.equal(h_full, h_mixed) and torch.allclose(h_full, h_mixed, atol=2**-8, rtol=0)
    config = get_experiment("imdb-wc", "batch-32-bf16")
    assert config.batch_size == 32 and config.text_option("encoder_precision") == "bfloat16"


def test_configs_follow_the_paper_and_the_profile():
    config = resolve(get_experiment("imdb-wc"), TINY)
    assert config.text_option("max_length") == 12 and config.n_nodes == 512
    assert (config.lr, config.batch_size, config.T_train) == (3e-5, 4, 4.0)
    assert get_experiment("imdb-wc", "batch-32").batch_size == 32
    with pytest.raises(ValueError, match="text_options"):
        dataclasses.replace(get_experiment("imdb-wc"), text_options={})
    with pytest.raises(ValueError, match="unknown text option"):
        dataclasses.replace(get_experiment("imdb-wc"), text_options={"head": "wc", "size": 3})


def test_text_training_resumes_with_its_schedule(tmp_path, tiny_encoder, imdb_root, monkeypatch):
    """Two epochs straight, or one and a resumed one: the same losses (warm-up state included)."""
    monkeypatch.setenv(DATA_ENV, str(imdb_root))
    config = dataclasses.replace(
        get_experiment("imdb-wc"),
        hidden=16,
        lr=1e-3,
        text_options={"head": "wc", "encoder": tiny_encoder},
    )

    def run(folder, profile):
        return train(
            config, profile, 0, device="cpu", results_dir=folder, checkpoint_dir=folder,
            progress=False,
        )

    straight = run(tmp_path / "a", TINY)
    real_epoch, calls = loop._train_epoch, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # stopped during the second epoch
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(loop, "_train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", TINY)
    monkeypatch.setattr(loop, "_train_epoch", real_epoch)
    resumed = run(tmp_path / "b", TINY)
    assert resumed["history"]["loss"] == straight["history"]["loss"]
    a, b = (
        torch.load(folder / "imdb-wc" / "tiny-text" / "seed0.pt", weights_only=True)
        for folder in (tmp_path / "a", tmp_path / "b")
    )
    assert a["histories"][0]["loss"] == b["histories"][0]["loss"]
    assert all(torch.equal(a["model"][key], b["model"][key]) for key in a["model"])
    assert straight["attractors"]["n"] == 8
    assert set(straight["attractors"]) >= {"initial_median", "final_median", "target_separation"}
