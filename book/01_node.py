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
# # The Wilson-Cowan node
#
# Every node of the network is a Wilson-Cowan population pair: an excitatory rate $x$ and an
# inhibitory rate $y$. Without coupling (the paper's eqs. 1-2 with $\Gamma = 0$),
#
# $$
# \begin{aligned}
# \dot x &= -\alpha_E\, x + (1 - x)\, F_E(s_E), & s_E &= w_{EE}\,x - w_{EI}\,y + h_E + \Gamma (A x)_i,\\
# \gamma\,\dot y &= -\alpha_I\, y + (1 - y)\, F_I(s_I), & s_I &= w_{IE}\,x - w_{II}\,y + h_I,
# \end{aligned}
# $$ (eq-node)
#
# with sigmoidal firing functions $F(s) = \text{offset} + \text{amplitude}\,\tanh(\beta s)$.
# The package writes these two lines once (`wcbook.dynamics.node_rhs`); the torch integrator, the
# fixed-point search and the SymPy derivation of the next chapter all call that one function.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt

from wcbook.params import WCParams
from wcbook.plots import bistable_profile, phase_portrait
from wcbook.stability import bistable_states, node_fixed_points

p = WCParams()
for name, value in p.values().items():
    print(f"{name:8s} = {value:g}")
print("reading:", p.reading, "| coupling scale:", p.coupling_scale)

# %% [markdown]
# ## Two readings of the excitatory firing function
#
# The paper writes $F = f^{(1)} + f^{(2)}\tanh(\beta s)$ with $f_E^{(1)} = 0.25$,
# $f_E^{(2)} = 0.65$: offset 0.25, amplitude 0.65. The authors' code swaps the roles: offset
# $f^{(2)} = 0.65$, amplitude $f^{(1)} = 0.25$. For the inhibitory population both constants are
# 0.5, so only $F_E$ changes. `WCParams(reading=...)` selects the reading; the code's is the default
# because it is the one that reproduces the paper's figures, as the fixed points below show.

# %%
print(f"code reading: F_E(s) = {p.offset_E} + {p.amplitude_E} tanh({p.beta_E} s)")
text = WCParams(reading="text")
print(f"text reading: F_E(s) = {text.offset_E} + {text.amplitude_E} tanh({text.beta_E} s)")

# %% [markdown]
# ## Fixed points, found numerically
#
# Because $w_{IE} = 0$, the inhibitory equation does not see $x$: every node has the same
# $y^*$, the root of $-\alpha_I y + (1-y)F_I(h_I - w_{II}y)$ in $(0,1)$. Along the $y$-nullcline the
# fixed points are the zeros of $\dot x(x, y^*)$. `node_fixed_points` scans a fine grid for sign
# changes, refines each by bisection and classifies it by the eigenvalues of its Jacobian
# (derived in the next chapter). Nothing here is typed in.

# %%
def show_fixed_points(params: WCParams) -> None:
    for fp in node_fixed_points(params):
        kind = "stable  " if fp.stable else "unstable"
        eig = ", ".join(f"{e.real:+.4f}" for e in fp.eigenvalues)
        print(f"  {kind} x = {fp.x:+.6f}  y = {fp.y:.6f}  eigenvalues: {eig}")


print("code reading (default):")
show_fixed_points(p)
print("text reading:")
show_fixed_points(text)

# %%
states = bistable_states(p)
print(f"xbar1 = {states.xbar1:.6f}  (low stable state)")
print(f"xbar2 = {states.xbar2:.6f}  (high stable state)")
print(f"x_u   = {states.x_unstable:.6f}  (unstable, separates the two basins)")
print(f"y*    = {states.y_star:.6f}")

# %% [markdown]
# With the code's reading the node is bistable inside the physical range $0 \le x \le 1$:
# two stable states $\bar x^{(1)} < \bar x^{(2)}$ separated by an unstable one. These two values are
# the "pixels" of every planted attractor in chapter 3. With the text's reading one stable state
# sits at $x \approx -0.36$, a negative firing rate, which contradicts the paper's own
# $0 \le x \le 1$: this is why we take the code's reading as the default.
#
# ## Phase portrait
#
# The flow of a single node, its two nullclines and the three fixed points (filled: stable, open:
# unstable). The $y$-nullcline is flat because $w_{IE} = 0$.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
phase_portrait(p, ax=axes[0])
axes[0].set_title("code reading (default)")
phase_portrait(text, ax=axes[1], x_range=(-0.6, 0.6))
axes[1].set_title("text reading")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The bistable profile (Fig. 2)
#
# The paper's Fig. 2 is a cartoon of the bistable profile. Here is the real one: $\dot x$ along
# $y = y^*$ for both readings (shaded: the physical range $0 \le x \le 1$). Each zero crossing is a
# fixed point; where the curve crosses from positive to negative the state is stable.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
bistable_profile(p, ax=axes[0])
bistable_profile(text, x_range=(-0.6, 0.6), ax=axes[1])
fig.tight_layout()
plt.show()
