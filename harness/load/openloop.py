"""Open-loop dispatch: send each request at its due time, whether or not earlier ones finished.

Pure control logic with injected primitives (clock, sleep-until, launch, in-flight count), so
the gevent bridge and the tests drive the same code. Sleeps go to absolute targets; an
in-flight cap may hold a request back, and every request it delays is counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class DispatchStats:
    scheduled: int = 0
    launched: int = 0
    delayed_by_cap: int = 0  # requests sent late because max_in_flight requests were already running
    stopped_early: bool = False


class OpenLoopDispatcher:
    """Walks a schedule of due times (seconds from `start_s`) and launches one request per entry."""

    def __init__(self, due_s: list[float], start_s: float, *, sleep_until: Callable[[float], None],
                 launch: Callable[[int, float], None], in_flight: Callable[[], int],
                 wait_slot: Callable[[], None], max_in_flight: int | None = None,
                 should_stop: Callable[[], bool] = lambda: False):
        self.due_s = due_s
        self.start_s = start_s
        self.sleep_until = sleep_until
        self.launch = launch
        self.in_flight = in_flight
        self.wait_slot = wait_slot
        self.max_in_flight = max_in_flight
        self.should_stop = should_stop
        self.stats = DispatchStats(scheduled=len(due_s))

    def run(self) -> DispatchStats:
        for k, due in enumerate(self.due_s):
            target = self.start_s + due
            self.sleep_until(target)
            if self.should_stop():
                self.stats.stopped_early = True
                break
            if self.max_in_flight is not None and self.in_flight() >= self.max_in_flight:
                self.stats.delayed_by_cap += 1
                self.wait_slot()
            # The request carries its due time: latency can be measured from when it *should*
            # have been sent, so a saturated client cannot hide queueing (coordinated omission).
            self.launch(k, target)
            self.stats.launched += 1
        return self.stats


SATURATION_LAG_P99_S = 0.010  # lag p99 above this: the load generator, not the server, set the pace


def schedule_lag(scheduled_s: list[float], sent_s: list[float]) -> dict:
    """Lag of actual send times behind due times: p50/p99/max and the saturation verdict."""
    if not scheduled_s:
        return {"n": 0, "p50_s": None, "p99_s": None, "max_s": None, "saturated": False}
    lag = np.asarray(sent_s, float) - np.asarray(scheduled_s, float)
    p50, p99 = np.percentile(lag, [50, 99])
    return {"n": int(lag.size), "p50_s": float(p50), "p99_s": float(p99), "max_s": float(lag.max()),
            "saturated": bool(p99 > SATURATION_LAG_P99_S)}
