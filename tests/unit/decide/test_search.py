"""Sweep search logic with a fake measure: doubling, bisection, repeats, precision, limits."""

import pytest

from harness.decide.search import search
from harness.decide.sweep import replicas_table


def fake(capacity, flaky=None):
    calls = []

    def measure(x, k):
        calls.append((x, k))
        if flaky and (x, k) in flaky:
            return False, {}
        return x <= capacity, {}
    return measure, calls


def test_doubles_then_bisects_to_precision():
    measure, calls = fake(37.0)
    res = search(measure, start=4, precision=0.05)
    xs = [x for x, _ in calls]
    assert xs[:5] == [4, 8, 16, 32, 64]  # doubling until the first failure
    assert all(32 <= x <= 64 for x in xs[5:])  # then only inside the bracket
    assert res.converged and res.capacity <= 37 < res.fail_at
    assert res.fail_at - res.capacity <= 0.05 * res.capacity
    assert res.capacity > 37 * 0.95


def test_halves_when_the_start_fails():
    measure, calls = fake(3.0)
    res = search(measure, start=20, precision=0.1)
    assert [x for x, _ in calls][:4] == [20, 10, 5, 2.5]
    assert res.capacity <= 3 < res.fail_at and res.converged


def test_repeats_every_repeat_must_pass_and_failures_stop_early():
    measure, calls = fake(10.0, flaky={(8, 1)})  # 8 passes on repeat 0, fails on repeat 1
    res = search(measure, start=4, precision=0.05, repeats=3)
    assert calls[:3] == [(4, 0), (4, 1), (4, 2)]
    assert (8, 0) in calls and (8, 1) in calls and (8, 2) not in calls  # stopped after the failed repeat
    assert res.fail_at == 8 and res.capacity < 8


def test_integer_search_for_concurrency():
    measure, _ = fake(13)
    res = search(measure, start=2, precision=0.05, integer=True)
    assert (res.capacity, res.fail_at) == (13, 14) and res.converged


def test_never_fails_within_limit_and_never_passes():
    measure, _ = fake(1e9)
    res = search(measure, start=1, max_value=100)
    assert res.capacity == 64 and res.fail_at is None and not res.converged and "limit" in res.note
    measure, _ = fake(-1)
    res = search(measure, start=1, min_value=0.1)
    assert res.capacity is None and not res.converged


def test_point_budget_stops_the_search():
    measure, calls = fake(37.0)
    res = search(measure, start=1, precision=0.001, max_points=8)
    assert len(calls) <= 8 and not res.converged and "budget" in res.note


def test_bad_arguments():
    with pytest.raises(ValueError):
        search(lambda x, k: (True, {}), start=0)


def test_replicas_table():
    rows = replicas_table(24.0, 50.0, 0.2)
    target = next(r for r in rows if r["target"])
    assert target["replicas"] == 3 and target["replicas_headroom"] == 3  # 50/24 → 3; 50/19.2 → 3
    assert next(r for r in rows if r["rps"] == 100)["replicas_headroom"] == 6  # 100/19.2 = 5.2 → 6
