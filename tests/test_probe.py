"""Tests of the linear-probe record of a frozen encoder (on a stand-in encoder and data)."""

from __future__ import annotations

import json

import pytest
import torch

from wcbook import probe


def test_probe_record_picks_the_best_weight_decay_and_has_provenance(monkeypatch, tmp_path):
    gen = torch.Generator().manual_seed(0)

    def features(experiment, image_size, split):
        n = 120 if split == "train" else 60
        labels = torch.arange(n) % 5
        x = torch.randn(n, 8, generator=gen, dtype=torch.float64) + 3.0 * torch.nn.functional.one_hot(labels, 8)
        return x, labels

    monkeypatch.setattr(probe, "_features", features)
    record = probe.probe_ceiling("flowers-transfer", 64, weight_decays=(1e-3, 1e-1))
    tests = [p["test_accuracy"] for p in record["by_weight_decay"]]
    assert record["metrics"]["test_accuracy"] == max(tests) > 0.9
    assert record["image_size"] == 64 and record["n_train"] == 120 and record["n_features"] == 8
    for key in ("commit", "dirty", "device", "torch_version", "wall_time_s", "caveat"):
        assert key in record, key
    path = probe.probe_path("flowers-transfer", 64, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    assert probe.load_probe("flowers-transfer", 64, tmp_path) == json.loads(json.dumps(record))
    with pytest.raises(ValueError, match="frozen encoder"):
        probe.probe_ceiling("mnist-cnn", 28)
