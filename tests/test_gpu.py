"""Checks that need a CUDA device (skipped without one): the engine on the GPU, and the training
step captured as a CUDA graph computing exactly what the eager step computes."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from wcbook.engine import integrate_fast
from wcbook.experiments import get_experiment
from wcbook.models import WilsonCowanNetwork
from wcbook.training import train

from test_training import TINY

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

#: Every batch full (300 images in batches of 100), so the training step can be captured.
BATCH = 100


def test_engine_gradients_match_autograd_on_the_gpu():
    torch.manual_seed(0)
    net = WilsonCowanNetwork(49, 3, seed=0, dtype=torch.float64).cuda()
    images = torch.rand(8, 49, dtype=torch.float64, device="cuda")
    grads = []
    for fast in (False, True):
        net.zero_grad()
        if fast:
            x, _ = integrate_fast(
                images, images, net.coupling.matrix(), net.gamma, net.Gamma, net.params, 2.5, 0.1
            )
        else:
            x, _ = net.integrate(images, T=2.5, dt=0.1)
        x.square().sum().backward()
        grads.append([p.grad.clone() for p in net.parameters()])
    for autograd_grad, fast_grad in zip(*grads):
        torch.testing.assert_close(fast_grad, autograd_grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("engine", ["fast", "autograd"])
def test_cuda_graph_step_equals_the_eager_step(tmp_path, synthetic_env, engine):
    config = dataclasses.replace(get_experiment("mnist-scratch"), batch_size=BATCH)
    records = {}
    for graph in (False, True):
        folder = tmp_path / f"graph{graph}"
        records[graph] = train(
            config,
            TINY,
            0,
            device="cuda",
            results_dir=folder,
            checkpoint_dir=folder,
            progress=False,
            engine=engine,
            cuda_graph=graph,
        )
    assert records[True]["cuda_graph"] and not records[False]["cuda_graph"]
    eager, graphed = records[False]["history"], records[True]["history"]
    assert graphed["loss"] == pytest.approx(eager["loss"], rel=1e-5)
    assert graphed["train_accuracy"] == eager["train_accuracy"]
    assert graphed["test_accuracy"] == eager["test_accuracy"]


def test_a_graphed_ensemble_equals_the_eager_one_and_its_members_the_single_runs(
    tmp_path, synthetic_env
):
    from wcbook.training import train_ensemble

    config = dataclasses.replace(get_experiment("mnist-scratch"), batch_size=BATCH)
    runs = {}
    for graph in (False, True):
        folder = tmp_path / f"graph{graph}"
        runs[graph] = train_ensemble(config, TINY, [0, 1, 2], device="cuda", results_dir=folder,
                                     checkpoint_dir=folder, progress=False, cuda_graph=graph)
    single = train(config, TINY, 1, device="cuda", results_dir=tmp_path / "one",
                   checkpoint_dir=tmp_path / "one", progress=False)
    for eager, graphed in zip(runs[False], runs[True]):
        assert graphed["cuda_graph"] and graphed["ensemble"]["size"] == 3
        assert graphed["history"]["loss"] == pytest.approx(eager["history"]["loss"], rel=1e-5)
    assert runs[True][1]["history"]["loss"][:2] == pytest.approx(
        single["history"]["loss"][:2], rel=1e-4
    )
