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
# scratch and for the MLP baseline of Table 2, on the same test images under the same
# perturbations:
#
# - **Gaussian pixel noise** of standard deviation $\sigma \in \{0, 0.1, 0.2, 0.3, 0.5\}$, clipped
#   to $[0, 1]$;
# - **occlusion**: one square patch per image, at a random place, set to 0. The sides 4, 8, 12, 16
#   pixels refer to $28\times 28$ images; the models here see $14\times 14$ images, so the sides are
#   scaled by $14/28$ to 2, 4, 6, 8 pixels (the same fraction of the image);
# - **white-box $L_\infty$ attacks**, FGSM and PGD (20 steps of size $2.5\,\epsilon/20$ from a
#   random start), on the cross-entropy of the model's class probabilities (the paper's $q_k$ for
#   the Wilson-Cowan network, the softmax for the MLP). For the Wilson-Cowan network the gradient
#   runs through the explicit Euler integration itself (the hand-derived adjoint of the training
#   engine, chapter 4), and an image counts as fooled when the class read at the evaluation
#   horizon $T_\text{eval} = 40$ changes;
# - the **smallest PGD radius** that changes the class of each image, found by bisection: its
#   histogram shows how large the basins are around the test images;
# - the **evaluation horizon**: accuracy of the readout applied to $x(T)$ for $T$ from 0 (the image
#   itself) to 40, and the fraction of states that have reached a planted target (within 10% of the
#   smallest distance between two targets).
#
# The models are seed 0 of the **midscale profile**: $14\times 14$ images ($N = 196$), all 60000
# training images, 20 epochs. This is not the paper's scale ($28\times 28$, 350 epochs); the
# numbers below say how these midscale models behave, not how the paper's models would. The
# noise, occlusion and horizon curves use all 10000 test images, the attacks the first 1000. The
# CNN softmax twin of Table 3 is not part of the comparison: it works on $28\times 28$ images, so
# it is no like-for-like partner of these $14\times 14$ models, and training it at the paper's
# size does not fit a CPU budget.
#
# Every number comes from the records in `robustness/<run>/midscale/seed0.json`, written by
# `python -m wcbook robustness <run> --profile midscale --publish` from the weights in `models/`
# (without `--publish` the record goes to the working folder, `~/.cache/wcbook/runs/robustness/`).

# %%
# %matplotlib inline
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from wcbook import robustness as rb

torch.set_num_threads(1)
ROOT = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "pyproject.toml").exists())
PROFILE, SEED = "midscale", 0
PAIRS = {
    "MNIST": ("mnist-scratch", "mnist-mlp"),
    "Fashion-MNIST": ("fashion-scratch", "fashion-mlp"),
}
records = {
    run: rb.load_record(run, PROFILE, SEED, ROOT / "robustness")
    for pair in PAIRS.values() for run in pair
}
LABEL = {run: ("Wilson-Cowan" if r["model"] == "wc" else "MLP") for run, r in records.items()}
SCALE = f"{PROFILE} profile (14x14 images, 20 epochs), seed {SEED}"
pd.DataFrame(
    {
        "data": [d for d, pair in PAIRS.items() for _ in pair],
        "model": [LABEL[run] for pair in PAIRS.values() for run in pair],
        "run": [run for pair in PAIRS.values() for run in pair],
        "clean accuracy": [records[run]["results"]["clean"]["accuracy"]
                           for pair in PAIRS.values() for run in pair],
        "test images": [records[run]["results"]["clean"]["n"]
                        for pair in PAIRS.values() for run in pair],
        "attacked images": [records[run]["results"]["pgd"]["n"]
                            for pair in PAIRS.values() for run in pair],
        "commit": [records[run]["commit"][:8] for pair in PAIRS.values() for run in pair],
    }
).round(4)


# %% [markdown]
# ## Noise and occlusion

# %%
def curve(run, name, levels):
    result = records[run]["results"][name]
    return np.array(result[levels]), np.array(result["accuracy"])


def compare(name, levels, xlabel, title):
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, (data, pair) in zip(axes, PAIRS.items()):
        for run, style in zip(pair, ("o-", "s--")):
            ax.plot(*curve(run, name, levels), style, label=f"{LABEL[run]} ({run})")
        ax.set(title=data, xlabel=xlabel, ylim=(0, 1))
        ax.legend(fontsize=8)
    axes[0].set_ylabel("test accuracy")
    fig.suptitle(f"{title}; {SCALE}", fontsize=10)
    fig.tight_layout()
    plt.show()


compare("noise", "sigma", r"noise standard deviation $\sigma$", "Gaussian pixel noise");

# %%
compare("occlusion", "side", "patch side on the 14x14 image (pixels)", "Occlusion by a zero patch");


# %%
def level_table(name, levels, label):
    rows = {}
    for data, pair in PAIRS.items():
        for run in pair:
            xs, ys = curve(run, name, levels)
            rows[(data, LABEL[run])] = dict(zip([f"{label} {x:g}" for x in xs], ys))
    return pd.DataFrame(rows).T.round(4)


level_table("noise", "sigma", "sigma")

# %%
level_table("occlusion", "side", "side")

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
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
for ax, (data, pair) in zip(axes, PAIRS.items()):
    for run, color in zip(pair, ("tab:blue", "tab:orange")):
        results = records[run]["results"]
        for name, marker in (("fgsm", "o"), ("pgd", "s")):
            through = ", gradient through T_train" if records[run]["model"] == "wc" else ""
            ax.plot(*curve(run, name, "eps"), marker=marker, color=color,
                    ls="-" if name == "pgd" else ":", label=f"{LABEL[run]} {name.upper()}{through}")
        check = results.get("eval_gradient")
        if check:
            for name, marker in (("fgsm", "o"), ("pgd", "s")):
                ax.plot(check[name]["eps"], check[name]["accuracy"], marker=marker, mfc="none",
                        color="tab:green", ls="-" if name == "pgd" else ":",
                        label=f"{LABEL[run]} {name.upper()}, gradient through T_eval")
    ax.set(title=data, xlabel=r"$L_\infty$ radius $\epsilon$", ylim=(0, 1))
    ax.legend(fontsize=7)
axes[0].set_ylabel("accuracy under attack")
fig.suptitle(f"FGSM and PGD-20; {SCALE}", fontsize=10)
fig.tight_layout();


# %%
def attack_table(name):
    rows = {}
    for data, pair in PAIRS.items():
        for run in pair:
            results = records[run]["results"]
            variants = [(LABEL[run], results)]
            if results.get("eval_gradient"):
                variants[0] = (f"{LABEL[run]}, gradient through T_train", results)
                check = results["eval_gradient"]
                variants.append((f"{LABEL[run]}, gradient through T_eval", check))
            for label, source in variants:
                attack = source[name]
                rows[(data, label, attack["n"])] = dict(
                    zip([f"eps {e:g}" for e in attack["eps"]], attack["accuracy"])
                )
    table = pd.DataFrame.from_dict(rows, orient="index").round(4)
    table.index.names = ["data", "model", "images"]
    return table


attack_table("fgsm")

# %%
attack_table("pgd")

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
fig.suptitle(SCALE, fontsize=9)
fig.tight_layout();

# %%
pd.DataFrame(
    {data: dict(zip(records[wc]["results"]["gradient_sweep"]["T"],
                    records[wc]["results"]["gradient_sweep"]["accuracy"]))
     for data, (wc, _) in PAIRS.items()}
).rename_axis("gradient through T").round(4)

# %% [markdown]
# ## Does the dynamics matter?
#
# The same readout applied to $x(T)$ at increasing horizons. At $T = 0$ it reads the image itself;
# the dashed line is the MLP's clean accuracy on the same images. The right panels show the
# fraction of states within 10% of the targets' separation from the nearest target, and from the
# target of the true class.

# %%
fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharex=True)
for row, (data, (wc_run, mlp_run)) in enumerate(PAIRS.items()):
    horizon = records[wc_run]["results"]["horizon"]
    T = np.array(horizon["T"])
    axes[row, 0].plot(T, horizon["accuracy"], "o-", label=f"Wilson-Cowan ({wc_run})")
    axes[row, 0].axhline(records[mlp_run]["results"]["clean"]["accuracy"], ls="--",
                         color="tab:orange", label=f"MLP ({mlp_run}), clean")
    axes[row, 0].set(ylabel=f"{data}\naccuracy", ylim=(0, 1), xscale="symlog", xlim=(0, 45))
    axes[row, 1].plot(T, horizon["within_10pct"], "o-", label="near some target")
    axes[row, 1].plot(T, horizon["within_10pct_of_label"], "s--", label="near the label's target")
    axes[row, 1].set(ylabel="fraction of states", ylim=(0, 1), xscale="symlog", xlim=(0, 45))
    for ax in axes[row]:
        ax.axvline(records[wc_run]["config"]["T_train"], color="grey", lw=0.6)
        ax.legend(fontsize=8)
axes[1, 0].set_xlabel("evaluation horizon T (symlog)")
axes[1, 1].set_xlabel("evaluation horizon T (symlog)")
fig.suptitle(f"Accuracy and convergence against the horizon (grey: T_train); {SCALE}", fontsize=10)
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
).rename_axis("T").round(4)

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


fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
step = records["mnist-scratch"]["results"]["min_eps"]["resolution"]
bins = (np.arange(34) - 0.5) * step  # centred on the multiples of the bisection step
for ax, (data, pair) in zip(axes, PAIRS.items()):
    for run, color in zip(pair, ("tab:blue", "tab:orange")):
        flipped, _, _ = radii(run)
        ax.hist(flipped, bins=bins, alpha=0.6, color=color, label=f"{LABEL[run]} ({run})")
    ax.set(title=data, xlabel=r"smallest flipping PGD radius $\epsilon$")
    ax.legend(fontsize=8)
axes[0].set_ylabel("test images")
fig.suptitle(f"Distance to the decision boundary in L-infinity; {SCALE}", fontsize=10)
fig.tight_layout();

# %%
summary = {}
for data, pair in PAIRS.items():
    for run in pair:
        flipped, unflipped, wrong = radii(run)
        summary[(data, LABEL[run])] = {
            "images": records[run]["results"]["min_eps"]["n"],
            "misclassified clean": wrong,
            "median radius": np.median(flipped),
            "25% quantile": np.quantile(flipped, 0.25),
            "75% quantile": np.quantile(flipped, 0.75),
            "not flipped at 0.2": unflipped,
        }
pd.DataFrame.from_dict(summary, orient="index").round(4)

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
for data, (wc, mlp) in PAIRS.items():
    horizon = records[wc]["results"]["horizon"]
    best = int(np.argmax(horizon["accuracy"]))
    for run in (wc, mlp):
        results = records[run]["results"]
        headline[(data, LABEL[run])] = {
            "clean": results["clean"]["accuracy"],
            "noise sigma 0.1": level(run, "noise", "sigma", 0.1),
            "noise sigma 0.3": level(run, "noise", "sigma", 0.3),
            "occlusion side 4": level(run, "occlusion", "side", 4),
            "occlusion side 8": level(run, "occlusion", "side", 8),
            "FGSM eps 0.05": level(run, "fgsm", "eps", 0.05),
            "PGD eps 0.02": level(run, "pgd", "eps", 0.02),
            "PGD eps 0.05": level(run, "pgd", "eps", 0.05),
            "median flipping radius": float(np.median(radii(run)[0])),
            "readout on the image (T = 0)": horizon["accuracy"][0] if run == wc else np.nan,
            "best horizon T": horizon["T"][best] if run == wc else np.nan,
            "accuracy at the best horizon": horizon["accuracy"][best] if run == wc else np.nan,
        }
pd.DataFrame(headline).round(4)

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
# So at this scale the planted attractors do not buy robustness to worst-case input perturbations
# over an MLP trained on the same data, and occlusion is worse for them; the basins around the test
# images are about as narrow, in $L_\infty$, as the MLP's decision regions. The limits of this
# statement: one seed per model, $14\times 14$ images and 20 epochs (the Fashion-MNIST network is
# still far below its MLP and still learning), attacks on the first 1000 test images (100 for PGD
# through the full horizon), and PGD-20 with one random start, which gives upper bounds on the
# robust accuracy of both models (on MNIST the sweep finds a gradient horizon slightly stronger
# than $T_\text{train}$). A stronger attack can only lower the curves.

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
