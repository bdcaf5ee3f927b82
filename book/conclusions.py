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
# # Conclusions
#
# What this reproduction confirms, what it does not and why, what the differences between the
# paper's text and the authors' code change, and what it adds. Every number below is read from the
# committed records (`results/`, `certificates/`) or from the registry's copy of the paper's
# numbers; the {doc}`scorecard` has them all, row by row.

# %%
import json
from pathlib import Path

from IPython.display import display

from wcbook import robustness as rb
from wcbook.experiments import get_experiment
from wcbook.results import load_records, mean_sem
from wcbook.scorecard import scorecard, status_counts
from wcbook.tables import frame, styled

ROOT = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "pyproject.toml").exists())
records = load_records(ROOT / "results")
scores = scorecard(records, load_records(ROOT / "certificates"))


def accuracy(experiment: str, profile: str = "paper", variant: str | None = None) -> float | None:
    """Mean test accuracy over the finished seeds of a run (None without a record)."""
    values = [r["metrics"]["test_accuracy"] for r in records
              if r["experiment"] == experiment and r["profile"] == profile
              and r.get("variant") == variant and "test_accuracy" in r["metrics"]]
    return mean_sem(values)[0] if values else None


def paper(experiment: str) -> float:
    """The paper's test accuracy for an experiment (the registry's reference)."""
    return get_experiment(experiment).reference["test_accuracy"]


counts = status_counts(scores)
print(", ".join(f"{n} {status}" for status, n in counts.items()), f"of {len(scores)} numbers")

# %% [markdown]
# ## What was reproduced
#
# At the paper's scale, with one seed for most runs (the {doc}`scorecard` gives n for each): the
# from-scratch network on MNIST and Fashion-MNIST with its learned $\gamma$ (Tables 1 and 2), the
# MLP baseline, the CNN in front of the dynamics on both data sets (Table 3), and the two smallest
# image sizes of each scaling table (Tables 6 and 7) but for two MNIST accuracies.
# The rows within the tolerance of the scorecard:

# %%
def rows_with(status: str) -> list[tuple]:
    """The scorecard rows of one status as (table, what, paper, ours, why)."""
    return [(s.entry.table, s.entry.label, f"{s.paper:g}" if s.paper is not None else "-",
             "-" if s.ours is None else f"{s.ours:.4g}", s.reason)
            for s in scores if s.status == status]


columns = ("table", "what", "paper", "ours", "why")
display(styled(frame(rows_with("reproduced"), columns), "conclusions-reproduced",
               numeric=["paper", "ours"], widths={"why": "30%"}))

# %% [markdown]
# ## What was not, and why
#
# Outside the tolerance with a known cause (*explained*), and outside it with none (*off*):

# %%
display(styled(frame(rows_with("explained") + rows_with("off"), columns),
               "conclusions-not-reproduced", numeric=["paper", "ours"], widths={"why": "40%"}))
missing = sorted({s.entry.experiment for s in scores if s.status == "missing"})
print(f"no paper-scale run yet ({len(missing)} experiments):", ", ".join(missing))

# %% [markdown]
# The explained rows have two causes. The flowers row is a substitute (another data set and a
# frozen EfficientNet-Lite0 instead of VGG16, the only ImageNet encoder available offline), so its
# distance to the paper measures the substitution. The IMDB rows use a smaller encoder
# (all-MiniLM-L6-v2) and batch 32, yet the encoder alone and the distance head both score above
# the paper's BERT numbers; the row with the dynamics is the authors' code defect below.
#
# The off rows are the learned $\gamma$ of the Fashion-MNIST CNN, one seed of ours against the
# paper's five ({doc}`07_encoders`: more seeds will decide it), and the MNIST accuracy of the
# scaling table at $N = 196$, where four finished seeds of ours all end above the paper's run.
# The paper gives one run per size; it is judged with the spread of one run of the paper's
# five-run MNIST row, under a tenth of a point, while over their last hundred epochs the test
# accuracies of our runs wander by up to half a point. At $N = 196$ none of those bands reaches
# the paper's number; at $N = 289$ our five seeds end on either side of it (one below, four
# above) and the row is reproduced ({doc}`A1_scaling`). The three
# Fashion-MNIST rows at $N = 441$ are off because our one paper-profile run there, seed 0,
# diverged in its first epoch: a gradient spike, taken where $\Phi$ was nearly singular and
# $\gamma$ briefly negative, overflowed Adam's second moment and froze the model at chance
# ({doc}`A1_scaling` replays those steps). That is the paper's recipe failing on one seed, not a
# measurement of the model at that size. Replays of the first epoch of five seeds at four sizes
# show that such breaks are not rare at the paper's learning rate, and that most are NaN right
# after $\gamma$, which divides the inhibitory equation, reaches zero ({doc}`A1_scaling`). A
# floor on $\gamma$ at the smallest value where the Euler step of that equation is stable (the
# variant `gamma-floor`, which leaves every run that stays above it unchanged) kept each of
# those first epochs from breaking; whether it also lets them learn needs full runs.
#
# The missing rows need GPU time: CIFAR-10 at full scale, most image sizes of the two
# scaling tables, and the ablations. The smaller runs that exist point the same way as the paper
# for the unstable ablation and the planted eigenvalue moved off zero, and the other way for the
# learned planted eigenvectors: as registered (random start, lr 0.1) the columns never find the
# targets' span, and the model learns, once it leaves the chance plateau, without its targets
# being attractors; started in the span with a small learning rate for those columns (variant
# `planted-span`, {doc}`A2_ablations`) they stay there. Both end well below the code default:

# %%
for name, variant in (("ablation-not-in-kernel", None), ("ablation-learned-planted", None),
                      ("ablation-learned-planted", "planted-span")):
    label = name + (f"+{variant}" if variant else "")
    print(f"{label}: midscale {accuracy(name, 'midscale', variant):.4f} "
          f"(code default at midscale {accuracy('mnist-scratch', 'midscale'):.4f}), "
          f"paper {paper(name):.4f}")
unstable = [r for r in records if r["experiment"] == "ablation-unstable"]
profiles = ", ".join(sorted({r["profile"] for r in unstable}))
print(f"ablation-unstable: {sum(r.get('status') == 'diverged' for r in unstable)} of "
      f"{len(unstable)} runs diverged (profiles {profiles})")

# %% [markdown]
# ## What the differences between text and code change
#
# * **The firing function.** Only the code's reading of $F_E$ keeps both stable states inside
#   $[0, 1]$ ({doc}`01_node`); every result here uses it.
# * **The IMDB row.** The authors' script never runs the Euler loop, so Table 5's "BERT +
#   Wilson-Cowan" is a distance-to-target head. Run as described, with the dynamics, the model
#   does not learn: the flow carries every review to the same state ({doc}`06_text`). Fed on the
#   line through the two targets around the unstable state, after a stage 1, the head learns on
#   a frozen encoder with nearly every final state on a target; its fine-tuned runs need a GPU.

# %%
variant = "batch-32-bf16"
print(f"IMDB, same encoder and budget: distance head "
      f"{accuracy('imdb-distance-head', variant=variant):.4f}, encoder alone {accuracy('imdb-encoder', variant=variant):.4f}, "
      f"the paper's head with the dynamics running "
      f"{accuracy('imdb-wc', variant='paper-literal-bf16'):.4f} "
      f"(paper's 'BERT + WC' {paper('imdb-wc'):.4f})")

# %% [markdown]
# * **Coupling scale, horizons, regulariser.** At the CPU-sized `midscale` profile the text's
#   $\Gamma = 1/N$ costs the most of the text's readings, the text's readings together cost more,
#   and evaluating at the training horizon scores higher than the code's 400 steps
#   ({doc}`A2_ablations`). These are small-scale measurements; the paper-scale runs of the
#   variants remain to be made.

# %%
default = accuracy("mnist-scratch", "midscale")
for name in ("text-coupling", "text", "text-T", "no-ortho", "text-eval"):
    print(f"midscale, variant {name:13s}: {accuracy('mnist-scratch', 'midscale', name):.4f} "
          f"(code default {default:.4f})")

# %% [markdown]
# ## What is new here
#
# * **An exact stability certificate** ({doc}`A3_certificate`). The paper's criterion treats each
#   eigenvalue of $A$ on its own, which is exact only when every node sits in the same state; the
#   planted targets mix the two states. The full $2N \times 2N$ Jacobian at every planted attractor
#   of the paper-scale models:

# %%
for path in sorted((ROOT / "certificates").glob("*/paper/seed*.json")):
    cert = json.loads(path.read_text())
    m = cert["metrics"]
    print(f"{cert['experiment']:20s} full Jacobian max Re {m['max_real']:+.4f}, per-mode "
          f"{m['per_mode_max_real']:+.4f}, agree: {cert['certificate']['agree']}; test images "
          f"that converge to their label's target: {m['images_converged_to_label']:.3f}")

# %% [markdown]
# * **A baseline for the encoders.** The paper has none for Table 3; the softmax twin (same
#   encoder, head and stage 1, a softmax in place of the dynamics) measures what the dynamics add
#   on top of the encoder ({doc}`07_encoders`):

# %%
for name in ("mnist-cnn", "fashion-cnn", "flowers-transfer"):
    stage1 = [r["metrics"]["stage1_test_accuracy"] for r in records
              if r["experiment"] == name and r["profile"] == "paper"]
    print(f"{name:17s} Wilson-Cowan {accuracy(name):.4f}, softmax twin "
          f"{accuracy(name + '-softmax'):.4f}, encoder + head alone (stage 1) {stage1[0]:.4f}")

# %% [markdown]
# * **Robustness, measured against baselines** ({doc}`A4_robustness`). Behind a CNN, the
#   Wilson-Cowan model is far harder to break by projected gradient descent (PGD, $L_\infty$
#   radius 0.1) than its softmax twin; but the same distance readout applied to the encoder's
#   output $z$, with no dynamics at all, is harder to break still, so the margin comes from the
#   encoder trained towards the targets rather than from the integration. These are the
#   CPU-sized `midscale-encoded` models, seed 0:

# %%
def pgd_at(results: dict, eps: float = 0.1) -> float:
    """Accuracy under PGD at one radius, from a robustness record's results."""
    return results["pgd"]["accuracy"][results["pgd"]["eps"].index(eps)]


for name in ("mnist-cnn", "fashion-cnn"):
    wc, twin = (rb.load_record(run, "midscale-encoded", 0, ROOT / "robustness")["results"]
                for run in (name, name + "-softmax"))
    ours, theirs, on_z = pgd_at(wc), pgd_at(twin), pgd_at(wc["without_dynamics"])
    print(f"{name:11s} accuracy under PGD at eps 0.1: Wilson-Cowan {ours:.3f}, softmax twin "
          f"{theirs:.3f}, readout on z without dynamics {on_z:.3f}; Wilson-Cowan ahead of the "
          f"twin by over 0.1: {ours > theirs + 0.1}; the readout on z ahead of both: {on_z > ours}")

# %% [markdown]
# * **The dynamics under a text encoder**, measured rather than assumed: at initialisation the
#   gradient that reaches the encoder through the dynamics is orders of magnitude below that
#   through the distance head ({doc}`06_text`).
# * **A fast, tested integrator**: the hand-derived adjoint of the Euler scheme, equal to autograd
#   in float64, and the evidence that training at the paper's learning rate is chaotic, so that
#   single runs are samples of a distribution ({doc}`A5_performance`).
#
# ## In one paragraph
#
# Trained from raw pixels, the Wilson-Cowan network reaches the paper's accuracies and learned time
# scales on MNIST and Fashion-MNIST, close to an MLP of the same size, and its planted attractors
# come out stable under the exact criterion, although nothing in training enforces it. With a CNN
# in front, the accuracies match Table 3 but a softmax in place of the dynamics does as well; under
# gradient attacks that model resists better than the softmax, but its own readout without the
# dynamics resists better still (at the CPU-sized scale, one seed). The text result does not hold:
# the number in Table 5 comes from a head without dynamics, and with them running the paper's head
# does not learn (fed around the unstable state after a stage 1, it does, on a frozen encoder).
