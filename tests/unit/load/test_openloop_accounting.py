"""Open-loop accounting with an injected clock: every scheduled request is sent or counted as not
sent, dispatch ends at the end of the load (never later), and a kill mid-run still leaves full stats."""

import random

import pytest
from hypothesis import given, settings, strategies as st

from harness.load.arrivals import ArrivalSchedule, RateProfile, RateStage
from harness.load.openloop import OpenLoopDispatcher


class Sim:
    """A fake client: a clock, requests that each take `service_s`, launches that cost `launch_cost_s`."""

    def __init__(self, t0=100.0, service_s=0.0, launch_cost_s=0.0):
        self.t = t0
        self.service_s = service_s
        self.launch_cost_s = launch_cost_s
        self.ends: list[float] = []  # end times of requests in flight
        self.sent: list[tuple[int, float, float]] = []  # (k, due time, sent at)
        self.peak = 0  # most requests in flight at once
        self.cap_waits: list[float | None] = []  # what the dispatcher said each request waited for the cap

    def clock(self):
        return self.t

    def _settle(self):
        self.ends = [e for e in self.ends if e > self.t]

    def sleep_until(self, target):
        self.t = max(self.t, target)
        self._settle()

    def in_flight(self):
        self._settle()
        return len(self.ends)

    def wait_slot(self, deadline_s):
        first = min(self.ends)
        if first > deadline_s:
            self.t = max(self.t, deadline_s)
            return False
        self.t = max(self.t, first)
        self._settle()
        return True

    def launch(self, k, due, cap_wait_s=None):
        self.sent.append((k, due, self.t))
        self.cap_waits.append(cap_wait_s)
        self._settle()
        self.ends.append(self.t + self.service_s)
        self.peak = max(self.peak, len(self.ends))
        self.t += self.launch_cost_s

    def dispatcher(self, due_s, duration_s, max_in_flight=None, should_stop=lambda: False):
        return OpenLoopDispatcher(due_s, self.t, sleep_until=self.sleep_until, launch=self.launch,
                                  in_flight=self.in_flight, wait_slot=self.wait_slot, max_in_flight=max_in_flight,
                                  should_stop=should_stop, end_s=self.t + duration_s, clock=self.clock)


def test_a_generator_that_falls_behind_stops_at_the_end_and_counts_the_rest():
    # 2,000 req/s for 10 s, but each send costs 1 ms: only ~1,000 req/s go out. Dispatch must end
    # at 10 s (not run on to 20 s, as it did) and say what was never sent.
    sim = Sim(launch_cost_s=0.001)
    due = [i / 2000 for i in range(20_000)]
    stats = sim.dispatcher(due, 10.0).run()
    assert stats.scheduled == 20_000 and stats.sent + stats.not_sent == 20_000
    assert 9_900 <= stats.sent <= 10_001 and stats.not_sent >= 9_999
    assert max(at for _, _, at in sim.sent) < 110.0  # nothing sent at or after the end of the load
    assert sim.t <= 110.0 + 0.001


def test_the_wait_for_a_cap_slot_is_passed_with_each_request_and_is_its_whole_lag():
    sim = Sim(t0=0.0, service_s=1.0)
    stats = sim.dispatcher([0.0, 0.1, 0.2, 3.5], 10.0, max_in_flight=1).run()
    assert stats.delayed_by_cap == 2
    assert sim.cap_waits[0] is None and sim.cap_waits[3] is None  # a free slot: no wait
    for (k, due, sent_at), wait in zip(sim.sent[1:3], sim.cap_waits[1:3]):
        assert wait is not None and abs((sent_at - due) - wait) < 1e-9  # the lag is all the cap's


def test_requests_held_by_the_cap_at_the_end_are_not_sent_and_the_run_ends_on_time():
    sim = Sim(service_s=5.0)  # every request takes 5 s; at most 2 in flight
    due = [0.0, 0.1, 0.2, 0.3, 6.0, 9.9]
    stats = sim.dispatcher(due, 10.0, max_in_flight=2).run()
    # 0.0 and 0.1 go; 0.2 waits for 5.0 (delayed), 0.3 for 5.1 (delayed); 6.0 waits until 10.0: not sent.
    assert [k for k, _, _ in sim.sent] == [0, 1, 2, 3]
    assert [round(at, 6) for _, _, at in sim.sent] == [100.0, 100.1, 105.0, 105.1]
    assert (stats.scheduled, stats.sent, stats.delayed_by_cap, stats.not_sent) == (6, 4, 2, 2)
    assert sim.t == pytest.approx(110.0) and not stats.stopped_early


def test_a_stop_while_held_by_the_cap_ends_dispatch_and_counts_it():
    sim = Sim(service_s=100.0)
    stop = []
    sim.wait_slot = lambda deadline_s: (stop.append(1), False)[1]  # a stop arrives while waiting
    stats = sim.dispatcher([0.0, 0.1, 0.2], 10.0, max_in_flight=1, should_stop=lambda: bool(stop)).run()
    assert stats.stopped_early and (stats.scheduled, stats.sent, stats.not_sent) == (3, 1, 2)


class Killed(BaseException):
    """Stands in for gevent's GreenletExit (a BaseException): Locust killing the dispatcher's user."""


def test_a_kill_mid_run_still_completes_the_accounting():
    sim = Sim()
    calls = []

    def sleep_until(target):
        calls.append(target)
        if len(calls) == 4:
            raise Killed()
        sim.sleep_until(target)

    d = sim.dispatcher([0.0, 1.0, 2.0, 3.0, 4.0, 5.0], 10.0)
    d.sleep_until = sleep_until
    with pytest.raises(Killed):
        d.run()
    assert (d.stats.scheduled, d.stats.sent, d.stats.not_sent) == (6, 3, 3)


def test_the_lazy_schedule_is_counted_without_being_generated():
    sim = Sim(launch_cost_s=0.01)  # ~100 req/s out of 1e6 req/s offered
    sched = ArrivalSchedule(RateProfile([RateStage(2, 1e6)]), "constant", random.Random(0))
    stats = sim.dispatcher(sched, 2.0).run()
    assert stats.counted_exactly and stats.scheduled == 2_000_000
    assert 190 <= stats.sent <= 201 and stats.sent + stats.not_sent == stats.scheduled
    assert sched.generated < 300  # only what dispatch reached was ever drawn


@settings(max_examples=100, deadline=None)
@given(gaps=st.lists(st.floats(0, 0.5), max_size=60), duration=st.floats(0.1, 10), cap=st.one_of(st.none(),
       st.integers(1, 5)), service=st.floats(0, 3), cost=st.floats(0, 0.2), stop_after=st.one_of(st.none(),
       st.integers(0, 60)))
def test_every_scheduled_request_is_sent_or_counted_never_after_the_end(gaps, duration, cap, service, cost,
                                                                        stop_after):
    due, t = [], 0.0
    for g in gaps:
        t += g
        due.append(t)
    sim = Sim(service_s=service, launch_cost_s=cost)
    stop = (lambda: len(sim.sent) >= stop_after) if stop_after is not None else (lambda: False)
    stats = sim.dispatcher(due, duration, max_in_flight=cap, should_stop=stop).run()
    assert stats.scheduled == len(due) == stats.sent + stats.not_sent
    assert 0 <= stats.delayed_by_cap <= stats.sent == len(sim.sent)
    assert [k for k, _, _ in sim.sent] == list(range(len(sim.sent)))  # in schedule order, none skipped
    end = 100.0 + duration
    assert all(at < end for _, _, at in sim.sent)  # nothing sent once the load is over
    assert all(due_at == 100.0 + due[k] and at >= due_at for k, due_at, at in sim.sent)  # never early
    if cap is not None and service > 0:
        assert sim.peak <= cap
