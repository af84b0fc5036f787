"""Open-loop arrival schedules: when each request is due, independent of when earlier ones finish.

Pure and seeded. Rates may change by stage (steps, linear ramps, spikes); times are generated
as a unit-rate process in "expected-arrivals" space and mapped back through the cumulative
rate, so a ramp or spike has exactly the intensity the stages describe.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass


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


def arrival_times(profile: RateProfile, kind: str, rng: random.Random, burstiness: float = 1.0,
                  max_count: int | None = None) -> list[float]:
    """Due times (seconds from the start) of every request in the profile.

    kind: `constant` (evenly spaced), `poisson` (exponential gaps), `gamma` (gamma gaps with
    shape = burstiness: < 1 is burstier than Poisson, > 1 smoother, 1 is Poisson; the mean gap
    is unchanged, as in vLLM's benchmark).
    """
    if kind not in ("constant", "poisson", "gamma"):
        raise ValueError(f"unknown arrival kind '{kind}': use constant, poisson or gamma")
    if burstiness <= 0:
        raise ValueError("burstiness must be > 0")
    out: list[float] = []
    lam = 0.0
    while max_count is None or len(out) < max_count:
        if kind == "constant":
            lam = len(out) + 0.5  # mid-interval: exactly rate x duration requests, evenly spaced
        elif kind == "poisson":
            lam += rng.expovariate(1.0)
        else:
            lam += rng.gammavariate(burstiness, 1.0 / burstiness)
        t = profile.time_of(lam)
        if t is None:
            break
        out.append(t)
    return out
