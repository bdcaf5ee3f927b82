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
# # Linear stability with SymPy
#
# A planted target is a state where each node sits at one of its two stable values and $A$ maps the
# target to zero. Perturb it along an eigenvector $\phi_i$ of $A$ with eigenvalue $\lambda_i$: the
# coupling input of each node changes by $\Gamma\lambda_i\,\delta x$, so each mode obeys a 2x2
# linear system whose matrix is
#
# $$ J = \frac{\partial G}{\partial(x, y)} + \frac{\partial G}{\partial c}\,[\Gamma\lambda_i,\ 0]
# \quad\text{at } c = 0, $$ (eq-mode-jacobian)
#
# where $G$ is the right-hand side of the node equations {eq}`eq-node` and $c$ is the coupling input
# in $s_E$. `wcbook.stability.symbolic_jacobian` builds $G$ with
# SymPy symbols by calling the very function the torch integrator uses, then differentiates.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
import sympy as sp
import torch
from IPython.display import Math, display

from wcbook.dynamics import wc_rhs
from wcbook.params import WCParams
from wcbook.plots import stability_curves
from wcbook.stability import (
    bistable_states,
    characteristic_polynomial,
    eigenvalue_expressions,
    jacobian_for_display,
    lambda_interval,
    max_real_part,
    numeric_jacobian,
    stability_interval,
    symbolic_jacobian,
)

p = WCParams()
states = bistable_states(p)
display(Math("J = " + sp.latex(jacobian_for_display(p))))

# %% [markdown]
# With the firing functions left abstract this is exactly the paper's eqs. (6)-(8). Since
# $w_{IE} = 0$ the lower-left entry vanishes and $J$ is triangular: one eigenvalue belongs to the
# excitatory population and depends on $\Gamma\lambda_i$, the other to the inhibitory population and
# depends on $\gamma$ only.
#
# ## Characteristic polynomial and eigenvalues
#
# SymPy derives $\det(sI - J)$ and its two roots $s_\pm$ for any 2x2 matrix; in closed form,
#
# $$ \det(sI - J) = s^2 - \operatorname{tr}J\, s + \det J, \qquad
# s_\pm = \tfrac12\Big(\operatorname{tr}J \pm \sqrt{\operatorname{tr}^2 J - 4\det J}\Big). $$ (eq-s-pm)

# %%
s = sp.Symbol("s")
J_generic = sp.Matrix(2, 2, sp.symbols("J_11 J_12 J_21 J_22"))
poly = characteristic_polynomial(J_generic)
display(Math(r"\det(sI - J) = " + sp.latex(sp.collect(poly, s))))
s_plus, s_minus = eigenvalue_expressions(J_generic)
display(Math(r"s_+ = " + sp.latex(s_plus) + r",\qquad s_- = " + sp.latex(s_minus)))
print("both are roots of the polynomial:", all(sp.expand(poly.subs(s, r)) == 0 for r in (s_plus, s_minus)))

# %% [markdown]
# For the paper's parameters $w_{IE} = 0$, so $J_{21} = 0$ and the two roots are the diagonal
# entries: the excitatory eigenvalue and the inhibitory one.

# %%
J_paper = jacobian_for_display(p).subs(p.symbolic().w_IE, 0)
for root in sorted(J_paper.eigenvals(), key=str):
    display(Math("s = " + sp.latex(root)))

# %% [markdown]
# The same functions work on the concrete Jacobian, with $F_E$, $F_I$ the tanh functions of the
# chosen reading; SymPy turns those expressions into vectorised numpy functions of
# $(x, y, \mu = \Gamma\lambda, \gamma)$.

# %%
J = symbolic_jacobian(p)
print("symbols in the concrete J:", sorted(str(v) for v in J.free_symbols))
print("degree of the characteristic polynomial in s:", sp.degree(characteristic_polynomial(J), s))

# %% [markdown]
# ## Cross-check against torch autograd
#
# The symbolic Jacobian must agree with what autograd computes from the torch right-hand side. We
# evaluate both at random states, random $\mu$ and random $\gamma$ (the coupling input is
# $\mu\,(x - x_0)$, zero at the evaluation point $x_0$ and with slope $\mu$, as for one eigenmode).

# %%
J_numeric = numeric_jacobian(p)
rng = np.random.default_rng(0)
worst = 0.0
for _ in range(200):
    x0, y0, mu, gamma = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(-40, 80), rng.uniform(0.1, 1)

    def G(z: torch.Tensor) -> torch.Tensor:
        x, y = z[:1].reshape(1, 1), z[1:].reshape(1, 1)
        dx, dy = wc_rhs(x, y, p, gamma, mu * (x - x0))
        return torch.cat([dx.reshape(1), dy.reshape(1)])

    J_auto = torch.autograd.functional.jacobian(G, torch.tensor([x0, y0], dtype=torch.float64))
    worst = max(worst, float(np.abs(np.asarray(J_numeric(x0, y0, mu, gamma), float) - J_auto.numpy()).max()))
print(f"200 random points: max |J_sympy - J_autograd| < 1e-12: {worst < 1e-12}")

# %% [markdown]
# ## Where is a planted state stable? (Fig. 3 and Fig. 6, top)
#
# Both roots {eq}`eq-s-pm` of a real 2x2 matrix have negative real part exactly when
#
# $$ \max\operatorname{Re} s_\pm(\mu) < 0 \iff \operatorname{tr}J(\mu) < 0 \ \text{and}\
# \det J(\mu) > 0, \qquad \mu = \Gamma\lambda. $$ (eq-stable-mode)
#
# Both are linear in $\mu$, so the stable set is an interval that SymPy computes exactly
# (`stability_interval`). The curves show $\max\operatorname{Re}s_\pm$ against
# $\mu$ for both stable states at the initial $\gamma = 0.25$ (Fig. 3) and at $\gamma = 0.85$, about
# the value training ends at on MNIST (Fig. 6, top); dotted lines mark the boundaries.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
stability_curves(p, gamma=0.25, ax=axes[0], states=states)
stability_curves(p, gamma=0.85, ax=axes[1], states=states)
fig.tight_layout()
plt.show()

# %%
N = 784
for gamma in (0.25, 0.85):
    for name, x in (("xbar1", states.xbar1), ("xbar2", states.xbar2)):
        mu_set = stability_interval(x, states.y_star, p, gamma)
        lam_sqrt = lambda_interval(mu_set, N, p)
        lam_lin = lambda_interval(mu_set, N, p.replace(coupling_scale="linear"))
        print(
            f"gamma = {gamma}: {name} stable for {float(mu_set.inf)} < mu < {float(mu_set.sup):.4f}; "
            f"N = {N}: lambda < {float(lam_sqrt.sup):.2f} (Gamma = 1/sqrt(N)), "
            f"lambda < {float(lam_lin.sup):.1f} (Gamma = 1/N)"
        )

# %% [markdown]
# The boundaries do not move with $\gamma$: with $w_{IE} = 0$ the matrix is triangular and the
# excitatory eigenvalue
#
# $$ J_{11}(\mu) = -\alpha_E - F_E(s_E) + (1 - x)\,F_E'(s_E)\,(w_{EE} + \mu) $$ (eq-j11)
#
# alone crosses zero. What $\gamma$ changes is the inhibitory eigenvalue $J_{22}$, the flat part of the curves on
# the left: a larger $\gamma$ brings it closer to zero, so the slowest decay rate of a perturbation
# shrinks. The low state $\bar x^{(1)}$ has the tighter bound, so it sets the admissible range for
# every trainable eigenvalue: a target mixes both states, and every mode must be stable at both.
#
# At the start of training $\mu \approx -1$ (eigenvalues drawn around $-\sqrt N$ with
# $\Gamma = 1/\sqrt N$), deep inside the stable region:

# %%
for name, x in (("xbar1", states.xbar1), ("xbar2", states.xbar2)):
    print(f"{name}: max Re s at mu = -1: {max_real_part(-1.0, x, states.y_star, p):+.4f}")

# %% [markdown]
# The per-mode criterion is exact only when every node sits at the same state. A planted target
# mixes $\bar x^{(1)}$ and $\bar x^{(2)}$, so the eigenvectors of $A$ do not decouple the full
# $2N \times 2N$ Jacobian; the paper's criterion is then a heuristic that the stability-certificate
# chapter checks against the full Jacobian of trained networks.
