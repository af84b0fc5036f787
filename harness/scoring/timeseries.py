"""Time series: per-bucket columns on one clock (seconds since load start) for plots and summary.json.

Buckets are 1 s wide (wider only for runs over 600 buckets, so the summary stays small). Request
columns come from records; GPU and server columns from samples; empty buckets hold None.
"""

from __future__ import annotations

import math

import numpy as np

from harness.records import GpuSample, RequestRecord, ServerSample
from harness.scoring.gauges import gpu_series
from harness.scoring.metrics import Window

MAX_BUCKETS = 600


def _span(records: list[RequestRecord], gpu: list[GpuSample], server: list[ServerSample],
          window: Window) -> tuple[float, float] | None:
    ts = [t for t in (window.load_start_s, window.load_end_s) if t is not None]
    ts += [r.sent_s for r in records] + [r.end_s for r in records]
    ts += [s.t_s for s in gpu] + [s.t_s for s in server]
    if not ts:
        return None
    origin = window.load_start_s if window.load_start_s is not None else min(ts)
    return origin, max(ts)


def _mean_by_bucket(ts: list[float], vals: list, origin: float, width: float, n: int) -> list:
    sums, counts = [0.0] * n, [0] * n
    for t, v in zip(ts, vals):
        if v is None or not math.isfinite(v):
            continue
        i = int((t - origin) // width)
        if 0 <= i < n:
            sums[i] += v
            counts[i] += 1
    return [s / c if c else None for s, c in zip(sums, counts)]


def timeseries(records: list[RequestRecord], gpu: list[GpuSample], server: list[ServerSample],
               window: Window) -> dict:
    """Columns: t_s, offered_rps, sent_rps, achieved_rps, in_flight, ttft_p99_s, errors, GPU/server gauges."""
    span = _span(records, gpu, server, window)
    if span is None:
        return {"bucket_s": 1.0, "origin": "load_start_s", "t_s": [], "columns": []}
    origin, last = span
    length = max(last - origin, 0.0)
    width = float(max(1, math.ceil(length / MAX_BUCKETS)))
    n = max(1, int(math.floor(length / width)) + 1)
    idx = lambda t: int((t - origin) // width)  # noqa: E731
    offered, sent, achieved, errors = [0] * n, [0] * n, [0] * n, [0] * n
    busy = [0.0] * n
    ttft: list[list[float]] = [[] for _ in range(n)]
    for r in records:
        t_off = r.scheduled_s if r.scheduled_s is not None else r.sent_s
        for t, col in ((t_off, offered), (r.sent_s, sent)):
            if 0 <= idx(t) < n:
                col[idx(t)] += 1
        end = max(r.end_s, r.sent_s)
        if 0 <= idx(end) < n:
            (achieved if r.ok else errors)[idx(end)] += 1
        if r.ok and r.ttft_s is not None and 0 <= idx(r.sent_s) < n:
            ttft[idx(r.sent_s)].append(r.ttft_s)
        for i in range(max(0, idx(r.sent_s)), min(n - 1, idx(end)) + 1):
            lo, hi = origin + i * width, origin + (i + 1) * width
            busy[i] += max(0.0, min(end, hi) - max(r.sent_s, lo))
    out: dict = {
        "bucket_s": width, "origin": "load_start_s",
        "t_s": [i * width for i in range(n)],
        "window_start_t_s": None if window.start_s is None else window.start_s - origin,
        "window_end_t_s": None if window.end_s is None else window.end_s - origin,
        "offered_rps": [c / width for c in offered], "sent_rps": [c / width for c in sent],
        "achieved_rps": [c / width for c in achieved], "errors": errors,
        "in_flight": [b / width for b in busy],
        "ttft_p99_s": [float(np.percentile(v, 99)) if v else None for v in ttft],
    }
    if gpu:
        gs = gpu_series(gpu)
        for key, col in (("util_pct", "gpu_util_pct"), ("mem_used_gib", "gpu_mem_used_gib"), ("power_w", "gpu_power_w")):
            vals = _mean_by_bucket(gs["t_s"], gs[key], origin, width, n)
            if any(v is not None for v in vals):
                out[col] = vals
        out["gpu_simulated"] = any(s.simulated for s in gpu)
    if server:
        ts = [s.t_s for s in server]
        for attr, col, scale in (("queue_depth", "queue_depth", 1.0), ("running", "running", 1.0),
                                 ("kv_usage_frac", "kv_usage_pct", 100.0)):
            vals = _mean_by_bucket(ts, [None if getattr(s, attr) is None else getattr(s, attr) * scale for s in server],
                                   origin, width, n)
            if any(v is not None for v in vals):
                out[col] = vals
        out["server_simulated"] = any(s.simulated for s in server)
    out["columns"] = [k for k, v in out.items() if isinstance(v, list) and k != "t_s"]
    return out
