"""Figures of the book. Each function draws on a matplotlib Axes (created when not given)."""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .dynamics import firing_functions, node_rhs
from .params import WCParams
from .stability import BistableStates, bistable_states, max_real_part, node_fixed_points, stability_interval, y_nullcline

LOW, HIGH = "tab:blue", "tab:red"


def _axes(ax: Axes | None, figsize: tuple[float, float] = (5, 4)) -> Axes:
    return plt.subplots(figsize=figsize)[1] if ax is None else ax


def phase_portrait(
    p: WCParams = WCParams(),
    ax: Axes | None = None,
    x_range: tuple[float, float] = (0.0, 0.6),
    y_range: tuple[float, float] = (0.0, 1.0),
) -> Axes:
    """Flow of one uncoupled node in the (x, y) plane with both nullclines and the fixed points."""
    ax = _axes(ax)
    F_E, F_I = firing_functions(p, np.tanh)
    X, Y = np.meshgrid(np.linspace(*x_range, 41), np.linspace(*y_range, 41))
    dX, dY = node_rhs(X, Y, 0.0, p, p.gamma, F_E, F_I)
    ax.streamplot(X, Y, dX, dY, color=np.hypot(dX, dY), cmap="Greys", density=1.1, linewidth=0.7)
    xs = np.linspace(*x_range, 801)
    ax.plot(xs, y_nullcline(xs, p), color="tab:green", label="y-nullcline (dy/dt = 0)")
    Xf, Yf = np.meshgrid(xs, np.linspace(*y_range, 801))
    ax.contour(Xf, Yf, node_rhs(Xf, Yf, 0.0, p, p.gamma, F_E, F_I)[0], levels=[0], colors="tab:purple")
    ax.plot([], [], color="tab:purple", label="x-nullcline (dx/dt = 0)")
    for fp in node_fixed_points(p):
        if x_range[0] <= fp.x <= x_range[1]:
            ax.plot(fp.x, fp.y, "o", ms=8, mfc="k" if fp.stable else "w", mec="k")
    ax.set(xlim=x_range, ylim=y_range, xlabel="excitatory rate x", ylabel="inhibitory rate y")
    ax.legend(loc="upper right", fontsize=8)
    return ax


def bistable_profile(
    p: WCParams = WCParams(), x_range: tuple[float, float] = (0.1, 0.5), ax: Axes | None = None
) -> Axes:
    """dx/dt along y = y* against x (Fig. 2): its zeros are the fixed points of one node."""
    ax = _axes(ax)
    xs = np.linspace(*x_range, 801)
    F_E, F_I = firing_functions(p, np.tanh)
    y_star = float(y_nullcline(0.0, p))
    ax.plot(xs, node_rhs(xs, y_star, 0.0, p, p.gamma, F_E, F_I)[0], color="k")
    for fp in node_fixed_points(p):
        if x_range[0] <= fp.x <= x_range[1]:
            ax.plot(fp.x, 0, "o", ms=8, mfc="k" if fp.stable else "w", mec="k")
    ax.axhline(0, color="grey", lw=0.6)
    ax.axvspan(max(0.0, x_range[0]), min(1.0, x_range[1]), color="0.93", zorder=0)
    ax.set(xlabel="x", ylabel="dx/dt at y = y*", xlim=x_range,
           title=f"F_E = {p.offset_E} + {p.amplitude_E} tanh({p.beta_E} s)")
    return ax


def stability_curves(
    p: WCParams = WCParams(),
    gamma: float | None = None,
    mu: np.ndarray | None = None,
    ax: Axes | None = None,
    states: BistableStates | None = None,
) -> Axes:
    """max Re s_+- against mu = Gamma * lambda for both stable states (Figs. 3 and 6 top)."""
    ax = _axes(ax)
    gamma = p.gamma if gamma is None else gamma
    states = bistable_states(p) if states is None else states
    mu = np.linspace(-60, 100, 1601) if mu is None else mu
    for name, x, color in (("xbar1", states.xbar1, LOW), ("xbar2", states.xbar2, HIGH)):
        ax.plot(mu, max_real_part(mu, x, states.y_star, p, gamma), color=color, label=f"{name} = {x:.4f}")
        edge = float(stability_interval(x, states.y_star, p, gamma).sup)
        ax.axvline(edge, color=color, ls=":", lw=1)
    ax.axhline(0, color="grey", lw=0.6)
    ax.set(xlabel=r"$\mu = \Gamma\lambda$", ylabel=r"max Re $s_\pm$", title=f"gamma = {gamma:g}")
    ax.legend(fontsize=8)
    return ax


def image_grid(
    images: torch.Tensor | np.ndarray,
    titles: Sequence[str] | None = None,
    ncols: int = 10,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    scale: float = 1.3,
) -> plt.Figure:
    """A grid of square images given flattened (n, side*side) or (n, side, side)."""
    images = np.asarray(torch.as_tensor(images).detach().cpu())
    n = images.shape[0]
    side = int(round(np.sqrt(images[0].size)))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, scale * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i].reshape(side, side), cmap=cmap, vmin=vmin, vmax=vmax)
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig


def distance_curves(
    t: np.ndarray, distances: np.ndarray, labels: Sequence[str], ax: Axes | None = None
) -> Axes:
    """Distance to a reference state against time, one line per trajectory (log scale)."""
    ax = _axes(ax)
    for d, label in zip(np.asarray(distances), labels):
        ax.semilogy(t, d, label=label)
    ax.set(xlabel="time t", ylabel="max |x(t) - T_k|")
    ax.legend(fontsize=8)
    return ax


def eigenvalue_histogram(
    mu: torch.Tensor | np.ndarray,
    p: WCParams = WCParams(),
    gamma: float | None = None,
    states: BistableStates | None = None,
) -> plt.Figure:
    """Trained mu = Gamma * lambda against the stability region (Fig. 6, top and bottom).

    Left: max Re s_+- at the learned gamma with the band the trained mu occupy; right: their
    histogram.
    """
    mu = np.asarray(torch.as_tensor(mu).detach().cpu(), dtype=float)
    states = bistable_states(p) if states is None else states
    fig, (top, bottom) = plt.subplots(1, 2, figsize=(11, 3.8))
    grid = np.linspace(min(mu.min(), -5.0) - 5.0, 80.0, 1200)
    stability_curves(p, gamma, grid, ax=top, states=states)
    top.axvspan(mu.min(), mu.max(), color="0.6", alpha=0.4, label="trained mu")
    top.legend(fontsize=8)
    bottom.hist(mu, bins=60, color="0.4")
    bottom.set(xlabel=r"trained $\mu = \Gamma\lambda$", ylabel="count",
               title=f"{mu.size} trainable eigenvalues in [{mu.min():.2f}, {mu.max():.2f}]")
    fig.tight_layout()
    return fig


def trajectories(
    xs: torch.Tensor, ys: torch.Tensor, dt: float, axes: Sequence[Axes] | None = None
) -> Sequence[Axes]:
    """Every node's x(t) and y(t) for one input (Fig. 7); ``xs``, ``ys`` of shape (steps+1, N)."""
    if axes is None:
        axes = plt.subplots(1, 2, figsize=(11, 3.8), sharex=True)[1]
    t = np.arange(xs.shape[0]) * dt
    for ax, z, name in zip(axes, (xs, ys), ("x (excitatory)", "y (inhibitory)")):
        ax.plot(t, np.asarray(torch.as_tensor(z).detach().cpu()), lw=0.3, alpha=0.5)
        ax.set(xlabel="time t", ylabel=name)
    return axes


def seed_strip(
    values: dict[str, Sequence[float]],
    seeds: Sequence[int],
    axes: Sequence[Axes] | None = None,
    reference: dict[str, float] | None = None,
) -> Sequence[Axes]:
    """One small panel per metric of ``values`` (metric name -> one value per seed of ``seeds``):
    each seed a labelled dot, the mean a line and mean ± standard deviation a band, and an
    optional dotted ``reference`` level per metric (chance, an initial value)."""
    if axes is None:
        axes = plt.subplots(1, len(values), figsize=(3.2 * len(values), 3.2), squeeze=False)[1][0]
    jitter = np.linspace(-0.15, 0.15, len(seeds)) if len(seeds) > 1 else np.zeros(1)
    for ax, (name, column) in zip(axes, values.items()):
        column = np.asarray(column, dtype=float)
        finite = column[np.isfinite(column)]
        if finite.size:
            mean, std = finite.mean(), finite.std(ddof=1) if finite.size > 1 else 0.0
            ax.axhspan(mean - std, mean + std, color="0.85", label="mean ± std")
            ax.axhline(mean, color="0.3", lw=1)
        ax.scatter(jitter, column, color="tab:blue", zorder=3)
        for x, y, seed in zip(jitter, column, seeds):
            if np.isfinite(y):
                ax.annotate(str(seed), (x, y), xytext=(5, 0), textcoords="offset points",
                            fontsize=7, va="center")
        if reference and name in reference:
            ax.axhline(reference[name], color="k", ls=":", lw=1, label="reference")
        ax.set(xlim=(-0.6, 0.6), xticks=[], title=name)
    return axes


def seed_lines(
    values: dict[str, Sequence[float]],
    seeds: Sequence[int],
    ax: Axes | None = None,
    reference: float | None = None,
) -> Axes:
    """Several measurements of the same seeds on one axis (column name -> one value per seed of
    ``seeds``), side by side: each seed a labelled line through its values, the mean over seeds a
    black bar per column, and an optional dotted ``reference`` level (chance)."""
    ax = _axes(ax, figsize=(5, 3.6))
    names = list(values)
    table = np.array([np.asarray(values[name], dtype=float) for name in names])  # (columns, seeds)
    x = np.arange(len(names))
    for k, seed in enumerate(seeds):
        ax.plot(x, table[:, k], "o-", color="tab:blue", alpha=0.55, lw=1, zorder=2)
        last = table[-1, k]
        if np.isfinite(last):
            ax.annotate(str(seed), (x[-1], last), xytext=(6, 0), textcoords="offset points",
                        fontsize=7, va="center")
    means = np.nanmean(np.where(np.isfinite(table), table, np.nan), axis=1)
    ax.hlines(means, x - 0.18, x + 0.18, color="k", lw=2, zorder=3, label="mean over seeds")
    if reference is not None:
        ax.axhline(reference, color="k", ls=":", lw=1, label="chance")
    ax.set_xticks(x, names, fontsize=8)
    ax.set_xlim(-0.4, len(names) - 0.6)
    ax.legend(fontsize=7)
    return ax


def twin_seed_plot(table: Any, chance: float, title: str) -> Figure:
    """The live runs of an encoder experiment and its softmax twin, one line per seed (``table``
    as :func:`wcbook.results.twin_seed_frame` gives it): test accuracy after stage 1, after the
    Wilson-Cowan model's stage 2 and after the twin's, beside the learned gamma (dotted: its
    initial 0.25); ``title`` names the model, profile and seeds."""
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6), gridspec_kw={"width_ratios": [2.4, 1]})
    seeds = [int(s) for s in table["seed"]]
    seed_lines({"stage 1\n(no dynamics)": table["stage1_test_accuracy"],
                "Wilson-Cowan\nafter stage 2": table["test_accuracy"],
                "softmax twin\nafter stage 2": table["twin_test_accuracy"]},
               seeds, ax=axes[0], reference=chance)
    axes[0].set(ylabel="test accuracy", ylim=(0, 1))
    seed_strip({"learned gamma": table["gamma"]}, seeds, axes=[axes[1]],
               reference={"learned gamma": 0.25})
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def step_traces(traces: dict[str, dict[str, Sequence[float]]], title: str) -> Figure:
    """Step traces (label -> the ``trace`` of :func:`wcbook.training.trace.trace_steps`) on three
    axes over the training step: the learned gamma after each step (dotted: 0, where the
    inhibitory equation reverses), the largest gradient entry of each step and the condition
    number of Phi after each step (both on log axes); ``title`` names the model, profile and
    seeds."""
    fig, axes = plt.subplots(3, 1, figsize=(8, 6.5), sharex=True)
    for label, trace in traces.items():
        axes[0].plot(trace["step"], trace["gamma"], lw=1, label=label)
        axes[1].semilogy(trace["step"], trace["max_gradient"], lw=1)
        axes[2].semilogy(trace["step"], trace["phi_condition"], lw=1)
    axes[0].axhline(0, color="k", ls=":", lw=1)
    axes[0].set_ylabel("gamma")
    axes[1].set_ylabel("largest |gradient|")
    axes[2].set(ylabel="cond(Phi)", xlabel="training step (batch of 200)")
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def trace_seeds(summaries: dict[str, dict[int, dict[str, Any]]], title: str) -> Figure:
    """Per run (label -> seed -> :func:`wcbook.training.trace.trace_summary`), one dot per seed
    of its largest gradient entry and its largest condition number of Phi over the traced steps,
    on log axes; red where Adam's second moment overflowed or a parameter turned NaN. ``title``
    names the models, profile and steps."""
    names = list(summaries)
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 1.1 * len(names)), 6), sharex=True)
    for ax, key, label in ((axes[0], "max_gradient", "largest |gradient|"),
                           (axes[1], "max_phi_condition", "largest cond(Phi)")):
        for x, name in enumerate(names):
            seeds = sorted(summaries[name])
            jitter = np.linspace(-0.15, 0.15, len(seeds)) if len(seeds) > 1 else np.zeros(1)
            for dx, seed in zip(jitter, seeds):
                s = summaries[name][seed]
                bad = s["overflow_step"] is not None or s["nonfinite_step"] is not None
                ax.scatter(x + dx, s[key], color="tab:red" if bad else "tab:blue", zorder=3)
                ax.annotate(str(seed), (x + dx, s[key]), xytext=(4, 0),
                            textcoords="offset points", fontsize=7, va="center")
        ax.set_yscale("log")
        ax.set_xticks(range(len(names)), names, fontsize=8)
        ax.set(ylabel=label, xlim=(-0.5, len(names) - 0.5))
    axes[0].scatter([], [], color="tab:red", label="Adam's second moment overflowed, or NaN")
    axes[0].scatter([], [], color="tab:blue", label="neither")
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def learning_curves(runs: dict[str, list[dict[str, Any]]], title: str) -> Figure:
    """One column per run (label -> its finished training records, each with a ``history`` and
    the paper's ``reference``): above, the training accuracy after each epoch (a line) and the
    test accuracy at each evaluation (dots) of every seed; below, its learned gamma after each
    epoch; the paper's test accuracy and gamma dotted. The epoch axis is logarithmic, since the
    first epochs decide when a seed leaves the chance plateau; ``title`` names the models,
    profile and seeds."""
    fig, axes = plt.subplots(2, len(runs), figsize=(3.6 * len(runs), 5.6), sharex="col",
                             squeeze=False)
    for column, (label, records) in enumerate(runs.items()):
        top, bottom = axes[0][column], axes[1][column]
        for r in records:
            h = r["history"]
            epochs = range(1, len(h["train_accuracy"]) + 1)
            line, = top.plot(epochs, h["train_accuracy"], lw=1, alpha=0.8,
                             label=f"seed {r['seed']}")
            top.plot(h["test_epochs"], h["test_accuracy"], ".", ms=3, color=line.get_color())
            bottom.plot(epochs, h["gamma"], lw=1, alpha=0.8, color=line.get_color())
        if records:
            top.axhline(records[0]["reference"]["test_accuracy"], color="k", ls=":", lw=1,
                        label="paper (test)")
            bottom.axhline(records[0]["reference"]["gamma"], color="k", ls=":", lw=1)
        top.set(title=label, xscale="log", ylim=(0, 1.02))
        bottom.set(xscale="log", xlabel="epoch")
        top.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel("training accuracy (line), test (dots)")
    axes[1][0].set_ylabel("learned gamma")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
