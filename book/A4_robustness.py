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
# # Appendix: are the attractors robust, and does the dynamics matter?
#
# Attractor networks are often credited with robustness: an input pushed a little should still
# flow into the basin it started in. The paper does not test this, nor whether the classification
# needs the dynamics at all: the readout $d_k = \|x - T_k\|^2 / (\|x\|\,\|T_k\|)$ could be applied
# to the image itself. This appendix measures both, for the Wilson-Cowan network trained from
# scratch, for the MLP baseline of Table 2, for the CNN of Table 3 (the paper's CNN encoder and
# dense head, whose output $z$ is the initial state of a Wilson-Cowan layer of $N = 784$ nodes) and
# for its softmax twin (the same encoder and head with a linear softmax classifier where the
# Wilson-Cowan layer would be), on the same test images under the same perturbations:
#
# - **Gaussian pixel noise** of standard deviation $\sigma \in \{0, 0.1, 0.2, 0.3, 0.5\}$, clipped
#   to $[0, 1]$;
# - **occlusion**: one square patch per image, at a random place, set to 0. The sides 4, 8, 12, 16
#   pixels refer to $28\times 28$ images, which the two CNN models see; the Wilson-Cowan network and the
#   MLP see $14\times 14$ images, so for them the sides are scaled by $14/28$ to 2, 4, 6, 8 pixels
#   (the same fraction of the image). The tables and plots give the side on the $28\times 28$ scale;
# - **white-box $L_\infty$ attacks**, FGSM and PGD (20 steps of size $2.5\,\epsilon/20$ from a
#   random start), on the cross-entropy of the model's class probabilities (the paper's $q_k$ for
#   the Wilson-Cowan models, the softmax for the MLP and the CNN twin). For the Wilson-Cowan models the
#   gradient runs through the explicit Euler integration itself (the hand-derived adjoint of the
#   training engine, chapter 4), behind the CNN also through the encoder, and an image counts as
#   fooled when the class read at the evaluation horizon $T_\text{eval}$ changes (40 for the
#   network on pixels; $T_\text{train} = 3.5$ for the CNN, whose experiment evaluates where it
#   trains);
# - the **smallest PGD radius** that changes the class of each image, found by bisection: its
#   histogram shows how large the basins are around the test images;
# - the **evaluation horizon**: accuracy of the readout applied to $x(T)$ for $T$ from 0 (the image
#   itself, or behind the CNN its output $z$) to 40, and the fraction of states that have reached a
#   planted target (within 10% of the smallest distance between two targets).
#
# The Wilson-Cowan network and the MLP are seed 0 of the **midscale profile**: $14\times 14$
# images ($N = 196$), all 60000 training images, 20 epochs. The two CNN models are seed 0 of the
# **midscale-encoded profile**: the paper's CNN on the full $28\times 28$ images (its encoder is
# built for them), all 60000 training images, stage 1 (encoder and head fitted to the planted
# targets) for 1 epoch of batch 10 instead of the paper's 35, stage 2 (everything, through the
# dynamics or the softmax) for 5 epochs of batch 200 instead of 70. Both start from the same seed
# (the same initialisation and order of the data in stage 1, which does not involve the readout),
# so they differ in what reads $z$ and in what stage 2 made of that. The CNN needs no GPU, but its schedule is what
# makes it slow on a CPU: every stage-1 epoch is 6000 Adam steps of batch 10, each updating the
# whole dense head (the parameter count is printed below), so the paper's 35 stage-1 epochs alone
# are 210000 such steps. The training table below gives the paces this run measured, on a CPU that
# other jobs were sharing at the time, and what the paper's schedule would take at them. None of
# this is the paper's scale; the numbers say how these models behave, not how the paper's models
# would.
#
# The comparison of the CNN models with the other two is like for like in the test images (the same
# 10000, the attacks on the same first 1000), the levels of every perturbation and the seeds that
# draw them; it is not in the pixels: the CNNs see each image at $28\times 28$ and the other two at
# $14\times 14$, so a noise draw of the same $\sigma$ covers four times as many pixels, and an
# $L_\infty$ radius $\epsilon$ allows more total change. Between the two CNN models it is like for
# like in everything but the readout: that pair answers whether the dynamics adds or removes
# robustness behind the same encoder. Where a model's record is missing, the commands that make it
# are printed in its place.
#
# Every number comes from the records `robustness/<run>/<profile>/seed0.json`, written by
# `python -m wcbook robustness <run> --profile <profile> --publish`, from the weights in `models/`
# for the two $14\times 14$ models. The CNN models' weights exceed the 3 MiB a committed model may
# take (their sizes are in the overview table), so `--export-from checkpoints` exported each whole
# model to the working folder (`~/.cache/wcbook/runs/models/`; of the Wilson-Cowan one, the
# dynamics part alone is also committed to `models/`, but an attack needs the encoder too); each
# record names its file, its size and its SHA-256, and says it is not committed. Without `--publish` the records go to the working folder too.

# %%
# %matplotlib inline
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display

from wcbook import robustness as rb
from wcbook.results import stage_paces

torch.set_num_threads(1)


def show(table, name, caption):
    """``table`` with a fixed HTML id (stable outputs for nbval), four decimals and a caption."""
    return table.style.set_uuid(f"a4-{name}").format(precision=4, na_rep="-").set_caption(caption)


ROOT = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "pyproject.toml").exists())
PROFILE, CNN_PROFILE, SEED = "midscale", "midscale-encoded", 0
WANTED = {  # data set -> model -> (run, profile)
    data: {
        "Wilson-Cowan": (f"{name}-scratch", PROFILE),
        "MLP": (f"{name}-mlp", PROFILE),
        "CNN softmax twin": (f"{name}-cnn-softmax", CNN_PROFILE),
        "CNN + Wilson-Cowan": (f"{name}-cnn", CNN_PROFILE),
    }
    for data, name in (("MNIST", "mnist"), ("Fashion-MNIST", "fashion"))
}
RUNS = rb.recorded_runs(WANTED, SEED, ROOT / "robustness")
for data, models in WANTED.items():
    for label, (run, profile) in models.items():
        if label not in RUNS[data]:
            print(f"{data}, {label}: no record yet; `python -m wcbook run {run} --profile {profile} "
                  f"--publish`, then `python -m wcbook robustness {run} --profile {profile} "
                  "--export-from checkpoints --publish`")
PAIRS = {data: (models["Wilson-Cowan"][0], models["MLP"][0]) for data, models in RUNS.items()}
records = {
    run: rb.load_record(run, profile, SEED, ROOT / "robustness")
    for models in RUNS.values() for run, profile in models.values()
}
LABEL = {run: label for models in RUNS.values() for label, (run, _) in models.items()}
STYLE = {"Wilson-Cowan": ("o-", "tab:blue"), "MLP": ("s--", "tab:orange"),
         "CNN softmax twin": ("^-.", "tab:red"), "CNN + Wilson-Cowan": ("D-", "tab:purple")}
CNNS = ("CNN softmax twin", "CNN + Wilson-Cowan")
WC_SCALE = f"{PROFILE} profile (14x14 images, 20 epochs), seed {SEED}"
SCALE = (f"seed {SEED}; WC and MLP: {PROFILE} profile (14x14 images, 20 epochs), "
         f"CNN models: {CNN_PROFILE} profile (28x28 images, 1 + 5 epochs)")

# %%
overview = pd.DataFrame(
    [{"data": data, "model": label, "run": run, "profile": profile,
      **rb.overview_row(records[run], ROOT)}
     for data, models in RUNS.items() for label, (run, profile) in models.items()]
).set_index(["data", "model"]).round(4)
overview.pipe(show, "overview",
    f"The evaluated models and their robustness records ({SCALE})")

# %% [markdown]
# The CNN models' training records (`results/<run>/midscale-encoded/seed0.json`): the mean pace
# over all epochs, the paces of the two stages (seconds per epoch, from the record's sessions: a
# record keeps one pace per session, so the stages are told apart only where a run was resumed
# between them, as the twins were), the whole wall time, what the paper's schedule would take at
# the stage paces, and the test accuracy after stage 1 (nearest target) and at the end.

# %%
training = {}
CNN_RUNS = {(data, label): models[label] for data, models in RUNS.items()
            for label in CNNS if label in models}
for (data, label), (run, profile) in CNN_RUNS.items():
    t = json.loads((ROOT / "results" / run / profile / f"seed{SEED}.json").read_text())
    stage1 = t["config"]["encoder_options"]["stage1_epochs"]
    pace = stage_paces(t, stage1)
    paper = rb.run_config(run, "paper")
    head = sum(p.numel() for p in paper.build_model(SEED).head.parameters())
    training[(data, label)] = {
        "run": run, "device": t["device"], "torch threads": t["torch_threads"],
        "epochs (stage 1 + 2)": f"{stage1} + {t['epochs']}",
        "stage 1 from": t.get("stage1_from") or "its own",
        "mean epoch (s)": sum((s["last_epoch"] - s["first_epoch"] + 1) * s["seconds_per_epoch"]
                              for s in t["sessions"]) / (stage1 + t["epochs"]),
        "stage-1 epoch (s)": pace[1], "stage-2 epoch (s)": pace[2],
        "wall time (h)": t["wall_time_s"] / 3600,
        "paper's 35 + 70 epochs at these paces (h)": (
            paper.encoder_option("stage1_epochs") * pace[1] + paper.epochs * pace[2]) / 3600,
        "dense head parameters (millions)": head / 1e6,
        "stage-1 test accuracy": t["metrics"]["stage1_test_accuracy"],
        "test accuracy": t["metrics"]["test_accuracy"],
    }
pd.DataFrame.from_dict(training, orient="index").round(4).pipe(show, "training",
    f"Training records of the CNN models, profile {CNN_PROFILE}, seed {SEED} (a CPU "
    "shared with other jobs: the paces are slower than the machine alone would give)")


# %% [markdown]
# ## Noise and occlusion

# %%
def curve(run, name, levels):
    result = records[run]["results"][name]
    return np.array(result[levels]), np.array(result["accuracy"])


def compare(name, levels, xlabel, title):
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, (data, models) in zip(axes, RUNS.items()):
        for label, (run, profile) in models.items():
            style, color = STYLE[label]
            ax.plot(*curve(run, name, levels), style, color=color, label=f"{label} ({run}, {profile})")
        ax.set(title=data, xlabel=xlabel, ylim=(0, 1))
        ax.legend(fontsize=7)
    axes[0].set_ylabel("test accuracy")
    fig.suptitle(f"{title}\n{SCALE}", fontsize=9)
    fig.tight_layout()
    plt.show()


compare("noise", "sigma", r"noise standard deviation $\sigma$", "Gaussian pixel noise");

# %%
compare("occlusion", "side_28", "patch side on the 28x28 scale (pixels; halved on 14x14 images)",
        "Occlusion by a zero patch");


# %%
def level_table(name, levels, label, caption):
    rows = {}
    for data, models in RUNS.items():
        for model, (run, profile) in models.items():
            xs, ys = curve(run, name, levels)
            rows[(data, model, profile)] = dict(zip([f"{label} {x:g}" for x in xs], ys))
    table = pd.DataFrame(rows).T.round(4)
    table.index.names = ["data", "model", "profile"]
    return show(table, f"{name}-levels", f"{caption}; {SCALE}")


level_table("noise", "sigma", "sigma", "Accuracy under Gaussian pixel noise")

# %%
level_table("occlusion", "side_28", "side", "Accuracy under occlusion (patch side on the 28x28 scale)")

# %% [markdown]
# ## White-box attacks through the dynamics
#
# The first question is which gradient to follow. The network is evaluated after 400 Euler steps
# ($T_\text{eval} = 40$), but it was trained to reach its targets by $T_\text{train}$ (2.5 for
# MNIST, 3.5 for Fashion-MNIST), and by $T = 40$ most states sit on an attractor, where the
# dynamics contracts every direction and the gradient of the loss with respect to the image becomes
# tiny and uninformative. The records hold both attacks: the main curves follow the gradient of the
# integration up to $T_\text{train}$, the check follows it through all 400 steps; both judge the
# class at $T_\text{eval}$.

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
for ax, (data, models) in zip(axes, RUNS.items()):
    for label, (run, _) in models.items():
        color = STYLE[label][1]
        results = records[run]["results"]
        for name, marker in (("fgsm", "o"), ("pgd", "s")):
            through = ", gradient through T_train" if rb.has_dynamics(records[run]) else ""
            ax.plot(*curve(run, name, "eps"), marker=marker, color=color,
                    ls="-" if name == "pgd" else ":", label=f"{label} {name.upper()}{through}")
        check = results.get("eval_gradient")
        if check:
            for name, marker in (("fgsm", "o"), ("pgd", "s")):
                ax.plot(check[name]["eps"], check[name]["accuracy"], marker=marker, mfc="none",
                        color="tab:green", ls="-" if name == "pgd" else ":",
                        label=f"{label} {name.upper()}, gradient through T_eval")
    ax.set(title=data, xlabel=r"$L_\infty$ radius $\epsilon$", ylim=(0, 1))
    ax.legend(fontsize=6)
axes[0].set_ylabel("accuracy under attack")
fig.suptitle(f"FGSM and PGD-20\n{SCALE}", fontsize=9)
fig.tight_layout();


# %%
def attack_table(name, caption):
    rows = {}
    for data, models in RUNS.items():
        for model, (run, _) in models.items():
            results = records[run]["results"]
            variants = [(model, results)]
            if results.get("eval_gradient"):
                variants[0] = (f"{model}, gradient through T_train", results)
                check = results["eval_gradient"]
                variants.append((f"{model}, gradient through T_eval", check))
            for label, source in variants:
                attack = source[name]
                rows[(data, label, attack["n"])] = dict(
                    zip([f"eps {e:g}" for e in attack["eps"]], attack["accuracy"])
                )
    table = pd.DataFrame.from_dict(rows, orient="index").round(4)
    table.index.names = ["data", "model", "images"]
    return show(table, f"{name}-attack", f"{caption}; {SCALE}")


attack_table("fgsm", "Accuracy under FGSM")

# %%
attack_table("pgd", "Accuracy under PGD-20 (one random start)")

# %% [markdown]
# Which horizon gives the strongest gradient? The sweep repeats PGD-20 at one radius on the first
# images with the gradient taken through each horizon $T$ (the same random starts every time),
# and judges every iterate at $T_\text{eval}$.

# %%
fig, ax = plt.subplots(figsize=(6, 3.6))
for data, (wc, _) in PAIRS.items():
    sweep = records[wc]["results"]["gradient_sweep"]
    line, = ax.plot(sweep["T"], sweep["accuracy"], "o-", label=f"{data} ({wc})")
    ax.axvline(records[wc]["config"]["T_train"], color=line.get_color(), lw=0.6, ls=":")
ax.set(xscale="log", ylim=(0, 1), xlabel="horizon T the gradient is taken through (log)",
       ylabel=f"PGD accuracy at eps {sweep['eps']:g}",
       title=f"Wilson-Cowan networks, {sweep['n']} images (dotted: T_train)")
ax.legend(fontsize=8)
fig.suptitle(WC_SCALE, fontsize=9)
fig.tight_layout();

# %%
pd.DataFrame(
    {(data, wc): dict(zip(records[wc]["results"]["gradient_sweep"]["T"],
                          records[wc]["results"]["gradient_sweep"]["accuracy"]))
     for data, (wc, _) in PAIRS.items()}
).rename_axis("gradient through T").round(4).pipe(show, "sweep",
    f"PGD-20 accuracy of the Wilson-Cowan networks at eps {sweep['eps']:g}, gradient through "
    f"each horizon, judged at T_eval = 40; {WC_SCALE}")

# %% [markdown]
# ## Does the dynamics matter?
#
# The same readout applied to $x(T)$ at increasing horizons. At $T = 0$ it reads the image itself;
# the dashed lines are the clean accuracies of the MLP and of the CNN twin on the same images (the
# CNN's at $28\times 28$). The right panels show the
# fraction of states within 10% of the targets' separation from the nearest target, and from the
# target of the true class.

# %%
fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharex=True)
for row, (data, (wc_run, mlp_run)) in enumerate(PAIRS.items()):
    horizon = records[wc_run]["results"]["horizon"]
    T = np.array(horizon["T"])
    axes[row, 0].plot(T, horizon["accuracy"], "o-", label=f"Wilson-Cowan ({wc_run})")
    for label in ("MLP", "CNN softmax twin"):
        if label not in RUNS[data]:
            continue
        run, profile = RUNS[data][label]
        axes[row, 0].axhline(records[run]["results"]["clean"]["accuracy"], ls="--",
                             color=STYLE[label][1], label=f"{label} ({run}, {profile}), clean")
    axes[row, 0].set(ylabel=f"{data}\naccuracy", ylim=(0, 1), xscale="symlog", xlim=(0, 45))
    axes[row, 1].plot(T, horizon["within_10pct"], "o-", label="near some target")
    axes[row, 1].plot(T, horizon["within_10pct_of_label"], "s--", label="near the label's target")
    axes[row, 1].set(ylabel="fraction of states", ylim=(0, 1), xscale="symlog", xlim=(0, 45))
    for ax in axes[row]:
        ax.axvline(records[wc_run]["config"]["T_train"], color="grey", lw=0.6)
        ax.legend(fontsize=7)
axes[1, 0].set_xlabel("evaluation horizon T (symlog)")
axes[1, 1].set_xlabel("evaluation horizon T (symlog)")
fig.suptitle(f"Accuracy and convergence against the horizon (grey: T_train)\n{SCALE}", fontsize=9)
fig.tight_layout();

# %%
pd.DataFrame(
    {
        (data, quantity): dict(zip(records[wc]["results"]["horizon"]["T"],
                                   records[wc]["results"]["horizon"][key]))
        for data, (wc, _) in PAIRS.items()
        for quantity, key in (("accuracy", "accuracy"), ("near a target", "within_10pct"),
                              ("near the label's target", "within_10pct_of_label"))
    }
).rename_axis("T").round(4).pipe(show, "horizon",
    f"The Wilson-Cowan networks' readout against the evaluation horizon; {WC_SCALE}")

# %% [markdown]
# Behind the CNN the question takes another form. The Wilson-Cowan layer starts from $z$, the dense
# head's output, which stage 1 fitted to the planted targets without any dynamics; at $T = 0$ the
# readout reads $z$ itself, so the curve shows what integrating adds to the encoder's own answer.
# The model trains and is evaluated at $T_\text{train} = 3.5$ (grey); the horizons beyond it show
# where its states would go if the integration ran on. The dashed line is the softmax twin's clean
# accuracy on the same images.

# %%
WC_CNN = {data: models["CNN + Wilson-Cowan"] for data, models in RUNS.items()
          if "CNN + Wilson-Cowan" in models}
CNN_SCALE = f"{CNN_PROFILE} profile (28x28 images, 1 + 5 epochs), seed {SEED}"


def cnn_horizon_figure():
    """Accuracy and convergence of the Wilson-Cowan layer behind the CNN against the horizon."""
    fig, axes = plt.subplots(1, len(WC_CNN), figsize=(5 * len(WC_CNN), 3.6), sharey=True,
                             squeeze=False)
    for ax, (data, (run, profile)) in zip(axes[0], WC_CNN.items()):
        horizon = records[run]["results"]["horizon"]
        ax.plot(horizon["T"], horizon["accuracy"], "D-", color=STYLE["CNN + Wilson-Cowan"][1],
                label=f"accuracy ({run})")
        ax.plot(horizon["T"], horizon["within_10pct"], "o:", label="near some target")
        ax.plot(horizon["T"], horizon["within_10pct_of_label"], "s:", label="near the label's target")
        if "CNN softmax twin" in RUNS[data]:
            twin = RUNS[data]["CNN softmax twin"][0]
            ax.axhline(records[twin]["results"]["clean"]["accuracy"], ls="--",
                       color=STYLE["CNN softmax twin"][1], label=f"{twin}, clean")
        ax.axvline(records[run]["config"]["T_train"], color="grey", lw=0.6)
        ax.set(title=data, xlabel="evaluation horizon T (symlog; T = 0: z itself)",
               xscale="symlog", xlim=(0, 45), ylim=(0, 1))
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("accuracy / fraction of states")
    fig.suptitle("The Wilson-Cowan layer behind the CNN against the horizon (grey: T_train)\n"
                 f"{CNN_SCALE}", fontsize=9)
    fig.tight_layout()
    plt.show()


if WC_CNN:
    cnn_horizon_figure()
    display(pd.DataFrame(
        {(data, quantity): dict(zip(records[run]["results"]["horizon"]["T"],
                                    records[run]["results"]["horizon"][key]))
         for data, (run, _) in WC_CNN.items()
         for quantity, key in (("accuracy", "accuracy"), ("near a target", "within_10pct"),
                               ("near the label's target", "within_10pct_of_label"))}
    ).rename_axis("T").round(4).pipe(show, "cnn-horizon",
        f"The Wilson-Cowan layer behind the CNN against the evaluation horizon; {CNN_SCALE}"))

# %% [markdown]
# ## Basins: the smallest perturbation that changes the class
#
# For each of the first 1000 test images that a model classifies correctly, PGD-20 is run at radii
# found by bisection of $[0, 0.2]$ (5 halvings after the first try at 0.2, so the radius is known
# to within $0.2/32$); the value is the smallest radius at which a misclassified input was found.
# Images that PGD did not flip even at 0.2 are counted apart.

# %%
def radii(run):
    values = records[run]["results"]["min_eps"]["values"]
    flipped = np.array([v for v in values if v is not None and v > 0])
    return flipped, sum(v is None for v in values), sum(v == 0 for v in values if v is not None)


def quantile(values, q):
    """The q-quantile of ``values``; NaN when there are none."""
    return float(np.quantile(values, q)) if len(values) else np.nan


fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
step = records["mnist-scratch"]["results"]["min_eps"]["resolution"]
bins = (np.arange(34) - 0.5) * step  # centred on the multiples of the bisection step
for ax, (data, models) in zip(axes, RUNS.items()):
    for label, (run, profile) in models.items():
        flipped, _, _ = radii(run)
        ax.hist(flipped, bins=bins, histtype="step", lw=1.5, color=STYLE[label][1],
                label=f"{label} ({run}, {profile})")
    ax.set(title=data, xlabel=r"smallest flipping PGD radius $\epsilon$")
    ax.legend(fontsize=7)
axes[0].set_ylabel("test images")
fig.suptitle(f"Distance to the decision boundary in L-infinity\n{SCALE}", fontsize=9)
fig.tight_layout();

# %%
summary = {}
for data, models in RUNS.items():
    for label, (run, profile) in models.items():
        flipped, unflipped, wrong = radii(run)
        summary[(data, label, profile)] = {
            "images": records[run]["results"]["min_eps"]["n"],
            "misclassified clean": wrong,
            "median radius": quantile(flipped, 0.5),
            "25% quantile": quantile(flipped, 0.25),
            "75% quantile": quantile(flipped, 0.75),
            "not flipped at 0.2": unflipped,
        }
basins = pd.DataFrame.from_dict(summary, orient="index").round(4)
basins.index.names = ["data", "model", "profile"]
basins.pipe(show, "basins",
    f"Smallest flipping PGD radius of the correctly classified images among the first 1000; {SCALE}")

# %% [markdown]
# ## What was found
#
# The headline numbers, side by side (accuracies; the radius is the median smallest flipping PGD
# radius of the correctly classified images among the first 1000):

# %%
def level(run, name, key, value):
    result = records[run]["results"][name]
    return result["accuracy"][result[key].index(value)]


headline = {}
for data, models in RUNS.items():
    for label, (run, _) in models.items():
        results = records[run]["results"]
        horizon = results.get("horizon")
        best = int(np.argmax(horizon["accuracy"])) if horizon else None
        headline[(data, label)] = {
            "clean": results["clean"]["accuracy"],
            "noise sigma 0.1": level(run, "noise", "sigma", 0.1),
            "noise sigma 0.3": level(run, "noise", "sigma", 0.3),
            "occlusion side 8 (of 28)": level(run, "occlusion", "side_28", 8),
            "occlusion side 16 (of 28)": level(run, "occlusion", "side_28", 16),
            "FGSM eps 0.05": level(run, "fgsm", "eps", 0.05),
            "PGD eps 0.02": level(run, "pgd", "eps", 0.02),
            "PGD eps 0.05": level(run, "pgd", "eps", 0.05),
            "median flipping radius": quantile(radii(run)[0], 0.5),
            "readout at T = 0 (the image; z behind the CNN)": (
                horizon["accuracy"][0] if horizon else np.nan),
            "best horizon T": horizon["T"][best] if horizon else np.nan,
            "accuracy at the best horizon": horizon["accuracy"][best] if horizon else np.nan,
        }
pd.DataFrame(headline).round(4).pipe(show, "headline",
    f"Headline numbers; {SCALE}")

# %% [markdown]
# The statements below rest on these checks, computed from the records (accuracies relative to
# each model's own clean accuracy where the clean accuracies differ):

# %%
def retained(run, name, key):
    result = records[run]["results"][name]
    return np.array(result["accuracy"]) / records[run]["results"]["clean"]["accuracy"]


for data, (wc, mlp) in PAIRS.items():
    wc_h = records[wc]["results"]["horizon"]
    best = int(np.argmax(wc_h["accuracy"]))
    at_T = {T: a for T, a in zip(wc_h["T"], wc_h["accuracy"])}
    sweep = records[wc]["results"]["gradient_sweep"]
    sweep_at = dict(zip(sweep["T"], sweep["accuracy"]))
    strongest = sweep["T"][int(np.argmin(sweep["accuracy"]))]
    T_train = records[wc]["config"]["T_train"]
    checks = {
        "readout on the image within 0.05 of chance (0.1)": abs(wc_h["accuracy"][0] - 0.1) < 0.05,
        "best horizon is T_train": wc_h["T"][best] == records[wc]["config"]["T_train"],
        "accuracy at T_eval below the best": at_T[40.0] < wc_h["accuracy"][best],
        "no state near a target before T = 2": max(
            f for T, f in zip(wc_h["T"], wc_h["within_10pct"]) if T < 2) == 0,
        "noise sigma 0.1: WC keeps more of its clean accuracy": (
            retained(wc, "noise", "sigma")[1] > retained(mlp, "noise", "sigma")[1]),
        "occlusion: WC keeps less at every side > 0": bool(np.all(
            retained(wc, "occlusion", "side")[1:] < retained(mlp, "occlusion", "side")[1:])),
        "FGSM (T_train gradient) eps >= 0.03: WC above MLP": all(
            a > b for e, a, b in zip(records[wc]["results"]["fgsm"]["eps"],
                                     records[wc]["results"]["fgsm"]["accuracy"],
                                     records[mlp]["results"]["fgsm"]["accuracy"]) if e >= 0.03),
        "PGD eps 0.01: WC below MLP": (
            level(wc, "pgd", "eps", 0.01) < level(mlp, "pgd", "eps", 0.01)),
        "PGD eps 0.1: both below 0.05": max(level(r, "pgd", "eps", 0.1) for r in (wc, mlp)) < 0.05,
        "T_eval gradient: PGD 0.1 leaves WC above 0.4": (
            records[wc]["results"]["eval_gradient"]["pgd"]["accuracy"][-1] > 0.4),
        "sweep: strongest gradient horizon between T_train and 2 T_train": (
            T_train <= strongest <= 2 * T_train),
        "sweep: T_train gradient within 0.05 of the strongest": (
            sweep_at[T_train] - min(sweep["accuracy"]) <= 0.05),
        "sweep: gradient through T = 40 at least 0.25 weaker than the strongest": (
            sweep_at[40.0] - min(sweep["accuracy"]) >= 0.25),
    }
    print(data)
    for claim, holds in checks.items():
        print(f"  {claim}: {bool(holds)}")

# %% [markdown]
# The CNN twin against the two $14\times 14$ models, where its record exists (again relative to each
# model's clean accuracy where that matters):

# %%
def cnn_checks(wc, mlp, cnn):
    """The claims about the CNN twin ``cnn`` against ``wc`` and ``mlp``, each True or False."""
    others = (wc, mlp)
    clean = {r: records[r]["results"]["clean"]["accuracy"] for r in (wc, mlp, cnn)}
    pgd_eps = records[cnn]["results"]["pgd"]["eps"]
    return {
        "clean: CNN above WC and MLP": all(clean[cnn] > clean[r] for r in others),
        "noise sigma 0.1 to 0.3: CNN keeps more than WC and MLP": all(
            retained(cnn, "noise", "sigma")[i] > retained(r, "noise", "sigma")[i]
            for r in others for i in (1, 2, 3)),
        "noise sigma 0.5: CNN keeps more than WC and MLP": all(
            retained(cnn, "noise", "sigma")[4] > retained(r, "noise", "sigma")[4] for r in others),
        "occlusion: CNN keeps more than WC and MLP at every side > 0": all(bool(np.all(
            retained(cnn, "occlusion", "side")[1:] > retained(r, "occlusion", "side")[1:]))
            for r in others),
        "FGSM eps 0.05: CNN above WC (T_train gradient) and MLP": all(
            level(cnn, "fgsm", "eps", 0.05) > level(r, "fgsm", "eps", 0.05) for r in others),
        "PGD, every eps: CNN above WC (T_train gradient) and MLP": all(
            level(cnn, "pgd", "eps", e) > level(r, "pgd", "eps", e) for r in others for e in pgd_eps),
        "PGD eps 0.02: CNN within 0.02 of the MLP": abs(
            level(cnn, "pgd", "eps", 0.02) - level(mlp, "pgd", "eps", 0.02)) <= 0.02,
        "PGD eps 0.1 leaves the CNN less than a quarter of its clean accuracy": (
            retained(cnn, "pgd", "eps")[-1] < 0.25),
        "PGD eps 0.1: CNN below 0.05": level(cnn, "pgd", "eps", 0.1) < 0.05,
        "median flipping radius: CNN above WC and MLP": all(
            quantile(radii(cnn)[0], 0.5) > quantile(radii(r)[0], 0.5) for r in others),
        "median flipping radius: CNN equal to the MLP's": (
            quantile(radii(cnn)[0], 0.5) == quantile(radii(mlp)[0], 0.5)),
    }


pd.DataFrame({
    data: cnn_checks(*(models[label][0] for label in ("Wilson-Cowan", "MLP", "CNN softmax twin")))
    for data, models in RUNS.items() if "CNN softmax twin" in models
}).pipe(show, "cnn-checks", f"The CNN softmax twin ({CNN_PROFILE}) against the 14x14 models ({PROFILE}), "
                     f"seed {SEED}; relative to each model's clean accuracy where it says 'keeps'")

# %% [markdown]
# And the question the twin was built for: behind the same encoder, does the Wilson-Cowan layer
# keep more or less than the softmax? And does it keep more than its own encoder and head read
# without any dynamics? For the last, the records also attack the distance readout applied to $z$
# itself (FGSM and PGD on the same first 1000 images; noise and occlusion were not run on it).
# Each row is one perturbation level: the three accuracies, and the difference of the fractions of
# their clean accuracies that the Wilson-Cowan model and its twin keep (positive: the dynamics
# keeps more).

# %%
def versus_twin(wc, twin):
    """Accuracies of ``wc``, of its readout on z without dynamics (attacks only) and of ``twin``
    at every level of every curve, and the difference of the fractions of their clean
    accuracies that ``wc`` and ``twin`` keep."""
    without, horizon = (records[wc]["results"][k] for k in ("without_dynamics", "horizon"))
    assert horizon["T"][0] == 0  # the horizon curve's first point is the readout on z
    rows = {"clean": {"CNN + Wilson-Cowan": records[wc]["results"]["clean"]["accuracy"],
                      "readout on z, no dynamics": horizon["accuracy"][0],
                      "CNN softmax twin": records[twin]["results"]["clean"]["accuracy"],
                      "kept: WC minus twin": 0.0}}
    rows["clean, attacked images"] = {"readout on z, no dynamics": without["clean"]["accuracy"]}
    for name, key, label in (("noise", "sigma", "noise sigma"), ("occlusion", "side_28", "occlusion side"),
                             ("fgsm", "eps", "FGSM eps"), ("pgd", "eps", "PGD eps")):
        kept = retained(wc, name, key) - retained(twin, name, key)
        for i, value in enumerate(records[wc]["results"][name][key]):
            rows[f"{label} {value:g}"] = {
                "CNN + Wilson-Cowan": records[wc]["results"][name]["accuracy"][i],
                "readout on z, no dynamics": (without[name]["accuracy"][i] if name in without
                                              else np.nan),
                "CNN softmax twin": records[twin]["results"][name]["accuracy"][i],
                "kept: WC minus twin": kept[i],
            }
    return pd.DataFrame.from_dict(rows, orient="index")


PAIRED = {data: (models["CNN + Wilson-Cowan"][0], models["CNN softmax twin"][0])
          for data, models in RUNS.items() if set(CNNS) <= set(models)}
if PAIRED:
    display(pd.concat({data: versus_twin(*pair) for data, pair in PAIRED.items()}, axis=1)
            .round(4).pipe(show, "versus-twin",
                           f"The Wilson-Cowan layer against the softmax behind the same CNN; {CNN_SCALE}"))

# %%
def dynamics_checks(wc, twin):
    """The claims about the Wilson-Cowan layer behind the CNN (``wc``), its readout on z without
    dynamics and its softmax twin ``twin``, each True or False."""
    results, other = records[wc]["results"], records[twin]["results"]
    without, horizon = results["without_dynamics"], results["horizon"]
    gain = results["clean"]["accuracy"] - horizon["accuracy"][0]  # what integrating adds
    eps = results["pgd"]["eps"]
    big = [i for i, e in enumerate(eps) if e >= 0.05]
    unflipped = {r: sum(v is None for v in records[r]["results"]["min_eps"]["values"])
                 for r in (wc, twin)}
    return {
        "the dynamics moves the clean accuracy by less than 0.005": abs(gain) < 0.005,
        "the dynamics adds more than 0.03 to the clean accuracy": gain > 0.03,
        "clean: WC below its twin": results["clean"]["accuracy"] < other["clean"]["accuracy"],
        "noise sigma 0.1 and 0.2: WC keeps less than its twin": all(
            retained(wc, "noise", "sigma")[i] < retained(twin, "noise", "sigma")[i] for i in (1, 2)),
        "occlusion: WC keeps within 0.03 of its twin at every side": bool(np.all(np.abs(
            retained(wc, "occlusion", "side") - retained(twin, "occlusion", "side")) < 0.03)),
        "FGSM and PGD, eps >= 0.05: WC above its twin": all(
            results[a]["accuracy"][results[a]["eps"].index(e)] >
            other[a]["accuracy"][other[a]["eps"].index(e)]
            for a in ("fgsm", "pgd") for e in (0.05, 0.1)),
        "median flipping radius: WC above its twin": (
            quantile(radii(wc)[0], 0.5) > quantile(radii(twin)[0], 0.5)),
        "PGD at eps 0.2 flips every image of the twin, not every one of WC": (
            unflipped[twin] == 0 and unflipped[wc] > 0),
        "PGD, every eps: the readout on z more accurate than the WC model": all(
            without["pgd"]["accuracy"][i] > results["pgd"]["accuracy"][i] for i in range(len(eps))),
        "PGD, eps >= 0.05: the readout on z above the twin": all(
            without["pgd"]["accuracy"][i] > other["pgd"]["accuracy"][i] for i in big),
    }


if PAIRED:
    display(pd.DataFrame({data: dynamics_checks(*pair) for data, pair in PAIRED.items()}).pipe(
        show, "dynamics-checks",
        f"The Wilson-Cowan layer behind the CNN, its readout on z and its softmax twin; {CNN_SCALE}"))

# %% [markdown]
# What these midscale models (one seed each) show:
#
# - **The dynamics does all of the classifying.** The distance readout applied to the image itself
#   is at chance level; the accuracy rises with the horizon and peaks at the training horizon
#   $T_\text{train}$, where the states have only begun to arrive at the targets. Integrating on to
#   $T_\text{eval} = 40$, as the authors' code does, costs accuracy for both networks here: more
#   states settle on a target, and a few of them on the wrong one. No state is near a target
#   before $T = 2$.
# - **Random noise** of $\sigma = 0.1$ hurts the MNIST network less than the MLP, relative to their
#   clean accuracies; on Fashion-MNIST the network keeps slightly less than the MLP. At
#   $\sigma \geq 0.3$ both collapse.
# - **Occlusion** hurts the Wilson-Cowan network more than the MLP, on both data sets and at every
#   patch size. A plausible reading: a zeroed block puts the initial state near the low state
#   $\bar x^{(1)}$ over a whole region, and a block of low nodes is exactly how the targets encode
#   the class.
# - **Worst-case perturbations.** Differentiated through all 400 steps of the evaluation, the
#   network looks robust: FGSM hardly moves its accuracy and PGD at $\epsilon = 0.1$ leaves much of
#   it. That is gradient masking, not robustness: by $T = 40$ the states sit on attractors, where
#   the dynamics contracts and the input gradient carries little information. The same attacks
#   differentiated through the first $T_\text{train}$ of the same integration (and still judged at
#   $T = 40$) take the network down to the MLP's level: PGD at $\epsilon = 0.1$ leaves both near
#   zero, and at $\epsilon = 0.01$ the network is the more fragile of the two. FGSM with that
#   gradient leaves the network well above the MLP at larger radii, but the iterated attack closes
#   the gap, so this is the nonlinearity defeating a one-step attack rather than wider basins.
#   The sweep over the gradient's horizon finds the strongest attack at or a little beyond
#   $T_\text{train}$, close to what the $T_\text{train}$ gradient achieves, and a steadily weaker
#   one as the horizon grows towards $T_\text{eval}$.
# - **Basins.** The smallest flipping PGD radius has the same median and quartiles for both models
#   on MNIST, to the resolution of the bisection. On Fashion-MNIST the network's median is one
#   bisection step larger, but it is taken over the images the network classifies correctly,
#   markedly fewer than the MLP's, so the two samples differ.
#
# - **The CNN softmax twin.** On MNIST it is the most robust of the three under every
#   perturbation measured here: relative to its clean accuracy it keeps more than both $14\times 14$
#   models under noise and under occlusion at every level, FGSM and PGD leave it above both at
#   every radius, and the median radius that flips it is several bisection steps larger. It is not
#   unbreakable: PGD at $\epsilon = 0.1$ leaves it less than a quarter of its clean accuracy. On
#   Fashion-MNIST the picture is different: it keeps more than both under noise up to
#   $\sigma = 0.3$ but not at $\sigma = 0.5$, nor under occlusion at every patch size; under PGD at
#   $\epsilon = 0.02$ it sits at the MLP's level, at $\epsilon = 0.1$ it is broken completely, and its
#   median flipping radius is the MLP's. Two things besides the architecture separate it from the
#   other two, and both favour it: the full $28\times 28$ resolution and a higher clean accuracy. So
#   a convolutional encoder bought a wide margin on MNIST and almost none on Fashion-MNIST at this
#   scale; neither says whether the dynamics adds or removes robustness behind that encoder. The
#   next point does.
# - **The Wilson-Cowan layer behind the CNN.** Against its softmax twin (same encoder and head,
#   same images, same seed) it starts a little less accurate on both data sets, keeps less of its
#   accuracy under Gaussian noise of $\sigma$ 0.1 and 0.2, and about as much under occlusion. Under
#   the white-box attacks it is far harder to break: from $\epsilon = 0.05$ on, FGSM and PGD leave
#   it well above the twin, its median flipping radius is larger, and PGD at the largest radius
#   tried, 0.2, flips every image of the twin but not every image of the Wilson-Cowan model. The
#   integration is not what buys this. On MNIST the readout applied to $z$ itself, before any
#   dynamics, is as accurate as the whole model, and on Fashion-MNIST the dynamics adds about four
#   points of clean accuracy (its best horizon lies at or just past $T_\text{train}$, and the
#   accuracy falls back beyond); but under PGD the readout on $z$ is more accurate than the whole
#   model at every radius, on both data sets. The attacks on $z$ take no gradient through the
#   integration, so gradient masking by the dynamics cannot explain that part. So the margin over
#   the twin belongs to how the encoder was trained and read, towards planted targets and by
#   distance, and the dynamics run at test time gives some of it back.
#
# So at this scale the planted attractors do not buy robustness to worst-case input perturbations
# over an MLP trained on the same data, and occlusion is worse for them; the basins around the test
# images are about as narrow, in $L_\infty$, as the MLP's decision regions (the CNN twin's are wider
# on MNIST, no wider on Fashion-MNIST). Behind a CNN, a model trained through the dynamics towards
# planted targets resists $L_\infty$ attacks much better than the same CNN with a softmax, but its
# own encoder read without the dynamics resists them better still. The limits of this
# statement: one seed per model, $14\times 14$ images and 20 epochs (the Fashion-MNIST network is
# still far below its MLP and still learning), attacks on the first 1000 test images (100 for PGD
# through the full horizon), and PGD-20 with one random start, which gives upper bounds on the
# robust accuracy of both models (on MNIST the sweep finds a gradient horizon slightly stronger
# than $T_\text{train}$). A stronger attack can only lower the curves. For the two CNN models, add
# a cut-down schedule (1 + 5 epochs instead of 35 + 70) and the different image size; the paper's
# schedule, 5 seeds and the paper-trained weights wait for a GPU.

# %% [markdown]
# ## A live check on 100 images
#
# The one computation this page runs itself (100 test images, the exported MNIST model, one FGSM
# step of radius 0.05): the gradient through the training horizon against the gradient through
# all 400 steps of the evaluation. Both are judged at $T_\text{eval} = 40$.

# %% tags=["nbval-ignore-output"]
model, config = rb.load_weights("mnist-scratch", PROFILE, SEED, ROOT / "models")
live = rb.load_test_split(config, 100)
clean = rb.accuracy(model, live.images, live.labels)
through_train, _ = rb.fgsm_accuracy(model, live.images, live.labels, [0.05],
                                    gradient_T=model.T_train)
through_eval, _ = rb.fgsm_accuracy(model, live.images, live.labels, [0.05])
print(f"clean accuracy on these 100 images: {clean:.2f}")
print(f"FGSM 0.05, gradient through T = {model.T_train:g}: {through_train[0]:.2f}")
print(f"FGSM 0.05, gradient through T = {model.T_eval:g}: {through_eval[0]:.2f}")

# %% [markdown]
# The digits above can move by an image with the machine's floating-point library; the verdicts
# do not:

# %%
print("the gradient through T_train lowers the accuracy by more than 0.2:",
      clean - through_train[0] > 0.2)
print("the gradient through T_eval moves it by less than 0.05:",
      abs(clean - through_eval[0]) < 0.05)
