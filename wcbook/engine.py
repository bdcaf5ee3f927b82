r"""A fast Euler integrator for training: no autograd graph, a hand-derived discrete adjoint.

Forward
-------
With step h = dt, coupling scale Gamma and firing functions F(s) = o + a tanh(beta s), one Euler
step of the network (:func:`wcbook.dynamics.node_rhs` with coupling input Gamma x A^T) reads,
element-wise over (batch, N), with M = w_EE I + Gamma A folding self-excitation into the coupling,

    s_n     = x_n M^T - w_EI y_n + h_E                 t_n = tanh(beta_E s_n)
    r_n     = w_IE x_n - w_II y_n + h_I                q_n = tanh(beta_I r_n)
    x_{n+1} = x_n + h ( -alpha_E x_n + (1 - x_n)(o_E + a_E t_n) )
    y_{n+1} = y_n + (h / gamma) ( -alpha_I y_n + (1 - y_n)(o_I + a_I q_n) )

The forward pass keeps x_n, y_n and t_n (n < n_steps), so the matrix product of a step is never
redone. q_n, two element-wise passes away from y_n, is recomputed in the backward pass: that is
cheaper than keeping it, since every kept tensor is written to cache-cold memory.

Adjoint
-------
Let u_n = dL/dx_n and v_n = dL/dy_n. The chain rule through step n gives the adjoints of the
pre-activations,

    e_n = dL/ds_n = h u_{n+1} (1 - x_n) a_E beta_E (1 - t_n^2)
    f_n = dL/dr_n = (h / gamma) v_{n+1} (1 - y_n) a_I beta_I (1 - q_n^2)

and, since s_n and r_n are linear in the state,

    u_n = u_{n+1} (1 - h alpha_E - h (o_E + a_E t_n)) + w_IE f_n + e_n M
    v_n = v_{n+1} (1 - (h / gamma)(alpha_I + o_I + a_I q_n)) - w_EI e_n - w_II f_n

A enters only through Gamma x_n A^T, and gamma only through the y increment y_{n+1} - y_n
= (h / gamma) R_n, whose gamma-derivative is -(y_{n+1} - y_n) / gamma:

    dL/dA     = Gamma sum_n e_n^T x_n = Gamma E^T X     (E, X: the steps stacked along the batch)
    dL/dgamma = -(1 / gamma) sum_n < v_{n+1}, y_{n+1} - y_n >

x_n and e_n are written straight into two (n_steps, B, N) blocks, so dL/dA is one product with
inner dimension n B after the loop. For N = 784, B = 200, 25 steps on the 2-core CPU it took 42 ms
against 45 ms for 25 products of inner dimension B on one thread, and 51 ms against 192 ms on two
threads while another process kept a core busy (one parallel region instead of 25, each of which
waits for a descheduled thread). A backward step costs one more product, e_n M (skipped at n = 0
when x0 needs no gradient). Gamma and the node constants are plain numbers.

Options (off by default, measured by ``python -m wcbook.bench``): ``compiled=True`` fuses each
step's element-wise work into one torch.compile kernel per direction (about 10-15% off a training
step on the 2-core CPU); ``matmul_dtype=torch.bfloat16`` runs the products in bf16, which on that
CPU (AVX512-BF16, no AMX) is slower than float32 and moves x(T) by up to 0.1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from .dynamics import n_steps
from .params import WCParams

__all__ = ["integrate_fast", "StepConstants"]


@dataclass(frozen=True)
class StepConstants:
    """The numbers one Euler step needs: the node constants as floats, Gamma and h = dt."""

    h: float
    Gamma: float
    w_EE: float
    w_EI: float
    w_IE: float
    w_II: float
    alpha_E: float
    alpha_I: float
    h_E: float
    h_I: float
    beta_E: float
    beta_I: float
    o_E: float
    a_E: float
    o_I: float
    a_I: float

    @classmethod
    def build(cls, params: WCParams, Gamma: float, dt: float) -> "StepConstants":
        """Fold numeric ``params`` (firing offsets and amplitudes under its reading), Gamma, dt."""
        return cls(
            h=float(dt),
            Gamma=float(Gamma),
            w_EE=float(params.w_EE),
            w_EI=float(params.w_EI),
            w_IE=float(params.w_IE),
            w_II=float(params.w_II),
            alpha_E=float(params.alpha_E),
            alpha_I=float(params.alpha_I),
            h_E=float(params.h_E),
            h_I=float(params.h_I),
            beta_E=float(params.beta_E),
            beta_I=float(params.beta_I),
            o_E=float(params.offset_E),
            a_E=float(params.amplitude_E),
            o_I=float(params.offset_I),
            a_I=float(params.amplitude_I),
        )


def _scalar(value: float, like: torch.Tensor) -> torch.Tensor:
    """``value`` as a 0-d tensor beside ``like`` (made by a fill: no host-device copy, no sync)."""
    return torch.full((), value, dtype=like.dtype, device=like.device)


def _product(a: torch.Tensor, b: torch.Tensor, b_low: torch.Tensor | None) -> torch.Tensor:
    """a b (one product per member when they carry a member axis); with ``b_low`` (b cast down)
    the product runs in that dtype, the result in a's."""
    mm = torch.mm if a.dim() == 2 else torch.bmm
    if b_low is None:
        return mm(a, b)
    return mm(a.to(b_low.dtype), b_low).to(a.dtype)


def _product_into(
    out: torch.Tensor, a: torch.Tensor, b: torch.Tensor, b_low: torch.Tensor | None, scale: float
) -> None:
    """out <- scale (out + a b), as one fused GEMM (batched over members when ``a`` has a member
    axis) unless the product runs in ``b_low``'s dtype."""
    if b_low is not None:
        out.add_(_product(a, b, b_low)).mul_(scale)
    elif a.dim() == 2:
        out.addmm_(a, b, beta=scale, alpha=scale)
    else:
        out.baddbmm_(a, b, beta=scale, alpha=scale)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """<a, b> over everything but the member axis: a 0-d tensor for (batch, N) states, one
    number per member for (members, batch, N)."""
    if a.dim() == 2:
        return torch.dot(a.reshape(-1), b.reshape(-1))
    members = a.shape[0]
    return torch.bmm(a.reshape(members, 1, -1), b.reshape(members, -1, 1)).view(members)


def _step_ratio(gamma: torch.Tensor, c: "StepConstants", state: torch.Tensor) -> torch.Tensor:
    """h / gamma, shaped to multiply states: 0-d, or the states' shape with a member axis."""
    hg = gamma.reciprocal().mul_(c.h)
    if state.dim() == 2:
        return hg
    # one number per member, spread over its states: element-wise products with a tensor of the
    # states' own shape take the fast path, a (members, 1, 1) broadcast does not
    return hg.view(-1, 1, 1).expand(state.shape).contiguous()


def _inhibitory_tanh(c: StepConstants, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """q = tanh(beta_I (w_IE x - w_II y + h_I))."""
    q = torch.add(_scalar(c.beta_I * c.h_I, y), y, alpha=-c.beta_I * c.w_II)
    if c.w_IE != 0.0:
        q.add_(x, alpha=c.beta_I * c.w_IE)
    return q.tanh_()


def _forward_step(
    c: StepConstants,
    x: torch.Tensor,
    y: torch.Tensor,
    Mt: torch.Tensor,
    Mt_low: torch.Tensor | None,
    hg: torch.Tensor,
    x_out: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Euler step from (x, y): returns x_{n+1} (written into ``x_out`` if given), y_{n+1}, t_n.

    ``hg`` is the 0-d tensor h / gamma (a tensor, so that no value is read back from the device).
    """
    # t = tanh(beta_E (x M^T - w_EI y + h_E))
    t = torch.add(_scalar(c.h_E, y), y, alpha=-c.w_EI)
    _product_into(t, x, Mt, Mt_low, c.beta_E)
    t.tanh_()
    # x_{n+1} = h o_E + (1 - h alpha_E - h o_E) x + h a_E t (1 - x)
    x_next = torch.add(_scalar(c.h * c.o_E, x), x, alpha=1.0 - c.h * (c.alpha_E + c.o_E), out=x_out)
    x_next.add_(t, alpha=c.h * c.a_E).addcmul_(x, t, value=-c.h * c.a_E)
    q = _inhibitory_tanh(c, x, y)
    # y_{n+1} = y + (h / gamma) ((1 - y)(o_I + a_I q) - alpha_I y)
    F = torch.add(_scalar(c.o_I, q), q, alpha=c.a_I)
    R = torch.addcmul(F, y, F, value=-1.0).add_(y, alpha=-c.alpha_I)
    return x_next, torch.addcmul(y, R, hg), t


def _backward_step(
    c: StepConstants,
    u: torch.Tensor,
    v: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    t: torch.Tensor,
    hg: torch.Tensor,
    e_out: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Element-wise part of adjoint step n: returns e_n (written into ``e_out`` if given), u_n less
    its e_n M term, and v_n."""
    q = _inhibitory_tanh(c, x, y)
    # e = h a_E beta_E (1 - t^2) u (1 - x)
    k = c.h * c.a_E * c.beta_E
    e = torch.addcmul(_scalar(k, t), t, t, value=-k, out=e_out)
    e.mul_(u).addcmul_(e, x, value=-1.0)
    # w = (h / gamma) v;  f = a_I beta_I (1 - q^2) w (1 - y)
    w = v * hg
    f = torch.addcmul(_scalar(c.a_I * c.beta_I, q), q, q, value=-c.a_I * c.beta_I)
    f.mul_(w).addcmul_(f, y, value=-1.0)
    # u_n - e_n M = u (1 - h (alpha_E + o_E)) - h a_E u t + w_IE f
    u_n = torch.mul(u, 1.0 - c.h * (c.alpha_E + c.o_E)).addcmul_(u, t, value=-c.h * c.a_E)
    if c.w_IE != 0.0:
        u_n.add_(f, alpha=c.w_IE)
    # v_n = v - w (alpha_I + o_I + a_I q) - w_EI e - w_II f
    v_n = torch.addcmul(v, w, q, value=-c.a_I).add_(w, alpha=-(c.alpha_I + c.o_I))
    v_n.add_(e, alpha=-c.w_EI).add_(f, alpha=-c.w_II)
    return e, u_n, v_n


def _tanh(z: torch.Tensor) -> torch.Tensor:
    """tanh z = 2 sigmoid(2 z) - 1: Inductor's CPU code for this ran about 3x faster than for its
    tanh (measured with torch 2.14); equal up to float rounding."""
    return 2.0 * torch.sigmoid(2.0 * z) - 1.0


def _fused_forward(
    c: StepConstants, x: torch.Tensor, y: torch.Tensor, m: torch.Tensor, hg: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`_forward_step` after the product m = x M^T, as plain expressions for torch.compile."""
    t = _tanh(c.beta_E * (m - c.w_EI * y + c.h_E))
    q = _tanh(c.beta_I * (c.w_IE * x - c.w_II * y + c.h_I))
    x_next = x + c.h * ((1.0 - x) * (c.o_E + c.a_E * t) - c.alpha_E * x)
    y_next = y + hg * ((1.0 - y) * (c.o_I + c.a_I * q) - c.alpha_I * y)
    return x_next, y_next, t


def _fused_backward(
    c: StepConstants,
    u: torch.Tensor,
    v: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    t: torch.Tensor,
    hg: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`_backward_step` as plain expressions for torch.compile."""
    q = _tanh(c.beta_I * (c.w_IE * x - c.w_II * y + c.h_I))
    e = (c.h * c.a_E * c.beta_E) * u * (1.0 - x) * (1.0 - t * t)
    w = hg * v
    f = (c.a_I * c.beta_I) * w * (1.0 - y) * (1.0 - q * q)
    u_n = u * (1.0 - c.h * (c.alpha_E + c.o_E + c.a_E * t)) + c.w_IE * f
    v_n = v - w * (c.alpha_I + c.o_I + c.a_I * q) - c.w_EI * e - c.w_II * f
    return e, u_n, v_n


_COMPILED: dict[str, Callable[..., Any]] = {}


def _compiled(name: str) -> Callable[..., Any]:
    """The torch.compile'd fused kernel ``name`` ("forward" or "backward"), built on first use."""
    if name not in _COMPILED:
        fn = _fused_forward if name == "forward" else _fused_backward
        _COMPILED[name] = torch.compile(fn)
    return _COMPILED[name]


def _coupling_operator(A: torch.Tensor, c: StepConstants) -> torch.Tensor:
    """M^T = Gamma A^T + w_EE I, the matrix every step multiplies the state with."""
    Mt = A.transpose(-2, -1).mul(c.Gamma)
    Mt.diagonal(dim1=-2, dim2=-1).add_(c.w_EE)
    return Mt


def _integrate(
    c: StepConstants,
    x: torch.Tensor,
    y: torch.Tensor,
    Mt: torch.Tensor,
    Mt_low: torch.Tensor | None,
    hg: torch.Tensor,
    steps: int,
    fused: bool,
    record: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, list[torch.Tensor], list[torch.Tensor]]:
    """``steps`` Euler steps from (x, y): (x_end, y_end, X, ys, ts).

    With ``record`` the trajectory the adjoint needs is kept: x_n in one block X (steps + 1, B, N),
    so that dL/dA is a single product later, and the lists of y_n and t_n (n < steps).
    """
    X = x.new_empty(steps + 1, *x.shape) if record else None
    y = y.contiguous()
    if X is not None:
        x = X[0].copy_(x)
    ys: list[torch.Tensor] = []
    ts: list[torch.Tensor] = []
    kernel = _compiled("forward") if fused else None
    for k in range(steps):
        x_out = None if X is None else X[k + 1]
        if kernel is None:
            x_next, y_next, t = _forward_step(c, x, y, Mt, Mt_low, hg, x_out)
        else:
            x_next, y_next, t = kernel(c, x, y, _product(x, Mt, Mt_low), hg)
            if x_out is not None:
                x_next = x_out.copy_(x_next)
        if record:
            ys.append(y)
            ts.append(t)
        x, y = x_next, y_next
    return x, y, X, ys, ts


def _adjoint(
    c: StepConstants,
    u: torch.Tensor,
    v: torch.Tensor,
    X: torch.Tensor,
    ys: list[torch.Tensor],
    ts: list[torch.Tensor],
    y_next: torch.Tensor,
    hg: torch.Tensor,
    M: torch.Tensor,
    M_low: torch.Tensor | None,
    fused: bool,
    dgamma: torch.Tensor | None,
    E: torch.Tensor | None,
    need_first: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the adjoint back through the recorded steps (X, ys, ts): returns (u, v) at their first
    state and y there. dL/dgamma terms are added to ``dgamma`` in place; e_n goes into ``E[n]``;
    ``need_first`` False skips the product e_0 M (no gradient needed before the first step)."""
    for k in reversed(range(len(ys))):
        if dgamma is not None:
            dgamma += _dot(v, ys[k]) - _dot(v, y_next)
        e_out = None if E is None else E[k]
        if fused:
            e, u_n, v = _compiled("backward")(c, u, v, X[k], ys[k], ts[k], hg)
            if e_out is not None:
                e = e_out.copy_(e)
        else:
            e, u_n, v = _backward_step(c, u, v, X[k], ys[k], ts[k], hg, e_out)
        if k > 0 or need_first:
            _product_into(u_n, e, M, M_low, 1.0)
        u, y_next = u_n, ys[k]
    return u, v, y_next


class _EulerAdjoint(torch.autograd.Function):
    """Euler integration whose backward pass is the discrete adjoint of the module docstring.

    With ``segment`` (checkpointing) the forward pass keeps only the states at every
    ``segment``-th step; the backward pass recomputes each segment's trajectory from its first
    state, last segment first, and runs the adjoint through it: one extra forward pass buys memory
    O(segment + steps / segment) states instead of O(steps).

    The states may carry a leading member axis (an ensemble: x0, y0 (S, batch, N), A (S, N, N),
    gamma (S,)); every product is then one batched product over the members. Under
    :func:`torch.func.vmap` (how :class:`wcbook.ensemble.Ensemble` runs a model per member) the
    :meth:`vmap` rule moves the mapped axis to the front and runs that batched integration.
    The forward pass returns what the adjoint needs after x(T) and y(T), marked
    non-differentiable, because :meth:`setup_context` sees only inputs and outputs.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        x0: torch.Tensor,
        y0: torch.Tensor,
        A: torch.Tensor,
        gamma: torch.Tensor,
        c: StepConstants,
        steps: int,
        low: torch.dtype | None,
        fused: bool,
        store: bool,
        segment: int | None,
    ) -> tuple[torch.Tensor, ...]:
        # The trajectory is kept only when a backward pass may need it (``store``: grad mode on
        # and an input requiring grad), so that long inference horizons stay O(batch N) in memory.
        hg = _step_ratio(gamma, c, x0)
        Mt = _coupling_operator(A, c)
        Mt_low = None if low is None else Mt.to(low)
        if _segments(store, segment, steps) is None:
            x, y, X, ys, ts = _integrate(c, x0, y0, Mt, Mt_low, hg, steps, fused, store)
            # ys[0] is y0 (an input, saved as such in setup_context)
            kept = (Mt, X, *ys[1:], *ts) if store else ()
        else:
            firsts: list[torch.Tensor] = []
            x, y = x0, y0
            for _, length in _segments(store, segment, steps):
                firsts += [x, y]
                x, y, *_ = _integrate(c, x, y, Mt, Mt_low, hg, length, fused, False)
            kept = (Mt, *firsts[2:])  # firsts[:2] are x0, y0
        # Fresh outputs: x0, y0 (0 steps) or saved tensors must not be returned as such.
        return (x.clone(), y.clone(), *kept)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        x0, y0, _, gamma, c, steps, low, fused, store, segment = inputs
        ctx.c, ctx.steps, ctx.low, ctx.fused = c, steps, low, fused
        ctx.segments = _segments(store, segment, steps)
        kept = output[2:]
        ctx.mark_non_differentiable(*kept)
        ctx.set_materialize_grads(False)
        if store:
            ctx.save_for_backward(x0, y0, gamma, output[1], *kept)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad_x: torch.Tensor | None, grad_y: torch.Tensor | None, *_: Any
    ) -> tuple[torch.Tensor | None, ...]:
        x0, y0, gamma, y_last, Mt, *rest = ctx.saved_tensors
        c: StepConstants = ctx.c
        need_x0, need_y0, need_A, need_gamma = ctx.needs_input_grad[:4]
        u = torch.zeros_like(y_last) if grad_x is None else grad_x.contiguous()
        v = torch.zeros_like(y_last) if grad_y is None else grad_y.contiguous()
        hg = _step_ratio(gamma, c, y_last)
        M = Mt.transpose(-2, -1)
        M_low = None if ctx.low is None else M.to(ctx.low)
        Mt_low = None if ctx.low is None else Mt.to(ctx.low)
        dgamma = torch.zeros_like(gamma) if need_gamma else None
        grad_A = torch.zeros_like(Mt) if need_A else None
        if ctx.segments is None:
            X, steps = rest[0], ctx.steps
            ys = [y0.contiguous(), *rest[1:steps]] if steps else []
            chunks = [(0, X, ys, rest[1 + len(ys[1:]) :])]
        else:
            chunks = ctx.segments
            firsts = [x0, y0, *rest]
        y_next = y_last
        for chunk in reversed(chunks):
            if ctx.segments is None:
                start, X, ys, ts = chunk
            else:
                start, length = chunk
                i = 2 * ctx.segments.index(chunk)
                _, _, X, ys, ts = _integrate(
                    c, firsts[i], firsts[i + 1], Mt, Mt_low, hg, length, ctx.fused, True
                )
            E = X.new_empty(len(ys), *X.shape[1:]) if need_A else None
            u, v, y_next = _adjoint(
                c, u, v, X, ys, ts, y_next, hg, M, M_low, ctx.fused, dgamma, E, start > 0 or need_x0
            )
            if E is not None:
                _add_coupling_gradient(grad_A, E, X[: len(ys)], c.Gamma)
        grad_gamma = dgamma / gamma if need_gamma else None
        return (u if need_x0 else None, v if need_y0 else None, grad_A, grad_gamma) + (None,) * 6

    @staticmethod
    def vmap(  # type: ignore[override]
        info: Any, in_dims: tuple, x0: torch.Tensor, y0: torch.Tensor, A: torch.Tensor,
        gamma: torch.Tensor, c: StepConstants, steps: int, low: torch.dtype | None, fused: bool,
        store: bool, segment: int | None,
    ) -> tuple[tuple[torch.Tensor, ...], tuple[int, ...]]:
        """Integrate every member at once: the mapped axis becomes the leading member axis."""
        tensors = [
            t.movedim(dim, 0) if dim is not None else t.expand(info.batch_size, *t.shape)
            for t, dim in zip((x0, y0, A, gamma), in_dims[:4])
        ]
        # requires_grad is not visible through vmap's wrappers: decide on the real tensors here.
        store = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
        outputs = _EulerAdjoint.apply(*tensors, c, steps, low, fused, store, segment)
        return outputs, (0,) * len(outputs)


def _segments(store: bool, segment: int | None, steps: int) -> list[tuple[int, int]] | None:
    """(first step, length) of each checkpointed segment, or None when the whole trajectory is
    kept (or nothing is: ``store`` False)."""
    if not store or segment is None or segment >= steps:
        return None
    return [(s, min(segment, steps - s)) for s in range(0, steps, segment)]


def _add_coupling_gradient(
    grad_A: torch.Tensor, E: torch.Tensor, X: torch.Tensor, Gamma: float
) -> None:
    """grad_A += Gamma E^T X with the steps stacked along the batch (per member with a member
    axis: E, X of shape (steps, S, batch, N), grad_A (S, N, N))."""
    n = X.shape[-1]
    if grad_A.dim() == 2:
        grad_A.addmm_(E.view(-1, n).t(), X.reshape(-1, n), alpha=Gamma)
        return
    members = grad_A.shape[0]
    E_m = E.transpose(0, 1).reshape(members, -1, n)
    X_m = X.transpose(0, 1).reshape(members, -1, n)
    grad_A.baddbmm_(E_m.transpose(1, 2), X_m, alpha=Gamma)


def integrate_fast(
    x0: torch.Tensor,
    y0: torch.Tensor,
    A: torch.Tensor,
    gamma: torch.Tensor | float,
    Gamma: float,
    params: WCParams,
    T: float,
    dt: float,
    *,
    matmul_dtype: torch.dtype | None = None,
    compiled: bool = False,
    checkpoint_every: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x(T), y(T)) after floor(T/dt) explicit Euler steps of the coupled network, differentiable.

    The same numbers as :func:`wcbook.dynamics.euler` with :func:`wcbook.dynamics.wc_rhs` and
    coupling input Gamma x A^T, up to float rounding; but the forward pass builds no autograd graph
    and the backward pass is the discrete adjoint of the module docstring. Gradients flow to ``x0``,
    ``y0`` (shape (batch, N)), ``A`` (N, N) and ``gamma`` (a 0-d tensor or a float); ``Gamma`` and
    ``params`` are constants. All tensors share one dtype and device. With a leading member axis
    (x0, y0 (S, batch, N), A (S, N, N), gamma (S,)) the S networks integrate at once, each
    product batched over the members; the same holds under :func:`torch.func.vmap`.

    ``matmul_dtype`` (e.g. ``torch.bfloat16``) runs the per-step matrix products in that dtype,
    with the state, the element-wise work and dL/dA kept in the input dtype. It is an experiment,
    off by default: it changes results beyond float32 rounding.

    ``compiled=True`` runs each step's element-wise work as one kernel fused by ``torch.compile``
    (forward and adjoint; the first call per shape compiles, which takes seconds). Off by default:
    it needs a working C++ toolchain (CPU) or Triton (GPU).

    ``checkpoint_every=k`` keeps only every k-th state for the backward pass and recomputes the
    steps in between there (one more forward pass): for long horizons or fine dt, where the
    trajectory would not fit in memory. The gradients are the same numbers.
    """
    if checkpoint_every is not None and (
        not isinstance(checkpoint_every, int) or checkpoint_every < 1
    ):
        raise ValueError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}")
    gamma_t = torch.as_tensor(gamma, dtype=x0.dtype, device=x0.device)
    _check_shapes(x0, y0, A, gamma_t)
    steps = n_steps(T, dt)
    c = StepConstants.build(params, Gamma, dt)
    store = torch.is_grad_enabled() and any(t.requires_grad for t in (x0, y0, A, gamma_t))
    x, y, *_ = _EulerAdjoint.apply(
        x0, y0, A, gamma_t, c, steps, matmul_dtype, compiled, store, checkpoint_every
    )
    return x, y


def _check_shapes(x0: torch.Tensor, y0: torch.Tensor, A: torch.Tensor, gamma: torch.Tensor) -> None:
    """x0, y0 (batch, N), A (N, N), gamma 0-d; or all with one leading member axis of size S:
    (S, batch, N), (S, N, N), (S,). One dtype and device."""
    members = () if x0.ndim == 2 else x0.shape[:1]
    if x0.ndim not in (2, 3) or x0.shape != y0.shape:
        raise ValueError(
            "x0 and y0 must both have shape (batch, N) or (members, batch, N), "
            f"got {tuple(x0.shape)} and {tuple(y0.shape)}"
        )
    n = x0.shape[-1]
    if A.shape != (*members, n, n):
        raise ValueError(f"A must have shape {(*members, n, n)}, got {tuple(A.shape)}")
    if gamma.shape != members:
        raise ValueError(
            f"gamma must have shape {tuple(members)} (one per member), got {tuple(gamma.shape)}"
        )
    for name, t in (("y0", y0), ("A", A)):
        if t.dtype != x0.dtype or t.device != x0.device:
            raise ValueError(
                f"{name} has dtype {t.dtype} on {t.device}; x0 has {x0.dtype} on {x0.device}"
            )
