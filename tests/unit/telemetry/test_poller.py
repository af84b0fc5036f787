"""PeriodicPoller: absolute schedule, overrun handling, error counting, prompt stop."""

from __future__ import annotations

import time

import pytest

from harness.telemetry.poller import PeriodicPoller


class SlowPoller(PeriodicPoller):
    """Each poll costs `cost_s` of (fake) time and records (due time, time the poll began)."""

    def __init__(self, clock, cost_s, interval_s=0.25, fail_on=(), **kw):
        super().__init__(interval_s=interval_s, clock=clock, **kw)
        self.cost_s = cost_s
        self.fail_on = set(fail_on)
        self.n = 0

    def poll_once(self, t_s):
        began = self.clock()
        self.n += 1
        if self.cost_s:
            self.clock.advance(self.cost_s)
        if self.n in self.fail_on:
            raise ConnectionError(f"boom {self.n}\nsecond line")
        return [(t_s, began)]


def test_kth_poll_starts_at_start_plus_k_interval_even_when_polls_take_time(fake_clock):
    p = SlowPoller(fake_clock, cost_s=0.1, wait=fake_clock.wait)
    t0 = fake_clock()
    p.run(max_ticks=8)
    began = [b for _, b in p.samples]
    assert began == pytest.approx([t0 + k * 0.25 for k in range(8)], abs=1e-9)
    # A sleep(interval) loop would have drifted by 0.1 s per tick: 7 * 0.1 = 0.7 s by tick 7.
    assert began[-1] - t0 == pytest.approx(1.75)
    assert p.missed_ticks == 0


def test_overrunning_poll_skips_ticks_instead_of_bursting(fake_clock):
    p = SlowPoller(fake_clock, cost_s=0.6, wait=fake_clock.wait)
    t0 = fake_clock()
    p.run(max_ticks=3)
    began = [b - t0 for _, b in p.samples]
    # poll 0 runs 0..0.6 → ticks 1, 2 (0.25, 0.5) are gone; next due is tick 3 at 0.75.
    assert began == pytest.approx([0.0, 0.75, 1.5])
    assert p.missed_ticks == 4


def test_errors_are_counted_and_the_loop_continues(fake_clock):
    p = SlowPoller(fake_clock, cost_s=0.0, fail_on={2, 4}, wait=fake_clock.wait)
    p.run(max_ticks=6)
    assert len(p.samples) == 4
    assert p.errors == 2
    assert p.last_error == "ConnectionError: boom 4"  # one line, type named


def test_thread_collects_and_stop_wakes_it_without_waiting_the_interval(wait_until):
    # Real clock, 60 s interval: only the tick-0 poll happens; stop() must not wait 60 s.
    p = SlowPoller(time.perf_counter, cost_s=0.0, interval_s=60.0)
    p.start()
    assert wait_until(lambda: len(p.samples) == 1)
    t = time.monotonic()
    rows = p.stop()
    assert time.monotonic() - t < 2.0
    assert not p.running
    assert len(rows) == 1


def test_start_twice_raises_and_bad_interval_rejected(fake_clock):
    with pytest.raises(ValueError):
        SlowPoller(fake_clock, cost_s=0.0, interval_s=0)
    p = SlowPoller(fake_clock, cost_s=0.0, wait=lambda dt: True)  # wait says "stop" at once
    p.start()
    try:
        with pytest.raises(RuntimeError):
            p.start()
    finally:
        p.stop()

