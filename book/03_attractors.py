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
# # Planting attractors
#
# The classifier needs one stable fixed point of the whole network per class. The paper builds them
# in two steps (Sec. 2, Fig. 4): choose target states made of the two stable values of a single node,
# then choose the coupling $A = \Phi\Lambda\Phi^{-1}$ so that every target is in the kernel of $A$.
#
# ## The targets (Fig. 4)
#
# For $N$ nodes and $K$ classes let $b = \lfloor N/(K+2)\rfloor$. Target $T_k$ has every entry at
# the high state $\bar x^{(2)}$ except the block $[kb, (k+1)b)$, which sits at the low state
# $\bar x^{(1)}$ (the two stable states of one node, chapter {doc}`01_node`):
#
# $$ (T_k)_j = \begin{cases} \bar x^{(1)}, & kb \le j < (k+1)b, \\
# \bar x^{(2)}, & \text{otherwise,} \end{cases} \qquad k = 0, \dots, K-1. $$ (eq-targets)
#
# For MNIST, $N = 784$, $K = 10$, $b = 65$. Drawn as 28x28 images:

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
import torch

from wcbook.coupling import block_size, make_targets
from wcbook.models import WilsonCowanNetwork
from wcbook.params import WCParams
from wcbook.plots import distance_curves, image_grid
from wcbook.stability import bistable_states, stability_interval

torch.manual_seed(0)
p = WCParams()
states = bistable_states(p)
N, K = 784, 10
targets = make_targets(N, K, states.xbar1, states.xbar2)
values = ", ".join(f"{v:.6f}" for v in torch.unique(targets).tolist())
print(f"b = {block_size(N, K)}; targets: {tuple(targets.shape)}, values {values}")
image_grid(targets, titles=[f"T_{k}" for k in range(K)], vmin=states.xbar1, vmax=states.xbar2)
plt.show()

# %% [markdown]
# ## The coupling $A = \Phi\Lambda\Phi^{-1}$
#
# $$ A = \Phi\Lambda\Phi^{-1}, \qquad \Lambda = \operatorname{diag}(\underbrace{0, \dots, 0}_{K},
# \lambda_K, \dots, \lambda_{N-1}), \qquad A\,T_k = 0. $$ (eq-spectral-coupling)
#
# - The first $K$ columns of $\Phi$ are an orthonormal basis of the span of the targets (a QR
#   factorisation), with eigenvalue 0. They are fixed.
# - The other $N - K$ columns are trainable. We initialise them as an orthonormal completion of the
#   target basis, so $\Phi$ starts orthogonal.
# - The $N - K$ trainable eigenvalues start at $\mathcal N(-\sqrt N, 1)$ with $\Gamma = 1/\sqrt N$
#   (the authors' code) or $\mathcal N(-N, 1)$ with $\Gamma = 1/N$ (the text); either way
#   $\Gamma\lambda \approx -1$.
# - $\gamma$ is trainable too, so the network has $(N-K)(N+1) + 1$ trainable numbers.
#
# `A` is never formed with an explicit inverse: $A^\top = \Phi^{-\top}(\Phi\Lambda)^\top$ is one
# linear solve. We build the MNIST-sized network in double precision to check the construction.

# %%
net = WilsonCowanNetwork(N, K, p, seed=0, dtype=torch.float64)
phi, A = net.coupling.phi().detach(), net.coupling.matrix().detach()
n_trainable = sum(t.numel() for t in net.parameters() if t.requires_grad)
print(f"trainable numbers: {n_trainable} = (N-K)(N+1)+1 = {(N - K) * (N + 1) + 1}")
print(f"Phi^T Phi = I: {torch.allclose(phi.T @ phi, torch.eye(N, dtype=phi.dtype), atol=1e-10)}")
print(f"max |A T_k| over all targets: below 1e-9: {(targets @ A.T).abs().max().item() < 1e-9}")
mu0 = (net.Gamma * net.coupling.eigenvalues).detach()
print(f"initial mu = Gamma*lambda: mean {mu0.mean():.3f}, range [{mu0.min():.3f}, {mu0.max():.3f}]")

# %% [markdown]
# ## Every target is a fixed point of the coupled network
#
# With $x = T_k$ and $y = y^*$ on every node, $A T_k = 0$ {eq}`eq-spectral-coupling` removes the
# coupling, and each node sits at one of its own fixed points, so $G$ vanishes:

# %%
x_t, y_t = net.target_state(torch.arange(K))
dx, dy = net.rhs(x_t, y_t)
print(f"max |dx/dt| at the targets below 1e-9: {dx.abs().max().item() < 1e-9}")
print(f"max |dy/dt| at the targets below 1e-9: {dy.abs().max().item() < 1e-9}")

# %% [markdown]
# Chapter 2 showed that the low state is stable {eq}`eq-stable-mode` for $\mu < 37.74$; at
# initialisation every mode is far inside that range:

# %%
edge = float(stability_interval(states.xbar1, states.y_star, p).sup)
print(f"all initial mu below the tighter boundary {edge:.4f}: {bool((mu0 < edge).all())}")

# %% [markdown]
# ## A perturbed target flows back
#
# Add Gaussian noise to the excitatory part of each target and integrate the untrained network for
# $T = 20$ with Euler steps $dt = 0.1$. Small perturbations return to the planted attractor; larger
# ones can push some nodes across the unstable state $x_u$ between the two basins of a single node,
# and the network settles elsewhere. The basins that training shapes are the subject of the next
# chapters.

# %%
gen = torch.Generator().manual_seed(1)
noise_levels = [0.01, 0.02, 0.05, 0.1]
T, dt = 20.0, 0.1
curves, labels = [], []
for sigma in noise_levels:
    x0 = x_t + sigma * torch.randn(x_t.shape, generator=gen, dtype=x_t.dtype)
    xs, ys = net.integrate(x0, y_t, T=T, dt=dt, return_trajectory=True)
    dist = (xs - x_t).abs().amax(dim=2).detach()  # (steps + 1, K)
    curves.append(dist.max(dim=1).values.numpy())
    labels.append(f"noise {sigma}")
    back = int((dist[-1] < 1e-6).sum())
    print(f"noise sigma = {sigma}: {back}/{K} targets recovered (max |x(T) - T_k| < 1e-6)")
t = np.arange(len(curves[0])) * dt
distance_curves(t, np.maximum(np.array(curves), 1e-16), labels)
plt.title(f"worst case over the ten targets: untrained network, N = {N}, seed 0", fontsize=9)
plt.show()
