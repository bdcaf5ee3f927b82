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
# # Appendix: ablations (App. E) and the text-versus-code variants
#
# The paper's App. E removes one ingredient at a time on MNIST:
#
# * **`ablation-unstable`**: the trainable eigenvalues forced outside the stable region. The paper
#   says only that the optimisation "becomes infeasible".
# * **`ablation-learned-planted`**: the $K$ planted eigenvectors are learned instead of fixed to the
#   span of the targets (their eigenvalues stay 0, the targets keep their structure); paper 97.83%.
#   As registered they start at random and train at lr 0.1; the variant `planted-span` starts them
#   in the targets' span and trains them at lr $10^{-4}$ (below).
# * **`ablation-not-in-kernel`**: the planted eigenvectors stay fixed but their eigenvalue is 0.1,
#   so the targets leave the kernel of $A$; paper 97.28%.
#
# Each is an entry of the registry (`wcbook.experiments`) that switches one keyword-only option of
# the model (`model_options`); with no option set the model is the paper's. The records below were
# made with `python -m wcbook appendix ablations --profile smoke --publish` (14x14 images, 4000 training
# images, 50 epochs; the unstable ablation for seeds 0-2) and again with `--profile midscale`
# (14x14, all 60000 training images, 20 epochs: six times the Adam steps, on a 2-core CPU; the
# code default for seeds 0 and 1, whose difference is the seed spread). Neither is the paper's
# scale. A run that diverges is recorded with `status: "diverged"`, where it happened and the
# epochs before, instead of stopping the script.

# %%
# %matplotlib inline
import dataclasses
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display

from wcbook.appendix import (
    ABLATION_COLUMNS,
    VARIANT_COLUMNS,
    ablation_rows,
    run_records,
    variant_rows,
)
from wcbook.certificate import certify, flow_gain
from wcbook.experiments import EXPERIMENTS, PROFILES, get_experiment, resolve
from wcbook.kinds import rate_groups
from wcbook.models import unstable_mu
from wcbook.params import WCParams
from wcbook.tables import frame, styled
from wcbook.training import load_data
from wcbook.weights import load_weights

torch.set_num_threads(1)
ROOT = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "pyproject.toml").exists())


def record(name, profile="smoke", seed=0):
    path = ROOT / "results" / name / profile / f"seed{seed}.json"
    return json.loads(path.read_text()) if path.exists() else None


ABLATIONS = ("ablation-unstable", "ablation-learned-planted", "ablation-not-in-kernel")
for name in ABLATIONS:
    print(f"{name}: {EXPERIMENTS[name].description}\n")

# %% [markdown]
# ## The records

# %%
for profile in ("smoke", "midscale"):
    print(f"{profile}: {PROFILES[profile].description}")
    display(styled(frame(ablation_rows(profile, ROOT / "results"), ABLATION_COLUMNS),
                   f"ablations-{profile}", caption=f"{profile} profile, seed 0",
                   numeric=["epochs", "test acc", "train acc", "gamma", "paper"]))

# %% [markdown]
# ## Forcing the eigenvalues out: what happens
#
# `force_unstable=True` writes every trainable eigenvalue as $\lambda = \lambda_{\min} +
# \mathrm{softplus}(\theta)$ with $\Gamma\lambda_{\min}$ the larger of the two per-mode stability
# edges, so no mode is stable for either node state, whatever $\theta$ becomes. They start one unit
# of $\mu$ above that floor (the paper's model starts one unit below zero).

# %%
floor = unstable_mu(WCParams())
print(f"floor of mu = Gamma * lambda: {floor:.3f}\n")
for path in sorted((ROOT / "results" / "ablation-unstable" / "smoke").glob("seed*.json")):
    r = json.loads(path.read_text())
    h = r["history"]
    print(f"seed {r['seed']}: {r.get('status', 'finished')}", end="")
    if r.get("status") == "diverged":
        print(f" in epoch {r['diverged_at']['epoch']}"
              + (f", step {r['diverged_at']['step']}" if r["diverged_at"]["step"] else "")
              + ": " + r["message"].split(": ", 2)[-1].split(". Try")[0])
    else:
        print(f", test accuracy {r['metrics']['test_accuracy']:.4f}")
    for epoch, (loss, acc) in enumerate(zip(h.get("loss", []), h.get("train_accuracy", [])), 1):
        print(f"    finished epoch {epoch}: loss {loss:.5f}, train accuracy {acc:.4f}, "
              f"gamma {h['gamma'][epoch - 1]:.3f}")
print(f"\nthe stable model (mnist-scratch) after its first epoch: loss "
      f"{record('mnist-scratch')['history']['loss'][0]:.5f}, after its last "
      f"{record('mnist-scratch')['history']['loss'][-1]:.5f}")

# %% [markdown]
# The planted targets are no longer attractors. The certificate (appendix chapter on stability)
# of the freshly initialised ablation model says so under both criteria:

# %% tags=["nbval-ignore-output"]
config = resolve(get_experiment("ablation-unstable"), "smoke")
forced = config.build_model(seed=0)
cert = certify(forced, noise_levels=(0.01,), samples=5)
print(f"per-mode max Re {cert.per_mode_max_real:+.3f}, full-Jacobian max Re {cert.max_real:+.3f}, "
      f"perturbed targets (noise 0.01) that return: {cert.basins[0].returned:.2f}")

# %%
print("unstable by the per-mode criterion:", not cert.per_mode_stable)
print("unstable by the full Jacobian:", not cert.full_stable)
print("no perturbed target returns:", cert.basins[0].returned == 0.0)

# %% [markdown]
# Why the loss becomes NaN rather than the accuracy merely staying low: the states cannot blow up
# ($0 \le x, y \le 1$ is invariant under the dynamics), but their *sensitivities* can. Along an
# unstable mode a perturbation grows like $e^{s t}$, and backpropagation through the 25 Euler steps
# multiplies the gradient by the same factor. At a planted target that factor is exact: the
# linearised Euler map over the training horizon is $(I + \Delta t\, J)^{25}$, with $J$ the full
# Jacobian of the certificate, and its largest singular value (`wcbook.certificate.flow_gain`,
# the largest over the targets) is the most it multiplies a perturbation, or a gradient on the
# way back. For the freshly initialised models of both set-ups:

# %%
gains = {name: flow_gain(resolve(get_experiment(name), "smoke").build_model(seed=0),
                         T=config.T_train, dt=config.dt)
         for name in ("mnist-scratch", "ablation-unstable")}
for name, gain in gains.items():
    print(f"{name:18s} over T = {config.T_train:g} ({round(config.T_train / config.dt)} Euler steps) "
          f"a perturbation at a target grows by at most {gain:.2g}")
print("the paper's model shrinks every perturbation at its targets (gain < 0.1):",
      gains["mnist-scratch"] < 0.1)
print("the forced-unstable model multiplies some by over 10:", gains["ablation-unstable"] > 10)

# %% [markdown]
# Away from the targets, and once Adam has moved the parameters, the factor is no longer fixed:
# it compounds with the conditioning of $\Phi$ and with wherever the states are. Replaying the
# first 30 Adam steps of both models on the same batches (a plain loop, not the recorded run) and
# printing the gradient norm of the trainable eigenvectors and the condition number of $\Phi$:

# %%
profile = PROFILES["smoke"]
train_data, _ = load_data(config, profile, torch.device("cpu"))


def replay(name, steps=30):
    cfg = resolve(get_experiment(name), profile)
    torch.manual_seed(0)
    model = cfg.build_model(seed=0)
    model.engine = "autograd"
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    order = torch.randperm(len(train_data), generator=torch.Generator().manual_seed(0))
    norms, conds, losses = [], [], []
    for step in range(steps):
        index = order[step * 200 % len(train_data):][:200]
        loss = model.loss(model(train_data.images[index]), train_data.labels[index])
        optimizer.zero_grad()
        (loss + model.penalty()).backward()
        norms.append(float(model.network.coupling.phi_free.grad.norm()))
        optimizer.step()
        losses.append(loss.item())
        conds.append(float(torch.linalg.cond(model.network.coupling.phi().detach())))
    return np.array(norms), np.array(conds), np.array(losses)


runs = {name: replay(name) for name in ("mnist-scratch", "ablation-unstable")}
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for name, (norms, conds, _) in runs.items():
    axes[0].semilogy(np.arange(1, len(norms) + 1), norms, label=name)
    axes[1].semilogy(np.arange(1, len(conds) + 1), conds, label=name)
axes[0].set(xlabel="Adam step", ylabel="|dL/d phi_free|", title="gradient of the eigenvectors")
axes[1].set(xlabel="Adam step", ylabel="cond(Phi)", title="conditioning of the eigenbasis")
axes[0].legend(fontsize=8)
fig.suptitle("mnist-scratch and ablation-unstable, profile smoke, seed 0: the first 30 Adam steps "
             "replayed", fontsize=9)
fig.tight_layout()
plt.show()

# %% tags=["nbval-ignore-output"]
for name, (norms, conds, losses) in runs.items():
    print(f"{name:18s} largest gradient norm {norms.max():.2e}, cond(Phi) after 30 steps "
          f"{conds[-1]:.2e}, mean loss {losses.mean():.4f}")

# %% [markdown]
# In the replay the gradient of the forced-unstable model spikes far above the paper's model's,
# while the conditioning of $\Phi$ fluctuates in both runs. How far and at which step is itself
# chaotic: the same 30 steps on other CPUs, or with another number of threads, put the largest
# spike anywhere from two to nearly seven orders of magnitude above the stable model's largest
# gradient (the norms printed above are those of the machine that built this page). A spike moves
# every parameter it touches by up to a few learning rates, in whatever direction it points, and
# fills Adam's second-moment estimate so that the steps after it shrink. In the recorded runs
# above one such step ends the training within the first epoch, with a NaN loss or with $\gamma$
# driven below zero; which one, and when, changes from seed to seed: the failure is certain, its
# form is chaotic. The stability region is what keeps the backward pass bounded: near the paper's
# attractors every direction contracts (the gain below 1 above), so the gradient through 25 steps
# stays small.
#
# ## The planted eigenvectors learned
#
# With the planted columns trainable from a random start, $A T_k \ne 0$: the targets are not fixed
# points any more until training rotates $K$ columns of $\Phi$ onto their span. The residual
# $\max|G(T_k, y^*)|$ at initialisation, against the paper's model:

# %% tags=["nbval-ignore-output"]
residuals = {}
for name in ("mnist-scratch", "ablation-learned-planted", "ablation-not-in-kernel"):
    model = resolve(get_experiment(name), "smoke").build_model(seed=0).network
    with torch.no_grad():
        x, y = model.target_state(torch.arange(model.n_classes))
        dx, dy = model.rhs(x, y)
    residuals[name] = float(torch.cat([dx, dy]).abs().max())
    print(f"{name:26s} max |G| at the targets {residuals[name]:.2e}")

# %%
print("paper's model: targets are fixed points (|G| < 1e-5):", residuals["mnist-scratch"] < 1e-5)
print("learned planted vectors: far from it (|G| > 1e-2):", residuals["ablation-learned-planted"] > 1e-2)
print("eigenvalue 0.1: slightly off (1e-5 < |G| < 1e-2):",
      1e-5 < residuals["ablation-not-in-kernel"] < 1e-2)

# %% [markdown]
# ### What training does to the planted columns
#
# Every run of a model with learned planted columns records, after each epoch, two numbers
# (`SpectralCoupling.planted_alignment`): the smallest cosine of the principal angles between the
# $K$ planted columns and the span of the targets (1 when the columns span the targets' span
# exactly), and the largest $\|A T_k\| / \|T_k\|$ over the targets (0 when every target lies in
# the kernel of $A$, as in the paper's model). Two set-ups of the same ablation are compared:
#
# * **as registered** (`ablation-learned-planted`): the planted columns start as random
#   orthonormal directions and train at the paper's lr 0.1 with everything else;
# * **`planted-span`** (a variant): the planted columns start as the orthonormal basis of the
#   targets' span, that is the paper's fixed columns made trainable, and train at lr $10^{-4}$
#   in their own optimiser group while everything else keeps lr 0.1.
#
# The paper says the model "was able to construct these eigenvectors". From a random start
# nothing in the loss points the columns at the targets' span: the cosine stays near that of two
# random $K$-dimensional subspaces of $\mathbb R^N$. Starting in the span is the natural reading of
# learning the planted columns of the paper's model, but at lr 0.1 one Adam step moves every entry
# of a column by about 0.1, against entries of size $1/\sqrt N pprox 0.07$ of a unit column
# ($N = 196$). One step from the span start on the first batch of the smoke data, at the paper's
# rate and at the variant's:

# %% tags=["nbval-ignore-output"]
def one_step(planted_lr):
    """Diagnostics before and after one Adam step from the span start, planted columns at
    ``planted_lr``, everything else at the experiment's rate."""
    cfg = resolve(get_experiment("ablation-learned-planted", "planted-span"), profile)
    cfg = dataclasses.replace(cfg, model_options={**cfg.model_options, "planted_lr": planted_lr})
    model = cfg.build_model(seed=0)
    params = dict(model.named_parameters())
    groups = [{"params": [params[n] for n in names], **settings}
              for names, settings in rate_groups(model, list(params))]
    optimizer = torch.optim.Adam(groups, lr=cfg.lr)
    before = model.network.diagnostics()
    images, labels = train_data.images[:200], train_data.labels[:200]
    (model.loss(model(images), labels) + model.penalty()).backward()
    optimizer.step()
    return before, model.network.diagnostics()


steps = {lr: one_step(lr) for lr in (0.1, 1e-4)}
for lr, (before, after) in steps.items():
    print(f"planted lr {lr:g}: smallest cosine {before['planted_cosine_min']:.4f} -> "
          f"{after['planted_cosine_min']:.4f}, largest ||A T_k||/||T_k|| "
          f"{before['target_residual_max']:.2e} -> {after['target_residual_max']:.2e}")

# %%
(_, fast), (_, slow) = steps[0.1], steps[1e-4]
print("after one step at lr 0.1 the columns have left the span (cosine < 0.5):",
      fast["planted_cosine_min"] < 0.5)
print("after one step at lr 1e-4 they have not (cosine > 0.999):", slow["planted_cosine_min"] > 0.999)

# %% [markdown]
# Both set-ups were trained under the `midscale` profile (14x14 images, all 60000 training
# images, 20 epochs of batch 200: 6000 Adam steps, not the paper's scale), with
# `python -m wcbook run ablation-learned-planted --profile midscale --publish` and the same with
# `--variant planted-span`; the code default of the same profile is beside them. The curves are
# the recorded diagnostics, epoch by epoch.

# %%
SETUPS = {"as registered": None, "planted-span": "planted-span"}
planted_runs = {label: run_records("ablation-learned-planted", "midscale", variant, ROOT / "results")
                for label, variant in SETUPS.items()}
rows = [(label, r["seed"], r["metrics"]["test_accuracy"], r["history"]["planted_cosine_min"][-1],
         r["history"]["target_residual_max"][-1], r["metrics"]["gamma"],
         "yes" if r["stability"]["full_stable"] else "no")
        for label, records in planted_runs.items() for r in records]
rows += [("code default (fixed columns)", r["seed"], r["metrics"]["test_accuracy"], 1.0, 0.0,
          r["metrics"]["gamma"], "") for r in run_records("mnist-scratch", "midscale", None, ROOT / "results")]
seeds_text = ", ".join(f"{label}: seeds {', '.join(str(r['seed']) for r in records)}"
                       for label, records in planted_runs.items())
display(styled(
    frame([(a, b, f"{c:.4f}", f"{d:.4f}", f"{e:.3g}", f"{f:.3f}", g) for a, b, c, d, e, f, g in rows],
          ("set-up", "seed", "test acc", "smallest cosine", "max ||A T_k||/||T_k||", "gamma",
           "targets stable (full Jacobian)")),
    "learned-planted-midscale",
    caption=f"ablation-learned-planted, midscale profile ({seeds_text}); last epoch",
    numeric=["seed", "test acc", "smallest cosine", "max ||A T_k||/||T_k||", "gamma"]))

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for (label, records), colour in zip(planted_runs.items(), ("tab:red", "tab:blue")):
    for r in records:
        h = r["history"]
        epochs = np.arange(1, len(h["loss"]) + 1)
        axes[0].plot(epochs, h["planted_cosine_min"], color=colour,
                     label=f"{label}, seed {r['seed']}")
        axes[1].semilogy(epochs, h["target_residual_max"], color=colour,
                         label=f"{label}, seed {r['seed']}")
axes[0].set(xlabel="epoch", ylabel="smallest principal-angle cosine",
            title="planted columns vs the targets' span")
axes[1].set(xlabel="epoch", ylabel="max ||A T_k|| / ||T_k||", title="targets off the kernel of A")
axes[0].legend(fontsize=8)
fig.suptitle(f"ablation-learned-planted, midscale profile (N = 196), {seeds_text}", fontsize=9)
fig.tight_layout()
plt.show()

# %%
literal, span = planted_runs["as registered"], planted_runs["planted-span"]
default = record("mnist-scratch", "midscale")
print("as registered: the columns never come near the span (cosine < 0.2 at every epoch):",
      all(max(r["history"]["planted_cosine_min"]) < 0.2 for r in literal))
print("as registered: the targets end far off the kernel of A (max ||A T_k||/||T_k|| > 1):",
      all(r["history"]["target_residual_max"][-1] > 1 for r in literal))
print("planted-span: the columns stay in the span (cosine > 0.99 at every epoch):",
      all(min(r["history"]["planted_cosine_min"]) > 0.99 for r in span))
print("planted-span: every seed learns (> 0.5):", all(r["metrics"]["test_accuracy"] > 0.5 for r in span))
print("both set-ups below the code default with fixed columns:",
      all(r["metrics"]["test_accuracy"] < default["metrics"]["test_accuracy"] for r in literal + span))

# %% [markdown]
# Since neither set-up keeps exact fixed points, the horizon at which the states are read
# matters: a state near a target at the training horizon $T = 2.5$ can drift on over the 400
# evaluation steps ($T = 40$) of the code's test. The seed-0 models of both set-ups are exported
# (`models/ablation-learned-planted*/midscale/`); the first 2000 test images, read at both
# horizons:

# %%
_, test_data = load_data(resolve(get_experiment("mnist-scratch"), "midscale"), PROFILES["midscale"],
                         torch.device("cpu"))
images, labels = test_data.images[:2000], test_data.labels[:2000]
horizons = {}
for label, variant in SETUPS.items():
    run = "ablation-learned-planted" + (f"+{variant}" if variant else "")
    model, _ = load_weights(run, "midscale", 0, ROOT / "models")
    horizons[label] = {T: float((model.predict(images, T=T) == labels).float().mean())
                       for T in (2.5, 40.0)}
    print(f"{label:14s} seed 0: test accuracy at T = 2.5 {horizons[label][2.5]:.4f}, "
          f"at T = 40 {horizons[label][40.0]:.4f}")

# %% [markdown]
# Read at the training horizon, both models score well above their $T = 40$ numbers, the span
# start most: its states sit near the targets at $T = 2.5$ and drift off them over the long
# evaluation. (The code default gains from the shorter horizon too, the `text-eval` comparison
# below.)
#
# As registered, the planted columns never come near the targets' span: their smallest cosine
# stays at the level of random directions through all 6000 steps, and the targets end far off
# the kernel of $A$, so they are not fixed points (the end-of-training certificate in the record
# does not find them stable attractors). The model can still learn: this seed sat on the chance plateau
# for some 14 epochs with $\gamma$ near 8, then left it and ended well above chance, while an
# earlier run of the same configuration and seed (another thread count) stayed at chance for all
# 20 epochs. Leaving the plateau at lr 0.1 is chaotic ({doc}`A5_performance`); what it learns
# then is a transient, with the deciding states near the targets at the horizon rather than on
# attractors. Nothing in these runs constructs the eigenvectors.
#
# Started in the targets' span with a small learning rate, the columns stay there (the cosine
# falls only slowly, to about 0.99), and the model learns from the first epochs, but not as well
# as with the columns fixed: the residual $\|A T_k\|/\|T_k\|$ grows as the columns tilt, so
# each target is only approximately a fixed point. Neither set-up reaches the code default here,
# let alone the paper's 97.83%; whether the paper's 350 epochs close the gap is what the
# paper-profile runs of both set-ups will show (both are among the records the paper profile
# lists as needed).

# %% [markdown]
# ## Paper text versus the authors' code
#
# `wcbook.experiments.VARIANTS` names each place where the text and the code disagree; every
# variant of `mnist-scratch` was trained under the smoke profile
# (`python -m wcbook appendix variants --profile smoke --publish`, records
# `results/mnist-scratch+<variant>/smoke/`) and, except `text-epochs`, under `midscale`. Neither
# can reproduce the paper's 98.13%, so the tables compare each variant with the code-default run of
# the same profile (`wcbook.appendix.variant_rows`), and list the paper-profile record where one
# exists.
#
# A variant counts as different only beyond the spread of the default configuration itself. Under
# the smoke profile `text-epochs` trains the same 50 epochs as the default (the profile caps the
# epochs): it is the default configuration run again, one thread, with the variants, and its gap to
# the stored default record (made earlier with two threads) measures how far floating-point
# differences alone move a smoke run. Under `midscale` the spread is that between the default's
# seeds 0 and 1.

# %%
for profile in ("smoke", "midscale"):
    spread, rows = variant_rows(profile, ROOT / "results")
    display(styled(frame(rows, VARIANT_COLUMNS), f"variants-{profile}",
                   caption=f"{profile} profile, seed 0: {spread}",
                   numeric=["T", "T_eval", "ortho", "test acc", "gamma"]))
print(f"paper (Table 2): {get_experiment('mnist-scratch').reference['test_accuracy']}")

# %%
# the default configuration's run beside text-eval: under smoke its text-epochs re-run
for profile, same_run in {"smoke": "mnist-scratch+text-epochs", "midscale": "mnist-scratch"}.items():
    eval_run = record("mnist-scratch+text-eval", profile)["metrics"]
    other = record(same_run, profile)["metrics"]
    print(f"{profile}: text-eval and {same_run} trained the same model (same final loss and gamma):",
          (eval_run["train_loss"], eval_run["gamma"]) == (other["train_loss"], other["gamma"]))
    print(f"{profile}: on it, evaluating at T = 2.5 scores higher than at T = 40:",
          eval_run["test_accuracy"] > other["test_accuracy"])

# %% [markdown]
# At smoke scale the spread swamps most differences: the default configuration run twice differs
# by several points. At `midscale` the two seeds of the default agree to about a tenth of a point
# (one pair of seeds, so a rough floor on the spread), and the variants separate. The text's
# $1/N$ coupling (`text-coupling`) costs the most of any single reading there, all of the text's
# choices together (`text`) cost more still, and the text's training horizon alone (`text-T`) and
# dropping the regulariser (`no-ortho`) cost less. Evaluating at the training horizon (`text-eval`)
# scores higher than the code's 400 evaluation steps on the very same trained model, at both
# scales, the effect the training chapter shows for the evaluation horizon. No run here is at the
# paper's scale, and the only paper-profile record is the code default's: which readings reproduce
# the paper's 98.13% needs the paper-profile runs of each variant, on a GPU.
