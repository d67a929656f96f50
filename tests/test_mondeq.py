"""monDEQ (Winston & Kolter 2020): monotone operators, the FFT inverse, the Peaceman-Rachford
forward and backward solves, implicit gradients, alpha tuning and the trainer's interface.

Everything runs in float64 with tight tolerances on tiny sizes (vectors of ~10, 3-channel
tori of a few pixels), seeded by conftest's autouse fixture.
"""

import math

import pytest
import torch

from pcdeq import SolverStats, n_params
from pcdeq.mondeq import (MonDEQ, MonotoneConv2d, MonotoneLinear, peaceman_rachford,
                          peaceman_rachford_backward)

D = torch.float64


def _linear(n=10, m=1.0, scale=2.0):
    """A linear operator whose ||W||_2 > 1 (A, B scaled up from the default init)."""
    op = MonotoneLinear(n, m=m).double()
    with torch.no_grad():
        op.A.weight.mul_(scale)
        op.B.weight.mul_(scale)
    return op


def _conv(C=3, size=(6, 6), m=1.0, g=2.5, h=1.5):
    """A conv operator with gains g, h > 1, so that ||W||_2 > 1."""
    op = MonotoneConv2d(C, size, m=m).double()
    with torch.no_grad():
        op.g.fill_(g)
        op.h.fill_(h)
    return op


def _batch(op, b=3):
    shape = (op.n,) if isinstance(op, MonotoneLinear) else (op.channels, *op.size)
    return torch.randn(b, *shape, dtype=D)


def _flat(z):
    return z.reshape(z.shape[0], -1)


OPERATORS = {
    "linear": lambda: _linear(),
    "linear-m0.3": lambda: _linear(m=0.3),
    "conv-5x5": lambda: _conv(size=(5, 5)),
    "conv-4x6": lambda: _conv(size=(4, 6)),
    "conv-5x4-m0.5": lambda: _conv(size=(5, 4), m=0.5, g=0.7, h=3.0),
}


# ------------------------------------------------------------------------------ operators
@pytest.mark.parametrize("name", OPERATORS)
def test_multiply_and_adjoint_match_the_dense_matrix(name):
    op = OPERATORS[name]()
    Wd = op.dense()
    z = _batch(op)
    torch.testing.assert_close(_flat(op.multiply(z)), _flat(z) @ Wd.T, rtol=0, atol=1e-12)
    # Adjoint test: multiply_transpose is the transpose of the dense W (built from multiply).
    torch.testing.assert_close(_flat(op.multiply_transpose(z)), _flat(z) @ Wd, rtol=0, atol=1e-12)
    y = _batch(op)
    assert torch.allclose((op.multiply(z) * y).sum(), (z * op.multiply_transpose(y)).sum(),
                          rtol=1e-12, atol=1e-12)


def test_linear_dense_is_the_formula():
    op = _linear(6, m=0.4)
    A, B = op.A.weight, op.B.weight
    torch.testing.assert_close(op.dense(), 0.6 * torch.eye(6, dtype=D) - A.T @ A + B - B.T)


def test_conv_multiply_is_the_formula():
    """W z = (1-m) z - g Ah^T Ah z + Bh z - Bh^T z with Ah z an independent circular conv
    (nn.Conv2d's padding_mode="circular") and each adjoint taken by autograd."""
    op = _conv(size=(5, 6), m=0.7)
    C = op.channels
    A = op.A.weight / op.A.weight.norm()
    B = op.h * op.B.weight / op.B.weight.norm()

    def conv(K):
        c = torch.nn.Conv2d(C, C, 3, padding=1, padding_mode="circular", bias=False).double()
        c.weight.data.copy_(K.detach())
        return c

    def adjoint(f, y):
        z0 = torch.zeros_like(y, requires_grad=True)
        return torch.autograd.grad(f(z0), z0, y)[0]

    cA, cB = conv(A), conv(B)
    z = _batch(op)
    expected = (0.3 * z - op.g * adjoint(cA, cA(z)) + cB(z) - adjoint(cB, z))
    torch.testing.assert_close(op.multiply(z), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", OPERATORS)
def test_strongly_monotone(name):
    """I - W >= m I (symmetric part) for random A, B and, for the conv, random g, h >= 0."""
    for _ in range(3):
        op = OPERATORS[name]()
        with torch.no_grad():
            for p in (op.A.weight, op.B.weight):
                p.normal_(0, 1)
            if isinstance(op, MonotoneConv2d):
                op.g.uniform_(0, 5)
                op.h.uniform_(0, 5)
        I_W = torch.eye(op.dense().shape[0], dtype=D) - op.dense()
        lam = torch.linalg.eigvalsh((I_W + I_W.T) / 2).min()
        assert lam >= op.m - 1e-10


@pytest.mark.parametrize("name", OPERATORS)
def test_operator_norm_matches_dense(name):
    op = OPERATORS[name]()
    assert op.operator_norm() == pytest.approx(float(torch.linalg.matrix_norm(op.dense().detach(), 2)), rel=1e-10)


def test_conv_weight_normalisation_is_scale_invariant():
    """Ah = A / ||A||_F and Bh = h B / ||B||_F: rescaling A and B leaves W unchanged."""
    op = _conv(size=(4, 5))
    W0 = op.dense()
    with torch.no_grad():
        op.A.weight.mul_(7.0)
        op.B.weight.mul_(0.1)
    torch.testing.assert_close(op.dense(), W0, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------ the inverse
@pytest.mark.parametrize("name", OPERATORS)
@pytest.mark.parametrize("alpha", [1.0, 0.0625, 3.0])
def test_inverse_op_inverts_i_plus_alpha_i_minus_w(name, alpha):
    op = OPERATORS[name]()
    apply, apply_t = op.inverse_op(alpha)
    z = _batch(op)
    torch.testing.assert_close(apply(z + alpha * (z - op.multiply(z))), z, rtol=0, atol=1e-10)
    torch.testing.assert_close(apply_t(z + alpha * (z - op.multiply_transpose(z))), z, rtol=0, atol=1e-10)
    # Against the dense inverse (for the conv: the FFT route vs torch.linalg.inv of (CHW)^2).
    Wd = op.dense()
    V = torch.linalg.inv((1 + alpha) * torch.eye(Wd.shape[0], dtype=D) - alpha * Wd)
    torch.testing.assert_close(_flat(apply(z)), _flat(z) @ V.T, rtol=0, atol=1e-12)
    torch.testing.assert_close(_flat(apply_t(z)), _flat(z) @ V, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", OPERATORS)
def test_solver_ops_are_the_same_maps_with_the_same_gradients(name):
    """solver_ops (the layer's: spectral W for the conv) == multiply / inverse_op, values and
    parameter gradients of the differentiable multiply."""
    op = OPERATORS[name]()
    ops = op.solver_ops(0.5)
    inv, inv_t = op.inverse_op(0.5)
    z, y = _batch(op), _batch(op)
    with torch.no_grad():
        torch.testing.assert_close(ops.multiply_transpose(z), op.multiply_transpose(z), rtol=0, atol=1e-12)
        torch.testing.assert_close(ops.inverse(z), inv(z), rtol=0, atol=1e-12)
        torch.testing.assert_close(ops.inverse_transpose(z), inv_t(z), rtol=0, atol=1e-12)
    grads = []
    for mul in (ops.multiply, op.multiply):
        op.zero_grad()
        out = mul(z)
        (out * y).sum().backward()
        grads.append((out.detach(), [p.grad.clone() for p in op.parameters()]))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=0, atol=1e-12)
    for a, b in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("size", [(5, 5), (4, 6), (6, 7), (3, 3)])
def test_fft_inverse_float32(size):
    """complex64 path: accurate to float32 precision, returns float32."""
    op = MonotoneConv2d(4, size).float()
    apply, apply_t = op.inverse_op(0.5)
    z = torch.randn(2, 4, *size)
    with torch.no_grad():
        out = apply(z + 0.5 * (z - op.multiply(z)))
        out_t = apply_t(z + 0.5 * (z - op.multiply_transpose(z)))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, z, rtol=0, atol=1e-5)
    torch.testing.assert_close(out_t, z, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------ forward
LAYERS = {
    "linear": lambda **kw: MonDEQ(_linear(), **kw),
    "conv-border": lambda **kw: MonDEQ(_conv(size=(6, 6)), border=1, **kw),
    "conv-noborder-5x4": lambda **kw: MonDEQ(_conv(size=(5, 4), g=1.2, h=2.5), **kw),
}


def _layer_input(layer, b=3):
    return _batch(layer.operator, b)


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("alpha", [1.0, 0.25])
def test_forward_solves_the_fixed_point_equation(name, alpha):
    layer = LAYERS[name](alpha=alpha, tol=1e-12, max_iter=5000)
    assert layer.operator.operator_norm() > 1
    x = _layer_input(layer)
    with torch.no_grad():
        z = layer(x)
        fz = layer.sigma(layer.operator.multiply(z) + x)
    st = layer.last_fwd_stats
    assert isinstance(st, SolverStats) and not st.hit_max_iter and st.residual <= 1e-12
    assert layer.last_fwd_iters == st.iters > 1
    assert (z - fz).abs().max() <= 1e-8
    assert (z > 0).any() and (z == 0).any()  # both relu branches occur
    if layer.border:
        assert (z[..., 0, :] == 0).all() and (z[..., -1, :] == 0).all()
        assert (z[..., :, 0] == 0).all() and (z[..., :, -1] == 0).all()
    # With grad the output is relu_border(W z* + x) at the same z*.
    out = layer(x.requires_grad_())
    assert out.requires_grad
    torch.testing.assert_close(out.detach(), fz, rtol=0, atol=1e-8)


def test_forward_matches_plain_picard_where_it_converges():
    """A small W (||W|| < 1): PR and Picard agree on the unique fixed point."""
    op = MonotoneLinear(8).double()
    with torch.no_grad():
        op.A.weight.mul_(0.3)
        op.B.weight.mul_(0.3)
    assert op.operator_norm() < 0.9
    layer = MonDEQ(op, tol=1e-13, max_iter=2000)
    x = _layer_input(layer)
    z = torch.zeros_like(x)
    for _ in range(500):
        z = torch.relu(op.multiply(z) + x)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), z, rtol=0, atol=1e-10)


def test_solver_functions_stop_at_tol_and_report_max_iter():
    op = _linear()
    apply_v, apply_vt = op.inverse_op(1.0)
    x = _batch(op)
    with torch.no_grad():
        _, st = peaceman_rachford(x, apply_v, 1.0, torch.relu, tol=1e-3, max_iter=500)
        assert 1 < st.iters < 500 and st.residual <= 1e-3 and not st.hit_max_iter
        _, st = peaceman_rachford(x, apply_v, 1.0, torch.relu, tol=1e-14, max_iter=3)
        assert st.iters == 3 and st.hit_max_iter and st.residual > 1e-14
        # x = 0: z* = 0 is found at once (0 / (0 + 1e-6) = 0).
        z, st = peaceman_rachford(torch.zeros_like(x), apply_v, 1.0, torch.relu, tol=1e-3, max_iter=10)
        assert st.iters == 1 and st.residual == 0 and (z == 0).all()
        g = torch.randn_like(x)
        _, st = peaceman_rachford_backward(g, g > 0, apply_vt, 1.0, tol=1e-14, max_iter=2)
        assert st.iters == 2 and st.hit_max_iter


# ------------------------------------------------------------------------------ backward
def _dense_adjoint(layer, z_hat, g):
    """(I - J_f^T)^{-1} g per sample, J_f = diag(j) W, j = (z_hat > 0), W dense."""
    Wd = layer.operator.dense()
    j = _flat(z_hat > 0).to(D)
    out = []
    for jb, gb in zip(j, _flat(g)):
        J = jb[:, None] * Wd
        out.append(torch.linalg.solve(torch.eye(len(jb), dtype=D) - J.T, gb))
    return torch.stack(out).reshape(g.shape)


@pytest.mark.parametrize("name", LAYERS)
def test_pr_backward_equals_dense_adjoint_solve(name):
    layer = LAYERS[name](alpha=0.5, tol=1e-13, max_iter=5000)
    x = _layer_input(layer).requires_grad_()
    out = layer(x)
    inner = out.detach() if out.dim() == 2 else out.detach()[..., 1:-1, 1:-1]
    assert (inner == 0).any() and (inner > 0).any()  # a nontrivial active set j
    g = torch.randn_like(out)
    expected = _dense_adjoint(layer, out.detach(), g)
    # The routine itself: g + W^T z.
    apply_v, apply_vt = layer.operator.inverse_op(float(layer.alpha))
    with torch.no_grad():
        z, st = peaceman_rachford_backward(g, out > 0, apply_vt, float(layer.alpha), tol=1e-13,
                                           max_iter=5000)
        got = g + layer.operator.multiply_transpose(z)
    assert not st.hit_max_iter and st.iters > 1
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-8)
    # Through autograd: d<g, out>/dx = diag(j) (I - J_f^T)^{-1} g (out = relu(W z* + x)).
    (gx,) = torch.autograd.grad(out, x, g)
    torch.testing.assert_close(gx, (out.detach() > 0) * expected, rtol=0, atol=1e-8)
    assert layer.last_bwd_iters == layer.last_bwd_stats.iters > 1
    assert not layer.last_bwd_stats.hit_max_iter


def _unrolled(layer, x, n_iter):
    """n_iter PR iterations with grad (through V too), then relu_border(W z + x)."""
    alpha = float(layer.alpha)
    apply_v, _ = layer.operator.inverse_op(alpha)
    z, u = torch.zeros_like(x), torch.zeros_like(x)
    for _ in range(n_iter):
        u_half = 2 * z - u
        u = 2 * apply_v(u_half + alpha * x) - u_half
        z = layer.sigma(u)
    return layer.sigma(layer.operator.multiply(z) + x)


def _grads(layer, x, fn):
    layer.zero_grad()
    x = x.detach().clone().requires_grad_()
    out = fn(x)
    w = torch.linspace(-1, 1, out.numel(), dtype=D).reshape(out.shape)
    (torch.sin(out) * w).sum().backward()
    grads = {k: p.grad.clone() for k, p in layer.named_parameters()}
    grads["x"] = x.grad
    return grads


@pytest.mark.parametrize("name", LAYERS)
def test_implicit_gradients_equal_unrolled(name):
    layer = LAYERS[name](alpha=1.0, tol=1e-14, max_iter=5000)
    x = _layer_input(layer, b=2)
    implicit = _grads(layer, x, layer)
    n_fwd = layer.last_fwd_iters
    assert layer.last_bwd_iters > 1
    unrolled = _grads(layer, x, lambda x: _unrolled(layer, x, 2 * n_fwd + 50))
    names = {"linear": {"operator.A.weight", "operator.B.weight"},
             "conv": {"operator.A.weight", "operator.B.weight", "operator.g", "operator.h"}}
    assert set(implicit) == names[name.split("-")[0]] | {"x"}
    for k in implicit:
        assert implicit[k].abs().max() > 1e-6, k  # the comparison is not vacuous
        torch.testing.assert_close(implicit[k], unrolled[k], rtol=1e-6, atol=1e-10, msg=k)


# ------------------------------------------------------------------------------ the interface
def test_stats_and_trainer_interface():
    layer = LAYERS["conv-border"](alpha=1.0, tol=1e-6, max_iter=500)
    assert layer.last_fwd_stats is None and layer.last_bwd_stats is None and layer.last_bwd_iters is None
    x = _layer_input(layer).requires_grad_()
    out = layer(x)
    assert layer.last_fwd_iters >= 1 and layer.last_bwd_stats is None  # no backward yet
    out.pow(2).sum().backward()
    assert layer.last_bwd_iters >= 1 and not layer.last_bwd_stats.hit_max_iter
    layer(x)  # a new forward resets the backward stats
    assert layer.last_bwd_stats is None
    layer.max_iter = 2
    layer.tol = 1e-12
    layer(x).sum().backward()
    assert layer.last_fwd_stats.hit_max_iter and layer.last_fwd_iters == 2
    assert layer.last_bwd_stats.hit_max_iter and layer.last_bwd_iters == 2
    # DEQLayer names: project_ is a no-op, weight aliases the operator, op/sigma/inputs work.
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    layer.project_()
    assert all(torch.equal(v, layer.state_dict()[k]) for k, v in before.items())
    assert layer.weight is layer.operator and layer.activation == "relu"
    W = layer.effective_weight()
    torch.testing.assert_close(layer.op(W, x), layer.operator.multiply(x))
    lin = LAYERS["linear"]()
    xl = _layer_input(lin)
    torch.testing.assert_close(lin.op(lin.effective_weight(), xl), lin.operator.multiply(xl))
    assert "alpha=1" in repr(layer) and "border=1" in repr(layer) and "channels=3" in repr(layer)


def test_no_grad_forward_builds_no_graph():
    layer = LAYERS["linear"]()
    x = _layer_input(layer).requires_grad_()
    with torch.no_grad():
        z = layer(x)
    assert not z.requires_grad and layer.last_fwd_iters >= 1


def test_alpha_is_a_float64_buffer_that_survives_state_dict():
    layer = MonDEQ(MonotoneLinear(5), alpha=1.0)
    layer.alpha.fill_(0.125)
    sd = layer.state_dict()
    assert "alpha" in sd and sd["alpha"].dtype == torch.float64
    other = MonDEQ(MonotoneLinear(5), alpha=1.0)
    other.load_state_dict(sd)
    assert float(other.alpha) == 0.125 and other.alpha.dtype == torch.float64
    assert "operator.A.weight" in sd and not any(k.startswith("weight.") for k in sd)


@pytest.mark.parametrize("kw", [dict(alpha=0.0), dict(tol=0.0), dict(max_iter=0), dict(border=-1)])
def test_bad_settings_refused(kw):
    with pytest.raises(ValueError):
        MonDEQ(MonotoneConv2d(2, (5, 5)), **kw)


def test_border_needs_conv_and_shapes_are_checked():
    with pytest.raises(ValueError, match="border"):
        MonDEQ(MonotoneLinear(4), border=1)
    with pytest.raises(ValueError, match="shape"):
        MonDEQ(MonotoneConv2d(2, (5, 5)))(torch.randn(1, 2, 6, 6))


# ------------------------------------------------------------------------------ alpha tuning
def test_tune_alpha_follows_the_reference_rule():
    """A scripted iteration count per alpha: the rule keeps the smallest non-worse alpha of the
    halving run (ties go on halving), exactly as train.run_tune_alpha."""
    layer = MonDEQ(MonotoneLinear(4), alpha=0.3, max_iter=300)
    table = {1.0: 20, 0.5: 15, 0.25: 12, 0.125: 12, 0.0625: 14, 0.03125: 5}
    tried = []

    def run():
        a = float(layer.alpha)
        tried.append(a)
        layer.last_fwd_stats = SolverStats(table[a], 0.0, False)

    sentinel = SolverStats(7, 0.0, False)
    layer.last_fwd_stats = sentinel
    assert layer.tune_alpha_(run) == 0.125 == float(layer.alpha)
    assert tried == [1.0, 0.5, 0.25, 0.125, 0.0625]
    assert layer.last_fwd_stats is sentinel  # tuning leaves the training statistics alone
    # Nothing converges (every count is max_iter): the original alpha stays.
    table = {2.0 ** -k: 300 for k in range(20)}
    layer.alpha.fill_(0.3)
    assert layer.tune_alpha_(run) == 0.3 == float(layer.alpha)
    assert min(tried) <= 1e-4  # it halved down to the floor first
    # Monotonically fewer iterations all the way: stops at the 1e-4 floor, keeps 2 * alpha.
    table = {2.0 ** -k: 100 - k for k in range(20)}
    assert layer.tune_alpha_(run, max_alpha=1.0) == 2.0 ** -13


def test_tune_alpha_on_a_real_layer():
    layer = LAYERS["conv-border"](alpha=1.0, tol=1e-4, max_iter=300)
    x = _layer_input(layer, b=4)

    def run():
        with torch.no_grad():
            layer(x)

    def iters_at(a):
        layer.alpha.fill_(a)
        run()
        return layer.last_fwd_iters

    at_max = iters_at(1.0)
    layer.alpha.fill_(1.0)
    new = layer.tune_alpha_(run)
    k = -math.log2(new)
    assert k == int(k) and 0 <= k <= 14 and float(layer.alpha) == new
    assert iters_at(new) <= at_max
    assert iters_at(new / 2) > iters_at(new) or new / 2 <= 1e-4  # the next halving was worse


# ------------------------------------------------------------------------------ sizes
@pytest.mark.parametrize("make,count", [
    (lambda: MonotoneLinear(87), 15_138),
    (lambda: MonotoneConv2d(81, (34, 34)), 118_100),
    (lambda: MonotoneConv2d(54, (30, 30)), 52_490),
])
def test_parameter_counts(make, count):
    assert n_params(make()) == count
    assert n_params(MonDEQ(make())) == count  # alpha is a buffer, not a parameter
