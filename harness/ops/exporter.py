"""Live metrics seam: a run's requests.jsonl → Prometheus series with the deployment guide's names.

`LiveExporter(port, run_dir)` serves its own CollectorRegistry on `start()`; `poll()` ingests only new
records; `update_gauges()` sets queue and GPU gauges. Requests count as in summary.json: cancelled_at_stop
is status="cancelled" (neither ok nor error); histograms and tokens cover ok requests.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from harness.records import CANCELLED_AT_STOP, REQUESTS_FILE, GpuSample, JsonlTail, RequestRecord, ServerSample

# Metric names (the guide's four, plus TTFT, tokens, TPOT, ITL and GPU utilization).
REQUESTS_TOTAL = "llm_requests_total"  # counter, label status = ok | error | cancelled
# Status label values. "cancelled": recorded cancelled_at_stop (in flight when the load stopped, unfinished
# after load.drain_timeout_s): the server neither served nor failed it, so the error rate leaves it out
# (ok + error are the finished requests, its denominator), as scoring's cancelled_mask does.
STATUS_OK, STATUS_ERROR, STATUS_CANCELLED = "ok", "error", "cancelled"
FINISHED_STATUS_RE = f"{STATUS_OK}|{STATUS_ERROR}"  # PromQL label regex for the error rate's denominator
REQUEST_LATENCY = "llm_request_latency_seconds"  # histogram of e2e, ok requests
QUEUE_SIZE = "llm_queue_size"  # gauge: requests waiting in the server queue
GPU_MEMORY = "llm_gpu_memory_bytes"  # gauge: used bytes summed over the server's GPUs
GPU_UTILIZATION = "llm_gpu_utilization_percent"  # gauge: mean NVML utilization over the GPUs
TTFT = "llm_time_to_first_token_seconds"  # histogram, ok requests and cancelled ones whose first token came
TPOT = "llm_time_per_output_token_seconds"  # histogram, ok requests with >= 2 output tokens
ITL = "llm_inter_token_latency_seconds"  # histogram of every inter-chunk gap, ok requests
TOKENS_TOTAL = "llm_tokens_total"  # counter, label kind = prompt | output (ok requests)

LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0)
TTFT_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 20.0, 60.0)
TOKEN_GAP_BUCKETS_S = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0)

HISTOGRAMS = (REQUEST_LATENCY, TTFT, TPOT, ITL)
# Every sample name a scrape can show (dashboards and alert rules may use only these).
EXPOSED_SAMPLE_NAMES = frozenset(
    {REQUESTS_TOTAL, QUEUE_SIZE, GPU_MEMORY, GPU_UTILIZATION, TOKENS_TOTAL}
    | {f"{h}{s}" for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")})


class LiveExporter:
    """Prometheus endpoint for one run folder. Thread-safe: poll from one thread, scrape from any."""

    def __init__(self, port: int, run_dir: Path, host: str = "127.0.0.1"):
        self.host, self.requested_port, self.run_dir = host, port, Path(run_dir)
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(REQUESTS_TOTAL, "Requests recorded, by outcome: ok, error, or cancelled (in flight "
                                "at stop: neither)", ["status"], registry=r)
        self.latency = Histogram(REQUEST_LATENCY, "End-to-end request latency of ok requests",
                                 buckets=LATENCY_BUCKETS_S, registry=r)
        self.ttft = Histogram(TTFT, "Time to first token of ok requests (and of cancelled-at-stop ones that had it)",
                              buckets=TTFT_BUCKETS_S, registry=r)
        self.tpot = Histogram(TPOT, "Time per output token after the first, per ok request",
                              buckets=TOKEN_GAP_BUCKETS_S, registry=r)
        self.itl = Histogram(ITL, "Every gap between streamed chunks of ok requests",
                             buckets=TOKEN_GAP_BUCKETS_S, registry=r)
        self.tokens = Counter(TOKENS_TOTAL, "Tokens of ok requests, by kind", ["kind"], registry=r)
        self.queue = Gauge(QUEUE_SIZE, "Requests waiting in the server queue (last scrape)", registry=r)
        self.gpu_memory = Gauge(GPU_MEMORY, "GPU memory used, summed over the server's GPUs", registry=r)
        self.gpu_util = Gauge(GPU_UTILIZATION, "GPU utilization, mean over the server's GPUs", registry=r)
        for status in (STATUS_OK, STATUS_ERROR, STATUS_CANCELLED):
            self.requests.labels(status=status)
        for kind in ("prompt", "output"):
            self.tokens.labels(kind=kind)
        for g in (self.queue, self.gpu_memory, self.gpu_util):
            g.set(math.nan)  # unknown until telemetry reports (NaN never trips an alert)
        self._tail = JsonlTail(self.run_dir / REQUESTS_FILE)
        self._lock = threading.Lock()
        self._server = None
        self._thread: threading.Thread | None = None
        self.records_seen = 0

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with port 0), else the requested one."""
        return self._server.server_address[1] if self._server is not None else self.requested_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def start(self) -> None:
        from prometheus_client import start_http_server

        if self._server is None:
            self._server, self._thread = start_http_server(self.requested_port, addr=self.host, registry=self.registry)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(5)
            self._server = self._thread = None

    def __enter__(self) -> "LiveExporter":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def poll(self) -> int:
        """Ingest the records appended since the last poll; returns how many."""
        with self._lock:
            rows = self._tail.read()
            for row in rows:
                try:
                    self.observe(RequestRecord.from_dict(row))
                except TypeError:
                    continue
                self.records_seen += 1
            return len(rows)

    def observe(self, rec: RequestRecord) -> None:
        cancelled = not rec.ok and rec.error_type == CANCELLED_AT_STOP
        self.requests.labels(status=STATUS_OK if rec.ok else STATUS_CANCELLED if cancelled else STATUS_ERROR).inc()
        if cancelled and rec.ttft_s is not None:  # a complete TTFT measurement (see scoring's cancelled_mask)
            self.ttft.observe(rec.ttft_s)
        if not rec.ok:
            return
        if rec.e2e_s is not None:
            self.latency.observe(rec.e2e_s)
        if rec.ttft_s is not None:
            self.ttft.observe(rec.ttft_s)
        if rec.tpot_s is not None:
            self.tpot.observe(rec.tpot_s)
        for gap in rec.itl_s or ():
            self.itl.observe(gap)
        self.tokens.labels(kind="prompt").inc(int(rec.prompt_tokens or 0))
        self.tokens.labels(kind="output").inc(int(rec.output_tokens or 0))

    def update_gauges(self, queue_depth: float | None = None, gpu_memory_bytes: float | None = None,
                      gpu_utilization_pct: float | None = None) -> None:
        """Set the gauges that are known (None leaves a gauge as it was)."""
        for gauge, value in ((self.queue, queue_depth), (self.gpu_memory, gpu_memory_bytes),
                             (self.gpu_util, gpu_utilization_pct)):
            if value is not None:
                gauge.set(float(value))

    def update_from_samples(self, gpu_samples: Iterable[GpuSample] = (),
                            server_sample: ServerSample | None = None) -> None:
        """Gauges from telemetry rows: the latest sample per GPU index (memory summed, utilization
        averaged) and the server sample's queue depth."""
        latest: dict[int, GpuSample] = {}
        for s in gpu_samples:
            if s.gpu_index not in latest or s.t_s >= latest[s.gpu_index].t_s:
                latest[s.gpu_index] = s
        mem = [s.mem_used_bytes for s in latest.values() if s.mem_used_bytes is not None]
        util = [s.util_gpu_pct for s in latest.values() if s.util_gpu_pct is not None]
        self.update_gauges(queue_depth=server_sample.queue_depth if server_sample else None,
                           gpu_memory_bytes=float(sum(mem)) if mem else None,
                           gpu_utilization_pct=sum(util) / len(util) if util else None)

    def update_from_telemetry(self, telemetry, tail: int = 64) -> None:
        """Gauges from a running TelemetrySession (duck-typed: `.gpu.samples`, `.scraper.samples`, each
        a list its poller thread appends to); reads only the last `tail` rows of each."""
        gpu = getattr(getattr(telemetry, "gpu", None), "samples", None) or []
        server = getattr(getattr(telemetry, "scraper", None), "samples", None) or []
        self.update_from_samples(list(gpu[-tail:]), server[-1] if server else None)
