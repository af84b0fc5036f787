"""Metrics seam: `/metrics` exposition with vLLM 0.33 and TGI 3.3 names, types and labels.

vLLM: prometheus_client on a per-server CollectorRegistry (labels engine="0", model_name).
TGI: a small renderer imitating metrics-exporter-prometheus 0.15.3 (no `_total`, integer counters,
Rust-style float Display, a family appears only once touched). Both share one hook interface.
"""

from __future__ import annotations

import math
import os
import time
from bisect import bisect_left
from itertools import accumulate
from decimal import Decimal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
               80.0)
REQUEST_LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
                           240.0, 480.0, 960.0, 1920.0, 7680.0)
FINISH_REASONS = ("stop", "length", "abort", "error", "repetition")


def _buckets_125(limit: int) -> list[float]:
    """vLLM's 1-2-5 series up to max_model_len."""
    out, mant, exp = [], [1, 2, 5], 0
    while True:
        for m in mant:
            v = m * 10 ** exp
            if v > limit:
                return out
            out.append(float(v))
        exp += 1


class CountingHistogram:
    """A labelled histogram with a per-token cost of one bisect, exposed exactly as
    prometheus_client's `Histogram` child (cumulative buckets, _count, _sum, then _created).

    Observed once per streamed token, so it keeps plain counts and adds them up at scrape time;
    `observe_many` takes a run of equal values (the tokens of one instant write) in one call."""

    def __init__(self, name: str, doc: str, labels: dict[str, str], buckets, registry: CollectorRegistry):
        self.name, self.doc, self.labels = name, doc, labels
        self.bounds = [float(b) for b in buckets]
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.created = time.time()
        # prometheus_client's switch for the _created series (its default: on)
        self.with_created = os.environ.get("PROMETHEUS_DISABLE_CREATED_SERIES", "false").lower() != "true"
        registry.register(self)

    def observe(self, v: float) -> None:
        self.counts[bisect_left(self.bounds, v)] += 1
        self.sum += v

    def observe_many(self, v: float, n: int) -> None:
        if n > 0:
            self.counts[bisect_left(self.bounds, v)] += n
            self.sum += v * n

    def collect(self):
        m = Metric(self.name, self.doc, "histogram")
        acc = 0
        for b, c in zip([*self.bounds, math.inf], self.counts):
            acc += c
            m.add_sample(self.name + "_bucket", {**self.labels, "le": floatToGoString(b)}, float(acc))
        m.add_sample(self.name + "_count", dict(self.labels), float(acc))
        m.add_sample(self.name + "_sum", dict(self.labels), self.sum)
        if self.with_created:
            m.add_sample(self.name + "_created", dict(self.labels), self.created)
        return [m]


class VllmMetrics:
    def __init__(self, model_name: str, max_model_len: int, engine):
        self.registry = CollectorRegistry(auto_describe=True)
        self.engine = engine
        labels = ["model_name", "engine"]
        self._lv = {"model_name": model_name, "engine": "0"}
        r = self.registry

        def hist(name: str, doc: str, buckets) -> Histogram:
            return Histogram(name, doc, labels, buckets=buckets, registry=r).labels(**self._lv)

        self.running = Gauge("vllm:num_requests_running", "Number of requests in model execution batches.",
                             labels, registry=r).labels(**self._lv)
        self.waiting = Gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.",
                             labels, registry=r).labels(**self._lv)
        self.kv = Gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.",
                        labels, registry=r).labels(**self._lv)
        self.preemptions = Counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.",
                                   labels, registry=r).labels(**self._lv)
        self.prompt_tokens = Counter("vllm:prompt_tokens", "Number of prefill tokens processed.",
                                     labels, registry=r).labels(**self._lv)
        self.generation_tokens = Counter("vllm:generation_tokens", "Number of generation tokens processed.",
                                         labels, registry=r).labels(**self._lv)
        success = Counter("vllm:request_success", "Count of successfully processed requests.",
                          labels + ["finished_reason"], registry=r)
        self.success = {f: success.labels(finished_reason=f, **self._lv) for f in FINISH_REASONS}
        tok_buckets = _buckets_125(max_model_len)
        self.req_prompt = hist("vllm:request_prompt_tokens", "Number of prefill tokens processed.", tok_buckets)
        self.req_gen = hist("vllm:request_generation_tokens", "Number of generation tokens processed.", tok_buckets)
        self.ttft = hist("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                         TTFT_BUCKETS)
        self.itl = CountingHistogram("vllm:inter_token_latency_seconds",
                                     "Histogram of inter-token latency in seconds.", self._lv, ITL_BUCKETS, r)
        self.tpot = hist("vllm:request_time_per_output_token_seconds",
                         "Histogram of time_per_output_token_seconds per request.", ITL_BUCKETS)
        self.e2e = hist("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
                        REQUEST_LATENCY_BUCKETS)
        self.queue = hist("vllm:request_queue_time_seconds",
                          "Histogram of time spent in WAITING phase for request.", REQUEST_LATENCY_BUCKETS)
        self.inference = hist("vllm:request_inference_time_seconds",
                              "Histogram of time spent in RUNNING phase for request.", REQUEST_LATENCY_BUCKETS)
        self.prefill = hist("vllm:request_prefill_time_seconds",
                            "Histogram of time spent in PREFILL phase for request.", REQUEST_LATENCY_BUCKETS)
        self.decode = hist("vllm:request_decode_time_seconds",
                           "Histogram of time spent in DECODE phase for request.", REQUEST_LATENCY_BUCKETS)
        self.max_gen = hist("vllm:request_max_num_generation_tokens",
                            "Histogram of maximum number of requested generation tokens.", tok_buckets)
        self.params_n = hist("vllm:request_params_n", "Histogram of the n request parameter.", (1, 2, 5, 10, 20))
        self.params_max_tokens = hist("vllm:request_params_max_tokens",
                                      "Histogram of the max_tokens request parameter.", tok_buckets)
        waiting = Gauge("vllm:num_requests_waiting_by_reason", "Number of requests waiting, by reason.",
                        labels + ["reason"], registry=r)
        self.waiting_capacity = waiting.labels(reason="capacity", **self._lv)
        waiting.labels(reason="deferred", **self._lv).set(0)  # the sim defers nothing (no KV transfer, no LoRA)
        sleep = Gauge("vllm:engine_sleep_state", "Engine sleep state: 1 for the current one.",
                      labels + ["sleep_state"], registry=r)
        for state in ("awake", "weights_offloaded", "discard_all"):
            sleep.labels(sleep_state=state, **self._lv).set(1 if state == "awake" else 0)
        # Prefix cache (tokens), from the scheduler's cache at scrape time: queries and hits count new
        # requests' lookups at admission (vLLM leaves preempted requests' re-lookups out); with caching
        # off nothing is looked up and both stay 0. The by-source split is made when a prefill ends.
        # Calibration mode models no cache: every prompt token is queried, none hits.
        self.prefix_queries = Counter("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of "
                                      "queried tokens.", labels, registry=r).labels(**self._lv)
        self.prefix_hits = Counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached "
                                   "tokens.", labels, registry=r).labels(**self._lv)
        by_source = Counter("vllm:prompt_tokens_by_source", "Number of prompt tokens by source.",
                            labels + ["source"], registry=r)
        self.prompt_local = by_source.labels(source="local_compute", **self._lv)
        self.prompt_cache_hit = by_source.labels(source="local_cache_hit", **self._lv)
        by_source.labels(source="external_kv_transfer", **self._lv)
        self.prompt_cached = Counter("vllm:prompt_tokens_cached", "Number of cached prompt tokens (local + "
                                     "external).", labels, registry=r).labels(**self._lv)
        self._sched = getattr(engine, "sched", None)  # None in calibration mode
        self._seen = {"queries": 0, "hits": 0, "local": 0, "cached": 0}
        self._preempt_seen = 0
        self._gen_tokens = 0  # tokens after the first, added to generation_tokens at scrape time
        self._gen_seen = 0

    # hooks
    def on_request(self) -> None:
        pass

    def on_reject(self, err: str) -> None:
        pass

    def on_first_token(self, ttft_s: float, prompt_tokens: int) -> None:
        self.ttft.observe(ttft_s)
        self.prompt_tokens.inc(prompt_tokens)
        if self._sched is None:
            self.prefix_queries.inc(prompt_tokens)
            self.prompt_local.inc(prompt_tokens)
        self.generation_tokens.inc()

    def on_token(self, itl_s: float) -> None:
        self.itl.observe(itl_s)
        self._gen_tokens += 1

    def on_tokens(self, itl_s: float, n: int) -> None:
        """n further tokens, each itl_s after the one before (one instant write: itl_s = 0)."""
        self.itl.observe_many(itl_s, n)
        self._gen_tokens += n

    def on_finish(self, reason: str, prompt_tokens: int, gen_tokens: int, e2e_s: float, ttft_s: float | None,
                  max_new_tokens: int) -> None:
        self.success[reason if reason in self.success else "error"].inc()
        if reason in ("abort", "error"):
            return
        self.req_prompt.observe(prompt_tokens)
        self.req_gen.observe(gen_tokens)
        self.max_gen.observe(gen_tokens)  # n = 1: the longest sequence is the only one
        self.params_n.observe(1)
        self.params_max_tokens.observe(max_new_tokens)
        self.e2e.observe(e2e_s)
        if ttft_s is not None and gen_tokens > 1:
            self.tpot.observe((e2e_s - ttft_s) / (gen_tokens - 1))

    def on_phases(self, queue_s: float, prefill_s: float, decode_s: float, inference_s: float,
                  gen_tokens: int) -> None:
        """A finished request's phases: waiting, first scheduled → first token, first → last token,
        first scheduled → last token."""
        self.queue.observe(queue_s)
        self.prefill.observe(prefill_s)
        self.decode.observe(decode_s)
        self.inference.observe(inference_s)

    def render(self) -> tuple[bytes, str]:
        e = self.engine
        self.running.set(e.num_running)
        self.waiting.set(e.num_waiting)
        self.waiting_capacity.set(e.num_waiting)
        self.kv.set(e.kv_usage)
        total = getattr(getattr(e, "sched", None), "num_preemptions", 0)
        if total > self._preempt_seen:
            self.preemptions.inc(total - self._preempt_seen)
            self._preempt_seen = total
        if self._gen_tokens > self._gen_seen:
            self.generation_tokens.inc(self._gen_tokens - self._gen_seen)
            self._gen_seen = self._gen_tokens
        if self._sched is not None:
            self._sync_prefix_cache(self._sched)
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def _sync_prefix_cache(self, sched) -> None:
        cache = sched.cache
        now = {"queries": cache.queries_tokens if cache is not None else 0,
               "hits": cache.hits_tokens if cache is not None else 0,
               "cached": sched.prefilled_cached_tokens,
               "local": sched.prefilled_tokens - sched.prefilled_cached_tokens}
        seen = self._seen
        for key, counters in (("queries", (self.prefix_queries,)), ("hits", (self.prefix_hits,)),
                              ("local", (self.prompt_local,)), ("cached", (self.prompt_cache_hit, self.prompt_cached))):
            if now[key] > seen[key]:
                for c in counters:
                    c.inc(now[key] - seen[key])
                seen[key] = now[key]


# ---- TGI ------------------------------------------------------------------------------------

def rust_f64(v: float) -> str:
    """Rust's `Display` for f64: shortest round-trip digits, never exponent notation."""
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == int(v) and abs(v) < 1e16:
        return str(int(v))
    r = repr(v)
    if "e" in r or "E" in r:
        r = format(Decimal(r), "f")
    return r


def _geometric_duration_buckets() -> list[float]:
    out, b = [], 0.0001
    for _ in range(35):
        b *= 1.5
        out.append(b)
    return out


class _Hist:
    """Counts per bucket (one bisect per observation: TGI's sets have up to 100 buckets), added
    up into the cumulative `le` counts at render time."""

    def __init__(self, buckets: list[float]):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one: above every bucket
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        self.counts[bisect_left(self.buckets, v)] += 1
        self.sum += v
        self.count += 1

    def cumulative(self) -> list[int]:
        return list(accumulate(self.counts[:-1]))


_TGI_HELP = {
    "tgi_request_count": "Total number of requests",
    "tgi_request_success": "Number of successful requests",
    "tgi_queue_size": "Current queue size",
    "tgi_batch_current_size": "Current batch size",
    "tgi_batch_current_max_tokens": "Maximum tokens for the current batch",
    "tgi_batch_max_total_tokens": "Maximum amount of tokens in total.",
    "tgi_request_duration": "Request duration",
    "tgi_request_queue_duration": "Time spent in the queue per request",
    "tgi_request_inference_duration": "Request inference duration",
    "tgi_request_mean_time_per_token_duration": "Mean time per token per request",
    "tgi_request_generated_tokens": "Generated tokens per request",
    "tgi_request_input_length": "Input token length per request",
    "tgi_request_max_new_tokens": "Maximum new tokens per request",
}


class TgiMetrics:
    def __init__(self, max_input_tokens: int, max_total_tokens: int, max_batch_total_tokens: int, engine):
        self.engine = engine
        self.max_batch_total_tokens = max_batch_total_tokens
        self.counters: dict[tuple[str, str], int] = {}
        dur = _geometric_duration_buckets()
        self.hists: dict[str, _Hist] = {}
        self._bucket_sets = {
            "duration": dur,
            "tgi_request_input_length": [max_input_tokens / 100 * (i + 1) for i in range(100)],
            "tgi_request_generated_tokens": [max_total_tokens / 100 * (i + 1) for i in range(100)],
            "tgi_request_max_new_tokens": [max_total_tokens / 100 * (i + 1) for i in range(100)],
        }

    def _inc(self, name: str, labels: str = "", by: int = 1) -> None:
        self.counters[(name, labels)] = self.counters.get((name, labels), 0) + by

    def _observe(self, name: str, v: float) -> None:
        if name not in self.hists:
            key = "duration" if name.endswith("duration") else name
            self.hists[name] = _Hist(self._bucket_sets[key])
        self.hists[name].observe(v)

    def on_request(self) -> None:
        self._inc("tgi_request_count")

    def on_reject(self, err: str) -> None:
        self._inc("tgi_request_failure", f'err="{err}"')

    def on_first_token(self, ttft_s: float, prompt_tokens: int) -> None:
        pass  # TGI has no TTFT metric

    def on_token(self, itl_s: float) -> None:
        pass

    def on_tokens(self, itl_s: float, n: int) -> None:
        pass

    def on_phases(self, queue_s: float, prefill_s: float, decode_s: float, inference_s: float,
                  gen_tokens: int) -> None:
        self._observe("tgi_request_queue_duration", queue_s)
        self._observe("tgi_request_inference_duration", inference_s)
        self._observe("tgi_request_mean_time_per_token_duration", inference_s / max(gen_tokens, 1))

    def on_finish(self, reason: str, prompt_tokens: int, gen_tokens: int, e2e_s: float, ttft_s: float | None,
                  max_new_tokens: int) -> None:
        if reason in ("abort", "error"):
            self._inc("tgi_request_failure", 'err="incomplete"' if reason == "abort" else 'err="generation"')
            return
        self._inc("tgi_request_success")
        self._observe("tgi_request_duration", e2e_s)
        self._observe("tgi_request_input_length", prompt_tokens)
        self._observe("tgi_request_generated_tokens", gen_tokens)
        self._observe("tgi_request_max_new_tokens", max_new_tokens)

    def render(self) -> tuple[bytes, str]:
        e = self.engine
        running = getattr(getattr(e, "sched", None), "running", [])
        gauges = {
            "tgi_queue_size": e.num_waiting,
            "tgi_batch_current_size": e.num_running,
            "tgi_batch_current_max_tokens": sum(r.prompt_tokens + r.output_tokens for r in running),
            "tgi_batch_max_total_tokens": self.max_batch_total_tokens,
        }
        out: list[str] = []
        by_name: dict[str, list[tuple[str, int]]] = {}
        for (name, labels), v in self.counters.items():
            by_name.setdefault(name, []).append((labels, v))
        for name, rows in by_name.items():
            out += self._head(name, "counter")
            out += [f"{name}{{{lb}}} {v}" if lb else f"{name} {v}" for lb, v in rows]
            out.append("")
        for name, v in gauges.items():
            out += self._head(name, "gauge") + [f"{name} {rust_f64(float(v))}", ""]
        for name, h in self.hists.items():
            out += self._head(name, "histogram")
            out += [f'{name}_bucket{{le="{rust_f64(b)}"}} {c}' for b, c in zip(h.buckets, h.cumulative())]
            out += [f'{name}_bucket{{le="+Inf"}} {h.count}', f"{name}_sum {rust_f64(h.sum)}",
                    f"{name}_count {h.count}", ""]
        return ("\n".join(out) + "\n").encode(), "text/plain; charset=utf-8"

    @staticmethod
    def _head(name: str, kind: str) -> list[str]:
        helptext = _TGI_HELP.get(name)
        return ([f"# HELP {name} {helptext}"] if helptext else []) + [f"# TYPE {name} {kind}"]
