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
    assert {"fixed_point", "anderson", "broyden"} <= set(SOLVERS)
    with pytest.raises(ValueError, match="unknown solver 'newton'; registered: fixed_point"):
        get_solver("newton")


# ------------------------------------------------------------- Anderson and Broyden
def _linear_problem(B=3, n=12, rho=0.9, seed=0):
    """B independent affine maps f_b(z) = A_b z + c_b with spectral radius rho, and their
    exact fixed points (I - A_b)^{-1} c_b."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(B, n, n, generator=g, dtype=torch.float64)
    A = A * rho / torch.linalg.eigvals(A).abs().amax(dim=1)[:, None, None]
    c = torch.randn(B, n, generator=g, dtype=torch.float64)
    z_star = torch.linalg.solve(torch.eye(n, dtype=torch.float64) - A, c)
    return (lambda z: torch.einsum("bij,bj->bi", A, z) + c), z_star


@pytest.mark.parametrize("name, kw, tol, err", [
    ("anderson", {"lam": 1e-12, "m": 12}, 1e-7, 1e-5), ("broyden", {}, 1e-10, 1e-7)])
def test_accelerated_solvers_reach_the_exact_fixed_point_faster(name, kw, tol, err):
    """Anderson as the reference solves it (normal equations G G^T, squaring the condition
    number) stalls near 1e-8 in float64, and its lam = 1e-4 is absolute, dominating G G^T once
    the residuals are ~1e-3: a tiny lam and a memory as large as the dimension show the method
    itself converges in about n steps."""
    f, z_star = _linear_problem(rho=0.95)
    z0 = torch.zeros_like(z_star)
    z, st = get_solver(name)(f, z0, tol=tol, max_iter=200, trace=True, **kw)
    assert not st.hit_max_iter and float((z - z_star).abs().max()) < err
    _, plain = fixed_point_iter(f, z0, tol=tol, max_iter=2000)
    assert st.iters < plain.iters / 3  # acceleration: the reason MDEQ uses them
    assert st.residual == min(st.residuals)  # the lowest-residual iterate is returned


def test_anderson_with_the_reference_settings_reaches_mdeqs_tolerance():
    f, z_star = _linear_problem(rho=0.95)
    z, st = get_solver("anderson")(f, torch.zeros_like(z_star), tol=1e-3, max_iter=18)
    _, plain = fixed_point_iter(f, torch.zeros_like(z_star), tol=1e-3, max_iter=2000)
    assert not st.hit_max_iter and st.iters < plain.iters


@pytest.mark.parametrize("name", ["anderson", "broyden"])
def test_accelerated_solvers_solve_a_map_that_plain_iteration_cannot(name):
    """Spectral radius 1.3: z_{k+1} = f(z_k) diverges; Broyden (a quasi-Newton method on a
    linear problem) and Anderson with a memory as large as the dimension still converge."""
    f, z_star = _linear_problem(n=6, rho=1.3, seed=1)
    z0 = torch.zeros_like(z_star)
    _, plain = fixed_point_iter(f, z0, tol=1e-8, max_iter=300)
    assert plain.hit_max_iter
    kw = {"m": 8, "lam": 1e-12} if name == "anderson" else {}
    z, st = get_solver(name)(f, z0, tol=1e-8, max_iter=60, **kw)
    assert not st.hit_max_iter and float((z - z_star).abs().max()) < 1e-6


def test_broyden_keeps_one_jacobian_estimate_per_sample():
    """Samples with different maps: each converges to its own fixed point (a shared estimate
    would mix them)."""
    f, z_star = _linear_problem(B=4, n=8, rho=0.99, seed=2)
    z, st = get_solver("broyden")(f, torch.zeros_like(z_star), tol=1e-11, max_iter=100)
    assert float((z - z_star).abs().max()) < 1e-8 and st.iters <= 2 * 8 + 2


@pytest.mark.parametrize("name", ["anderson", "broyden"])
def test_implicit_gradient_with_accelerated_solvers(name):
    """d sum(z*) / d c = (I - A)^{-T} 1 through implicit_fixed_point with either solver (the
    adjoint solve uses the same solver)."""
    from pcdeq.solver import implicit_fixed_point
    g = torch.Generator().manual_seed(3)
    n = 10
    A = torch.randn(n, n, generator=g, dtype=torch.float64)
    A = 0.8 * A / torch.linalg.matrix_norm(A, 2)
    c = torch.randn(2, n, generator=g, dtype=torch.float64, requires_grad=True)
    z, _ = implicit_fixed_point(lambda z: z @ A.T + c, torch.zeros(2, n, dtype=torch.float64),
                                solver=name, tol=1e-9, max_iter=100)
    z.sum().backward()
    want = torch.linalg.solve((torch.eye(n, dtype=torch.float64) - A).T, torch.ones(n, dtype=torch.float64))
    assert torch.allclose(c.grad, want.expand(2, n), atol=1e-6)


@pytest.mark.parametrize("name", ["anderson", "broyden"])
def test_pcdeq_layer_with_an_accelerated_solver_finds_the_same_fixed_point(name):
    torch.manual_seed(0)
    plain = PcDEQLinear(16, variant=1, activation="tanh", tol=1e-6, max_iter=500)
    fast = PcDEQLinear(16, variant=1, activation="tanh", solver=name, tol=1e-5, max_iter=100)
    fast.load_state_dict(plain.state_dict())
    with torch.no_grad():
        plain.weight.g.mul_(40.0)  # ||W|| well above 1
        fast.weight.g.mul_(40.0)
    u = torch.randn(5, 16)
    with torch.no_grad():
        a, b = plain(u), fast(u)
    assert not fast.last_fwd_stats.hit_max_iter and torch.allclose(a, b, atol=1e-4)


def test_jacobian_spectral_norm_is_the_largest_singular_value_per_sample():
    from pcdeq.solver import jacobian_spectral_norm
    g = torch.Generator().manual_seed(0)
    A = torch.randn(3, 6, 6, generator=g, dtype=torch.float64)  # one matrix per sample

    def f(z):
        return torch.tanh(torch.einsum("bij,bj->bi", A, z))
    z = torch.zeros(3, 6, dtype=torch.float64)  # tanh'(0) = 1: J = A
    est = jacobian_spectral_norm(f, z, iters=200)
    torch.testing.assert_close(est, torch.linalg.matrix_norm(A, ord=2), rtol=1e-6, atol=0)


def _large_pcdeq_map(seed: int = 4):
    """A pcDEQ-1 ReLU6 map with ||W|| far above 1 on which unclamped Anderson and Broyden
    step out of the nonnegative orthant (found by a search over seeds)."""
    torch.manual_seed(seed)
    layer = PcDEQLinear(32, variant=1, activation="relu6").double()
    with torch.no_grad():
        layer.weight.g.mul_(float(torch.empty(1).uniform_(1, 60)))
        u = 3 * torch.randn(8, 32, dtype=torch.float64) - 3.0
        x = layer.input_map(u)
        g, _ = layer.maps(x, layer.weight())
    return (lambda z: g(z.clone())), x


@pytest.mark.parametrize("name", ["anderson", "broyden"])
def test_accelerated_solvers_stay_in_the_orthant_and_find_the_plain_fixed_point(name):
    """With lower = 0 (what a pcDEQ layer passes) every point the map is evaluated at is
    nonnegative and the solve ends at the plain iteration's fixed point; without it (the
    negative control) the same solver leaves the orthant on the same map."""
    g, x = _large_pcdeq_map()
    with torch.no_grad():
        z_plain, st = fixed_point_iter(g, torch.zeros_like(x), tol=1e-13, max_iter=5000)
        assert not st.hit_max_iter
        for lower, stays in ((None, False), (0.0, True)):
            seen: list[float] = []

            def f(z):
                seen.append(float(z.min()))
                return g(z)
            z, st = get_solver(name)(f, torch.zeros_like(x), tol=1e-12, max_iter=300, lower=lower)
            assert (min(seen) >= 0) is stays, (lower, min(seen))
            if stays:
                assert not st.hit_max_iter and float(z.min()) >= 0
                assert float((z - z_plain).abs().max()) < 1e-6


def test_a_pcdeq_layer_clamps_an_accelerated_solver_and_a_plain_deq_does_not():
    from pcdeq.layers import DEQLinear
    assert PcDEQLinear(4).orthant and not DEQLinear(4, activation="tanh").orthant


def test_broyden_solves_a_linear_map_past_its_first_buffer():
    """On z = A z + b (spectrum in [-0.95, 0.97]) Broyden's method needs 64 steps here, past the
    32 columns it allocates first: the secant history grows with the steps taken (a B x D x
    max_iter buffer up front would be 3.3 GB for an MNIST SC batch at max_iter 200), and the
    solution is (I - A)^-1 b."""
    from pcdeq.solver import broyden
    g = torch.Generator().manual_seed(0)
    D = 64
    Q, _ = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))
    A = Q @ torch.diag(torch.linspace(-0.95, 0.97, D, dtype=torch.float64)) @ Q.T
    b = torch.randn(3, D, generator=g, dtype=torch.float64)
    z, st = broyden(lambda z: z @ A.T + b, torch.zeros(3, D, dtype=torch.float64), tol=1e-10,
                    max_iter=150)
    want = torch.linalg.solve(torch.eye(D, dtype=torch.float64) - A, b.T).T
    assert not st.hit_max_iter and 32 < st.iters < 150 and st.residual < 1e-10
    assert torch.allclose(z, want, atol=1e-7)
