import math

import numpy as np

from harness.scoring.stats import MIN_TAIL_SAMPLES, describe, is_insufficient, stat_of


def test_percentiles_of_1_to_100_use_linear_interpolation():
    d = describe(range(1, 101))
    assert d["n"] == 100
    assert d["p50"] == 50.5
    assert math.isclose(d["p90"], 90.1)
    assert math.isclose(d["p95"], 95.05)
    assert math.isclose(d["p99"], 99.01)
    assert math.isclose(d["p99.9"], 99.901)
    assert (d["min"], d["max"], d["mean"]) == (1.0, 100.0, 50.5)
    assert d["insufficient"] == []


def test_percentiles_match_numpy_on_random_data():
    rng = np.random.default_rng(3)
    xs = rng.lognormal(size=1234)
    d = describe(xs)
    assert math.isclose(d["p99"], float(np.percentile(xs, 99)))
    assert math.isclose(d["p50"], float(np.median(xs)))


def test_none_nan_inf_are_dropped():
    d = describe([1.0, None, float("nan"), float("inf"), 3.0])
    assert d["n"] == 2 and d["mean"] == 2.0


def test_empty_gives_none_everywhere():
    d = describe([])
    assert d["n"] == 0 and d["p99"] is None and d["mean"] is None
    assert stat_of(d, "p99") is None


def test_tail_flagged_below_100_samples():
    assert describe(range(99))["insufficient"] == ["p99", "p99.9"]
    assert describe(range(100))["insufficient"] == []
    assert MIN_TAIL_SAMPLES == 100
    assert is_insufficient("p99", 99) and not is_insufficient("p99", 100)
    assert not is_insufficient("p95", 5) and not is_insufficient("max", 1)


def test_stat_value_reads_mean():
    d = describe([2.0, 4.0])
    assert stat_of(d, "value") == 3.0 and stat_of(d, "max") == 4.0


def test_min_samples_and_requests_needed():
    from harness.scoring.stats import requests_for
    assert is_insufficient("p99", 499, 500) and not is_insufficient("p99", 500, 500)
    assert not is_insufficient("p50", 1, 500)
    assert requests_for(100, 50, 50) == 100  # one sample per request
    assert requests_for(100, 40, 80) == 200  # half the requests failed: twice as many requests
    assert requests_for(100, 640, 10) == 10  # ITL: 64 gaps per request; never fewer than the run had
    assert requests_for(100, 0, 10) is None and requests_for(100, 5, 0) is None
