"""Sizing arithmetic of `slabench k8s`: replica counts serve the target, HPA targets keep the headroom,
quantities round-trip, cost follows the formula — for any inputs (hypothesis)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.deploy.sizing import (MIN_WAITING_TARGET, cost, hpa_target, little_waiting, parse_quantity, quantity,
                                   replicas)

rates = st.floats(min_value=0.01, max_value=1e5, allow_nan=False, allow_infinity=False)
headrooms = st.floats(min_value=0.0, max_value=0.95)


@given(rates, rates, headrooms)
def test_replicas_serve_the_target(target, cap, h):
    r = replicas(target, cap, h)
    assert r.at_capacity >= 1 and r.at_capacity * cap >= target * (1 - 1e-9)
    assert r.at_capacity == 1 or (r.at_capacity - 1) * cap < target  # and no more than needed
    assert r.with_headroom * cap * (1 - h) >= target * (1 - 1e-9)
    assert r.at_capacity <= r.with_headroom <= r.max_replicas and r.max_replicas >= r.at_capacity + 1


def test_exact_multiples_do_not_round_up():
    r = replicas(50, 10, 0.0)
    assert (r.at_capacity, r.with_headroom, r.max_replicas) == (5, 5, 6)
    assert (replicas(50, 11, 0.3).at_capacity, replicas(50, 11, 0.3).with_headroom) == (5, 7)


@pytest.mark.parametrize("args", [(0, 1, 0.3), (-1, 1, 0.3), (math.nan, 1, 0.3), (1, 0, 0.3), (1, math.inf, 0.3),
                                  (1, 1, 1.0), (1, 1, -0.1)])
def test_bad_numbers_raise(args):
    with pytest.raises(ValueError):
        replicas(*args)


@given(st.floats(min_value=0, max_value=1e4), headrooms)
def test_hpa_target_keeps_headroom_and_floor(at_cap, h):
    t = hpa_target(at_cap, h, MIN_WAITING_TARGET)
    assert t >= MIN_WAITING_TARGET
    assert t == MIN_WAITING_TARGET or t == pytest.approx(at_cap * (1 - h), rel=5e-3)


@given(st.floats(min_value=0, max_value=1e6))
def test_quantity_round_trips_to_a_thousandth(v):
    q = quantity(v)
    assert q.isdigit() or (q.endswith("m") and q[:-1].isdigit())
    assert parse_quantity(q) == pytest.approx(v, abs=5e-4)


def test_little_waiting():
    assert little_waiting(10, 0.5, 0.1) == pytest.approx(4.0)
    assert little_waiting(10, 0.1, 0.5) == 0.0  # a lighter point that was slower is noise, not negative queue


def test_cost_per_hour_and_per_1k_tokens():
    r = replicas(50, 11, 0.3)  # 5 .. 7 pods
    c = cost(r, 2, 3.0, 160.0, 640.0)
    assert c.usd_per_hour == 7 * 2 * 3.0 and c.usd_per_hour_min == 5 * 2 * 3.0
    assert c.usd_per_1k_output_tokens == pytest.approx(42.0 / (50 * 160 * 3600) * 1000)
    assert c.usd_per_1k_total_tokens == pytest.approx(c.usd_per_1k_output_tokens / 4)
    none = cost(r, 1, None, 160.0, 640.0)
    assert none.usd_per_hour is None and none.usd_per_1k_output_tokens is None
