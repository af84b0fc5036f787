"""Open-loop dispatch: send each request at its due time, whether or not earlier ones finished.

Pure control logic with injected primitives (clock, sleep-until, launch, in-flight count), so
the gevent bridge and the tests drive the same code. Sleeps go to absolute targets; dispatch ends
at the end of the load, and every scheduled request is accounted for: sent, or not sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np


@dataclass
class DispatchStats:
    """What became of every scheduled request: scheduled == sent + not_sent, always."""

    scheduled: int = 0
    sent: int = 0
    delayed_by_cap: int = 0  # of `sent`: sent late because max_in_flight requests were already running
    # Never sent: the load ended (or was stopped) before the dispatcher got to them, because it fell
    # behind its schedule, the cap still held them at the end, or their due time had not come yet.
    not_sent: int = 0
    stopped_early: bool = False  # a stop (interrupt, max_requests) ended dispatch before the end of the load
    # False when the rest of a huge schedule was too long to count one by one after the end and
    # `scheduled`/`not_sent` hold its expected size instead (see ArrivalSchedule.count_rest).
    counted_exactly: bool = True


class OpenLoopDispatcher:
    """Walks a schedule of due times (seconds from `start_s`) and launches one request per entry.

    `due_s`: any iterable of due times in order; an ArrivalSchedule also counts what was never
    reached (`count_rest`), so it is never generated in full. `end_s` (absolute): no request is
    sent at or after it; `wait_slot(deadline_s)` waits for a free in-flight slot and says whether
    one freed before the deadline.
    """

    def __init__(self, due_s: Iterable[float], start_s: float, *, sleep_until: Callable[[float], None],
                 launch: Callable[[int, float, float | None], None], in_flight: Callable[[], int],
                 wait_slot: Callable[[float], bool], max_in_flight: int | None = None,
                 should_stop: Callable[[], bool] = lambda: False, end_s: float | None = None,
                 clock: Callable[[], float] | None = None):
        if end_s is not None and clock is None:
            raise ValueError("end_s needs a clock")
        self.due_s = due_s
        self.start_s = start_s
        self.end_s = float("inf") if end_s is None else end_s
        self.clock = clock or (lambda: float("-inf"))
        self.sleep_until = sleep_until
        self.launch = launch
        self.in_flight = in_flight
        self.wait_slot = wait_slot
        self.max_in_flight = max_in_flight
        self.should_stop = should_stop
        self.stats = DispatchStats()
        self._taken = 0  # due times taken from the schedule (each one then sent, or not)
        self._cap_freed_s = float("-inf")  # when dispatch was last released by a full max_in_flight cap

    def run(self) -> DispatchStats:
        """Dispatch until the schedule or the load ends. The accounting is completed even when the
        caller's greenlet is killed mid-way (a stop), so the stats are never partial."""
        it = iter(self.due_s)
        try:
            self._dispatch(it)
        finally:
            self._account_rest(it)
        return self.stats

    def _dispatch(self, it) -> None:
        for due in it:
            self._taken += 1
            target = self.start_s + due
            self.sleep_until(min(target, self.end_s))
            if self.should_stop():
                self.stats.stopped_early = True
                return
            if self.clock() >= self.end_s:  # the load is over: this one and the rest are not sent
                return
            if self.max_in_flight is not None and self.in_flight() >= self.max_in_flight:
                # Held by the cap, at most until the load ends: a request still held then is not sent,
                # so a server that cannot keep up never stretches the run past its duration.
                freed = self.wait_slot(self.end_s)
                if self.should_stop():
                    self.stats.stopped_early = True
                    return
                if not freed or self.clock() >= self.end_s:
                    return
                self.stats.delayed_by_cap += 1
                self._cap_freed_s = self.clock()
            # The cap's share of this request's lag: the time after its due time during which dispatch
            # was held by a full cap (its own wait, or the wait of a request before it). The rest of
            # its lag is the client's own.
            cap_wait_s = min(self.clock(), self._cap_freed_s) - target if self._cap_freed_s > target else None
            # The request carries its due time: latency can be measured from when it *should*
            # have been sent, so a saturated client cannot hide queueing (coordinated omission).
            self.launch(self._taken - 1, target, cap_wait_s)
            self.stats.sent += 1

    def _account_rest(self, it) -> None:
        count_rest = getattr(self.due_s, "count_rest", None)
        if count_rest is not None:
            rest, exact = count_rest()
        else:  # a plain list of due times: what is left of it
            rest, exact = sum(1 for _ in it), True
        self.stats.scheduled = self._taken + rest
        self.stats.not_sent = self.stats.scheduled - self.stats.sent
        self.stats.counted_exactly = exact


SATURATION_LAG_P99_S = 0.010  # lag p99 above this: the load generator, not the server, set the pace


def schedule_lag(scheduled_s: list[float], sent_s: list[float]) -> dict:
    """Lag of actual send times behind due times: p50/p99/max and the saturation verdict."""
    if not scheduled_s:
        return {"n": 0, "p50_s": None, "p99_s": None, "max_s": None, "saturated": False}
    lag = np.asarray(sent_s, float) - np.asarray(scheduled_s, float)
    p50, p99 = np.percentile(lag, [50, 99])
    return {"n": int(lag.size), "p50_s": float(p50), "p99_s": float(p99), "max_s": float(lag.max()),
            "saturated": bool(p99 > SATURATION_LAG_P99_S)}
