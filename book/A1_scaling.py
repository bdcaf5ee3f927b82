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
# # Appendix: scaling with the input size (App. D)
#
# The paper resizes MNIST and Fashion-MNIST to 14x14 ... 35x35 ($N = 196$ ... $1225$ nodes), trains
# the network from scratch at each size and reports the learned $\gamma$, the test accuracy $\psi$
# and the time per epoch on two RTX A5500 GPUs (Tables 6 and 7). Each size is a registry entry,
# `scaling-mnist-<N>` and `scaling-fashion-<N>`, whose own `image_size` no profile overrides.
#
# **What to expect of the time.** A training step integrates $n = T/dt$ Euler steps for a batch of
# $B$ images; each step multiplies the $(B, N)$ state by the $N \times N$ coupling matrix, forwards
# and twice backwards, so a step costs about $3 n B N^2$ multiply-adds; building
# $A = \Phi\Lambda\Phi^{-1}$ once per step adds $O(N^3)$, small next to it while $nB \gg N$.
# The time per epoch should therefore grow as $N^2$.

# %%
# %matplotlib inline
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from wcbook.experiments import PROFILES, SCALING_SIDES, get_experiment
from wcbook.results import finished, outcome, pace_text
from wcbook.scorecard import PAPER_RUNS
from wcbook.tables import frame, styled

ROOT = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "pyproject.toml").exists())
for name in ("smoke-scaling", "paper"):
    print(f"{name}: {PROFILES[name].description}\n")
for dataset in ("mnist", "fashion"):
    config = get_experiment(f"scaling-{dataset}-196")
    print(f"{dataset}: T = {config.T_train}, {config.epochs} epochs, batch {config.batch_size}")
n_steps = get_experiment("scaling-mnist-784").T_train / get_experiment("scaling-mnist-784").dt
for side in (14, 28, 35):
    n = side * side
    print(f"N = {n:5d}: 3 n B N^2 = {3 * n_steps * 200 * n**2 / 1e9:6.1f} G multiply-adds per MNIST "
          f"step, N^3 = {n**3 / 1e9:5.2f} G")

# %% [markdown]
# ## The records beside Tables 6 and 7
#
# Every record `results/scaling-<dataset>-<N>/<profile>/seed<k>.json` that exists, with the paper's
# row (held in each experiment's `reference`). The `smoke-scaling` runs (1000 training images,
# 3 epochs, on a shared 2-core CPU) measure time only: 15 Adam steps are far too few to leave the
# initial chance plateau, so their accuracies are not comparable with the paper's. A paper-profile
# run that was interrupted and resumed on another kind of device has no single time per epoch
# ("mixed" below); the sessions that trained it, each with its own time, are listed under the table.

# %%
def load(dataset, n, profile):
    """Every seed's record of one run, by seed."""
    folder = ROOT / "results" / f"scaling-{dataset}-{n}" / profile
    return sorted((json.loads(p.read_text()) for p in folder.glob("seed*.json")),
                  key=lambda r: r["seed"])


def cell(records: list[dict]) -> str:
    """Each record as "gamma, psi, seconds per epoch" ("mixed" where devices changed mid-run),
    prefixed by its seed where there are several."""
    parts = []
    for r in records:
        if not finished(r):
            text = outcome(r)
        else:
            pace = "mixed" if r["seconds_per_epoch"] is None else f"{r['seconds_per_epoch']:.2f}"
            text = f"{r['metrics']['gamma']:.3f}, {r['metrics']['test_accuracy']:.4f}, {pace}"
        parts.append(f"seed {r['seed']}: {text}" if len(records) > 1 else text)
    return "; ".join(parts) or "no record"


table, lines = {}, []
for dataset in ("mnist", "fashion"):
    for side in SCALING_SIDES:
        n = side * side
        ref = get_experiment(f"scaling-{dataset}-{n}").reference
        for profile in ("smoke-scaling", "paper"):
            table[dataset, n, profile] = load(dataset, n, profile)
        lines.append((dataset, n,
                      f"{ref['gamma']:g}, {ref['test_accuracy']:g}, {ref['seconds_per_epoch']:g}",
                      cell(table[dataset, n, "smoke-scaling"]), cell(table[dataset, n, "paper"])))
columns = ("data", "N", "paper (Tables 6, 7)", "smoke-scaling profile", "paper profile")
display(styled(frame(lines, columns), "scaling-records", numeric=["N"],
               caption="gamma, test accuracy psi, seconds per epoch"))
paper_runs = [(d, n, r) for (d, n, profile), records in table.items() if profile == "paper"
              for r in records if finished(r)]

# %%
for dataset, n, r in paper_runs:
    print(f"scaling-{dataset}-{n} seed {r['seed']} paper (commit {r['commit'][:7]}): {pace_text(r)}")

# %% [markdown]
# The gaps of the finished paper-profile records to the paper's rows (ours minus the paper's; one
# seed against a row that gives no spread):

# %%
for dataset, n, r in paper_runs:
    ref, m = r["reference"], r["metrics"]
    print(f"scaling-{dataset}-{n} seed {r['seed']}: accuracy {m['test_accuracy']:.4f} vs "
          f"{ref['test_accuracy']:.4f} ({m['test_accuracy'] - ref['test_accuracy']:+.4f}), gamma "
          f"{m['gamma']:.3f} vs {ref['gamma']:.3f} ({m['gamma'] - ref['gamma']:+.3f})")

# %% [markdown]
# A single run's final accuracy is one draw. Over its last hundred epochs the test accuracy of each
# run wanders within a band, printed below, that is wider than the spread the scorecard borrows
# from the paper's five-run rows (training at the paper's learning rate is chaotic,
# {doc}`A5_performance`); where the paper's single number lies inside that band, a gap of the
# final epoch says little about the model:

# %%
for dataset, n, r in paper_runs:
    h, ref = r["history"], r["reference"]["test_accuracy"]
    late = [a for e, a in zip(h["test_epochs"], h["test_accuracy"]) if e > r["epochs"] - 100]
    five_run = get_experiment(f"{dataset}-scratch").reference
    run_sd = five_run["test_accuracy_sem"] * PAPER_RUNS**0.5  # the spread the scorecard borrows
    print(f"scaling-{dataset}-{n} seed {r['seed']}: test accuracy over the last 100 epochs "
          f"{min(late):.4f} to {max(late):.4f} ({len(late)} evaluations, final {late[-1]:.4f}); "
          f"the paper's {ref:.4f} inside that band: {min(late) <= ref <= max(late)}; band wider "
          f"than the borrowed spread {run_sd:.4f}: {max(late) - min(late) > run_sd}")

# %% [markdown]
# ## Several seeds of one size
#
# Where a size has more than one finished paper-profile seed, their learning curves show what one
# seed's final number hides: how long each seed stayed on the initial plateau, and how far apart
# the seeds end. The table below gives, per seed, the epochs it spent on the plateau (those that
# ended with a training accuracy of at most 50%) and its final test accuracy and $\gamma$ beside
# the paper's single run.

# %%
from wcbook.plots import learning_curves
from wcbook.results import mean_sem, plateau_epochs

several = {(d, n): [r for r in records if finished(r)]
           for (d, n, profile), records in table.items()
           if profile == "paper" and sum(map(finished, records)) > 1}
learning_curves({f"scaling-{d}-{n}": records for (d, n), records in several.items()},
                "scaling-<data>-<N>, paper profile, every finished seed: training accuracy and "
                "gamma after each epoch, test accuracy every 10 epochs (dotted: the paper's "
                "single run)")
plt.show()
rows = []
for (d, n), records in several.items():
    for r in records:
        (acc, ref_acc), (g, ref_g) = ((r["metrics"][m], r["reference"][m])
                                      for m in ("test_accuracy", "gamma"))
        rows.append((f"scaling-{d}-{n}", r["seed"], plateau_epochs(r), f"{acc:.4f}",
                     f"{ref_acc:.4f}", f"{acc - ref_acc:+.4f}", f"{g:.3f}", f"{ref_g:.3f}",
                     f"{g - ref_g:+.3f}"))
display(styled(frame(rows, ("run", "seed", "epochs at most 50%", "test accuracy", "paper",
                            "gap", "gamma", "paper gamma", "gamma gap")),
               "scaling-seeds", numeric=["seed", "epochs at most 50%", "test accuracy",
                                         "paper", "gap", "gamma", "paper gamma", "gamma gap"],
               caption="scaling-<data>-<N>, paper profile: every finished seed of a size with "
                       "several, against the paper's single run (gap: ours minus the paper's)"))
for (d, n), records in several.items():
    accuracy, gamma = ([r["metrics"][m] for r in records] for m in ("test_accuracy", "gamma"))
    (acc, acc_se), (g, g_se) = mean_sem(accuracy), mean_sem(gamma)
    slow = max(records, key=plateau_epochs)
    print(f"scaling-{d}-{n}: {len(records)} seeds, test accuracy {acc:.4f} ± {acc_se:.4f} (paper "
          f"{records[0]['reference']['test_accuracy']}), gamma {g:.3f} ± {g_se:.3f} (paper "
          f"{records[0]['reference']['gamma']}); longest plateau seed {slow['seed']}, "
          f"{plateau_epochs(slow)} epochs, ending at {slow['metrics']['test_accuracy']:.4f}")


# %% [markdown]
# The seeds part ways early and meet late. How long a seed stays on the plateau varies from none
# to tens of epochs, and says little about where it ends: after a few hundred epochs the curves of
# a size lie on top of each other, and the final test accuracies of a size spread by about half a
# point on MNIST and about a point on Fashion-MNIST, as much as one run's accuracy wanders over
# its last hundred epochs (above). The learned $\gamma$ keeps moving by about 0.1 either way from
# one epoch to the next until the end, so one seed's final $\gamma$ is a draw from that band; the
# mean over seeds, with its standard error, is the number to set beside the paper's single run
# (the scorecard does so, {doc}`scorecard`).

# %% [markdown]
# ## A run that stops learning
#
# The grid's records include runs that did not finish; each record keeps the reason. One of them,
# `scaling-fashion-441` seed 0, stopped in its first epoch:

# %%
for (dataset, n, profile), records in table.items():
    for r in records:
        if profile == "paper" and not finished(r):
            print(f"scaling-{dataset}-{n} seed {r['seed']} (commit {r['commit'][:7]}):\n"
                  f"{r['message']}")

# %% [markdown]
# Nothing in the first epoch of `scaling-fashion-441` seed 0 was NaN: the loss stayed finite and
# gamma ended it positive. What went
# wrong happened inside the epoch, between two of the loop's checks, so the first 300 training
# steps of seed 0 and, for contrast, of seed 1 are replayed one at a time with
# `python -m wcbook trace scaling-fashion-441 --profile paper --seed <k> --steps 300`, the training
# loop's own steps (same initialisation, data order and updates), recording after each step the
# learned $\gamma$, the largest entry of the gradient and the condition number of $\Phi$:

# %%
from wcbook.plots import step_traces

traces = {seed: json.loads((ROOT / "traces" / "scaling-fashion-441" / "paper"
                            / f"seed{seed}.json").read_text()) for seed in (0, 1)}
for seed, t in traces.items():
    print(f"seed {seed}: {t['steps']} steps traced on {t['device']} at commit {t['commit'][:7]} "
          f"(clean: {not t['dirty']}), {t['wall_time_s']:.0f} s")
step_traces({f"seed {seed}": t["trace"] for seed, t in traces.items()},
            "scaling-fashion-441 (N = 441), paper profile, seeds 0 and 1: the first 300 "
            "training steps")
plt.show()

# %%
rows = []
for seed, t in traces.items():
    tr = t["trace"]
    grad, cond, gamma = (np.array(tr[k]) for k in ("max_gradient", "phi_condition", "gamma"))
    # the gradient of step k is taken at the parameters left by step k - 1
    worst = int(np.argmax(grad[1:])) + 1
    rows.append((seed, f"{grad.max():.3g}", tr["step"][worst], f"{gamma[worst - 1]:+.3f}",
                 f"{cond[worst - 1]:.3g}", f"{cond.max():.3g}", int((gamma < 0).sum()),
                 f"{gamma.min():+.3f}"))
display(styled(frame(rows, ("seed", "largest gradient entry", "at step", "gamma there",
                            "cond(Phi) there", "largest cond(Phi)", "steps with gamma < 0",
                            "lowest gamma")),
               "scaling-441-trace", numeric=["seed", "at step", "steps with gamma < 0"],
               caption="scaling-fashion-441, paper profile: the first 300 steps of seeds 0 and 1"))
seed0 = traces[0]["trace"]
cond_before = np.array(seed0["phi_condition"][:-1])
print("seed 0's largest gradient comes at the step whose Phi is the worst conditioned of all:",
      int(np.argmax(seed0["max_gradient"][1:])) == int(np.argmax(cond_before)))

# %% [markdown]
# Seed 1 trains as the paper describes: $\gamma$ rises and stays well above zero, the condition
# number of $\Phi$ peaks early and then stays near $10^4$, and no gradient entry exceeds 0.1.
# Seed 0 takes the same kind of first steps into a different regime. Adam's rate of 0.1 moves
# the free columns of $\Phi$ so far that within a hundred steps $\Phi$ is nearly singular, and
# $A = \Phi\Lambda\Phi^{-1}$ carries its inverse into every Euler step; the derivative of that
# inverse, $-\Phi^{-1}\,d\Phi\,\Phi^{-1}$, grows with the square of $\|\Phi^{-1}\|$. At the same
# time $\gamma$, which divides the inhibitory equation, crosses zero for a few steps, where the
# inhibitory flow reverses and its stable state repels. The gradient taken at the
# worst-conditioned $\Phi$, with $\gamma$ negative, is $10^{20}$ or more; its square overflows
# float32 in Adam's second moment, and from then on every update of those parameters is divided
# by infinity (the flat lines from step 150 on: only the momentum of earlier updates still moves
# $\gamma$, and it dies away). Left alone, the run would go on for 350 epochs at chance with a
# finite loss and a positive $\gamma$; the training loop checks Adam's state after every epoch
# and records such a run as diverged, naming the parameter whose moment overflowed.
#
# Neither the paper nor its code keeps $\gamma$ positive or $\Phi$ well conditioned (the
# orthogonality penalty, 0.01 times the mean |cos| of the angles between free columns, did not
# prevent it here), so this is a property of the recipe, not of this implementation. A single
# diverged seed is no estimate of how often it happens, and since the first steps at this rate
# amplify float rounding ({doc}`A5_performance`), the same seed on another device may or may not
# meet such a spike: what carries over is the rate over seeds.
#
# ### How often, and at which size
#
# The same replay of the first epoch (300 steps) for five seeds of each data set at
# $N = 196, 289, 441$ and $576$, at the paper profile: per seed, the step after which Adam's
# second moment had overflowed and the step after which a parameter was NaN (where the replay
# stops; "none" where neither happened), the largest gradient entry and condition number of
# $\Phi$, and the steps after which $\gamma$ was negative.

# %%
from wcbook.plots import trace_seeds
from wcbook.training.trace import trace_summary

summaries, rows, replay_threads = {}, [], []
traced = sorted((p for p in (ROOT / "traces").glob("scaling-*/paper/seed*.json")
                 if "+" not in p.parts[-3]),  # the paper's recipe; variants below
                key=lambda p: (p.parts[-3].split("-")[1], int(p.parts[-3].split("-")[2]), p.name))
for path in traced:
    t = json.loads(path.read_text())
    s = trace_summary(t["trace"])
    run = t["experiment"].removeprefix("scaling-")
    summaries.setdefault(run, {})[t["seed"]] = s
    replay_threads.append(t["torch_threads"])
    rows.append((run, t["seed"], s["steps"], s["overflow_step"] or "none",
                 s["nonfinite_step"] or "none", f"{s['max_gradient']:.2g}",
                 f"{s['max_phi_condition']:.2g}", s["steps_gamma_negative"],
                 f"{s['min_gamma']:+.2f}", t["commit"][:7]))
display(styled(frame(rows, ("run", "seed", "steps", "overflow after step", "NaN after step",
                            "largest |gradient|", "largest cond(Phi)", "steps with gamma < 0",
                            "lowest gamma", "commit")),
               "scaling-trace-seeds", numeric=["seed", "steps", "steps with gamma < 0"],
               caption="scaling-<data>-<N>, paper profile, the first 300 training steps of each "
                       "seed, on the CPU"))
for run, by_seed in summaries.items():
    hit = sorted(seed for seed, s in by_seed.items()
                 if s["overflow_step"] is not None or s["nonfinite_step"] is not None)
    print(f"{run}: the first epoch broke training (overflow or NaN) for {len(hit)} of "
          f"{len(by_seed)} seeds {hit or ''}")

# %%
gamma_before_nan = {}
for path in traced:
    t = json.loads(path.read_text())
    if trace_summary(t["trace"])["nonfinite_step"] is not None:
        gamma_before_nan[f"{t['experiment']} seed {t['seed']}"] = t["trace"]["gamma"][-2]
for name, gamma in gamma_before_nan.items():
    print(f"{name}: gamma one step before the NaN {gamma:+.4f}")
print("every NaN came right after gamma fell below 0.05:",
      all(g < 0.05 for g in gamma_before_nan.values()))

# %%
trace_seeds(summaries, "scaling-<data>-<N>, paper profile, seeds 0-4: the first 300 training "
            "steps (one epoch) of each seed; red: Adam's second moment overflowed or a parameter "
            "turned NaN")
plt.show()

# %%
broken = sum(s["overflow_step"] is not None or s["nonfinite_step"] is not None
             for by_seed in summaries.values() for s in by_seed.values())
total = sum(len(by_seed) for by_seed in summaries.values())
z, rate = 1.96, broken / total  # Wilson's 95% interval for a binomial rate
centre = (rate + z**2 / (2 * total)) / (1 + z**2 / total)
half = z * np.sqrt(rate * (1 - rate) / total + z**2 / (4 * total**2)) / (1 + z**2 / total)
print(f"first epochs that broke training: {broken} of {total} ({rate:.0%}; 95% interval "
      f"{centre - half:.0%} to {centre + half:.0%})")

# %% [markdown]
# Most breaks are NaN, and each comes right after $\gamma$ fell to about zero, on both data sets
# and at every size. The inhibitory equation is divided by $\gamma$, and an explicit Euler step
# of $dt = 0.1$ cannot follow an equation whose rates are divided by a $\gamma$ near zero; Adam at
# a rate of 0.1 moves $\gamma$ (initially 0.25) by up to about 0.1 a step, so a few steps in the
# wrong direction are enough. The training loop records these runs as diverged (their loss or
# parameters are NaN at the end of the epoch). The overflow of seed 0 at $N = 441$ is the rarer,
# silent kind shown above. These are first epochs only, and a run can still break later: seed 1
# of Fashion-MNIST at $N = 196$ stayed finite through its first epoch in the replay, with a loss
# about three times that of the other seeds, and its paper-profile run had $\gamma$ below zero
# in its second epoch (recorded as diverged in the grid above). The paper reports five runs per
# row and no failures; with the recipe as published, a five-seed ensemble should expect some
# of its members to be recorded as diverged, and a scaling row's run may need another seed.

# %% [markdown]
# Does the replay foretell the run? Where a seed has both a replay and a paper-profile record,
# the replay's first epoch and the run's can be set side by side. The replay takes the training
# loop's own steps with the run's seed, so on the same kind of device the two should break at the
# same place: the replay stops at the step after which a parameter is NaN, the run notes the
# next step, whose loss is the first NaN. A run on another device may part ways with its replay
# (rounding differs, and these first steps amplify it).

# %%
from wcbook.results import first_epoch_threads, session_devices


def replay_break(s: dict) -> int | None:
    """The step after which a replay's first epoch broke (overflow or NaN), None if it did not."""
    return s["overflow_step"] or s["nonfinite_step"]


def foretold(r: dict, s: dict) -> bool:
    """Whether replay and run agree on the first epoch: both broke in it, or neither did."""
    return (replay_break(s) is not None) == (not finished(r) and r["diverged_at"]["epoch"] == 1)


pairs = [(f"{d}-{n}", r, summaries[f"{d}-{n}"][r["seed"]])
         for (d, n, profile), records in table.items() if profile == "paper"
         for r in records if r["seed"] in summaries.get(f"{d}-{n}", {})]
rows = [(run, r["seed"], f"after step {replay_break(s)}" if replay_break(s) else "no", outcome(r),
         session_devices(r), first_epoch_threads(r), r["commit"][:7]) for run, r, s in pairs]
display(styled(frame(rows, ("run", "seed", "replay: first epoch broke", "paper-profile run",
                            "run's devices", "CPU threads in epoch 1", "run's commit")),
               "scaling-replay-vs-run", numeric=["seed"],
               caption="scaling-<data>-<N>, paper profile: each seed with both a replay of its "
                       "first 300 steps (on the CPU, one thread) and a paper-profile record"))
print(f"replay and run agree on the first epoch for {sum(foretold(r, s) for _, r, s in pairs)} "
      f"of {len(pairs)} seeds")
print("every replay ran on one CPU thread:", set(replay_threads) == {1})
for run, r, s in pairs:
    if not foretold(r, s):
        print(f"{run} seed {r['seed']} parts ways with its replay: run on {session_devices(r)}, "
              f"{first_epoch_threads(r)} thread(s) in epoch 1; {outcome(r)}, test accuracy "
              f"{r['metrics']['test_accuracy'] if finished(r) else '-'}")

# %% [markdown]
# A replay of the first epoch takes seconds on the CPU, a paper-profile run of this grid tens of
# minutes on a GPU and hours on the CPU, so replaying the seeds first tells which runs would
# break in their first epoch before any time is spent on them. It says nothing about later
# epochs (seed 1 of Fashion-MNIST at $N = 196$ above), and across devices it is a forecast, not
# a replay. The thread count matters as much as the device: a CPU run on two threads sums its
# products in another order than the one-thread replay, and these first steps, which drive
# $\gamma$ towards zero, amplify that rounding into another path. The one seed that parts ways
# with its replay above is such a case: its replay broke in the first epoch, while its run, on
# two threads, stayed finite and learned. A replay foretells a run only on the same device with
# the same number of threads; otherwise it says which seeds walk close to the edge.

# %% [markdown]
# ### A floor for $\gamma$
#
# An explicit Euler step multiplies a deviation of the inhibitory rate by
# $1 + dt\,g'(y)/\gamma$, where $g(y) = -\alpha_I y + (1 - y) F_I(h_I - w_{II} y)$ is the
# inhibitory equation without its $1/\gamma$ (alone, since $w_{IE} = 0$). The step is stable for
# every $y \in [0, 1]$ exactly when $\gamma \ge dt \max|g'|/2$:

# %%
from wcbook.stability import euler_gamma_floor

floor = euler_gamma_floor(get_experiment("scaling-fashion-441").params, dt=0.1)
print(f"Euler floor of gamma at dt = 0.1: {floor:.4f} (gamma starts at 0.25)")

# %% [markdown]
# The variant `gamma-floor` clamps $\gamma$ to that floor after every Adam step and changes
# nothing else: a run whose $\gamma$ never reaches the floor is the paper's run step for step
# (the tests check this bit for bit). The first 300 steps of the seeds that broke above, and of
# seed 1 at $N = 441$ as a control, replayed with the floor:

# %%
def broke(s: dict) -> str:
    step = s["nonfinite_step"] or s["overflow_step"]
    return "no" if step is None else f"after step {step}"


compare = []
for path in sorted((ROOT / "traces").glob("scaling-*+gamma-floor/paper/seed*.json")):
    t = json.loads(path.read_text())
    run = t["experiment"].removeprefix("scaling-")
    free = trace_summary(json.loads((ROOT / "traces" / t["experiment"] / "paper"
                                     / path.name).read_text())["trace"])
    kept = trace_summary(t["trace"])
    compare.append((run, t["seed"], broke(free), broke(kept), kept["steps"],
                    f"{kept['min_gamma']:.4f}", f"{t['trace']['loss'][0]:.4f}",
                    f"{t['trace']['loss'][-1]:.4f}"))
display(styled(frame(compare, ("run", "seed", "paper's recipe: broke", "with the floor: broke",
                               "steps replayed", "lowest gamma", "loss at step 1",
                               "loss at the last step")),
               "scaling-gamma-floor", numeric=["seed", "steps replayed"],
               caption="scaling-<data>-<N>, paper profile and variant gamma-floor, the first 300 "
                       "steps of the seeds that broke, and seed 1 at N = 441"))
control = [json.loads((ROOT / "traces" / f"scaling-fashion-441{v}" / "paper" / "seed1.json")
                      .read_text())["trace"] for v in ("", "+gamma-floor")]
print("seed 1 at N = 441 (gamma above the floor throughout) is the same run with the floor:",
      control[0]["loss"] == control[1]["loss"] and control[0]["gamma"] == control[1]["gamma"])

# %% [markdown]
# With the floor none of these first epochs breaks, the silent overflow of seed 0 at $N = 441$
# included: its $\gamma$ rests on the floor instead of crossing zero, and its largest gradient
# stays many orders of magnitude below the one that overflowed. Not breaking is not learning,
# though: where the loss at the last step is still close to that of step 1, the run sits on the
# chance plateau after its first epoch, and only full runs can say whether it leaves it. The
# variant is not the paper's recipe, and its records are kept apart from the paper's
# (`python -m wcbook run scaling-fashion-441 --variant gamma-floor --profile paper`).

# %% [markdown]
# ## Time per epoch against $N$
#
# Measured seconds per epoch of the `smoke-scaling` runs (1000 images an epoch) and the paper's
# (60000 images an epoch, GPUs), each with a line $\propto N^2$ through its largest size, on log-log
# axes where a power law is a straight line. The fitted slope is the measured exponent.

# %%
fig, ax = plt.subplots(figsize=(7, 4.5))
sizes = np.array([s * s for s in SCALING_SIDES], dtype=float)
slopes = {}
for dataset, marker in (("mnist", "o"), ("fashion", "s")):
    paper = np.array([get_experiment(f"scaling-{dataset}-{int(n)}").reference["seconds_per_epoch"]
                      for n in sizes], dtype=float)
    ax.loglog(sizes, paper, marker, mfc="none", color="0.4", label=f"paper, {dataset}")
    slopes["paper", dataset] = np.polyfit(np.log(sizes), np.log(paper), 1)[0]
    measured = [(n, table[dataset, int(n), "smoke-scaling"]) for n in sizes]
    measured = np.array([(n, r[0]["seconds_per_epoch"]) for n, r in measured if r])
    if len(measured) >= 2:
        ax.loglog(measured[:, 0], measured[:, 1], marker + "-", label=f"smoke-scaling, {dataset}")
        slopes["smoke-scaling", dataset] = np.polyfit(np.log(measured[:, 0]), np.log(measured[:, 1]), 1)[0]
        ax.loglog(sizes, measured[-1, 1] * (sizes / measured[-1, 0]) ** 2, ":", color="k", lw=0.8)
ax.loglog(sizes, paper[-1] * (sizes / sizes[-1]) ** 2, ":", color="k", lw=0.8, label=r"$\propto N^2$")
ax.set(xlabel="N (nodes = pixels)", ylabel="seconds per epoch",
       title="scaling-mnist/fashion-N: records of profile smoke-scaling (seed 0) and the paper's "
             "Tables 6-7")
ax.title.set_fontsize(9)
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# The fitted exponents (time per epoch $\propto N^{p}$):

# %%
for (profile, dataset), p in sorted(slopes.items()):
    print(f"{profile:14s} {dataset:8s} p = {p:.2f}")

# %% [markdown]
# ## A cleaner measurement, live
#
# The records' seconds per epoch are means over a few epochs on a machine shared with other jobs,
# so a busy neighbour can inflate any one of them. The minimum over repeats is far less sensitive:
# here one training step (forward through 25 Euler steps and the adjoint backward) of a batch of
# 50 random inputs at every size, the best of three.

# %% tags=["nbval-ignore-output"]
import time

import torch

from wcbook.models import WilsonCowanClassifier

torch.set_num_threads(1)  # the records were made with one thread too
step_seconds = []
for side in SCALING_SIDES:
    n = side * side
    model = WilsonCowanClassifier(n, 10, seed=0, T_train=2.5)
    images, labels = torch.rand(50, n), torch.randint(0, 10, (50,))
    best = float("inf")
    for _ in range(3):
        tick = time.perf_counter()
        loss = model.loss(model(images), labels) + model.penalty()
        loss.backward()
        best = min(best, time.perf_counter() - tick)
    step_seconds.append(best)
    print(f"N = {n:5d}: {1e3 * best:7.1f} ms per step")
live_slope = np.polyfit(np.log(sizes), np.log(step_seconds), 1)[0]
print(f"fitted exponent p = {live_slope:.2f}")

# %%
fig, ax = plt.subplots(figsize=(6, 4))
ax.loglog(sizes, step_seconds, "o-", label="one step, best of 3")
ax.loglog(sizes, step_seconds[-1] * (sizes / sizes[-1]) ** 2, ":", color="k", label=r"$\propto N^2$")
ax.set(xlabel="N", ylabel="seconds per step",
       title="from-scratch Wilson-Cowan model (T = 2.5, seed 0), one training step, live on "
             "this CPU")
ax.title.set_fontsize(9)
ax.legend(fontsize=8)
plt.show()
print("a step at N = 1225 costs more than at N = 196:", step_seconds[-1] > step_seconds[0])

# %% [markdown]
# The paper's GPU timings grow only about linearly in $N$: at these sizes two GPUs are far from
# saturated by the products, and fixed per-step costs dominate. On the CPU the best-of-three step
# times follow the $N^2$ of the operation count closely. The records' epoch times grow more slowly
# than that: an epoch of the smoke profile is only five steps, fixed costs per epoch weigh on the
# small sizes, and the records come from a machine shared with other jobs.
#
# ## What is missing
#
# Paper-profile runs of the grid (at least one seed per size, 350-525 epochs of 60000 images) are
# GPU work. The seed-0 runs at $N = 196$ were begun on an H100 and, when its time ran out,
# resumed from their checkpoints on a 2-core CPU (an Intel Xeon); the other runs at $N = 196$
# and $289$ were trained on a CPU from the start, over several hours: on that one, one thread
# each except seed 1 of MNIST at $N = 289$, which had two, and seeds 2, 3 and 4 of MNIST and
# seeds 1 to 4 of Fashion-MNIST at $N = 289$ on two threads of another 2-core CPU (an AMD
# EPYC). The sessions and times per epoch are listed above. The sizes from $N = 441$ on cost more
# per epoch still and wait for a GPU (seed 0 of Fashion-MNIST at $N = 441$ diverged in its first
# epoch, above; seed 1 is its next run). They are run with
# `python -m wcbook appendix scaling --profile paper --publish`, or one at a time with
# `python -m wcbook run scaling-mnist-441 --profile paper --publish`; this chapter then shows them
# beside the paper's rows. The paper-profile records there are, and those still missing:

# %%
have = sorted({f"scaling-{d}-{n}" for d, n, _ in paper_runs})
diverged = sorted(f"scaling-{d}-{n}" for (d, n, p), r in table.items()
                  if p == "paper" and r and not any(map(finished, r)))
missing = sorted(f"scaling-{d}-{n}" for (d, n, p), r in table.items() if p == "paper" and not r)
print("finished paper-profile records:", ", ".join(have) or "none yet")
print("only diverged runs:", ", ".join(diverged) or "none")
print("missing:", ", ".join(missing) or "none")
