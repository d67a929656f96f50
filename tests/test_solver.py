"""The fixed point of a pcDEQ layer: existence, uniqueness, geometric convergence (Prop. 4.6)."""

import pytest
import torch

from pcdeq import PcDEQConv2d, PcDEQLinear, fixed_point_iter
from pcdeq.solver import SOLVERS, get_solver


def _scaled_layer(variant, activation, gain, n=32):
    """A linear pcDEQ layer whose W has spectral norm `gain` (> 1 allowed: pcDEQ needs no contraction)."""
    layer = PcDEQLinear(n, variant, activation).double()
    with torch.no_grad():
        layer.weight.v.uniform_(0, 1)
        layer.weight.g.fill_(1.0)
        W = layer.effective_weight()
        layer.weight.g.mul_(gain / torch.linalg.matrix_norm(W, 2))
    return layer


CASES = [(1, "relu6", 1.5), (1, "tanh", 3.0), (1, "softsign", 3.0), (2, "sigmoid", 3.0)]


@pytest.mark.parametrize("variant,activation,gain", CASES)
def test_residual_below_tol_and_fixed_point(variant, activation, gain):
    layer = _scaled_layer(variant, activation, gain)
    layer.tol = 1e-10
    u = torch.randn(16, 32, dtype=torch.double)
    with torch.no_grad():
        z = layer(u)
        x = layer.inputs(u)
        gz = layer.sigma(layer.op(layer.effective_weight(), z) + x)
    st = layer.last_fwd_stats
    assert not st.hit_max_iter and st.residual < 1e-10
    assert torch.linalg.vector_norm(gz - z) / torch.linalg.vector_norm(z) < 1e-9
    assert (z > 0).all()  # the fixed point is positive (Prop. 4.6)


@pytest.mark.parametrize("variant,activation,gain", CASES)
def test_unique_fixed_point_from_random_nonnegative_starts(variant, activation, gain):
    layer = _scaled_layer(variant, activation, gain)
    u = torch.randn(8, 32, dtype=torch.double)
    x, W = layer.inputs(u), layer.effective_weight().detach()
    g = lambda z: layer.sigma(z @ W.T + x)  # noqa: E731
    sols = []
    for scale in (0.0, 1.0, 10.0, 1000.0):
        z0 = scale * torch.rand(8, 32, dtype=torch.double)
        z, st = fixed_point_iter(g, z0, tol=1e-13, max_iter=2000)
        assert not st.hit_max_iter
        sols.append(z)
    for z in sols[1:]:
        torch.testing.assert_close(z, sols[0], atol=1e-10, rtol=0)


@pytest.mark.parametrize("variant,activation,gain", CASES)
def test_residual_decreases_geometrically(variant, activation, gain):
    layer = _scaled_layer(variant, activation, gain)
    u = torch.randn(8, 32, dtype=torch.double)
    x, W = layer.inputs(u), layer.effective_weight().detach()
    _, st = fixed_point_iter(lambda z: layer.sigma(z @ W.T + x), torch.zeros_like(x),
                             tol=1e-12, max_iter=2000, trace=True)
    r = torch.tensor(st.residuals[2:])
    ratios = r[1:] / r[:-1]
    assert len(st.residuals) > 4
    # A contraction-like linear rate: every step shrinks the residual by a bounded factor < 1.
    assert ratios.max() < 0.999, ratios
    assert r[-1] < 1e-12


def test_conv_layer_fixed_point_and_stats():
    layer = PcDEQConv2d(6, 1, "tanh").double()
    with torch.no_grad():
        layer.weight.g.mul_(50.0)
    u = torch.randn(2, 6, 8, 8, dtype=torch.double)
    z = layer(u)
    assert z.shape == u.shape and (z > 0).all()
    assert layer.last_fwd_iters == layer.last_fwd_stats.iters > 1
    z.sum().backward()
    assert layer.last_bwd_iters >= 1


def test_max_iter_is_reported_not_silent():
    z, st = fixed_point_iter(lambda z: 0.5 * z + 1, torch.zeros(3), tol=1e-12, max_iter=5)
    assert st.hit_max_iter and st.iters == 5 and st.residual > 1e-12


def test_solver_registry():
    assert "fixed_point" in SOLVERS
    with pytest.raises(ValueError, match="unknown solver 'broyden'"):
        get_solver("broyden")
