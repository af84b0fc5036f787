"""Config: the `load:` block of a scenario: closed-loop users, open-loop rates, trace replay, their stages
and the bounds that refuse a typo before it hangs a run (re-exported by harness.config).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Bounds no real test needs to exceed. Past them a value is a typo (1e9 for 1e3) that would hang the
# run or exhaust memory before the first request, so it is refused with the bound in the message.
MAX_DURATION_S = 7 * 24 * 3600.0  # a week-long soak is the longest run anyone schedules
MAX_REQUEST_TIMEOUT_S = 86_400.0  # one request streaming for more than a day is a hang, not a latency
# One open-loop dispatcher sends thousands of req/s (README); 1e5 is well beyond what one process
# (or the server behind it) sustains, and far below a typo like 1e9.
MAX_RATE_RPS = 100_000.0
# Requests one open-loop run may schedule (rate x duration): each becomes a record that scoring
# loads (about 0.5 KB in requests.jsonl), and offline (simulated-time) runs hold the whole schedule
# in memory. 5M is a 14-hour soak at 100 req/s; more needs max_requests or a lower rate.
MAX_SCHEDULED_REQUESTS = 5_000_000
MAX_USERS = 10_000  # closed-loop users (greenlets) per run
MAX_SPAWN_RATE = 10_000.0  # users started per second: all of MAX_USERS within one second
MAX_IN_FLIGHT = 100_000  # concurrent open-loop requests (each holds a socket)
# Gamma shape (burstiness): 0.01 has a gap CV of 10 (nearly every request in a few bursts), 1000 a CV
# of 0.03 (indistinguishable from constant); outside that range the sampler degenerates.
MIN_BURSTINESS, MAX_BURSTINESS = 0.01, 1000.0


class _Model(BaseModel):
    # NaN and infinity are refused in every float field (as in every config model).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class RateStageConfig(_Model):
    """One open-loop stage: a constant rate, or a linear ramp to `end_rate_rps` (a spike is a short stage)."""

    duration_s: float = Field(gt=0, le=MAX_DURATION_S)
    rate_rps: float = Field(ge=0, le=MAX_RATE_RPS)
    end_rate_rps: float | None = Field(None, ge=0, le=MAX_RATE_RPS)


class UserStageConfig(_Model):
    """One closed-loop stage: hold `users` (reached at `spawn_rate` users/s; default: at once)."""

    duration_s: float = Field(gt=0, le=MAX_DURATION_S)
    users: int = Field(ge=0, le=MAX_USERS)
    spawn_rate: float | None = Field(None, gt=0, le=MAX_SPAWN_RATE)


# Modes whose requests go out at scheduled times whatever the server does (one dispatcher process).
OPEN_LOOP_MODES = ("open", "replay")


class LoadConfig(_Model):
    api: Literal["openai-chat", "openai-completions", "tgi-generate-stream"] = "openai-chat"
    # replay: requests at a trace's recorded times (workload.trace), open loop like `open`
    mode: Literal["closed", "open", "replay"] = "closed"
    # closed loop: N users, each sends its next request when the last one ends (+ think time)
    users: int = Field(8, ge=1, le=MAX_USERS)
    spawn_rate: float | None = Field(None, gt=0, le=MAX_SPAWN_RATE)  # users started per second; default: all at once
    think_time_s: float = Field(0, ge=0, le=MAX_DURATION_S)
    think_time_max_s: float | None = Field(None, ge=0, le=MAX_DURATION_S)  # set: uniform in [think_time_s, this]
    # open loop: requests sent at scheduled times whatever the server does
    rate_rps: float | None = Field(None, gt=0, le=MAX_RATE_RPS)
    arrival: Literal["constant", "poisson", "gamma"] = "poisson"
    # gamma shape: < 1 burstier than Poisson, 1 = Poisson
    burstiness: float = Field(1.0, ge=MIN_BURSTINESS, le=MAX_BURSTINESS)
    max_in_flight: int | None = Field(1024, ge=1, le=MAX_IN_FLIGHT)  # requests it holds back are counted
    stages: list[RateStageConfig] | None = None  # open loop: rate steps, ramps, spikes, soak
    user_stages: list[UserStageConfig] | None = None  # closed loop: user steps, ramps, spikes, soak
    # both
    processes: int = Field(1, ge=1, le=256)  # Locust worker processes on this machine (--processes)
    duration_s: float = Field(30, gt=0, le=MAX_DURATION_S)
    max_requests: int | None = Field(None, ge=1, le=1_000_000_000)
    warmup_s: float = Field(0, ge=0, le=MAX_DURATION_S)  # recorded, excluded from scoring
    cooldown_s: float = Field(0, ge=0, le=MAX_DURATION_S)  # recorded, excluded from scoring
    timeout_s: float = Field(120, gt=0, le=MAX_REQUEST_TIMEOUT_S)
    # At stop, requests still in flight get this long to finish; the rest are recorded as
    # `cancelled_at_stop` (with their TTFT if the first token came), never dropped.
    drain_timeout_s: float = Field(10, ge=0, le=600)

    @model_validator(mode="after")
    def _modes(self) -> "LoadConfig":
        if self.mode == "replay":
            self._check_replay()
        elif self.mode == "open":
            if self.processes > 1:
                raise ValueError("mode: open runs one dispatcher process (it sends thousands of req/s): set processes: 1")
            if (self.rate_rps is None) == (self.stages is None):
                raise ValueError("mode: open needs rate_rps (one rate) or stages (a rate per stage), not both")
            if self.stages:
                total = sum(s.duration_s for s in self.stages)
                if "duration_s" in self.model_fields_set and abs(total - self.duration_s) > 1e-9:
                    raise ValueError(f"duration_s ({self.duration_s:g}) differs from the sum of stages ({total:g}): omit duration_s")
                self.duration_s = total
                self._check_stage_sum()
            self._check_schedule()
        else:
            set_open = [k for k in ("rate_rps", "stages") if getattr(self, k) is not None]
            if set_open:
                raise ValueError(f"{', '.join(set_open)} apply to mode: open (this load is mode: closed)")
            if self.user_stages:
                total = sum(s.duration_s for s in self.user_stages)
                if "duration_s" in self.model_fields_set and abs(total - self.duration_s) > 1e-9:
                    raise ValueError(f"duration_s ({self.duration_s:g}) differs from the sum of user_stages ({total:g}): omit duration_s")
                self.duration_s = total
                self._check_stage_sum()
        if self.mode == "open" and self.user_stages:
            raise ValueError("user_stages apply to mode: closed; open loop uses stages (rates)")
        if self.think_time_max_s is not None and self.think_time_max_s < self.think_time_s:
            raise ValueError(f"think_time_max_s ({self.think_time_max_s:g}) must be >= think_time_s ({self.think_time_s:g})")
        if self.warmup_s + self.cooldown_s >= self.duration_s:
            raise ValueError(
                f"warmup_s + cooldown_s ({self.warmup_s + self.cooldown_s:g}) must be shorter than duration_s ({self.duration_s:g})"
            )
        return self

    def _check_replay(self) -> None:
        if self.processes > 1:
            raise ValueError("mode: replay runs one dispatcher process, like mode: open: set processes: 1")
        given = [k for k in ("rate_rps", "stages", "user_stages", "spawn_rate") if getattr(self, k) is not None]
        # users: only a changed value (a saved scenario.yaml writes the default out)
        given += ["users"] if self.users != type(self).model_fields["users"].default else []
        if given:
            raise ValueError(f"{', '.join(given)} do not apply to mode: replay (the trace's timestamps say when "
                             "each request goes out): remove them")

    def _check_stage_sum(self) -> None:
        if self.duration_s > MAX_DURATION_S:
            raise ValueError(f"the stages add up to {self.duration_s:g} s, over the {MAX_DURATION_S:g} s (7 day) "
                             "limit: shorten them, or split the soak into several runs")

    def _check_schedule(self) -> None:
        """Refuse an open-loop profile that schedules more requests than a run can record and score."""
        stages = self.rate_stages()
        expected = sum(s.duration_s * (s.rate_rps + (s.rate_rps if s.end_rate_rps is None else s.end_rate_rps)) / 2
                       for s in stages)
        capped = min(expected, self.max_requests) if self.max_requests else expected
        if capped > MAX_SCHEDULED_REQUESTS:
            raise ValueError(f"rate x duration schedules about {expected:.3g} requests, over the "
                             f"{MAX_SCHEDULED_REQUESTS:,} one run records: lower rate_rps or duration_s, "
                             "or set max_requests")

    def closed_stages(self) -> list[UserStageConfig]:
        """The closed-loop user profile (one stage for plain `users`)."""
        if self.user_stages:
            return list(self.user_stages)
        return [UserStageConfig(duration_s=self.duration_s, users=self.users, spawn_rate=self.spawn_rate)]

    def rate_stages(self) -> list[RateStageConfig]:
        """The open-loop rate profile (one stage for a plain rate)."""
        if self.stages:
            return list(self.stages)
        return [RateStageConfig(duration_s=self.duration_s, rate_rps=self.rate_rps or 0.0)]
