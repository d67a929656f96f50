"""The t quantile against tabulated values, and the seed summaries."""

import math

import pytest

from pcdeq.stats import pooled_sd, summarize, t_cdf, t_quantile


@pytest.mark.parametrize("p,dof,want", [
    (0.975, 1, 12.7062), (0.975, 2, 4.3027), (0.975, 4, 2.7764), (0.975, 10, 2.2281),
    (0.975, 30, 2.0423), (0.995, 5, 4.0321), (0.9995, 2, 31.5991), (0.9995, 10, 4.5869),
    (0.9995, 1000, 3.3003), (0.95, 3, 2.3534)])
def test_t_quantile_matches_tables(p, dof, want):
    assert t_quantile(p, dof) == pytest.approx(want, abs=2e-4)
    assert t_cdf(t_quantile(p, dof), dof) == pytest.approx(p, abs=1e-10)
    assert t_quantile(1 - p, dof) == pytest.approx(-want, abs=2e-4)


def test_summary_is_mean_sample_std_and_t_interval():
    s = summarize([1.0, 2.0, 3.0, 4.0])
    assert s.n == 4 and s.mean == 2.5 and s.sd == pytest.approx(math.sqrt(5 / 3))
    assert s.half_width == pytest.approx(3.1824 * math.sqrt(5 / 3) / 2, rel=1e-4)
    one = summarize([7.0])
    assert one.sd is None and one.lo is None and one.mean == 7.0
    with pytest.raises(ValueError):
        summarize([])


def test_pooled_sd_weights_groups_by_their_degrees_of_freedom():
    sd, dof = pooled_sd([[0.0, 2.0], [1.0, 1.0, 4.0], [5.0]])
    assert dof == 3 and sd == pytest.approx(math.sqrt((2.0 + 6.0) / 3))
    assert pooled_sd([[1.0], [2.0]]) is None
