"""The fast integrator against the plain Euler loop and autograd."""

import pytest
import torch

from wcbook.dynamics import euler, wc_rhs
from wcbook.engine import integrate_fast
from wcbook.models import WilsonCowanNetwork
from wcbook.params import WCParams

P = WCParams()
#: w_IE != 0 couples y to x; the text's reading swaps offset and amplitude of F_E.
VARIANTS = [P, P.replace(w_IE=0.7, reading="text", h_I=-0.3)]


def problem(batch=6, n=10, dtype=torch.float64, seed=0):
    """Random states in [0, 1], a coupling matrix with a stable-ish spectrum, gamma."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(batch, n, generator=g, dtype=dtype)
    y0 = torch.rand(batch, n, generator=g, dtype=dtype)
    A = torch.randn(n, n, generator=g, dtype=dtype) / 2 - 3 * torch.eye(n, dtype=dtype)
    gamma = torch.tensor(0.3, dtype=dtype)
    return x0, y0, A, gamma, 1 / n**0.5


def plain(x0, y0, A, gamma, Gamma, params, T, dt):
    """The reference: the package's Euler loop over wc_rhs, differentiated by autograd."""
    return euler(lambda x, y: wc_rhs(x, y, params, gamma, Gamma * (x @ A.T)), x0, y0, T, dt)


def grads(fn, inputs, wx, wy):
    """Gradients of sum(wx x(T)) + sum(wy y(T)) (wy None: a loss on x only)."""
    leaves = [t.detach().clone().requires_grad_() for t in inputs[:4]]
    x, y = fn(*leaves, *inputs[4:])
    loss = (wx * x).sum() + (0 if wy is None else (wy * y).sum())
    return torch.autograd.grad(loss, leaves)


@pytest.mark.parametrize("params", VARIANTS)
@pytest.mark.parametrize("T", [2.5, 3.5])
def test_forward_matches_euler_float64(params, T):
    x0, y0, A, gamma, Gamma = problem()
    ref = plain(x0, y0, A, gamma, Gamma, params, T, 0.1)
    fast = integrate_fast(x0, y0, A, gamma, Gamma, params, T, 0.1)
    for r, f in zip(ref, fast):
        assert torch.allclose(f, r, rtol=0, atol=1e-13)


@pytest.mark.parametrize("params", VARIANTS)
@pytest.mark.parametrize("loss_on_y", [True, False])
def test_gradients_match_autograd_float64(params, loss_on_y):
    inputs = problem()
    g = torch.Generator().manual_seed(1)
    wx = torch.randn(inputs[0].shape, generator=g, dtype=torch.float64)
    wy = torch.randn(inputs[0].shape, generator=g, dtype=torch.float64) if loss_on_y else None
    args = (*inputs, params, 2.5, 0.1)
    ref = grads(plain, args, wx, wy)
    fast = grads(integrate_fast, args, wx, wy)
    for name, r, f in zip(("x0", "y0", "A", "gamma"), ref, fast):
        scale = r.abs().max().clamp_min(1e-300)
        assert (f - r).abs().max() / scale < 1e-12, name


@pytest.mark.parametrize("params", VARIANTS)
def test_gradcheck(params):
    x0, y0, A, gamma, Gamma = problem(batch=2, n=3)
    leaves = [t.clone().requires_grad_() for t in (x0, y0, A, gamma)]

    def f(x0, y0, A, gamma):
        return integrate_fast(x0, y0, A, gamma, Gamma, params, 0.4, 0.1)

    assert torch.autograd.gradcheck(f, leaves)


def test_gradients_only_where_asked():
    x0, y0, A, gamma, Gamma = problem()
    A.requires_grad_()
    x, _ = integrate_fast(x0, y0, A, 0.3, Gamma, P, 1.0, 0.1)
    x.sum().backward()
    assert A.grad is not None and x0.grad is None and y0.grad is None


@pytest.mark.parametrize("T", [0.0, 0.05])
def test_zero_steps(T):
    x0, y0, A, gamma, Gamma = problem()
    leaves = [t.clone().requires_grad_() for t in (x0, y0, A, gamma)]
    x, y = integrate_fast(*leaves, Gamma, P, T, 0.1)
    assert torch.equal(x, x0) and torch.equal(y, y0)
    assert x.data_ptr() != leaves[0].data_ptr()
    (x.sum() + 2 * y.sum()).backward()
    assert torch.equal(leaves[0].grad, torch.ones_like(x0))
    assert torch.equal(leaves[1].grad, torch.full_like(y0, 2.0))
    assert torch.equal(leaves[2].grad, torch.zeros_like(A))
    assert leaves[3].grad == 0


def test_float32_agrees_to_rounding():
    x0, y0, A, gamma, Gamma = problem(batch=16, n=64)
    A64 = A.clone().requires_grad_()
    x64, _ = integrate_fast(x0, y0, A64, gamma, Gamma, P, 3.5, 0.1)
    A32 = A.float().requires_grad_()
    x32, _ = integrate_fast(x0.float(), y0.float(), A32, gamma.float(), Gamma, P, 3.5, 0.1)
    assert (x32.double() - x64).abs().max() < 1e-5
    x64.square().sum().backward()
    x32.square().sum().backward()
    rel = (A32.grad.double() - A64.grad).abs().max() / A64.grad.abs().max()
    assert rel < 1e-4


def test_inference_without_graph():
    x0, y0, A, gamma, Gamma = problem()
    A.requires_grad_()
    with torch.no_grad():
        x, y = integrate_fast(x0, y0, A, gamma, Gamma, P, 4.0, 0.1)
    assert x.grad_fn is None
    ref = plain(x0, y0, A.detach(), gamma, Gamma, P, 4.0, 0.1)
    assert torch.allclose(x, ref[0], rtol=0, atol=1e-13)


def test_matches_network_and_its_parameter_gradients():
    net = WilsonCowanNetwork(40, 4, seed=3, dtype=torch.float64)
    images = torch.rand(5, 40, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    target = net.targets[torch.tensor([0, 1, 2, 3, 0])]

    def run(fast):
        net.zero_grad()
        if fast:
            A = net.coupling.matrix()
            x, _ = integrate_fast(images, images, A, net.gamma, net.Gamma, net.params, 2.5, 0.1)
        else:
            x, _ = net.integrate(images, T=2.5, dt=0.1)
        torch.nn.functional.mse_loss(x, target).backward()
        return x.detach(), {n: p.grad.clone() for n, p in net.named_parameters()}

    x_ref, g_ref = run(False)
    x_fast, g_fast = run(True)
    assert torch.allclose(x_fast, x_ref, rtol=0, atol=1e-13)
    assert set(g_fast) == {"gamma", "coupling.phi_free", "coupling.eigenvalues"}
    for name in g_ref:
        assert torch.allclose(g_fast[name], g_ref[name], rtol=1e-10, atol=1e-14), name


def test_bf16_products_are_close_but_not_exact():
    x0, y0, A, gamma, Gamma = (t.float() if torch.is_tensor(t) else t for t in problem(16, 64))
    x32, _ = integrate_fast(x0, y0, A, gamma, Gamma, P, 2.5, 0.1)
    A_leaf = A.clone().requires_grad_()
    x16, _ = integrate_fast(x0, y0, A_leaf, gamma, Gamma, P, 2.5, 0.1, matmul_dtype=torch.bfloat16)
    assert x16.dtype == torch.float32
    assert 0 < (x16 - x32).abs().max() < 0.05
    x16.sum().backward()
    assert A_leaf.grad.dtype == torch.float32 and torch.isfinite(A_leaf.grad).all()


def test_compiled_kernels_match_float64():
    pytest.importorskip("torch._inductor")
    inputs = problem()
    g = torch.Generator().manual_seed(2)
    wx = torch.randn(inputs[0].shape, generator=g, dtype=torch.float64)
    wy = torch.randn(inputs[0].shape, generator=g, dtype=torch.float64)
    args = (*inputs, VARIANTS[1], 2.5, 0.1)

    def compiled(*a):
        return integrate_fast(*a, compiled=True)

    ref_x, ref_y = plain(*args)
    x, y = compiled(*args)
    assert torch.allclose(x, ref_x, rtol=0, atol=1e-13)
    assert torch.allclose(y, ref_y, rtol=0, atol=1e-13)
    for r, f in zip(grads(plain, args, wx, wy), grads(compiled, args, wx, wy)):
        assert (f - r).abs().max() / r.abs().max() < 1e-12


@pytest.mark.parametrize(
    "change,match",
    [
        (lambda a: {**a, "y0": a["y0"][:, :-1]}, "same shape|shape"),
        (lambda a: {**a, "A": a["A"][:-1]}, "A must have shape"),
        (lambda a: {**a, "gamma": torch.ones(2, dtype=torch.float64)}, "one per member"),
        (lambda a: {**a, "A": a["A"].float()}, "dtype"),
    ],
)
def test_bad_inputs_are_refused(change, match):
    x0, y0, A, gamma, Gamma = problem()
    a = change({"x0": x0, "y0": y0, "A": A, "gamma": gamma})
    with pytest.raises(ValueError, match=match):
        integrate_fast(a["x0"], a["y0"], a["A"], a["gamma"], Gamma, P, 1.0, 0.1)


@pytest.mark.parametrize("every", [1, 3, 7, 40])
@pytest.mark.parametrize("fused", [False, True])
def test_checkpointed_gradients_are_the_same(every, fused):
    """Segments of 1, 3 (not dividing 25), 7 and more than the steps: the same gradients."""
    if fused and every != 3:
        pytest.skip("one compiled case is enough")
    inputs = problem()
    g = torch.Generator().manual_seed(1)
    wx = torch.randn(inputs[0].shape, generator=g, dtype=torch.float64)
    wy = torch.randn(inputs[0].shape, generator=g, dtype=torch.float64)

    def run(checkpoint_every):
        return lambda *a: integrate_fast(
            *a, P, 2.5, 0.1, checkpoint_every=checkpoint_every, compiled=fused
        )

    full, checkpointed = grads(run(None), inputs, wx, wy), grads(run(every), inputs, wx, wy)
    for a, b in zip(checkpointed, full):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_checkpointing_keeps_far_fewer_tensors():
    """200 steps: without checkpointing the backward pass keeps O(steps) states, with segments of
    10 it keeps 20 segment starts (and recomputes one segment at a time)."""
    from torch.autograd.graph import saved_tensors_hooks

    def saved_bytes(every):
        x0, y0, A, gamma, Gamma = problem()
        A.requires_grad_()
        sizes = {}

        def pack(t):
            sizes[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with saved_tensors_hooks(pack, lambda t: t):
            integrate_fast(x0, y0, A, gamma, Gamma, P, 20.0, 0.1, checkpoint_every=every)
        return sum(sizes.values())

    assert saved_bytes(10) < saved_bytes(None) / 4


def test_bad_checkpoint_interval_is_refused():
    x0, y0, A, gamma, Gamma = problem()
    with pytest.raises(ValueError, match="checkpoint_every"):
        integrate_fast(x0, y0, A, gamma, Gamma, P, 1.0, 0.1, checkpoint_every=0)


def members(count=3, **kw):
    """``count`` problems of the same shape (seeds 0, 1, ...) stacked on a member axis."""
    parts = [problem(seed=k, **kw) for k in range(count)]
    x0, y0, A, gamma = (torch.stack([p[i] for p in parts]) for i in range(4))
    return parts, (x0, y0, A, gamma, parts[0][4])


@pytest.mark.parametrize("every", [None, 7])
def test_member_axis_equals_each_member_float64(every):
    parts, (x0, y0, A, gamma, Gamma) = members()
    g = torch.Generator().manual_seed(5)
    wx = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    wy = torch.randn(x0.shape, generator=g, dtype=torch.float64)

    def run(*a):
        return integrate_fast(*a, checkpoint_every=every)

    stacked = grads(run, (x0, y0, A, gamma, Gamma, P, 2.5, 0.1), wx, wy)
    outputs = run(x0, y0, A, gamma, Gamma, P, 2.5, 0.1)
    for k, part in enumerate(parts):
        single = grads(run, (*part, P, 2.5, 0.1), wx[k], wy[k])
        for s, m in zip(single, stacked):
            assert torch.allclose(m[k], s, rtol=1e-12, atol=1e-14)
        for s, m in zip(run(*part, P, 2.5, 0.1), outputs):
            assert torch.allclose(m[k], s, rtol=0, atol=1e-14)


def test_vmap_runs_the_member_axis():
    """Under torch.func.vmap the integration batches over the members and differentiates."""
    parts, (x0, y0, A, gamma, Gamma) = members()
    leaves = [t.clone().requires_grad_() for t in (A, gamma)]

    def one(x, y, a, g):
        return integrate_fast(x, y, a, g, Gamma, P, 2.5, 0.1)[0]

    out = torch.func.vmap(one)(x0, y0, *leaves)
    out.square().sum().backward()
    for k, part in enumerate(parts):
        single = [t.clone().requires_grad_() for t in part[2:4]]
        x = integrate_fast(part[0], part[1], *single, Gamma, P, 2.5, 0.1)[0]
        x.square().sum().backward()
        assert torch.allclose(out[k], x, rtol=0, atol=1e-14)
        assert torch.allclose(leaves[0].grad[k], single[0].grad, rtol=1e-12, atol=1e-14)
        assert torch.allclose(leaves[1].grad[k], single[1].grad, rtol=1e-12, atol=1e-14)


def test_member_axis_shapes_are_checked():
    _, (x0, y0, A, gamma, Gamma) = members()
    with pytest.raises(ValueError, match="one per member"):
        integrate_fast(x0, y0, A, gamma[0], Gamma, P, 1.0, 0.1)
    with pytest.raises(ValueError, match="A must have shape"):
        integrate_fast(x0, y0, A[0], gamma, Gamma, P, 1.0, 0.1)
