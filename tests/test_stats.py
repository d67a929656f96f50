"""The t quantile against tabulated values, and the seed summaries."""

import math

import pytest

from pcdeq.stats import mean_ci, pooled_sd, t_cdf, t_quantile, welch_interval


@pytest.mark.parametrize("p,dof,want", [
    (0.975, 1, 12.7062), (0.975, 2, 4.3027), (0.975, 4, 2.7764), (0.975, 10, 2.2281),
    (0.975, 30, 2.0423), (0.995, 5, 4.0321), (0.9995, 2, 31.5991), (0.9995, 10, 4.5869),
    (0.9995, 1000, 3.3003), (0.95, 3, 2.3534)])
def test_t_quantile_matches_tables(p, dof, want):
    assert t_quantile(p, dof) == pytest.approx(want, abs=2e-4)
    assert t_cdf(t_quantile(p, dof), dof) == pytest.approx(p, abs=1e-10)
    assert t_quantile(1 - p, dof) == pytest.approx(-want, abs=2e-4)


def test_mean_ci_is_mean_sample_std_and_t_interval():
    s = mean_ci([1.0, 2.0, 3.0, 4.0])
    assert s.n == 4 and s.mean == 2.5 and s.sd == pytest.approx(math.sqrt(5 / 3))
    assert s.half_width == pytest.approx(3.1824 * math.sqrt(5 / 3) / 2, rel=1e-4)
    one = mean_ci([7.0])
    assert one.sd is None and one.lo is None and one.mean == 7.0
    with pytest.raises(ValueError):
        mean_ci([])


def test_pooled_sd_weights_groups_by_their_degrees_of_freedom():
    sd, dof = pooled_sd([[0.0, 2.0], [1.0, 1.0, 4.0], [5.0]])
    assert dof == 3 and sd == pytest.approx(math.sqrt((2.0 + 6.0) / 3))
    assert pooled_sd([[1.0], [2.0]]) is None


def _t_cdf_by_quadrature(t: float, dof: float, n: int = 20000) -> float:
    """P(T <= t), t >= 0, by Simpson's rule on the t density: independent of the incomplete
    beta function that t_cdf uses."""
    c = math.exp(math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2)) / math.sqrt(dof * math.pi)
    f = lambda x: c * (1 + x * x / dof) ** (-(dof + 1) / 2)  # noqa: E731
    h = t / n
    s = f(0.0) + f(t) + sum((4 if i % 2 else 2) * f(i * h) for i in range(1, n))
    return 0.5 + s * h / 3


@pytest.mark.parametrize("dof", [1.11334, 1.5, 2.7, 17.776])
def test_t_quantile_at_fractional_dof(dof):
    """Welch intervals use fractional degrees of freedom, which the tables do not list."""
    q = t_quantile(0.975, dof)
    assert _t_cdf_by_quadrature(q, dof) == pytest.approx(0.975, abs=1e-8)


def test_welch_interval_matches_r_on_the_sleep_data():
    """R: t.test(extra ~ group, data = sleep) (Welch, the default) prints t = -1.8608,
    df = 17.776, 95 percent confidence interval -3.3654832 0.2054832."""
    g1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
    g2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
    d, lo, hi, dof = welch_interval(g1, g2)
    assert d == pytest.approx(-1.58)
    assert dof == pytest.approx(17.776, abs=5e-4)
    assert (lo, hi) == pytest.approx((-3.3654832, 0.2054832), abs=1e-6)


def test_welch_interval_with_unequal_sizes_and_variances():
    """n = 5 (variance 2.5) against n = 2 (variance 18): the Welch-Satterthwaite dof is
    (0.5 + 9)^2 / (0.5^2 / 4 + 9^2 / 1) = 1.1133, far below the pooled test's 5, and the
    interval is that many t quantiles of the standard error sqrt(9.5) wide."""
    d, lo, hi, dof = welch_interval([1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 8.0])
    assert d == -2.0
    assert dof == pytest.approx(9.5 ** 2 / (0.5 ** 2 / 4 + 9.0 ** 2 / 1))
    half = t_quantile(0.975, dof) * math.sqrt(9.5)
    assert (lo, hi) == pytest.approx((d - half, d + half))
    assert half > 30  # 5 dof (the pooled test's) would give 2.57 x 3.08 = 7.9 for the same error
    assert welch_interval([1.0], [2.0, 3.0]) is None
