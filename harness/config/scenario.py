"""Config: pydantic models for scenario files, SLA policies and backends (all `extra="forbid"`).

`load_scenario` and `load_sla` turn YAML into validated models or raise ConfigError with one line
naming the file, the key and the fix. The metric catalog (name → direction, unit) lives here so
that policies are validated against the same names scoring computes.
"""

from __future__ import annotations

import difflib
import os
from datetime import date
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# ConfigError and format_validation_error are re-exported: callers import them from here.
from harness.config.errors import ConfigError, clip, format_validation_error
from harness.config.errors import read_yaml as _read_yaml
from harness.config.calibration import CalibrationMode, PromptCalibration  # noqa: F401  (workload key)
from harness.config.recovery import RecoveryConfig, RecoveryField  # noqa: F401  (scenario key)
from harness.config.trace import TraceConfig  # noqa: F401  (workload key)
from harness.config.load import (  # noqa: F401  (the load: block, re-exported)
    MAX_DURATION_S, MAX_IN_FLIGHT, MAX_RATE_RPS, MAX_REQUEST_TIMEOUT_S, MAX_SCHEDULED_REQUESTS, MAX_SPAWN_RATE,
    MAX_USERS, MAX_BURSTINESS, MIN_BURSTINESS, OPEN_LOOP_MODES, LoadConfig, RateStageConfig, UserStageConfig)
from harness.config.backends import (  # noqa: F401  (re-exported: harness.config is the one entry point)
    MAX_SEED, TGI_QUANTIZATIONS, VLLM_QUANTIZATIONS, BackendConfig, ExternalBackend, LlamaCppBackend, Seed, SimBackend,
    TgiBackend, VllmBackend)

# Where shipped SLA policies live (resolved relative to the repo / working directory).
SLA_DIR = Path("scenarios") / "sla"

# Bounds no real test needs to exceed (the load's are in load.py). Past them a value is a typo that would
# hang the run or exhaust memory before the first request, so it is refused with the bound in the message.
# Token lengths per request: the workload sampler clips at 1M tokens, the longest context windows.
MAX_TOKENS = 1_000_000
MAX_SLA_VALUE = 1e12  # SLA targets and alerts: above any latency, rate or count a policy sets
MAX_GPU_PRICE_USD_PER_HOUR = 10_000.0  # the dearest 8-GPU cloud node costs about $100/hour
MAX_GPUS = 4096
class _Model(BaseModel):
    # NaN and infinity are refused in every float field: a NaN SLA threshold never fails, an
    # infinite duration never ends.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


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
    target: float = Field(ge=0, le=MAX_SLA_VALUE)  # every metric is >= 0
    alert: float = Field(ge=0, le=MAX_SLA_VALUE)
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
    # A tail row (p99, p99.9) judged on fewer samples than this is INCONCLUSIVE, never PASS.
    min_samples: int = Field(100, ge=1, le=10_000_000)
    rows: list[SlaRow] = Field(min_length=1)


# ---------------------------------------------------------------- backends (harness/config/backends.py)

# ---------------------------------------------------------------- load and workload

def _bare_int_or_object(schema: dict[str, Any]) -> None:
    """JSON Schema of TokenDist: a bare integer (the `fixed` shorthand) or the object."""
    obj = {k: schema.pop(k) for k in ("type", "properties", "required", "additionalProperties") if k in schema}
    schema["anyOf"] = [{"type": "integer", "minimum": 1, "maximum": MAX_TOKENS}, obj]


class TokenDist(_Model):
    """A token-length distribution; a bare integer in YAML means `fixed`."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra=_bare_int_or_object)

    dist: Literal["fixed", "uniform", "normal", "lognormal"] = "fixed"
    value: int | None = Field(None, ge=1, le=MAX_TOKENS)
    min: int = Field(1, ge=1, le=MAX_TOKENS)
    max: int | None = Field(None, ge=1, le=MAX_TOKENS)
    # A mean below one token is not a length (and stddev/mean would overflow the lognormal's sigma).
    mean: float | None = Field(None, ge=1, le=MAX_TOKENS)
    stddev: float | None = Field(None, ge=0, le=MAX_TOKENS)

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


class DatasetConfig(_Model):
    """Prompts from a local file: JSONL (one object per line) or ShareGPT JSON (first human turn)."""

    path: str
    format: Literal["jsonl", "sharegpt"] = "jsonl"
    prompt_field: str = "prompt"  # jsonl: the prompt text
    output_tokens_field: str | None = "output_tokens"  # jsonl: expected output length, if present


class WorkloadConfig(_Model):
    prompt_tokens: TokenDist = TokenDist(value=128)
    output_tokens: TokenDist = TokenDist(value=128)
    shared_prefix_tokens: int = Field(0, ge=0, le=MAX_TOKENS)  # the same leading words on every prompt (prefix caching)
    dataset: DatasetConfig | None = None  # replaces synthetic prompts (and output lengths it carries)
    trace: TraceConfig | None = None  # load.mode: replay: arrival times, lengths and shared prefixes of a trace
    turns: int = Field(1, ge=1, le=100)  # >1: multi-turn chat sessions whose history grows each turn
    # OpenAI APIs: ask for usage in every chunk (vLLM's stream_options.continuous_usage_stats), so each
    # record says how many tokens every chunk carried (chunk_tokens). Costs a JSON parse per chunk.
    usage_every_chunk: bool = False
    seed: Seed = 0
    # Synthetic prompts sized in the server's tokens: `auto` probes the server's usage before the load on
    # llamacpp and external backends (tokenizer unknown), `on` on any, `off` one word per requested token;
    # or {tokens_per_word, template_tokens} as a run's summary reported them (harness/config/calibration.py).
    calibrate_prompt_tokens: Union[CalibrationMode, PromptCalibration] = "auto"

    @field_validator("calibrate_prompt_tokens", mode="before")
    @classmethod
    def _calibration(cls, v: Any) -> Any:
        if isinstance(v, bool):  # YAML reads a bare on / off as true / false
            return "on" if v else "off"
        if isinstance(v, dict):
            try:
                return PromptCalibration.model_validate(v)
            except ValidationError as exc:
                err = exc.errors()[0]
                raise ValueError(f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
        if v not in ("auto", "on", "off") and not isinstance(v, PromptCalibration):
            raise ValueError("must be auto, on, off or {tokens_per_word, template_tokens}")
        return v


class CostConfig(_Model):
    gpu_price_usd_per_hour: float | None = Field(None, ge=0, le=MAX_GPU_PRICE_USD_PER_HOUR)  # default: guide's table
    price_set_on: date | None = None
    gpu_count: int | None = Field(None, ge=1, le=MAX_GPUS)  # default: tensor_parallel_size of a sim backend, else 1
    gpu: str | None = None  # GPU id for the price lookup when the backend does not say


class Scenario(_Model):
    # The name starts the run folder's name, which must fit in a file name (255 bytes).
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    description: str = ""
    backend: BackendConfig = SimBackend()
    load: LoadConfig = LoadConfig()
    workload: WorkloadConfig = WorkloadConfig()
    sla: Union[str, SlaPolicy] = "guide"
    cost: CostConfig = CostConfig()
    recovery: RecoveryField = None  # overload and recovery: the spike and what "recovered" means (config/recovery.py)

    @model_validator(mode="after")
    def _replay_needs_trace(self) -> "Scenario":
        if self.load.mode == "replay" and self.workload.trace is None:
            raise ValueError("load.mode: replay needs workload.trace: {path, format} (the trace to replay)")
        if self.workload.trace is not None and self.load.mode != "replay":
            raise ValueError(f"workload.trace is replayed by load.mode: replay (this load is mode: {self.load.mode}): "
                             "set load.mode: replay or remove workload.trace")
        if self.workload.trace is not None and self.workload.dataset is not None:
            raise ValueError("workload.trace and workload.dataset both supply the requests: keep one")
        return self

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
    return parse_scenario(_read_yaml(p, "scenario file"), str(p))


def _is_file(p: Path) -> bool:
    try:
        return p.is_file()
    except (OSError, ValueError):  # a name too long, a folder we may not enter: not a candidate
        return False


def load_sla(ref: str | Path | SlaPolicy, search_dirs: tuple[Path, ...] = ()) -> SlaPolicy:
    """An SLA policy from a model, a file path, or a shipped name ('guide' → scenarios/sla/guide.yaml)."""
    if isinstance(ref, SlaPolicy):
        return ref
    p = Path(ref)
    explicit = p.suffix in {".yaml", ".yml"}
    candidates = [p] if explicit else []
    # The shipped presets: harness/data/sla (in the wheel; a link to scenarios/sla in the clone).
    for d in (*search_dirs, SLA_DIR, Path(__file__).resolve().parents[1] / "data" / "sla"):
        candidates += [d / f"{ref}.yaml", d / str(ref)]
    for c in candidates:
        # An explicit .yaml path that exists is read even when it is not a file (a folder, a FIFO):
        # the reader then says exactly what is wrong with it instead of "not found".
        if _is_file(c) or (c is p and explicit and os.path.lexists(p)):
            data = _read_yaml(c, "SLA policy file")
            try:
                return SlaPolicy.model_validate(data)
            except ValidationError as exc:
                raise ConfigError(format_validation_error(str(c), exc, SlaPolicy)) from None
    raise ConfigError(f"SLA policy '{clip(ref)}' not found: give a .yaml path or a name from {SLA_DIR}/")


def resolve_scenario(scn: Scenario, sla_override: str | None = None, base_dir: Path | None = None) -> Scenario:
    """Return a copy whose `sla` is an inline policy (so the saved scenario.yaml is self-contained)."""
    dirs = (base_dir / "sla", base_dir) if base_dir else ()
    policy = load_sla(sla_override if sla_override is not None else scn.sla, dirs)
    scn = scn.model_copy(update={"sla": policy})
    wl = scn.workload
    if base_dir is not None:  # dataset and trace paths are relative to the scenario file: made absolute
        files = {k: getattr(wl, k) for k in ("dataset", "trace") if getattr(wl, k) is not None}
        moved = {k: f.model_copy(update={"path": str((base_dir / f.path).resolve())})
                 for k, f in files.items() if not Path(f.path).is_absolute()}
        if moved:
            scn = scn.model_copy(update={"workload": wl.model_copy(update=moved)})
    return scn


def scenario_to_yaml(scn: Scenario) -> str:
    return yaml.safe_dump(scn.model_dump(mode="json", exclude_none=True), sort_keys=False)
