"""Validation-point seam: published serving measurements as data, read and checked from YAML.

A `Point` is one published number (source URL, engine, GPU x count x TP, model, precision, workload,
load, metric, value) plus the band within which the simulator counts as agreeing with it.
`load_points(path)` reads a points file; every problem is one line (SimConfigError).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.config.errors import ConfigError, format_validation_error, read_yaml
from harness.sim.catalog import SimConfigError, load_catalog

DEFAULT_POINTS = Path(__file__).with_name("points.yaml")
MAX_TOKENS = 1_000_000
MAX_REQUESTS = 100_000  # per point: one simulated run stays within seconds
MAX_CONCURRENCY = 10_000  # closed-loop users (the scenario's MAX_USERS)

Metric = Literal["ttft_ms", "tpot_ms", "itl_ms", "e2e_s", "output_tok_s", "output_tok_s_per_gpu", "request_s"]
# What each metric means, for the table and the docs.
METRIC_HELP = {
    "ttft_ms": "time to first token (ms)",
    "tpot_ms": "time per output token after the first, per request (ms)",
    "itl_ms": "gap between consecutive streamed tokens, over all gaps (ms)",
    "e2e_s": "request latency, first byte sent to last token (s)",
    "output_tok_s": "output tokens per second over the run, all replicas",
    "output_tok_s_per_gpu": "output tokens per second over the run, divided by gpu_count",
    "request_s": "completed requests per second over the run, all replicas",
}
Regime = Literal["decode-b1", "prefill", "mixed", "saturated"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Model):
    name: str = Field(min_length=1, max_length=120)  # the publisher: independent sources are counted by it
    url: str = Field(pattern=r"^https://\S+$", max_length=500)
    date: str | None = Field(None, max_length=20)  # as published (YYYY-MM or YYYY-MM-DD)


class Workload(_Model):
    """Fixed lengths, or (with `spread`) a lognormal spread around the given means: a dataset sample."""

    input_tokens: int = Field(ge=1, le=MAX_TOKENS)  # per request (a dataset: its mean)
    output_tokens: int = Field(ge=1, le=MAX_TOKENS)
    dataset: str | None = Field(None, max_length=200)  # e.g. "ShareGPT, 500 prompts": lengths above are its means
    spread: float | None = Field(None, gt=0, le=10)  # standard deviation / mean of both lengths (lognormal)
    max_tokens: int | None = Field(None, ge=2, le=MAX_TOKENS)  # with spread: cap on each length

    @model_validator(mode="after")
    def _cap(self):
        if self.max_tokens is not None and self.spread is None:
            raise ValueError("'max_tokens' caps a spread of lengths: set 'spread' too (or remove it)")
        return self


class Load(_Model):
    """Exactly one of: `concurrency` (closed loop, each user sends again when its answer ends),
    `burst` (every request sent at once: offline throughput, `--request-rate inf`) or `rate_rps`
    (Poisson arrivals, `--request-rate R`)."""

    concurrency: int | None = Field(None, ge=1, le=MAX_CONCURRENCY)
    burst: int | None = Field(None, ge=1, le=MAX_REQUESTS)
    rate_rps: float | None = Field(None, gt=0, le=10_000)
    requests: int | None = Field(None, ge=1, le=MAX_REQUESTS)  # closed loop / rate: total sent

    @model_validator(mode="after")
    def _one_kind(self):
        if sum(x is not None for x in (self.concurrency, self.burst, self.rate_rps)) != 1:
            raise ValueError("set exactly one of 'concurrency' (closed loop), 'burst' (all requests at once) or "
                             "'rate_rps' (Poisson arrivals)")
        if self.burst is not None and self.requests is not None:
            raise ValueError("'requests' is for closed loop and rate: a burst sends 'burst' requests")
        if self.rate_rps is not None and self.requests is None:
            raise ValueError("a 'rate_rps' load needs 'requests' (how many the published run sent)")
        return self


class Server(_Model):
    """Engine settings of the published run, as the sim's vLLM flags (unset: the sim's defaults)."""

    max_num_seqs: int | None = Field(None, ge=1, le=100_000)
    max_num_batched_tokens: int | None = Field(None, ge=1, le=1_000_000)
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    max_model_len: int | None = Field(None, ge=16, le=MAX_TOKENS)
    # fp8: the KV cache stored in 8 bits (vLLM --kv-cache-dtype fp8; TensorRT-LLM's FP8 checkpoints)
    kv_cache_dtype: Literal["auto", "fp8"] = "auto"
    # v0: vLLM before 0.8 (and its forks), whose V0 engine core schedules, prepares inputs and handles
    # outputs on the CPU between GPU steps; the sim adds perfmodel.V0_STEP_OVERHEAD_S to every step
    engine_core: Literal["current", "v0"] = "current"


class Point(_Model):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,79}$")
    source: Source
    engine: str = Field(min_length=1, max_length=80)  # engine and version, as published
    gpu: str  # catalog id (slabench sim list)
    gpu_count: int = Field(1, ge=1, le=1024)
    tp: int = Field(1, ge=1, le=1024)  # tensor parallel size; gpu_count / tp replicas share the load
    model: str  # catalog id; a fine-tune or 3.x point release with the same shapes maps to its base
    precision: str  # catalog quantization id: fp16, bf16, fp8, int8, awq, gptq
    workload: Workload
    load: Load
    server: Server = Server()
    # http: a client timed requests through an API server (the sim charges its per-request time);
    # in-process: the benchmark fed the engine directly (trtllm-bench, LLM.generate, gptSessionBenchmark)
    client: Literal["http", "in-process"] = "http"
    metric: Metric
    stat: Literal["mean", "median"] = "mean"  # over requests (latencies); throughputs are over the run
    value: float = Field(gt=0, le=1e9)
    band_pct: float = Field(gt=0, le=100)  # inside when |simulated - value| <= band_pct % of value
    regime: Regime
    note: str = Field("", max_length=600)

    @model_validator(mode="after")
    def _replicas(self):
        if self.metric in ("tpot_ms", "itl_ms") and self.workload.output_tokens < 2:
            raise ValueError(f"{self.metric} needs output_tokens >= 2 (a gap between two tokens)")
        if self.gpu_count % self.tp:
            raise ValueError(f"gpu_count {self.gpu_count} must be a multiple of tp {self.tp} "
                             "(gpu_count / tp replicas)")
        if self.load.concurrency is not None and self.load.concurrency % self.replicas:
            raise ValueError(f"concurrency {self.load.concurrency} must split evenly over {self.replicas} replicas")
        if self.load.burst is not None and self.load.burst % self.replicas:
            raise ValueError(f"burst {self.load.burst} must split evenly over {self.replicas} replicas")
        return self

    @property
    def replicas(self) -> int:
        return self.gpu_count // self.tp


class PointSet(_Model):
    points: list[Point] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self):
        seen: set[str] = set()
        for p in self.points:
            if p.id in seen:
                raise ValueError(f"point id '{p.id}' appears twice: ids must be unique")
            seen.add(p.id)
        return self

    @property
    def sources(self) -> list[str]:
        return sorted({p.source.name for p in self.points})


def load_points(path: str | Path | None = None, catalog: str | None = None) -> PointSet:
    """The points file at `path` (default: the shipped set), checked against the catalog (built-in plus
    `catalog`, a --catalog YAML file) so every GPU, model and precision id exists; SimConfigError on
    any problem."""
    p = Path(path) if path is not None else DEFAULT_POINTS
    try:
        data = read_yaml(p, "points file")
    except ConfigError as exc:
        raise SimConfigError(f"--points {exc}") from None
    if not isinstance(data, dict):
        raise SimConfigError(f"points file {p}: must be a mapping with a 'points' list: fix the file")
    try:
        points = PointSet.model_validate(data)
    except ValidationError as exc:
        raise SimConfigError(format_validation_error(f"points file {p}", exc, PointSet)) from None
    cat = load_catalog(catalog)
    for i, pt in enumerate(points.points):
        for kind, key, table in (("gpu", pt.gpu, cat.gpus), ("model", pt.model, cat.models),
                                 ("precision", pt.precision, cat.quants)):
            if key not in table:
                raise SimConfigError(f"points file {p}: points.{i} ({pt.id}): unknown {kind} '{key}': use one of "
                                     f"{', '.join(table)} (or add it with --catalog FILE)")
    return points
