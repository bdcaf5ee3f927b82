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
# # Appendix: an exact stability certificate
#
# The paper's stability criterion (Sec. 3, chapter 2, {eq}`eq-stable-mode`) perturbs a planted state along one eigenvector
# $\phi_i$ of $A$ at a time, which turns the $2N$-dimensional linearisation into one $2\times 2$
# Jacobian per eigenvalue $\mu_i = \Gamma\lambda_i$. That reduction assumes every node sits at the
# same state. A planted target does not: $b$ nodes sit at $\bar x^{(1)}$, the others at
# $\bar x^{(2)}$, and the eigenvectors of $A$ spread over both kinds of node. The exact statement is
# about the full Jacobian of the coupled system at $z = (T_k, y^*)$,
#
# $$ J = \begin{pmatrix} D_1 + D_2 (w_{EE} I + \Gamma A) & -w_{EI} D_2 \\
#                        w_{IE} D_4/\gamma & (D_3 - w_{II} D_4)/\gamma \end{pmatrix}, $$ (eq-full-jacobian)
#
# with the diagonal matrices $D_1 = \mathrm{diag}(-\alpha_E - F_E(s_E))$,
# $D_2 = \mathrm{diag}((1-x) F_E'(s_E))$, $D_3 = \mathrm{diag}(-\alpha_I - F_I(s_I))$ and
# $D_4 = \mathrm{diag}((1-y) F_I'(s_I))$. `wcbook.certificate.certify` computes it for every planted
# attractor of a trained model, takes its largest real eigenvalue part, sets it beside the per-mode
# criterion, and measures the basins of attraction.

# %%
# %matplotlib inline
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from wcbook.appendix import run_records
from wcbook.certificate import (
    certify,
    coupled_jacobian,
    critical_mode_mu,
    mode_abscissa,
)
from wcbook.experiments import Profile, get_experiment, resolve
from wcbook.models import WilsonCowanNetwork
from wcbook.params import WCParams
from wcbook.results import load_records
from wcbook.stability import (
    bistable_states,
    max_real_part,
    node_eigenvalues,
    stability_interval,
    stable_mu_bound,
)
from wcbook.training import load_data, load_trained, train

torch.set_num_threads(1)  # small matrices: one thread is fastest
ROOT = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "pyproject.toml").exists())
p = WCParams()
states = bistable_states(p)
edges = {name: float(stability_interval(x, states.y_star, p).sup)
         for name, x in (("xbar1", states.xbar1), ("xbar2", states.xbar2))}
print("per-mode stability edges in mu:", {k: round(v, 3) for k, v in edges.items()})

# %% [markdown]
# ## Where the per-mode criterion is exact
#
# When every node sits at the same stable state and $A\mathbf 1 = 0$, $J$ is block-diagonal in the
# eigenbasis of a symmetric $A$, and its $2N$ eigenvalues are exactly the $2\times 2$ eigenvalues
# $s_\pm(\mu_i)$ of the paper. A check on a 16-node network with a hand-made symmetric $A$ whose
# kernel holds the uniform vector (the unit tests do the same):

# %%
n, Gamma, gamma = 16, 0.25, 0.6
rng = torch.Generator().manual_seed(0)
basis = torch.randn(n, n, generator=rng, dtype=torch.float64)
basis[:, 0] = 1.0
Q, R = torch.linalg.qr(basis)
Q = Q * torch.sign(torch.diagonal(R))


def uniform_check(lambdas, xbar):
    A = Q @ torch.diag(torch.as_tensor(lambdas, dtype=torch.float64)) @ Q.T
    x = torch.full((n,), xbar, dtype=torch.float64)
    y = torch.full((n,), states.y_star, dtype=torch.float64)
    full = np.sort_complex(torch.linalg.eigvals(coupled_jacobian(A, Gamma, gamma, p, x, y)).numpy())
    per_mode = np.sort_complex(np.array(
        [s for lam in lambdas for s in node_eigenvalues(xbar, states.y_star, Gamma * lam, p, gamma)]))
    return full, per_mode


lambdas = np.concatenate([[0.0], np.linspace(-8.0, 4.0, n - 1)])
for name, xbar in (("xbar1", states.xbar1), ("xbar2", states.xbar2)):
    full, per_mode = uniform_check(lambdas, xbar)
    print(f"all nodes at {name}: spectra equal {np.allclose(full, per_mode, atol=1e-9)}, "
          f"max Re {full.real.max():+.4f} (stable: {full.real.max() < 0})")
pushed = lambdas.copy()
pushed[5] = (edges["xbar1"] + 1.0) / Gamma
full, per_mode = uniform_check(pushed, states.xbar1)
print(f"one mu pushed past the xbar1 edge: spectra equal {np.allclose(full, per_mode, atol=1e-9)}, "
      f"max Re {full.real.max():+.4f} (unstable: {full.real.max() > 0})")

# %% [markdown]
# ## At a planted target the two criteria part
#
# Now a real network ($N = 100$, $K = 10$) at its first target. Because $A T_k = 0$ whatever the
# trainable eigenvalues, the target stays a fixed point while one trainable $\mu_j$ is pushed
# upwards, and we can follow the largest real part of the full spectrum. The per-mode criterion
# predicts instability from the lower edge on (the $\bar x^{(1)}$ edge, the stricter of the two)
# whatever the mode; the full Jacobian crosses zero somewhere between the two edges, at a place set
# by how much of the eigenvector sits on low-state nodes.

# %%
net = WilsonCowanNetwork(100, 10, p, seed=0, dtype=torch.float64)
x_t, y_t = (t[0] for t in net.target_state(0))
phi = net.coupling.phi().detach()
low = (x_t - states.xbar1).abs() < 1e-9
mu_grid = np.linspace(0.0, 90.0, 91)
with torch.no_grad():
    net.coupling.eigenvalues.fill_(-1.0 / net.Gamma)  # every trainable mu at -1
modes = [0, 1, 2]
fig, ax = plt.subplots(figsize=(7, 4))
for j in modes:
    ax.plot(mu_grid, [mode_abscissa(net, j, m, x_t, y_t) for m in mu_grid],
            label=f"full J, mode {j}")
for name, xbar, color in (("xbar1", states.xbar1, "tab:blue"), ("xbar2", states.xbar2, "tab:red")):
    ax.plot(mu_grid, max_real_part(mu_grid, xbar, states.y_star, p, float(net.gamma.detach())), "--",
            color=color, label=f"per mode at {name}")
ax.axhline(0, color="grey", lw=0.6)
ax.set(xlabel=r"$\mu_j$ of one trainable mode", ylabel="max Re of the spectrum", ylim=(-4, 4),
       title="WilsonCowanNetwork (N = 100, K = 10, seed 0, other mu at -1) at target 0")
ax.legend(fontsize=8)
plt.show()
critical = {}
for j in modes:
    weight = float(phi[low, 10 + j].square().sum() / phi[:, 10 + j].square().sum())
    critical[j] = critical_mode_mu(net, j, x_t, y_t)
    print(f"mode {j}: {weight:.3f} of its squared weight on low-state nodes; full J unstable from "
          f"mu = {critical[j]:.3f}")
print("every threshold lies between the two per-mode edges:",
      all(edges["xbar1"] < c < edges["xbar2"] for c in critical.values()))

# %% [markdown]
# For these random modes the true threshold sits between the two per-mode edges, so the paper's
# condition (every $\mu_i$ below both edges) is sufficient here but not necessary. The certificate
# does not rely on either: it diagonalises the full $J$ at every trained attractor.
#
# ## A model trained live, certified
#
# A tiny from-scratch model (10x10 MNIST, 2000 images, 30 epochs: 300 Adam steps), trained in a
# temporary folder, then certified with 500 test images. The basin tests add Gaussian noise of
# several sizes to $x$ and $y$ of every target (20 draws per target and size) and integrate for the
# evaluation horizon $T = 40$; a state counts as having reached an attractor when its RMS distance
# to it is below a tenth of $\bar x^{(2)} - \bar x^{(1)}$.

# %% tags=["nbval-ignore-output"]
tiny = Profile("tiny", "certificate demo", n_train=2000, n_test=500, epochs=30, image_size=10,
               eval_every=30)
scratch = tempfile.TemporaryDirectory()  # removed once the live run is loaded
work = Path(scratch.name)
record = train("mnist-scratch", tiny, seed=0, results_dir=work / "r", checkpoint_dir=work / "c",
               progress=False)
config = resolve(get_experiment("mnist-scratch"), tiny)
_, test = load_data(config, tiny, torch.device("cpu"))
model = load_trained("mnist-scratch", "tiny", 0, work / "c")
scratch.cleanup()  # the live run is in memory; its files are no longer needed
certificate = certify(model, test.images, test.labels)
print(f"test accuracy {record['metrics']['test_accuracy']:.3f}\n")
print(certificate.summary())

# %% [markdown]
# The digits above depend on the machine's floating-point library; the verdicts do not:

# %%
print("per-mode criterion says stable:", certificate.per_mode_stable)
print("full Jacobian says stable at all 10 attractors:", certificate.full_stable)
print("the two agree:", certificate.agree)
print("targets are exact fixed points (residual < 1e-5):",
      all(a.residual < 1e-5 for a in certificate.attractors))
print("small perturbations (0.01) all return:", certificate.basins[0].returned == 1.0)
print("large perturbations (0.3) mostly do not:", certificate.basins[-1].returned < 0.5)

# %% [markdown]
# Most of the spectrum's top belongs to the inhibitory block: with $w_{IE} = 0$ the spectrum of $J$
# is that of $J_{xx}$ together with the diagonal of $J_{yy}$, which depends on $\gamma$ only. The
# excitatory part, where the coupling enters, is the second pair of numbers in the summary.
#
# ## Certificates of the stored models
#
# `python -m wcbook certify --profile smoke --publish` certifies the trained checkpoints of the
# smoke runs (from scratch and the ablations) with 500 test images each, and writes
# `certificates/<run>/<profile>/seed0.json`; `--profile smoke-encoded` does the same for the CNN +
# Wilson-Cowan models of {doc}`07_encoders`, whose initial states are the head's outputs $z$ of the
# test images (their horizon is the training one, $T = 3.5$). The forced-unstable ablation
# finished no epoch, so it has no trained model to certify (its fresh model is certified in the
# ablation chapter). The checkpoints of the CNN models' `paper` runs stayed on the GPU machine that
# trained them, so only their smoke models are certified here. The `paper` rows certify the
# paper-profile checkpoints at hand: that of the archived H100 run of `mnist-scratch` as it was
# copied back, at an intermediate epoch (the `epoch` column; its record holds the finished run),
# and the finished $N = 196$ models of appendix {doc}`A1_scaling` (begun on the H100, finished on
# a CPU). At the paper's scale nearly every test image ends on an attractor, most of them on their
# label's.

# %%
rows = []
for path in sorted((ROOT / "certificates").rglob("seed*.json")):
    r = json.loads(path.read_text())
    c = r["certificate"]
    basins = " ".join(f"{b['returned']:.2f}" for b in c["basins"])
    rows.append((path.parent.parent.name, r["profile"], r["checkpoint_epoch"], c["per_mode_max_real"],
                 c["max_real"], c["per_mode_max_real_x"], c["max_real_x"],
                 "yes" if c["agree"] else "NO", max(a["residual"] for a in c["attractors"]),
                 basins, c["images"]["converged_to_label"], c["images"]["elsewhere"]))
header = ("run", "profile", "epoch", "per-mode max Re", "full max Re", "per-mode J11", "full J_xx",
          "agree", "max residual", "returned at noise 0.01/0.03/0.1/0.3", "to label", "elsewhere")
print(" | ".join(header))
for row in rows:
    print(" | ".join([row[0], row[1], str(row[2]), *(f"{v:+.3f}" for v in row[3:7]), row[7],
                      f"{row[8]:.1e}", row[9], f"{row[10]:.3f}", f"{row[11]:.3f}"]))

# %% [markdown]
# Two columns per criterion: the largest real part over the whole spectrum (set by the inhibitory
# block when every mode is stable) and over the excitatory part alone, where the per-mode number
# is the largest $J_{11}(\mu_i)$ over the modes and both node states, and the full one the largest
# eigenvalue of $J_{xx}$. The per-mode number is not a bound on the full one:

# %%
above = [f"{row[0]} ({row[1]})" for row in rows if row[6] > row[5]]
print("runs whose full J_xx reaches above the largest per-mode J_11:", ", ".join(above) or "none")

# %% [markdown]
# ## Stability during training, and enforcing it
#
# The paper says it embeds and enforces stability on the attractors, and its Fig. 6 shows every
# trained eigenvalue inside the stable region; the authors' code trains the eigenvalues without a
# constraint. Every training run here records after each epoch the largest $\mu = \Gamma\lambda$ of
# the model (the planted ones included) and the *margin*, the per-mode bound
# (`wcbook.stability.stable_mu_bound`: below it a mode is stable at both node states) minus that
# largest $\mu$; a negative margin means a mode has left the region. At the end each record holds
# a short certificate (`wcbook.certificate.final_stability`): the per-mode criterion and the
# largest real eigenvalue part of the full $2N\times 2N$ Jacobian at the Newton-refined
# attractors. Enforcement is the variant `stable`: every trainable eigenvalue is written as
# $\lambda = \lambda_{\max} - \mathrm{softplus}(\theta)$ with $\Gamma\lambda_{\max}$ 0.01 below the
# bound, so no optimiser step can carry it out of the region; it starts at the free model's
# eigenvalues, and far below the ceiling softplus has slope 1, so there the steps are the free
# model's. Free and enforced were trained under the `smoke` profile for seeds 0 and 1
# (`python -m wcbook run mnist-scratch --profile smoke --publish`, with `--variant stable`; the
# free seed 0 is the older record, made before the margins were recorded).

# %%
bound = stable_mu_bound(p)
arms = {"free": run_records("mnist-scratch", "smoke", None, ROOT / "results"),
        "enforced": run_records("mnist-scratch", "smoke", "stable", ROOT / "results")}
rows = []
for arm, records in arms.items():
    for r in records:
        margins = r["history"].get("stability_margin")
        s = r.get("stability")
        rows.append((arm, r["seed"], r["metrics"]["test_accuracy"], r["metrics"]["gamma"],
                     min(margins) if margins else None, s["mu_max"] if s else None,
                     s["max_real"] if s else None))
print(f"per-mode bound on mu: {bound:.3f}")
print(f"{'arm':9s} {'seed':>4s} {'test acc':>8s} {'gamma':>6s} {'least margin':>12s} "
      f"{'final max mu':>12s} {'full max Re':>11s}")
for arm, seed, acc, gamma, margin, mu_max, max_real in rows:
    fmt = lambda v, spec: "-" if v is None else format(v, spec)
    print(f"{arm:9s} {seed:4d} {acc:8.4f} {gamma:6.3f} {fmt(margin, '12.3f')} "
          f"{fmt(mu_max, '12.3f')} {fmt(max_real, '+11.4f')}")

# %%
fig, ax = plt.subplots(figsize=(7, 3.4))
for (arm, records), colour in zip(arms.items(), ("tab:gray", "tab:green")):
    for r in records:
        if "stability_margin" in r["history"]:
            margins = r["history"]["stability_margin"]
            ax.plot(np.arange(1, len(margins) + 1), margins, color=colour,
                    label=f"{arm}, seed {r['seed']}")
ax.axhline(0, color="k", lw=0.8)
ax.set(xlabel="epoch", ylabel="bound - largest mu", ylim=(-1, bound + 2),
       title="stability margin during training")
ax.legend(fontsize=8)
fig.suptitle("mnist-scratch, free (seed 1) and variant stable (seeds 0, 1), smoke profile (N = 196)",
             fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# Every other committed record that carries the per-epoch margin, of any experiment and profile
# (the records made before it was recorded have none):

# %%
recorded = sorted((r["experiment"] + (f"+{r['variant']}" if r["variant"] else ""), r["profile"], r["seed"],
                   min(r["history"]["stability_margin"]), r["stability"]["full_stable"])
                  for r in load_records(ROOT / "results")
                  if "stability_margin" in r.get("history", {}) and "stability" in r)
for run, profile, seed, margin, full in recorded:
    print(f"{run:40s} {profile:9s} seed {seed}: least margin {margin:7.3f}, targets stable "
          f"under the full Jacobian at the end: {full}")

# %%
margins = [m for _, _, _, m, _ in recorded]
free, enforced = ([acc for a, _, acc, *_ in rows if a == arm] for arm in ("free", "enforced"))
print("no recorded run ever left the per-mode region (every margin > 0):", min(margins) > 0)
print("no recorded run came within half the bound of it:", min(margins) > bound / 2)
print(f"test accuracy, mean over seeds: free {np.mean(free):.4f}, enforced {np.mean(enforced):.4f}")

# %% [markdown]
# In these runs no trainable eigenvalue comes anywhere near the boundary: the largest $\mu$ stays
# at most a few units (at the planted 0 in the smoke runs, where every trained $\mu$ stays
# negative) against a bound of about 38, so the per-mode criterion holds with a wide margin
# throughout training, and the paper-profile certificates above say the same of the full-scale
# models at their ends. Enforcement is therefore inactive in practice (the softplus stays in its
# linear part); the two arms differ by what the chaotic first steps at lr 0.1 make of float
# rounding ({doc}`A5_performance`), which two seeds cannot separate from an effect. Where the
# full Jacobian says a model is unstable, it is because its targets are not fixed points (the
# learned-planted ablation of {doc}`A2_ablations`), not because an eigenvalue left the region.
