"""Progress for multi-run commands: "variant k of n", elapsed time and an estimate of what is left.

Pure apart from the injected clock and echo. The estimate uses each pending item's expected length
when known (a live run lasts its scenario's duration plus start-up), else the mean of finished ones.
"""

from __future__ import annotations

import time
from typing import Callable

LIVE_STARTUP_S = 20.0  # a launched server's start-up and teardown, before its first finished run says better
DEFAULT_OFFLINE_S = 3.0  # an offline sim run with its reports, before the first one finishes


def fmt_s(s: float) -> str:
    s = max(0.0, s)
    if s < 60:
        return f"{s:.0f} s"
    m, sec = divmod(int(round(s)), 60)
    return f"{m} min {sec:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


class Progress:
    def __init__(self, total: int, echo: Callable[[str], None] = print, clock: Callable[[], float] = time.monotonic,
                 what: str = "variant"):
        self.total = total
        self.echo = echo
        self.clock = clock
        self.what = what
        self.t0 = clock()
        self.durations: list[float] = []
        self._started: float | None = None

    def eta_s(self, pending_expected: list[float | None]) -> float:
        mean = sum(self.durations) / len(self.durations) if self.durations else DEFAULT_OFFLINE_S
        return sum(mean if e is None else e for e in pending_expected)

    def start(self, k: int, label: str, pending_expected: list[float | None] | None = None,
              total: int | None = None) -> str:
        """Announce item k (1-based); pending_expected: expected seconds of this and every later item."""
        self._started = self.clock()
        n = total if total is not None else self.total
        of = f"{k}/{n}" if n else f"{k}"
        eta = "" if pending_expected is None else f", ~{fmt_s(self.eta_s(pending_expected))} left"
        line = f"[{self.what} {of}] {label} (elapsed {fmt_s(self._started - self.t0)}{eta})"
        self.echo(line)
        return line

    def finish(self, count: bool = True) -> float:
        """End the current item; count=False keeps it out of the estimate (a variant that could not run)."""
        took = self.clock() - (self._started if self._started is not None else self.t0)
        if count:
            self.durations.append(took)
        self._started = None
        return took

    @property
    def elapsed_s(self) -> float:
        return self.clock() - self.t0
