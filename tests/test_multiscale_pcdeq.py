"""The multiscale pcDEQ: its map is a positive concave mapping, so the paper's theorem holds."""

from __future__ import annotations

import pytest
import torch

from pcdeq import build_model, n_params
from pcdeq.multiscale_pcdeq import MultiscalePcDEQ, branch_sizes

D64 = torch.float64


def _layer(variant: int = 1, act: str = "tanh", scale: float = 1.0, seed: int = 0) -> MultiscalePcDEQ:
    torch.manual_seed(seed)
    layer = MultiscalePcDEQ((3, 4, 5), branch_sizes(12, 3), variant, act).double()
    with torch.no_grad():  # W far from a contraction: the theorem must not need ||W|| < 1
        for row in layer.weights:
            for ws in row:
                for w in ws:
                    w.g.mul_(scale)
    return layer


def _x(layer: MultiscalePcDEQ, batch: int = 2, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    u = [torch.randn(batch, *s, generator=g, dtype=D64) for s in layer.shapes()]
    return layer.inputs(u)


def test_parameter_count_is_comparable_to_the_reduced_mdeq():
    assert n_params(build_model("mnist5k", "pcDEQ-1-MS-Tanh")) == 129_242
    assert n_params(build_model("mnist5k", "MDEQ-MS")) == 131_634


def _monotone_and_concave(layer: MultiscalePcDEQ, x: torch.Tensor) -> tuple[float, float]:
    """The worst violations of g(a) <= g(a + d) (d >= 0; every coordinate, or one branch's)
    and of concavity over random pairs."""
    g = layer.map(x)
    gen = torch.Generator().manual_seed(2)
    worst_mono = worst_conc = 0.0
    for k in range(20):
        a = torch.rand(x.shape, generator=gen, dtype=D64) * 3
        b = torch.rand(x.shape, generator=gen, dtype=D64) * 3
        d = torch.rand(x.shape, generator=gen, dtype=D64)
        if k % 2:  # d on one branch only: the fusion operators alone move the others
            parts = layer.to_list(d)
            keep = k % len(parts)
            d = layer.to_vec([p if i == keep else torch.zeros_like(p) for i, p in enumerate(parts)])
        worst_mono = max(worst_mono, float((g(a) - g(a + d)).max()))
        t = 0.3
        worst_conc = max(worst_conc, float((t * g(a) + (1 - t) * g(b) - g(t * a + (1 - t) * b)).max()))
    return worst_mono, worst_conc


@pytest.mark.parametrize("variant,act", [(1, "tanh"), (1, "relu6"), (1, "softsign"), (2, "sigmoid")])
def test_the_map_is_monotone_concave_and_positive_at_zero(variant, act):
    layer = _layer(variant, act, scale=1.0)
    x = _x(layer)
    with torch.no_grad():
        mono, conc = _monotone_and_concave(layer, x)
        assert mono <= 1e-12 and conc <= 1e-12
        assert float(layer.map(x)(torch.zeros_like(x)).min()) > 0  # g(0) >> 0
        assert float(layer.effective_weight().min()) >= 0


def test_negative_control_a_mixed_sign_fusion_kernel_breaks_monotonicity():
    layer = _layer(1, "tanh", scale=10.0)
    with torch.no_grad():
        w = layer.weights[0][1][0]  # the upsampling 1x1 conv F_01
        w.v.neg_()  # mixed signs once g also moves: W has negative entries now
    x = _x(layer)
    with torch.no_grad():
        mono, _ = _monotone_and_concave(layer, x)
    assert mono > 1e-3
    layer.project_()
    with torch.no_grad():
        assert float(layer.effective_weight().min()) >= 0


def test_one_fixed_point_from_every_start_even_far_from_a_contraction():
    layer = _layer(1, "tanh", scale=20.0)
    x = _x(layer)
    g = layer.map(x)
    gen = torch.Generator().manual_seed(3)
    limits = []
    with torch.no_grad():
        for k in range(6):
            z = torch.rand(x.shape, generator=gen, dtype=D64) * (0 if k == 0 else 10)
            for _ in range(400):
                z = g(z)
            assert float((g(z) - z).abs().max()) < 1e-10
            limits.append(z)
    spread = max(float((a - limits[0]).abs().max()) for a in limits)
    assert spread < 1e-9


def test_implicit_gradient_equals_backprop_through_the_converged_iteration():
    layer = _layer(1, "softsign", scale=3.0)
    layer.tol, layer.max_iter = 1e-12, 500
    g = torch.Generator().manual_seed(4)
    u = [torch.randn(2, *s, generator=g, dtype=D64, requires_grad=True) for s in layer.shapes()]
    w = torch.randn(2, sum(c * h * ww for c, h, ww in layer.shapes()), generator=g, dtype=D64)
    z = layer(u)
    (layer.to_vec(z) * w).sum().backward()
    implicit = [t.grad.clone() for t in u] + [p.grad.clone() for p in layer.parameters()]
    for t in [*u, *layer.parameters()]:
        t.grad = None
    x = layer.inputs(u)
    gmap = layer.map(x, layer.kernels())  # with grad to the kernels
    zz = torch.zeros_like(x)
    for _ in range(300):
        zz = gmap(zz)
    (zz * w).sum().backward()
    unrolled = [t.grad for t in u] + [p.grad for p in layer.parameters()]
    for a, b in zip(implicit, unrolled):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)


def test_a_training_step_keeps_w_nonnegative():
    model = build_model("mnist5k", "pcDEQ-2-MS-Sigmoid", channels=(4, 6, 8))
    opt = torch.optim.SGD(model.parameters(), lr=10.0)
    x = torch.rand(4, 1, 28, 28)
    model(x).logsumexp(1).sum().mul(-1).backward()  # a large step in some direction
    opt.step()
    model.project_()
    (layer,) = model.deq_layers()
    with torch.no_grad():
        assert float(layer.effective_weight().min()) >= 0
        assert layer.last_fwd_stats.iters < layer.max_iter


def test_the_claims_measure_a_multiscale_model_through_its_own_map():
    """C1, C2 and C7's measurements (pcdeq.claims) run on a multiscale pcDEQ unchanged."""
    from pcdeq import claims
    torch.manual_seed(0)
    model = build_model("mnist5k", "pcDEQ-1-MS-ReLU6", channels=(3, 4, 5))
    (layer,) = model.deq_layers()
    with torch.no_grad():
        for row in layer.weights:
            for ws in row:
                for w in ws:
                    w.g.mul_(30.0)  # ||W|| far above 1
    problems = claims.layer_problems(model, torch.rand(2, 1, 28, 28))
    (p,) = problems
    assert p.x.dtype == D64 and float(p.x.min()) > 0
    u = claims.uniqueness(p, "pcDEQ-1-MS-ReLU6", n_starts=4)
    r = claims.convergence_rate(p, "pcDEQ-1-MS-ReLU6")
    inv = claims.invariants(model, problems)
    assert u.converged == u.starts and u.max_distance < 1e-6
    assert r.converged and r.rate < 1
    assert inv.pairing_ok and inv.min_w >= 0 and inv.variant == 1
