"""Open-loop arrival schedules: when each request is due, independent of when earlier ones finish.

Pure and seeded. Rates may change by stage (steps, linear ramps, spikes); times are generated
as a unit-rate process in "expected-arrivals" space and mapped back through the cumulative
rate, so a ramp or spike has exactly the intensity the stages describe. Generated lazily
(ArrivalSchedule): memory does not grow with the number of requests.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass
from typing import Iterator


@dataclass(frozen=True)
class RateStage:
    duration_s: float
    rate_rps: float
    end_rate_rps: float | None = None  # linear ramp from rate_rps to end_rate_rps; None = constant

    @property
    def end(self) -> float:
        return self.rate_rps if self.end_rate_rps is None else self.end_rate_rps

    @property
    def expected(self) -> float:
        """Expected arrivals in the stage (the area under its rate)."""
        return self.duration_s * (self.rate_rps + self.end) / 2


class RateProfile:
    """A piecewise-linear rate over time, with its cumulative intensity and inverse."""

    def __init__(self, stages: list[RateStage]):
        if not stages:
            raise ValueError("at least one stage is needed")
        self.stages = stages
        self.t_starts = [0.0]
        self.l_starts = [0.0]
        for s in stages:
            self.t_starts.append(self.t_starts[-1] + s.duration_s)
            self.l_starts.append(self.l_starts[-1] + s.expected)

    @property
    def duration_s(self) -> float:
        return self.t_starts[-1]

    @property
    def total_expected(self) -> float:
        return self.l_starts[-1]

    def rate_at(self, t: float) -> float:
        i = min(max(bisect.bisect_right(self.t_starts, t) - 1, 0), len(self.stages) - 1)
        s = self.stages[i]
        frac = (t - self.t_starts[i]) / s.duration_s if s.duration_s else 0.0
        return s.rate_rps + (s.end - s.rate_rps) * min(max(frac, 0.0), 1.0)

    def time_of(self, lam: float) -> float | None:
        """The time at which `lam` arrivals are expected (inverse cumulative rate); None past the end."""
        if lam > self.total_expected:
            return None
        i = min(bisect.bisect_right(self.l_starts, lam) - 1, len(self.stages) - 1)
        s = self.stages[i]
        rem = lam - self.l_starts[i]
        a, b = s.rate_rps, (s.end - s.rate_rps) / s.duration_s if s.duration_s else 0.0
        # Solve a*x + b*x^2/2 = rem for x in [0, duration].
        if abs(b) < 1e-12:
            x = rem / a if a > 0 else s.duration_s
        else:
            disc = max(a * a + 2 * b * rem, 0.0)
            x = (-a + disc ** 0.5) / b
        return self.t_starts[i] + min(max(x, 0.0), s.duration_s)


def rate_profile(load) -> RateProfile:
    """The open-loop profile of a scenario's LoadConfig (one stage for a plain rate)."""
    return RateProfile([RateStage(s.duration_s, s.rate_rps, s.end_rate_rps) for s in load.rate_stages()])


KINDS = ("constant", "poisson", "gamma")
COUNT_LIMIT = 1_000_000  # due times counted one by one after a stop (~0.5 s); past it, estimated


class ArrivalSchedule:
    """Due times (seconds from the start) of every request in the profile, generated one at a time.

    kind: `constant` (evenly spaced), `poisson` (exponential gaps), `gamma` (gamma gaps with
    shape = burstiness: < 1 is burstier than Poisson, > 1 smoother, 1 is Poisson; the mean gap
    is unchanged, as in vLLM's benchmark). Iterate it once; `count_rest` then says how many due
    times were never reached, so an open-loop run can account for every scheduled request.
    """

    def __init__(self, profile: RateProfile, kind: str, rng: random.Random, burstiness: float = 1.0,
                 max_count: int | None = None):
        if kind not in KINDS:
            raise ValueError(f"unknown arrival kind '{kind}': use constant, poisson or gamma")
        if burstiness <= 0:
            raise ValueError("burstiness must be > 0")
        self.profile = profile
        self.kind = kind
        self.rng = rng
        self.burstiness = burstiness
        self.max_count = max_count
        self.generated = 0  # due times handed out so far
        self._lam = 0.0  # expected-arrivals position of the last one handed out

    def _next_lam(self, lam: float, n: int) -> float:
        if self.kind == "constant":
            return n + 0.5  # mid-interval: exactly rate x duration requests, evenly spaced
        if self.kind == "poisson":
            return lam + self.rng.expovariate(1.0)
        return lam + self.rng.gammavariate(self.burstiness, 1.0 / self.burstiness)

    def __iter__(self) -> Iterator[float]:
        while self.max_count is None or self.generated < self.max_count:
            lam = self._next_lam(self._lam, self.generated)
            t = self.profile.time_of(lam)
            if t is None:  # past the end: that draw belongs to no request, and nothing is left to count
                self._end()
                return
            self._lam = lam
            self.generated += 1
            yield t

    def count_rest(self, limit: int = COUNT_LIMIT) -> tuple[int, bool]:
        """(due times after the last one handed out, exact?). Ends the schedule.

        Counted in expected-arrivals space with the same draws the iteration would have made, so
        the count is the schedule's own; constant arrivals have a closed form. A remainder past
        `limit` draws (a long, fast schedule the client fell far behind on) is estimated from the
        profile instead: its expected count, which is exact in the mean for unit-mean gaps.
        """
        total, n = self.profile.total_expected, 0
        cap = None if self.max_count is None else self.max_count - self.generated
        if self.kind == "constant":
            everything = math.floor(total - 0.5) + 1 if total >= 0.5 else 0
            n = max(everything - self.generated, 0)
            self._end()
            return (n if cap is None else min(n, cap)), True
        lam = self._lam
        while (cap is None or n < cap) and n < limit:
            lam = self._next_lam(lam, self.generated + n)
            if lam > total:
                self._end()
                return n, True
            n += 1
        if cap is not None and n >= cap:
            self._end()
            return n, True
        n += max(round(total - lam), 0)
        self._end()
        return (n if cap is None else min(n, cap)), False

    def _end(self) -> None:
        self.max_count = self.generated  # iterating again yields nothing


def arrival_times(profile: RateProfile, kind: str, rng: random.Random, burstiness: float = 1.0,
                  max_count: int | None = None) -> list[float]:
    """Every due time of the profile as a list (small schedules: tests, offline runs); see ArrivalSchedule."""
    return list(ArrivalSchedule(profile, kind, rng, burstiness, max_count))
