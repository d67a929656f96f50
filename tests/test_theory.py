"""pcdeq.theory: the pcDEQ theorem seen on small maps, and gradient descent on linear /
single-index DEQs (the numbers behind Figure 13, Table 9 and Figure 14).

Everything is float64 with explicit seeds, so the assertions are exact statements about
deterministic computations, not statistical ones.
"""

from __future__ import annotations

import math

import pytest
import torch

from pcdeq import theory as th
from pcdeq.hparams import ConfigError


# ============================================================================ Part 1
@pytest.fixture(scope="module")
def study() -> th.GeometryStudy:
    """The default study of the notebook: n = 2 and 50, ||W||_2 = 3, 100 starts."""
    return th.geometry_study()


def test_pcdeq_maps_have_one_limit_from_every_nonnegative_start(study):
    """Prop. 4.6: every admissible pairing, ||W||_2 = 3 (no contraction for ReLU6 / tanh /
    softsign), 100 starts (z = 0 included): all converge, to one positive point."""
    for dim, results in study.pcdeq.items():
        assert [r.case.activation for r in results] == ["relu6", "tanh", "softsign", "sigmoid"]
        for r in results:
            assert r.inside and r.fails == [], (dim, r.case.name)
            assert th.spectral_norm(r.case.W) == pytest.approx(3.0)
            assert bool((r.case.W >= 0).all()) and bool((r.case.x > 0).all())
            assert r.run.status == ["converged"] * 100, (dim, r.case.name, r.run.counts())
            assert r.run.n_limits == 1
            z_star = r.run.limits[0]
            assert bool((z_star > 0).all())  # the fixed point is positive
            # it is a fixed point, and every start ends on it
            assert torch.allclose(r.case(z_star), z_star, atol=1e-10)
            assert (r.run.final - z_star).abs().max() < 1e-9
            assert r.solver_iters is not None and r.solver_iters <= 10  # paper's rule, from 0
        banach = {r.case.activation: r.case.lipschitz for r in results}
        assert banach["tanh"] == banach["softsign"] == banach["relu6"] == pytest.approx(3.0)


def test_geometric_rate_below_one_and_equal_to_the_jacobian_at_the_fixed_point(study):
    for dim, results in study.pcdeq.items():
        for r in results:
            assert r.fit is not None
            if r.case.activation == "relu6":
                # every unit saturates at 6: the iteration lands exactly on z* = 6
                assert r.fit.exact and r.fit.rate == 0.0 and r.jacobian_rate == 0.0
                assert torch.equal(r.run.limits[0], torch.full((dim,), 6.0, dtype=torch.float64))
                continue
            assert 0 < r.fit.rate < 1, (dim, r.case.name)
            assert r.jacobian_rate < 1
            # the fitted rate is the spectral radius of the Jacobian at z*
            assert r.fit.rate == pytest.approx(r.jacobian_rate, rel=0.03), (dim, r.case.name)
            assert r.fit.last - r.fit.first >= 3


def test_broken_cases_lose_uniqueness_or_convergence(study):
    """Same W and x, one hypothesis removed: W with negative entries, x = 0, a convex
    activation. Each is labelled outside the theorem, and fails in the way it should."""
    for dim, results in study.broken.items():
        by = {r.case.change: r for r in results}
        for r in results:
            assert not r.inside
            assert r.label.startswith("OUTSIDE THE THEOREM")
            # more than one limit, or not every start converges
            assert r.run.n_limits > 1 or r.run.counts().get("converged", 0) < 100, r.case.name
        neg = by["W → −W"]
        assert neg.run.status == ["cycle-2"] * 100 and neg.run.n_limits == 0
        assert neg.solver_iters is None  # the paper's solver never meets its tolerance
        assert [c.short for c in neg.fails] == ["W ≥ 0"]
        zero = by["x = 0"]
        assert zero.run.n_limits == 2  # z = 0 (the solver's start) and a positive one
        assert float(zero.run.limits.norm(dim=1).min()) == 0.0
        assert int((zero.run.limit_of == zero.run.limit_of[0]).sum()) == 1  # only z0 = 0
        assert zero.jacobian_rate > 1  # z = 0 is an unstable fixed point
        assert zero.solver_iters == 1  # ... which the paper's solver returns at once
        assert [c.short for c in zero.fails] == ["x > 0"]
        soft = by["softplus (convex) instead of tanh"]
        assert soft.run.status == ["diverged"] * 100
        assert th.spectral_radius(soft.case.W) > 1
    # n = 2, seed 0: flipping the off-diagonal signs (mutual inhibition) gives two fixed points
    flip2 = next(r for r in study.broken[2] if r.case.change.startswith("off-diagonal"))
    assert flip2.run.status == ["converged"] * 100 and flip2.run.n_limits == 2
    for z in flip2.run.limits:
        assert torch.allclose(flip2.case(z), z, atol=1e-10)


def test_banach_bound_holds_for_the_contraction_and_is_vacuous_for_pcdeq(study):
    con = study.contraction[2]
    assert con.case.lipschitz == pytest.approx(0.9) and con.inside
    meas, bound = th.banach_curves(con)
    assert bool((meas <= bound + 1e-12).all())
    assert con.run.n_limits == 1
    tanh = next(r for r in study.pcdeq[2] if r.case.activation == "tanh")
    meas, bound = th.banach_curves(tanh)
    assert tanh.case.lipschitz == pytest.approx(3.0)
    assert bool((bound[1:] > 1).all())  # Banach promises nothing ...
    assert float(meas[8]) < 1e-12  # ... yet the error is gone after 8 steps


def test_fit_rate_on_known_sequences():
    r = [2.0 * 0.3 ** k for k in range(40)]
    fit = th.fit_rate(r)
    assert fit.rate == pytest.approx(0.3, rel=1e-9) and not fit.exact
    assert math.exp(fit.log_c) == pytest.approx(2.0, rel=1e-9)
    exact = th.fit_rate([3.0, 1.0, 0.5, 0.0, 0.0])
    assert exact.exact and exact.rate == 0.0 and exact.last == 3
    assert th.fit_rate([5.0, 5.0 + 1e-16]) is not None
    assert th.fit_rate([math.nan]) is None


def test_table9_rows_and_latex():
    small = th.geometry_study(dims=(2,), n_starts=20)
    table = th.convergence_table(small, "test")
    md = table.to_markdown()
    assert table.name == "table9_convergence"
    # no cell breaks the Markdown table: every row has as many columns as the header
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert len({line.count("|") for line in rows}) == 1
    assert "| tanh, W → −W | outside: W ≥ 0 fails |" in md
    assert "oscillates (2-cycle)" in md and "diverges" in md and "2 fixed points" in md
    assert "Synthetic illustration" in md and "not trained models" in md
    tex = table.to_latex()
    assert r"$\geq$" in tex and "≥" not in tex and "→" not in tex and "σ" not in tex


def test_figure13_marks_cases_outside_the_theorem():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    small = th.geometry_study(dims=(2,), n_starts=20, broken_cases=["negate_W", "softplus"])
    fig = th.geometry_figure(small, "test")
    titles = [ax.get_title() for ax in fig.axes]
    assert sum("OUTSIDE THE THEOREM" in t for t in titles) == 2 + 1  # 2 broken + residuals
    assert sum("pcDEQ-1 theorem applies" in t for t in titles) == 3
    assert "SYNTHETIC ILLUSTRATION" in fig._suptitle.get_text()
    plt.close(fig)


# --------------------------------------------------------------------- bad parameters
def _W(n=2, low=0.0):
    return th.random_matrix(n, 3.0, seed=0, low=low)


def test_bad_pcdeq_parameters_are_refused_naming_the_condition():
    x = th.random_input(2, 0.1, 1.0, seed=0)
    W = _W()
    # a negative entry in W
    Wneg = W.clone()
    Wneg[0, 1] = -0.5
    case = th.pcdeq_case(Wneg, x, 1, "tanh")
    with pytest.raises(ConfigError, match=r"W >= 0 entrywise is required, but 1 of 4"):
        th.require_theorem(case)
    assert th.theorem_label(case) == "OUTSIDE THE THEOREM: W ≥ 0 fails"
    # w_low < 0 draws negative entries: the study runs them, labelled outside
    res = th.geometry_study(dims=(2,), w_low=-5.0, n_starts=10, broken_cases=[],
                            pcdeq_cases=[(1, "tanh")])
    (r,) = res.pcdeq[2]
    assert bool((r.case.W < 0).any())
    assert [c.short for c in r.fails] == ["W ≥ 0"] and not r.inside
    assert "| outside: W ≥ 0 fails |" in th.convergence_table(res).to_markdown()
    # pcDEQ-1 needs x > 0
    with pytest.raises(ConfigError, match=r"pcDEQ-1 needs a strictly positive input x > 0"):
        th.require_theorem(th.pcdeq_case(W, torch.zeros(2, dtype=torch.float64), 1, "softsign"))
    # pcDEQ-2 needs x >= 0
    with pytest.raises(ConfigError, match=r"pcDEQ-2 needs a nonnegative input x >= 0"):
        th.require_theorem(th.pcdeq_case(W, -x, 2, "sigmoid"))
    # pcDEQ-2 with x = 0 is fine
    th.require_theorem(th.pcdeq_case(W, torch.zeros(2, dtype=torch.float64), 2, "sigmoid"))
    # inadmissible pairings (Lemma 4.2), with check_variant's reason
    with pytest.raises(ConfigError, match=r"pcDEQ-1 takes ReLU6, Tanh or Softsign"):
        th.require_theorem(th.pcdeq_case(W, x, 1, "sigmoid"))
    with pytest.raises(ConfigError, match=r"pcDEQ-2 needs the sigmoid activation"):
        th.require_theorem(th.pcdeq_case(W, x, 2, "tanh"))
    with pytest.raises(ConfigError, match=r"softplus is convex and unbounded"):
        th.require_theorem(th.pcdeq_case(W, x, 1, "softplus"))
    # malformed parameters: refused before anything runs
    with pytest.raises(ConfigError, match="unknown activation 'swish'"):
        th.geometry_study(pcdeq_cases=[(1, "swish")])
    with pytest.raises(ConfigError, match="unknown broken case 'nope'"):
        th.geometry_study(broken_cases=["nope"])
    with pytest.raises(ConfigError, match="dimension must be a positive integer"):
        th.geometry_study(dims=(0,))
    with pytest.raises(ConfigError, match="x_high > x_low"):
        th.geometry_study(x_low=1.0, x_high=0.5)
    with pytest.raises(ConfigError, match="spectral norm of W must be > 0"):
        th.random_matrix(2, -1.0, seed=0)


def test_inadmissible_pairing_is_run_but_labelled():
    res = th.geometry_study(dims=(2,), n_starts=10, broken_cases=[],
                            pcdeq_cases=[(1, "sigmoid"), (2, "tanh")])
    for r in res.pcdeq[2]:
        assert not r.inside and r.label == "OUTSIDE THE THEOREM: variant/activation pairing fails"
        assert "Lemma 4.2" in r.fails[0].message


# ============================================================================ Part 2
def _params(k=3, d=4, seed=5):
    g = torch.Generator().manual_seed(seed)
    kw = dict(generator=g, dtype=torch.float64)
    return th.DEQParams(0.25 * torch.randn(k, k, **kw), 0.7 * torch.randn(k, d, **kw),
                        torch.randn(k, **kw))


@pytest.mark.parametrize("link", th.LINKS)
@pytest.mark.parametrize("eta", [1e-3, 3e-2, 0.3])
def test_each_gd_step_raises_q1_by_exactly_eta2_grad2(link, eta):
    """Q1(theta - eta grad) - Q1(theta) = eta^2 (||grad_W||^2 + ||grad_U||^2), exactly (up to
    float64 rounding), and likewise Q2 by eta^2 (||grad_v||^2 - ||grad_U||^2)."""
    prob = th.make_problem(50, 4, link, seed=1)
    p = _params()
    g = th.closed_form_grads(p, prob)
    q1, q2 = th.conserved(p)
    q1n, q2n = th.conserved(th.gd_step(p, g, eta))
    d1, d2 = th.predicted_increments(g, eta)
    assert float(d1) > 0
    assert abs(float(q1n - q1) - float(d1)) < 1e-10
    assert abs(float(q2n - q2) - float(d2)) < 1e-10
    # the first-order term vanishes: the symmetries make grad orthogonal to these directions
    A = torch.eye(3, dtype=torch.float64) - p.W
    assert abs(float((p.U * g.U).sum() - (A * g.W).sum())) < 1e-12
    assert abs(float((p.v * g.v).sum() - (p.U * g.U).sum())) < 1e-12


@pytest.mark.parametrize("link", th.LINKS)
def test_closed_form_gradients_equal_autograd_through_pcdeqs_solver(link):
    prob = th.make_problem(40, 4, link, seed=2)
    p = _params()
    assert th.spectral_radius(p.W) < 1
    cf = th.closed_form_grads(p, prob)
    sg = th.solver_grads(p, prob)
    assert float(cf.loss) == pytest.approx(float(sg.loss), rel=1e-12)
    for a, b in ((cf.W, sg.W), (cf.U, sg.U), (cf.v, sg.v)):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12), (a - b).abs().max()
    # and the solver's fixed point is the closed form's
    z = th.solver_equilibrium(p, prob.X)
    assert torch.allclose(z.detach(), th.equilibrium(p, prob.X).T, atol=1e-12)


def test_solver_refuses_a_map_it_cannot_iterate():
    p = _params()
    big = th.DEQParams(p.W * 10, p.U, p.v)
    with pytest.raises(ConfigError, match=r"rho\(W\) < 1"):
        th.solver_equilibrium(big, torch.zeros(3, 4, dtype=torch.float64))


def test_gradient_descent_converges_linearly_and_drift_shrinks_like_eta():
    study = th.dynamics_study(links=["linear", "leaky_relu"], n=100, d=4, k=3,
                              step_sizes=[0.02, 0.04], steps=600, seed=0)
    for link, runs in study.runs.items():
        for r in runs:
            assert r.inside and r.diverged_at is None
            fit = r.fit()
            assert fit is not None and 0 < fit.rate < 1
            assert float(r.loss[-1]) < 1e-10 * float(r.loss[0]), link
            assert r.prediction_error() < 1e-12  # Q(t) = Q(0) + sum of predicted steps
            d1, d2 = r.drift()
            assert d1 > 0  # each step raises Q1
            assert float(r.sigma_min.min()) > 0.5  # well-conditioned throughout
        (a, b) = runs
        ratio = b.drift()[0] / a.drift()[0]
        assert 1.8 < ratio < 2.5, (link, ratio)  # twice the step size, about twice the drift


def test_step_size_beyond_the_stable_range_is_labelled_not_silent():
    prob = th.make_problem(60, 4, "linear", seed=0)
    p0 = th.init_params(3, 4, seed=0)
    lam = th.sharpness(p0, prob)
    ok, bad = th.check_step_sizes(p0, prob, [0.5 / lam, 2.5 / lam])
    assert ok.ok and ok.message == ""
    assert not bad.ok
    assert "step-size condition fails" in bad.message and "2 / lambda_max" in bad.message
    # Outside the range the run is labelled, whatever happens: here 1.25x the limit still
    # converges (the condition is sufficient, not necessary), 50x blows up and is stopped.
    runs = th.gradient_descent(prob, p0, [0.5 / lam, 2.5 / lam, 100 / lam], steps=200)
    assert runs[0].inside and not runs[1].inside and not runs[2].inside
    assert runs[1].diverged_at is None and float(runs[1].loss[-1]) < 1e-10
    assert runs[2].diverged_at is not None and torch.isnan(runs[2].loss[-1])
    assert float(runs[2].loss[runs[2].diverged_at - 1]) < 1e6 * float(runs[2].loss[0])
    for r in runs[1:]:
        assert "OUTSIDE THE THEOREM" in th.run_summary(r)
    with pytest.raises(ConfigError, match="step sizes must be positive numbers"):
        th.check_step_sizes(p0, prob, [0.0])
    with pytest.raises(ConfigError, match="unknown link 'relu'"):
        th.make_problem(10, 2, "relu")
    with pytest.raises(ConfigError, match="positive integer"):
        th.init_params(0, 2)


def test_sharpness_matches_a_finite_difference_estimate():
    prob = th.make_problem(30, 3, "tanh", seed=3)
    p = th.init_params(2, 3, seed=3)
    lam = th.sharpness(p, prob)
    theta = th.flat(p)
    H = torch.autograd.functional.hessian(lambda t: th.loss(th.unflat(t, 2, 3), prob), theta)
    v = torch.linalg.eigh(H).eigenvectors[:, -1]
    h = 1e-4
    f = lambda t: float(th.loss(th.unflat(t, 2, 3), prob))  # noqa: E731
    fd = (f(theta + h * v) - 2 * f(theta) + f(theta - h * v)) / h ** 2
    assert fd == pytest.approx(lam, rel=1e-5)
