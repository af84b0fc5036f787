import random
import statistics

import pytest

from harness.config import LoadConfig
from harness.load.arrivals import RateProfile, RateStage, arrival_times, rate_profile


def test_constant_rate_is_evenly_spaced_and_exact_in_count():
    t = arrival_times(RateProfile([RateStage(10, 5)]), "constant", random.Random(0))
    assert len(t) == 50
    gaps = [b - a for a, b in zip(t, t[1:])]
    assert max(gaps) - min(gaps) < 1e-9 and abs(gaps[0] - 0.2) < 1e-9
    assert 0 < t[0] < 0.2 and t[-1] < 10


def test_poisson_is_reproducible_and_has_the_right_rate_and_dispersion():
    p = RateProfile([RateStage(2000, 10)])
    a = arrival_times(p, "poisson", random.Random(7))
    assert a == arrival_times(p, "poisson", random.Random(7))
    assert abs(len(a) / 2000 - 10) < 0.3
    gaps = [y - x for x, y in zip(a, a[1:])]
    cv = statistics.pstdev(gaps) / statistics.mean(gaps)
    assert abs(cv - 1) < 0.05  # exponential gaps: coefficient of variation 1


@pytest.mark.parametrize("shape,expect_cv", [(0.25, 2.0), (4.0, 0.5)])
def test_gamma_burstiness_changes_dispersion_not_rate(shape, expect_cv):
    a = arrival_times(RateProfile([RateStage(2000, 10)]), "gamma", random.Random(3), burstiness=shape)
    gaps = [y - x for x, y in zip(a, a[1:])]
    assert abs(len(a) / 2000 - 10) < 0.5
    assert abs(statistics.pstdev(gaps) / statistics.mean(gaps) - expect_cv) < 0.15 * expect_cv


def test_ramp_puts_arrivals_where_the_rate_is():
    # 0 → 20 req/s over 10 s: 100 expected, three quarters of them in the second half.
    a = arrival_times(RateProfile([RateStage(10, 0, 20)]), "constant", random.Random(0))
    assert len(a) == 100
    assert sum(1 for t in a if t >= 5) == 75


def test_stages_step_and_spike_and_max_count():
    load = LoadConfig(mode="open", stages=[{"duration_s": 10, "rate_rps": 1}, {"duration_s": 2, "rate_rps": 50},
                                           {"duration_s": 10, "rate_rps": 1}])
    p = rate_profile(load)
    assert p.duration_s == 22 and p.total_expected == 120
    a = arrival_times(p, "constant", random.Random(0))
    assert sum(1 for t in a if 10 <= t < 12) == 100
    assert p.rate_at(11) == 50 and p.rate_at(0) == 1
    assert len(arrival_times(p, "poisson", random.Random(0), max_count=7)) == 7


def test_bad_kind():
    with pytest.raises(ValueError, match="unknown arrival kind"):
        arrival_times(RateProfile([RateStage(1, 1)]), "weibull", random.Random(0))
