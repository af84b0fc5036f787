"""Config: pydantic models for scenario files, SLA policies and backends (all `extra="forbid"`).

`load_scenario` and `load_sla` turn YAML into validated models or raise ConfigError with one line
naming the file, the key and the fix. The metric catalog (name → direction, unit) lives here so
that policies are validated against the same names scoring computes.
"""

from __future__ import annotations

import difflib
from datetime import date
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# ConfigError and format_validation_error are re-exported: callers import them from here.
from harness.config_errors import ConfigError, format_validation_error
from harness.config_errors import read_yaml as _read_yaml
from harness.config_backends import (  # noqa: F401  (re-exported: harness.config is the one entry point)
    TGI_QUANTIZATIONS, VLLM_QUANTIZATIONS, BackendConfig, ExternalBackend, SimBackend, TgiBackend, VllmBackend)

# Where shipped SLA policies live (resolved relative to the repo / working directory).
SLA_DIR = Path("scenarios") / "sla"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- metrics catalog

# metric → (better, unit, description). "lower": smaller is better; "higher": larger is better.
METRICS: dict[str, tuple[str, str, str]] = {
    "ttft_s": ("lower", "s", "time to first token"),
    "tpot_s": ("lower", "s", "time per output token after the first, per request"),
    "itl_s": ("lower", "s", "inter-token latency, every gap between streamed chunks"),
    "e2e_s": ("lower", "s", "end-to-end request latency"),
    "request_rate_rps": ("higher", "req/s", "completed requests per second"),
    "output_token_rate_tps": ("higher", "tok/s", "output tokens per second"),
    "total_token_rate_tps": ("higher", "tok/s", "prompt + output tokens per second"),
    "goodput_rps": ("higher", "req/s", "requests per second meeting every per-request SLO"),
    "error_rate_pct": ("lower", "%", "failed requests as a percentage of all requests"),
    "gpu_utilization_pct": ("higher", "%", "NVML GPU utilization (kernel-busy time share)"),
    "queue_depth": ("lower", "requests", "requests waiting in the server queue"),
}
DISTRIBUTION_METRICS = {"ttft_s", "tpot_s", "itl_s", "e2e_s"}
GAUGE_METRICS = {"gpu_utilization_pct", "queue_depth"}
Stat = Literal["p50", "p90", "p95", "p99", "p99.9", "mean", "max", "min", "value"]


class SlaRow(_Model):
    metric: str
    stat: Stat = "value"
    target: float
    alert: float
    hard: bool = True  # gates (FAIL ends CI) vs advisory (informs only)
    label: str | None = None

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        if v not in METRICS:
            hint = difflib.get_close_matches(v, METRICS, n=1)
            extra = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise ValueError(f"unknown metric '{v}'{extra}; known: {', '.join(METRICS)}")
        return v

    @model_validator(mode="after")
    def _check(self) -> "SlaRow":
        better = METRICS[self.metric][0]
        if self.metric in DISTRIBUTION_METRICS and self.stat == "value":
            raise ValueError(f"metric '{self.metric}' is a distribution: set stat to p50/p90/p95/p99/p99.9/mean/max")
        if self.metric not in DISTRIBUTION_METRICS | GAUGE_METRICS and self.stat != "value":
            raise ValueError(f"metric '{self.metric}' is a single value: use stat 'value' (or omit stat)")
        if better == "lower" and self.alert < self.target:
            raise ValueError(f"{self.metric}: lower is better, so alert ({self.alert}) must be >= target ({self.target})")
        if better == "higher" and self.alert > self.target:
            raise ValueError(f"{self.metric}: higher is better, so alert ({self.alert}) must be <= target ({self.target})")
        return self

    @property
    def better(self) -> str:
        return METRICS[self.metric][0]

    @property
    def title(self) -> str:
        if self.label:
            return self.label
        return self.metric if self.stat == "value" else f"{self.metric} {self.stat}"


class SlaPolicy(_Model):
    name: str
    description: str = ""
    rows: list[SlaRow] = Field(min_length=1)


# ---------------------------------------------------------------- backends (harness/config_backends.py)

# ---------------------------------------------------------------- load and workload

class TokenDist(_Model):
    """A token-length distribution; a bare integer in YAML means `fixed`."""

    dist: Literal["fixed", "uniform", "normal", "lognormal"] = "fixed"
    value: int | None = Field(None, ge=1)
    min: int = Field(1, ge=1)
    max: int | None = Field(None, ge=1)
    mean: float | None = Field(None, gt=0)
    stddev: float | None = Field(None, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            return {"dist": "fixed", "value": v}
        return v

    @model_validator(mode="after")
    def _check(self) -> "TokenDist":
        need = {"fixed": ["value"], "uniform": ["max"], "normal": ["mean", "stddev"], "lognormal": ["mean", "stddev"]}
        missing = [k for k in need[self.dist] if getattr(self, k) is None]
        if missing:
            raise ValueError(f"dist '{self.dist}' needs {', '.join(missing)}")
        if self.max is not None and self.max < self.min:
            raise ValueError(f"max ({self.max}) must be >= min ({self.min})")
        return self


class RateStageConfig(_Model):
    """One open-loop stage: a constant rate, or a linear ramp to `end_rate_rps` (a spike is a short stage)."""

    duration_s: float = Field(gt=0)
    rate_rps: float = Field(ge=0)
    end_rate_rps: float | None = Field(None, ge=0)


class UserStageConfig(_Model):
    """One closed-loop stage: hold `users` (reached at `spawn_rate` users/s; default: at once)."""

    duration_s: float = Field(gt=0)
    users: int = Field(ge=0, le=10000)
    spawn_rate: float | None = Field(None, gt=0)


class LoadConfig(_Model):
    api: Literal["openai-chat", "openai-completions", "tgi-generate-stream"] = "openai-chat"
    mode: Literal["closed", "open"] = "closed"
    # closed loop: N users, each sends its next request when the last one ends (+ think time)
    users: int = Field(8, ge=1, le=10000)
    spawn_rate: float | None = Field(None, gt=0)  # users started per second; default: all at once
    think_time_s: float = Field(0, ge=0)
    think_time_max_s: float | None = Field(None, ge=0)  # set: think time uniform in [think_time_s, this]
    # open loop: requests sent at scheduled times whatever the server does
    rate_rps: float | None = Field(None, gt=0)
    arrival: Literal["constant", "poisson", "gamma"] = "poisson"
    burstiness: float = Field(1.0, gt=0)  # gamma shape: < 1 burstier than Poisson, 1 = Poisson
    max_in_flight: int | None = Field(1024, ge=1)  # requests it holds back are counted
    stages: list[RateStageConfig] | None = None  # open loop: rate steps, ramps, spikes, soak
    user_stages: list[UserStageConfig] | None = None  # closed loop: user steps, ramps, spikes, soak
    # both
    processes: int = Field(1, ge=1, le=256)  # Locust worker processes on this machine (--processes)
    duration_s: float = Field(30, gt=0)
    max_requests: int | None = Field(None, ge=1)
    warmup_s: float = Field(0, ge=0)  # recorded, excluded from scoring
    cooldown_s: float = Field(0, ge=0)  # recorded, excluded from scoring
    timeout_s: float = Field(120, gt=0)

    @model_validator(mode="after")
    def _modes(self) -> "LoadConfig":
        if self.mode == "open":
            if self.processes > 1:
                raise ValueError("mode: open runs one dispatcher process (it sends thousands of req/s): set processes: 1")
            if (self.rate_rps is None) == (self.stages is None):
                raise ValueError("mode: open needs rate_rps (one rate) or stages (a rate per stage), not both")
            if self.stages:
                total = sum(s.duration_s for s in self.stages)
                if "duration_s" in self.model_fields_set and abs(total - self.duration_s) > 1e-9:
                    raise ValueError(f"duration_s ({self.duration_s:g}) differs from the sum of stages ({total:g}): omit duration_s")
                self.duration_s = total
        else:
            set_open = [k for k in ("rate_rps", "stages") if getattr(self, k) is not None]
            if set_open:
                raise ValueError(f"{', '.join(set_open)} apply to mode: open (this load is mode: closed)")
            if self.user_stages:
                total = sum(s.duration_s for s in self.user_stages)
                if "duration_s" in self.model_fields_set and abs(total - self.duration_s) > 1e-9:
                    raise ValueError(f"duration_s ({self.duration_s:g}) differs from the sum of user_stages ({total:g}): omit duration_s")
                self.duration_s = total
        if self.mode == "open" and self.user_stages:
            raise ValueError("user_stages apply to mode: closed; open loop uses stages (rates)")
        if self.think_time_max_s is not None and self.think_time_max_s < self.think_time_s:
            raise ValueError(f"think_time_max_s ({self.think_time_max_s:g}) must be >= think_time_s ({self.think_time_s:g})")
        if self.warmup_s + self.cooldown_s >= self.duration_s:
            raise ValueError(
                f"warmup_s + cooldown_s ({self.warmup_s + self.cooldown_s:g}) must be shorter than duration_s ({self.duration_s:g})"
            )
        return self

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


class DatasetConfig(_Model):
    """Prompts from a local file: JSONL (one object per line) or ShareGPT JSON (first human turn)."""

    path: str
    format: Literal["jsonl", "sharegpt"] = "jsonl"
    prompt_field: str = "prompt"  # jsonl: the prompt text
    output_tokens_field: str | None = "output_tokens"  # jsonl: expected output length, if present


class WorkloadConfig(_Model):
    prompt_tokens: TokenDist = TokenDist(value=128)
    output_tokens: TokenDist = TokenDist(value=128)
    shared_prefix_tokens: int = Field(0, ge=0)  # the same leading words on every prompt (prefix caching)
    dataset: DatasetConfig | None = None  # replaces synthetic prompts (and output lengths it carries)
    turns: int = Field(1, ge=1, le=100)  # >1: multi-turn chat sessions whose history grows each turn
    # OpenAI APIs: ask for usage in every chunk (vLLM's stream_options.continuous_usage_stats), so each
    # record says how many tokens every chunk carried (chunk_tokens). Costs a JSON parse per chunk.
    usage_every_chunk: bool = False
    seed: int = 0


class CostConfig(_Model):
    gpu_price_usd_per_hour: float | None = Field(None, ge=0)  # default: the guide's table by GPU
    price_set_on: date | None = None
    gpu_count: int | None = Field(None, ge=1)  # default: tensor_parallel_size of a sim backend, else 1
    gpu: str | None = None  # GPU id for the price lookup when the backend does not say


class Scenario(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    backend: BackendConfig = SimBackend()
    load: LoadConfig = LoadConfig()
    workload: WorkloadConfig = WorkloadConfig()
    sla: Union[str, SlaPolicy] = "guide"
    cost: CostConfig = CostConfig()

    @model_validator(mode="after")
    def _turns_need_chat(self) -> "Scenario":
        if self.workload.turns > 1 and (self.load.api != "openai-chat" or self.load.mode != "closed"):
            raise ValueError("workload.turns > 1 (multi-turn chat) needs load.api: openai-chat and load.mode: closed")
        if self.workload.usage_every_chunk and self.load.api == "tgi-generate-stream":
            raise ValueError("workload.usage_every_chunk applies to the OpenAI APIs; TGI's /generate_stream "
                             "already sends one token per event: drop it or use load.api: openai-chat")
        return self

    @field_validator("backend", mode="before")
    @classmethod
    def _default_backend_type(cls, v: Any) -> Any:
        # `backend:` without `type:` means the simulated backend, the default everywhere else too.
        if isinstance(v, dict) and "type" not in v:
            return {"type": "sim", **v}
        return v


# ---------------------------------------------------------------- loading with one-line errors

def parse_scenario(data: Any, source: str = "scenario") -> Scenario:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a scenario must be a YAML mapping with at least 'name'")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc, Scenario)) from None


def load_scenario(path: Path | str) -> Scenario:
    p = Path(path)
    return parse_scenario(_read_yaml(p), str(p))


def load_sla(ref: str | Path | SlaPolicy, search_dirs: tuple[Path, ...] = ()) -> SlaPolicy:
    """An SLA policy from a model, a file path, or a shipped name ('guide' → scenarios/sla/guide.yaml)."""
    if isinstance(ref, SlaPolicy):
        return ref
    p = Path(ref)
    candidates = [p] if p.suffix in {".yaml", ".yml"} else []
    for d in (*search_dirs, SLA_DIR, Path(__file__).resolve().parent.parent / SLA_DIR):
        candidates += [d / f"{ref}.yaml", d / str(ref)]
    for c in candidates:
        if c.is_file():
            data = _read_yaml(c)
            try:
                return SlaPolicy.model_validate(data)
            except ValidationError as exc:
                raise ConfigError(format_validation_error(str(c), exc, SlaPolicy)) from None
    raise ConfigError(f"SLA policy '{ref}' not found: give a .yaml path or a name from {SLA_DIR}/")


def resolve_scenario(scn: Scenario, sla_override: str | None = None, base_dir: Path | None = None) -> Scenario:
    """Return a copy whose `sla` is an inline policy (so the saved scenario.yaml is self-contained)."""
    dirs = (base_dir / "sla", base_dir) if base_dir else ()
    policy = load_sla(sla_override if sla_override is not None else scn.sla, dirs)
    return scn.model_copy(update={"sla": policy})


def scenario_to_yaml(scn: Scenario) -> str:
    return yaml.safe_dump(scn.model_dump(mode="json", exclude_none=True), sort_keys=False)
