"""Server-side telemetry: scrape the server's Prometheus `/metrics` and map vLLM, TGI or llama.cpp
series onto one ServerSample schema. Seams: `parse_server_metrics(text, t_s)` (pure, tested on
fixture expositions) and `MetricsScraper(fetch=...)` (the HTTP GET is injectable).
"""

from __future__ import annotations

import time
from typing import Callable

from harness.records import ServerSample
from harness.telemetry.poller import DEFAULT_HTTP_TIMEOUT_S, PeriodicPoller, http_get_text

# vLLM v1 engine series (labels model_name, engine). kv_cache_usage_perc is a FRACTION 0..1
# despite the name; gpu_cache_usage_perc is its pre-0.10 name (removed in 0.12).
VLLM_WAITING = "vllm:num_requests_waiting"
VLLM_RUNNING = "vllm:num_requests_running"
VLLM_KV = "vllm:kv_cache_usage_perc"
VLLM_KV_OLD = "vllm:gpu_cache_usage_perc"
VLLM_PREEMPTIONS = "vllm:num_preemptions_total"
# Prefix cache counters in tokens (prompt tokens looked up / found cached), v0.9.2+ names; TGI and
# llama.cpp expose none, so their samples keep None (no hit rate rather than a made-up 0).
VLLM_PREFIX_QUERIES = "vllm:prefix_cache_queries_total"
VLLM_PREFIX_HITS = "vllm:prefix_cache_hits_total"
# TGI (metrics-exporter-prometheus: no labels on these, no _total suffix). TGI has no KV-usage
# series (its KV budget is in tokens, tgi_batch_current_max_tokens), so kv_usage_frac stays None.
TGI_QUEUE = "tgi_queue_size"
TGI_BATCH = "tgi_batch_current_size"
# llama.cpp llama-server with --metrics (no labels). requests_deferred: requests waiting for a free slot
# (the queue); requests_processing: requests holding a slot. The token counters are cumulative since
# start. kv_cache_usage_ratio (a fraction 0..1) exists only in older builds; there are no preemptions.
LLAMACPP_DEFERRED = "llamacpp:requests_deferred"
LLAMACPP_PROCESSING = "llamacpp:requests_processing"
LLAMACPP_KV = "llamacpp:kv_cache_usage_ratio"
LLAMACPP_PROMPT_TOKENS = "llamacpp:prompt_tokens_total"
LLAMACPP_OUTPUT_TOKENS = "llamacpp:tokens_predicted_total"


class ScrapeError(ValueError):
    """The /metrics body is not valid Prometheus text exposition. The message is one line."""


def _sample_values(text: str) -> dict[str, list[float]]:
    """Sample name → values of all its series (every label set: engine, model_name, …)."""
    # Imported here, not at module top, so `harness.telemetry` (and the GPU check) import without
    # prometheus_client on a bare machine.
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[str, list[float]] = {}
    try:
        for family in text_string_to_metric_families(text):
            # Index by *sample* name: the parser strips `_total` from counter family names
            # (family vllm:num_preemptions, sample vllm:num_preemptions_total).
            for s in family.samples:
                values.setdefault(s.name, []).append(float(s.value))
    except Exception as exc:  # the parser raises ValueError, and others on odd input
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ScrapeError(f"malformed Prometheus exposition: {type(exc).__name__}: {first}") from exc
    return values


def _sum(values: dict[str, list[float]], name: str) -> float | None:
    v = values.get(name)
    return None if not v else float(sum(v))


def _mean(values: dict[str, list[float]], name: str) -> float | None:
    v = values.get(name)
    return None if not v else float(sum(v) / len(v))


def detect_server(text_or_values: str | dict[str, list[float]]) -> str | None:
    """'vllm', 'tgi', 'llamacpp' or None (none of them), from the metric names present."""
    values = _sample_values(text_or_values) if isinstance(text_or_values, str) else text_or_values
    if any(n.startswith("vllm:") for n in values):
        return "vllm"
    if any(n.startswith("tgi_") for n in values):
        return "tgi"
    if any(n.startswith("llamacpp:") for n in values):
        return "llamacpp"
    return None


def parse_server_metrics(text: str, t_s: float, simulated: bool = False) -> ServerSample:
    """Map one /metrics body to a ServerSample taken at `t_s`. Raises ScrapeError if malformed.

    vLLM: counts (waiting, running, preemptions) are summed over `engine` labels (data-parallel
    engines each report their own); KV usage is the MEAN over engines — each DP engine has its
    own equally sized cache, so summing fractions could exceed 1. Unknown exposition → all None.
    """
    values = _sample_values(text)
    kind = detect_server(values)
    if kind == "vllm":
        kv = _mean(values, VLLM_KV)
        if kv is None:
            kv = _mean(values, VLLM_KV_OLD)
        return ServerSample(
            t_s=t_s,
            queue_depth=_sum(values, VLLM_WAITING),
            running=_sum(values, VLLM_RUNNING),
            kv_usage_frac=kv,
            preemptions_total=_sum(values, VLLM_PREEMPTIONS),
            simulated=simulated,
            prefix_cache_queries_total=_sum(values, VLLM_PREFIX_QUERIES),
            prefix_cache_hits_total=_sum(values, VLLM_PREFIX_HITS),
        )
    if kind == "tgi":
        return ServerSample(
            t_s=t_s,
            queue_depth=_sum(values, TGI_QUEUE),
            running=_sum(values, TGI_BATCH),
            kv_usage_frac=None,
            preemptions_total=None,
            simulated=simulated,
        )
    if kind == "llamacpp":
        return ServerSample(
            t_s=t_s,
            queue_depth=_sum(values, LLAMACPP_DEFERRED),
            running=_sum(values, LLAMACPP_PROCESSING),
            kv_usage_frac=_mean(values, LLAMACPP_KV),
            preemptions_total=None,
            prompt_tokens_total=_sum(values, LLAMACPP_PROMPT_TOKENS),
            output_tokens_total=_sum(values, LLAMACPP_OUTPUT_TOKENS),
            simulated=simulated,
        )
    return ServerSample(t_s=t_s, simulated=simulated)


def metrics_url(base_url: str) -> str:
    """`http://host:8000` → `http://host:8000/metrics` (a URL already ending in /metrics is kept)."""
    base = base_url.rstrip("/")
    return base if base.endswith("/metrics") else base + "/metrics"


class MetricsScraper(PeriodicPoller):
    """Scrapes `url + "/metrics"` every `interval_s` into `samples` (ServerSample rows).

    Failed scrapes (connect error, timeout, HTTP error, malformed body) add to `errors` and set
    `last_error`; the thread keeps going. `fetch(url) -> text` replaces the urllib GET in tests.
    """

    thread_name = "slabench-metrics"

    def __init__(
        self,
        url: str,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.perf_counter,
        fetch: Callable[[str], str] | None = None,
        timeout_s: float = DEFAULT_HTTP_TIMEOUT_S,
        simulated: bool = False,
        wait: Callable[[float], bool] | None = None,
    ):
        super().__init__(interval_s=interval_s, clock=clock, wait=wait)
        self.url = metrics_url(url)
        self.timeout_s = timeout_s
        self.simulated = simulated
        self._fetch = fetch if fetch is not None else (lambda u: http_get_text(u, self.timeout_s))

    def poll_once(self, t_s: float) -> list[ServerSample]:
        sent_s = self.clock()
        text = self._fetch(self.url)
        got_s = self.clock()
        # The server renders its gauges somewhere between our send and our receive; the midpoint
        # is the best single estimate of "when" the values held (error ≤ half the round trip).
        return [parse_server_metrics(text, (sent_s + got_s) / 2.0, simulated=self.simulated)]
