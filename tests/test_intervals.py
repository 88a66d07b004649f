import math
import statistics

import pytest

from eef.intervals import mean_interval, t_quantile, t_within

# Two-sided 95% and 99% points of Student's t, from printed tables.
TABLE = {
    1: (12.706, 63.657),
    2: (4.303, 9.925),
    3: (3.182, 5.841),
    5: (2.571, 4.032),
    10: (2.228, 3.169),
    30: (2.042, 2.750),
}


@pytest.mark.parametrize("df", sorted(TABLE))
def test_quantiles_match_the_printed_table(df: int):
    assert t_quantile(0.95, df) == pytest.approx(TABLE[df][0], abs=1e-3)
    assert t_quantile(0.99, df) == pytest.approx(TABLE[df][1], abs=1e-3)


def test_many_degrees_approach_the_normal_and_one_is_the_cauchy():
    assert t_quantile(0.95, 5000) == pytest.approx(statistics.NormalDist().inv_cdf(0.975), abs=1e-3)
    assert t_within(1.0, 1) == pytest.approx(0.5)  # Cauchy: P(|T| <= 1) = 2 atan(1) / pi
    assert t_within(-2.0, 4) == t_within(2.0, 4)


def test_the_interval_of_a_mean():
    low, high = mean_interval([1.0, 2.0, 3.0])
    assert (low + high) / 2 == pytest.approx(2.0)
    assert (high - low) / 2 == pytest.approx(4.3027 * 1.0 / math.sqrt(3), abs=1e-4)
    assert mean_interval([0.5]) is None
    with pytest.raises(ValueError, match="confidence"):
        t_quantile(1.5, 3)
