"""The lazy arrival schedule: the same due times as the eager list, memory independent of the count,
and an exact count of what was never reached (estimated only past a bound, and said so)."""

import itertools
import random
import tracemalloc

import pytest
from hypothesis import given, settings, strategies as st

from harness.load.arrivals import ArrivalSchedule, RateProfile, RateStage, arrival_times


def reference_times(profile, kind, rng, burstiness=1.0, max_count=None):
    """The eager algorithm the schedule replaced, written out: the lazy one must give the same times."""
    out, lam = [], 0.0
    while max_count is None or len(out) < max_count:
        if kind == "constant":
            lam = len(out) + 0.5
        elif kind == "poisson":
            lam += rng.expovariate(1.0)
        else:
            lam += rng.gammavariate(burstiness, 1.0 / burstiness)
        t = profile.time_of(lam)
        if t is None:
            break
        out.append(t)
    return out


stages = st.lists(st.tuples(st.floats(0.5, 20), st.floats(0, 40), st.one_of(st.none(), st.floats(0, 40))),
                  min_size=1, max_size=3)
kinds = st.sampled_from(["constant", "poisson", "gamma"])


def profile_of(spec):
    return RateProfile([RateStage(d, r, e) for d, r, e in spec])


@settings(max_examples=60, deadline=None)
@given(spec=stages, kind=kinds, seed=st.integers(0, 2**32), burst=st.floats(0.3, 3),
       cap=st.one_of(st.none(), st.integers(0, 300)))
def test_same_times_as_the_eager_schedule_for_the_same_seed(spec, kind, seed, burst, cap):
    p = profile_of(spec)
    lazy = list(ArrivalSchedule(p, kind, random.Random(seed), burst, max_count=cap))
    assert lazy == reference_times(p, kind, random.Random(seed), burst, max_count=cap)
    assert lazy == arrival_times(p, kind, random.Random(seed), burst, max_count=cap)


@settings(max_examples=80, deadline=None)
@given(spec=stages, kind=kinds, seed=st.integers(0, 2**32), cap=st.one_of(st.none(), st.integers(0, 300)),
       taken=st.integers(0, 400))
def test_taken_plus_rest_is_the_whole_schedule(spec, kind, seed, cap, taken):
    p = profile_of(spec)
    full = len(reference_times(p, kind, random.Random(seed), 1.0, max_count=cap))
    sched = ArrivalSchedule(p, kind, random.Random(seed), 1.0, max_count=cap)
    got = list(itertools.islice(sched, taken))
    rest, exact = sched.count_rest()
    assert exact and len(got) + rest == full
    assert list(sched) == []  # counting ends the schedule: nothing is handed out twice


def test_constant_count_has_a_closed_form_even_for_a_huge_rate():
    sched = ArrivalSchedule(RateProfile([RateStage(60, 1e9)]), "constant", random.Random(0))
    first = list(itertools.islice(sched, 1000))
    assert first[1] - first[0] == pytest.approx(1e-9)
    assert sched.count_rest() == (60 * 10**9 - 1000, True)


def test_a_remainder_too_long_to_count_is_estimated_and_flagged():
    sched = ArrivalSchedule(RateProfile([RateStage(60, 1e9)]), "poisson", random.Random(1))
    list(itertools.islice(sched, 100))
    rest, exact = sched.count_rest(limit=10_000)
    assert not exact
    assert abs(rest - (6e10 - 100)) < 1e6  # the expected count; a Poisson count's sd is ~2.4e5


def test_memory_does_not_grow_with_the_schedule():
    # rate_rps 1e9 once built a 600 MB list before the first request; now a due time is drawn when needed.
    sched = ArrivalSchedule(RateProfile([RateStage(600, 1e9)]), "poisson", random.Random(2))
    tracemalloc.start()
    try:
        it = iter(sched)
        for _ in range(200_000):
            next(it)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000 and sched.generated == 200_000


def test_bad_kind_and_burstiness_fail_at_once_not_on_first_use():
    with pytest.raises(ValueError, match="unknown arrival kind 'weibull'"):
        ArrivalSchedule(RateProfile([RateStage(1, 1)]), "weibull", random.Random(0))
    with pytest.raises(ValueError, match="burstiness must be > 0"):
        ArrivalSchedule(RateProfile([RateStage(1, 1)]), "gamma", random.Random(0), burstiness=0)
