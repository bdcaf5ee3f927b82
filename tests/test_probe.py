"""Tests of the linear-probe record of a frozen encoder (on a stand-in encoder and data)."""

from __future__ import annotations

import json

import pytest
import torch

from wcbook import probe


def test_probe_record_picks_the_best_weight_decay_and_has_provenance(monkeypatch, tmp_path):
    gen = torch.Generator().manual_seed(0)

    def features(config, split, device):
        assert config.side == 64 and device.type == "cpu"
        n = 120 if split == "train" else 60
        labels = torch.arange(n) % 5
        x = torch.randn(n, 8, generator=gen, dtype=torch.float64) + 3.0 * torch.nn.functional.one_hot(labels, 8)
        return x, labels

    monkeypatch.setattr(probe, "_features", features)
    record = probe.probe_ceiling("flowers-transfer", 64, weight_decays=(1e-3, 1e-1))
    tests = [p["test_accuracy"] for p in record["by_weight_decay"]]
    assert record["metrics"]["test_accuracy"] == max(tests) > 0.9
    assert record["image_size"] == 64 and record["n_train"] == 120 and record["n_features"] == 8
    assert record["encoder"] == "efficientnet-lite0" and record["encoder_native_size"] == 224
    assert not record["upsampled"] and record["stored_image_size"] == 128
    for key in ("commit", "dirty", "device", "torch_version", "wall_time_s", "extract_time_s", "caveat"):
        assert key in record, key
    path = probe.probe_path("flowers-transfer", 64, tmp_path)
    assert path.name == "efficientnet-lite0-size64.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    assert probe.load_probe("flowers-transfer", 64, tmp_path) == json.loads(json.dumps(record))
    assert probe.load_probes("flowers-transfer", tmp_path) == [json.loads(json.dumps(record))]
    with pytest.raises(ValueError, match="frozen encoder"):
        probe.probe_ceiling("mnist-cnn", 28)


def test_probe_of_another_encoder_is_upsampled_and_named_so(monkeypatch, tmp_path):
    seen = []

    def features(config, split, device):
        seen.append((config.encoder_option("encoder"), config.side))
        labels = torch.arange(40) % 5
        return torch.nn.functional.one_hot(labels, 6).double(), labels

    monkeypatch.setattr(probe, "_features", features)
    record = probe.probe_ceiling("flowers-transfer", 240, encoder="efficientnet-lite1",
                                 weight_decays=(1e-2,), iterations=20)
    assert seen == [("efficientnet-lite1", 240)] * 2
    assert record["encoder"] == "efficientnet-lite1" and record["encoder_native_size"] == 240
    assert record["upsampled"] and "upsampled to 240" in record["caveat"]
    assert "EfficientNet-Lite1" in record["caveat"]
    path = probe.probe_path("flowers-transfer", 240, tmp_path, "efficientnet-lite1")
    assert path.name == "efficientnet-lite1-size240.json"


def test_probe_main_native_side_writes_the_record(monkeypatch, tmp_path):
    def fake(experiment, size, *, encoder=None, device="cpu"):
        assert device == "cpu"
        return {"encoder": encoder, "image_size": size, "extract_time_s": 1.0, "wall_time_s": 2.0,
                "metrics": {"weight_decay": 0.1, "train_accuracy": 1.0, "test_accuracy": 0.5}}

    monkeypatch.setattr(probe, "probe_ceiling", fake)
    assert probe.main(["flowers-transfer", "--encoder", "efficientnet-lite2", "--native",
                       "--out", str(tmp_path)]) == 0
    assert probe.load_probe("flowers-transfer", 260, tmp_path / "probes", "efficientnet-lite2")
    with pytest.raises(SystemExit):
        probe.main(["flowers-transfer", "--encoder", "vgg16", "--native", "--out", str(tmp_path)])


def test_probe_frame_has_one_row_per_record_and_the_paper_beside_it():
    def record(encoder, size, accuracy, **extra):
        return {"encoder": encoder, "image_size": size, "stored_image_size": 128, "n_features": 1280,
                "metrics": {"test_accuracy": accuracy, "train_accuracy": 0.9, "weight_decay": 0.1},
                **extra}

    table = probe.probe_frame(
        [record("efficientnet-lite0", 128, 0.7326),
         record("efficientnet-lite2", 260, 0.8, encoder_native_size=260, extract_time_s=700.4)],
        0.8485)
    assert list(table.columns) == list(probe.PROBE_COLUMNS) and len(table) == 2
    first, second = table.to_dict("records")
    assert (first["trained at (px)"], first["upsampled"], first["features took (s)"]) == (224, "no", "-")
    assert (second["upsampled"], second["probe test (%)"], second["features took (s)"]) == ("yes", "80.00", "700")
    assert first["paper (%)"] == second["paper (%)"] == "84.85"
