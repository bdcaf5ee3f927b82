# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Making it fast
#
# Training unrolls $n = T/dt$ Euler steps and backpropagates through all of them. Per image and
# step the forward pass does one product with the $N \times N$ coupling matrix; the backward pass
# needs two more (the adjoint $e_n M$ and the contribution to $\partial L/\partial A$). For MNIST
# ($N = 784$, batch 200, 25 steps) that is $3 \cdot 25 \cdot 2 \cdot 200 \cdot 784^2 \approx 18$
# GFLOP per training step and 5.5 TFLOP per epoch: little for a modern GPU, but spread over
# hundreds of small kernels per step, so launch overhead, not arithmetic, sets the pace.
#
# What `wcbook` does about it:
#
# * **The engine** (`wcbook.engine.integrate_fast`): the forward pass records no autograd graph;
#   the backward pass is the hand-derived discrete adjoint of the Euler scheme (derived in the
#   module's docstring), which keeps $x_n$ and $\tanh$ terms and does the $\partial L/\partial A$
#   products as one stacked product. `engine="compiled"` fuses each step's element-wise work into
#   one `torch.compile` kernel per direction.
# * **No explicit inverse**: $A = \Phi \Lambda \Phi^{-1}$ comes from one linear solve per step,
#   without the check that would make the host wait for the GPU.
# * **CUDA graphs**: on a GPU, the whole training step (integration, adjoint, Adam) is captured once
#   and replayed for every batch; the data stay on the GPU and the host reads back one number
#   per epoch.
# * **Ensembles**: the seeds of an experiment train together, each product batched over them
#   (below).
# * **More processes**: `torchrun` spreads seeds over GPUs, or trains one run data-parallel (DDP);
#   `wcbook.parallel` explains both.
#
# All of it is measured by `python -m wcbook bench --publish`, whose records this chapter reads.

# %%
# %matplotlib inline
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from wcbook.bench import (
    format_table,
    format_training,
    load_bench_records,
    plot_scaling,
    rounding_divergence,
)
from wcbook.data import flatten_images, load_images
from wcbook.engine import integrate_fast
from wcbook.models import WilsonCowanNetwork
from wcbook.results import load_records, pace_text

torch.set_num_threads(2)
ROOT = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "pyproject.toml").exists())
bench = load_bench_records(ROOT / "benchmarks" / "results")
steps_records = [r for r in bench if r.get("schema") == "wcbook-bench/1"]
training_records = [r for r in bench if r.get("schema") == "wcbook-bench-training/1"]
print(f"{len(steps_records)} step benchmarks, {len(training_records)} training-path comparisons")

# %% [markdown]
# ## The same numbers, differently computed
#
# The engine must compute the gradients autograd computes. In float64, on a small network, the two
# agree to rounding:

# %%
torch.manual_seed(0)
net = WilsonCowanNetwork(64, 4, seed=0, dtype=torch.float64)
images = torch.rand(16, 64, dtype=torch.float64)
gradients = {}
for engine in ("autograd", "fast"):
    net.zero_grad()
    x, _ = net.integrate(images, T=2.5, engine=engine)
    x.square().sum().backward()
    gradients[engine] = torch.cat([p.grad.flatten() for p in net.parameters()])
relative = (gradients["fast"] - gradients["autograd"]).norm() / gradients["autograd"].norm()
print("engine gradient = autograd gradient to 1e-12 (relative):", bool(relative < 1e-12))

# %% [markdown]
# Yet two training runs that differ only in the integrator end at different models. The reason is
# the training itself: at the paper's learning rate (Adam, 0.1) the first steps are chaotic. Below,
# two float64 classifiers, identical but for the integrator, see the same MNIST batches; the
# relative difference of their losses starts at rounding level and grows about a hundredfold per
# step at lr 0.1, while at lr 0.001 it stays at rounding level.

# %%
mnist, labels = load_images("mnist", "train", size=14)
mnist = flatten_images(mnist)[:2000]
divergence = {lr: rounding_divergence(mnist, labels[:2000], steps=20, lr=lr) for lr in (0.1, 1e-3)}
fig, ax = plt.subplots(figsize=(6, 3.4))
for lr, values in divergence.items():
    ax.semilogy(range(len(values)), values, "o-", label=f"lr = {lr:g}")
ax.set(xlabel="Adam step", ylabel="|loss_fast - loss_autograd| / loss",
       title="WilsonCowanClassifier, seed 0, float64, N = 196 (first 2000 MNIST images, 14 x 14)")
ax.legend()
plt.show()

# %%
print("forward passes agree to rounding (step 0 < 1e-12):", divergence[0.1][0] < 1e-12)
print("lr 0.001 stays at rounding level (< 1e-10):", max(divergence[1e-3]) < 1e-10)
print("lr 0.1 amplifies it past 1e-3 within 10 steps:", max(divergence[0.1][:10]) > 1e-3)

# %% [markdown]
# So "the same results up to float rounding" can only mean the same *distribution* of results.
# The training-path comparisons below train the same experiment, seeds and batches along each
# path; their test accuracies are to be read as samples, the loss column as the deviation the
# chaos produced.

# %%
for record in training_records:
    print(format_training(record), end="\n\n")

# %%
by_device = {r["provenance"]["device"]: r["paths"] for r in training_records}
cpu, gpu = by_device.get("cpu"), by_device.get("cuda")
if cpu:
    gap = abs(cpu["fast"]["test_accuracy_mean"] - cpu["autograd"]["test_accuracy_mean"])
    sem = (cpu["fast"]["test_accuracy_sem"] ** 2 + cpu["autograd"]["test_accuracy_sem"] ** 2) ** 0.5
    print("CPU: engine and autograd accuracies within 2 standard errors:", gap < 2 * sem)
    print("CPU: engine at least 1.8x faster per epoch:", cpu["fast"]["speedup_vs_autograd"] >= 1.8)
if gpu:
    same = gpu["fast+graph"]["runs"][0]["loss"] == gpu["fast"]["runs"][0]["loss"]
    print("GPU: the graphed step reproduces the eager losses exactly:", same)
    ratio = gpu["fast"]["steady_epoch_s"] / gpu["fast+graph"]["steady_epoch_s"]
    print("GPU: the graph makes an epoch at least 2.5x faster:", ratio >= 2.5)

# %% [markdown]
# On the CPU, five seeds of the smoke profile give statistically indistinguishable accuracies for
# the autograd path and the engine, the engine twice as fast per epoch. On the H100, at the paper
# profile, `fast` and `fast+graph` trace the very same losses (the graph replays the eager kernels
# exactly), and the graph makes each epoch about three times faster again.

# %% [markdown]
# ## One training step, every implementation
#
# `python -m wcbook bench` times one training step (build $A$, integrate, backpropagate, Adam) of
# each implementation on the same data, interleaved, and reports the median. `reference` is a
# plain PyTorch module kept in the benchmark on purpose (explicit inverse, unfused operations,
# autograd); the speed-up over it is the figure of merit. `gemm-floor` times only the matrix
# products a step cannot avoid: the bound for any float32 implementation.

# %%
for record in steps_records:
    print(format_table(record), end="\n\n")

# %% [markdown]
# On the GPU, TF32 products move $x(T)$ by about $10^{-2}$ and bf16 products by about $10^{-1}$,
# against $10^{-5}$ between float32 and float64, for little or no gain: neither is used. The graph
# is what pays. On the CPU the engine gains less at $N = 784$ than at $N = 196$: there the matrix
# products, which no implementation avoids, take most of a step (compare `gemm-floor`), and the
# linear solve that builds $A$ and the element-wise work share the rest.
#
# Cost against $N$: per step, the products grow as $N^2$; at small $N$ the fixed cost of launching
# kernels dominates, which is why the CUDA graph helps most there.

# %%
scaled = [r for r in steps_records if r["scaling"]]
fig, axes = plt.subplots(1, len(scaled), figsize=(5.5 * len(scaled), 3.8), squeeze=False)
for ax, record in zip(axes[0], scaled):
    plot_scaling(record, ax)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Whole runs
#
# The paper-profile records say how long real runs took. The paper reports 7 s per MNIST epoch on
# two RTX A5500 GPUs (its Table 6); the records below give the time per epoch and per run on one
# H100.
#
# The from-scratch and MLP runs had the GPU to themselves. The encoder and IMDB runs did not:
# `benchmarks/gpu_background.sh` trained three or four of them at once on the one H100 (the
# CNN chain, the flower runs, the IMDB arms), so their seconds per epoch are upper bounds, not
# measurements of one run's speed. A softmax twin's times include the stage 1 it shares with its
# Wilson-Cowan run. The seed-0 runs of the $N = 196$ scaling rows shared the H100 as well and,
# when its time ran out, were finished from their checkpoints on a 2-core CPU: their times are
# given per session. The other scaling runs were trained on that CPU from the start, one thread
# each.

# %%
for r in sorted(load_records(ROOT / "results"), key=lambda r: r["experiment"]):
    if r["profile"] != "paper":
        continue
    print(
        f"{r['experiment']:16s} {pace_text(r)}, "
        f"{r['wall_time_s'] / 60:.1f} min in all, engine {r.get('engine')}, "
        f"CUDA graph {r.get('cuda_graph')}"
    )

# %% [markdown]
# `nvidia-smi` sampled every 5 s during these runs shows the GPU busy (a kernel running) nearly all
# the time; the low fraction of the FLOP/s peak in the table above says the kernels themselves are
# small for an H100.

# %%
for log in sorted((ROOT / "benchmarks" / "results").glob("*utilisation*.csv")):
    busy = [
        int(line.split(",")[1].strip().rstrip(" %"))
        for line in log.read_text().splitlines()
        if line.strip()
    ]
    running = [b for b in busy if b > 0]
    print(f"{log.name}: median utilisation {sorted(running)[len(running) // 2]} % "
          f"over {len(running)} samples")

# %% [markdown]
# ## Many models at once: ensembles
#
# One paper model leaves a large GPU mostly idle: a $200 \times 784$ by $784 \times 784$ product is
# far too small to fill it. The paper's numbers, though, are means over five runs, and its scaling
# grid and ablations add dozens more. `wcbook` therefore trains the seeds of an experiment
# together, as one *ensemble* (`wcbook.ensemble.Ensemble`): every parameter of the $S$ members is
# stacked on a leading member axis, and `torch.func.vmap` runs a member's own forward pass, loss and
# regulariser for all of them at once. Inside, the engine sees states of shape $(S, B, N)$ and
# coupling matrices $(S, N, N)$, so each Euler step is one batched product over the members, and on
# a GPU the whole ensemble step is one CUDA graph.
#
# Nothing mixes the members. The loss is the sum over members of each member's own batch mean, so
# member $k$ receives exactly the gradient of its own run; Adam's update is element-wise, so its
# stacked state gives each member its own trajectory; each member draws its own permutation of the
# data every epoch from a generator seeded with its seed. In float64, member $k$ of an ensemble of
# three follows the single run of seed $k$ to within $10^{-10}$ (relative) for five optimiser steps
# (`tests/test_ensemble.py`). A member whose loss turns NaN is frozen at its last good epoch and
# recorded as diverged; the others go on, bit for bit as they would have. `python -m wcbook run
# mnist-scratch --profile paper --seeds 5` trains the five seeds this way; each record names the
# ensemble it trained in (`ensemble`: size, seeds, the ensemble's wall time) and takes its share of
# the wall time.
#
# The ensemble benchmark (`python -m wcbook bench --ensemble`) measures seconds per model and paper
# epoch (300 steps of batch 200, 25 Euler steps, forward and adjoint, Adam) for ensembles of
# several sizes and, in the same run, for the plain alternative: as many separate processes
# sharing the device. A CPU is already busy with one model: there the ensemble has nothing to gain,
# and the CPU records below show it slower per model than separate processes (its batched
# products and element-wise passes over $(S, B, N)$ blocks use the two cores less well than two
# processes do), which is why `--ensemble auto` trains the seeds one at a time on a CPU. The gain
# it is built for is on a GPU, where one model fills a few per cent of the device; the GPU record
# will sit beside these once a GPU has run the benchmark.

# %%
from wcbook.bench_ensemble import SCHEMA as ENSEMBLE_SCHEMA
from wcbook.bench_ensemble import ensemble_table, plot_throughput
from wcbook.tables import frame, styled

latest = {}
for r in [r for r in bench if r.get("schema") == ENSEMBLE_SCHEMA]:
    latest[r["provenance"]["device_name"]] = r  # the newest record of each device
for name, r in latest.items():
    prov = r["provenance"]
    print(f"{name}: commit {prov['commit'][:8]}, {prov['threads']} threads, "
          f"{r['workload']['timed_steps']} timed steps per row (median)")

# %% tags=["nbval-ignore-output"]
columns = ["N", "matmul", "S", "ensemble s/model-epoch", "processes s/model-epoch", "speed-up"]
for name, r in latest.items():
    rows = [[row[c] for c in columns] for row in ensemble_table(r)]
    slug = "ensemble-" + "-".join("".join(c if c.isalnum() else " " for c in name).split())
    display(styled(frame(rows, columns), slug.lower(), numeric=columns[3:],
                   caption=f"{name}: seconds per model and paper epoch, ensemble vs processes"))

# %% [markdown]
# The processes rows of a CPU say what a CPU gains from instead: per size, how many models two
# processes of one thread each train per hour against one process on every thread (the rows $S = 2$
# and $S = 1$ of the processes column).

# %%
from wcbook.campaign import processes_slowdowns

for name, r in latest.items():
    if r["provenance"]["device"] == "cpu":
        gains = sorted(processes_slowdowns(r, 2).items())
        print(f"{name}, two one-thread processes against one of {r['provenance']['threads']} "
              "threads: " + ", ".join(f"N = {n}: {2 / slow:.2f} times the models per hour"
                                      for n, slow in gains))

# %% [markdown]
# On both 2-core CPUs, two one-thread processes train more models per hour than one process on
# both threads: most at the smallest size, whose products are too small to keep two threads busy,
# least at $N = 784$. On a CPU, the option `--workers 2` of the package's command line trains
# runs that way, two side by side, and prices each run by these rows.

# %% [markdown]
# Figure: model-epochs per second against the number of models trained at once, for ensembles
# (solid) and separate processes (dashed), from the newest ensemble benchmark record of each
# device (the paper workload of `mnist-scratch`, float32 products).

# %%
fig, axes = plt.subplots(1, max(len(latest), 1), figsize=(6 * max(len(latest), 1), 4),
                         squeeze=False)
for ax, (name, r) in zip(axes[0], latest.items()):
    plot_throughput(r, ax)
    ax.set_title(name, fontsize="small")
fig.tight_layout();

# %% [markdown]
# ## Adam on a CPU: loop, foreach or fused
#
# The encoders' stage 1 takes many small steps (batch 10, 6,000 a paper epoch), where the update
# itself is a fair share of a step. PyTorch's Adam can update the parameters one tensor at a time,
# with one multi-tensor kernel per operation (`foreach`), or in one fused kernel; the three agree
# up to float rounding. The training loop steps the fused one on a CPU
# (`wcbook.kinds.adam_options`). `python -m wcbook bench --optimizer fashion-cnn-softmax` times
# the loop's own step (forward, loss, backward, Adam) of that experiment's stage 1 on real
# training images with each implementation, in interleaved rounds so that a machine whose speed
# drifts slows the three alike, and takes each ratio to the for-loop within a round (`--stage 2`
# times the second stage instead: batch 200, through the dynamics):

# %%
from wcbook.bench_optimizer import SCHEMA as OPTIMIZER_SCHEMA
from wcbook.bench_optimizer import optimizer_table

optimizer_records = [r for r in bench if r.get("schema") == OPTIMIZER_SCHEMA]
for r in optimizer_records:
    work, prov = r["workload"], r["provenance"]
    print(f"{prov['device_name']}: {work['experiment']} stage {work['stage']}, batch "
          f"{work['batch']}, commit {prov['commit'][:8]}, {prov['threads']} threads, "
          f"{work['rounds']} rounds of {work['timed_steps']} steps; the three take the same step "
          f"(largest difference after one step below 1e-6): {r['agree'] < 1e-6}")

# %% tags=["nbval-ignore-output"]
columns = ["Adam", "step ms", "ratio to for-loop", "ratio range", "epoch s"]
for r in optimizer_records:
    work, prov = r["workload"], r["provenance"]
    rows = [[row["Adam"], f"{row['step ms']:.2f}", f"{row['ratio to for-loop']:.3f}",
             row["ratio range"], f"{row['epoch s']:.1f}"] for row in optimizer_table(r)]
    name = f"optimizer-stage{work['stage']}-{prov['started_utc'][:10]}"
    display(styled(frame(rows, columns), name,
                   numeric=["step ms", "ratio to for-loop", "epoch s"],
                   caption=f"{work['experiment']}, stage {work['stage']} step on "
                           f"{prov['device_name']}: median over rounds (epoch s: the steps of "
                           "one paper epoch alone)"))

# %% [markdown]
# The fused kernel does in one pass over each parameter what the loop does in several small
# element-wise operations per tensor; `foreach` only groups those operations across tensors. The
# column *epoch s* counts the steps alone: a training epoch also shuffles, evaluates and waits on
# a shared machine whose speed is not constant, so the records' seconds per epoch run higher.

# %% [markdown]
# ## Running it yourself
#
# ```bash
# python -m wcbook bench                  # full step benchmark on the device present
# python -m wcbook bench --quick          # a quick check: fewer repeats
# python -m wcbook bench --training mnist-scratch --profile paper --epochs 3
# python -m wcbook run mnist-scratch --profile paper --engine compiled
# python -m wcbook bench --ensemble      # ensembles against separate processes
# python -m wcbook bench --optimizer fashion-cnn-softmax   # Adam: for-loop, foreach, fused
# python -m wcbook bench --optimizer mnist-cnn --stage 2    # the same in a stage with dynamics
# python -m wcbook run mnist-scratch --profile paper --seeds 5   # five seeds, one ensemble
# torchrun --nproc_per_node=gpu -m wcbook run mnist-scratch --profile paper --seeds 5
# torchrun --nproc_per_node=2 -m wcbook run mnist-scratch --profile paper --data-parallel
# ```
