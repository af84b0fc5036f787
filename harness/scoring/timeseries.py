"""Time series: per-bucket columns on one clock (seconds since load start) for plots and summary.json.

Buckets are 1 s wide (wider only for runs over 600 buckets, so the summary stays small). Request
columns come from a RecordTable (bincounts over bucket indexes); GPU and server columns from samples;
empty buckets hold None. `errors` excludes cancelled_at_stop requests, as scoring does (cancelled_mask).
"""

from __future__ import annotations

import math

import numpy as np

from harness.records import GpuSample, RequestRecord, ServerSample
from harness.scoring.gauges import gpu_series
from harness.scoring.metrics import Window, cancelled_mask
from harness.scoring.table import RecordTable, from_records

MAX_BUCKETS = 600


def _span(t: RecordTable, gpu: list[GpuSample], server: list[ServerSample],
          window: Window) -> tuple[float, float] | None:
    ts = [x for x in (window.load_start_s, window.load_end_s) if x is not None]
    ts += [s.t_s for s in gpu] + [s.t_s for s in server]
    if t.n:
        ts += [float(t.sent_s.min()), float(t.end_s.min()), float(t.sent_s.max()), float(t.end_s.max())]
    if not ts:
        return None
    origin = window.load_start_s if window.load_start_s is not None else min(ts)
    return origin, max(ts)


def _p99_by_bucket(bucket: np.ndarray, values: np.ndarray, n: int) -> list:
    """np.percentile(values in bucket i, 99) for every bucket (None when empty), in one sort."""
    order = np.lexsort((values, bucket))
    b, v = bucket[order], values[order]
    counts = np.bincount(b, minlength=n)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    out: list = [None] * n
    full = np.flatnonzero(counts)
    if full.size:
        c = counts[full]
        virtual = (c - 1) * (99 / 100)  # numpy's 'linear' virtual index, as np.percentile(v, 99) computes it
        prev = np.floor(virtual)
        prev = np.where(virtual >= c - 1, c - 1, prev).astype(np.int64)
        nxt = np.minimum(prev + 1, c - 1)
        gamma = virtual - np.where(virtual >= c - 1, -1, prev)
        lo, hi = v[starts[full] + prev], v[starts[full] + nxt]
        diff = hi - lo
        res = np.where(gamma >= 0.5, hi - diff * (1 - gamma), lo + diff * gamma)  # numpy's _lerp
        for i, x in zip(full.tolist(), res.tolist()):
            out[i] = x
    return out


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


def table_timeseries(t: RecordTable, gpu: list[GpuSample], server: list[ServerSample], window: Window) -> dict:
    """Columns: t_s, offered_rps, sent_rps, achieved_rps, in_flight, ttft_p99_s, errors (finished requests that
    failed), cancelled_at_stop (only when some were: neither ok nor errors, see cancelled_mask), GPU/server gauges."""
    span = _span(t, gpu, server, window)
    if span is None:
        return {"bucket_s": 1.0, "origin": "load_start_s", "t_s": [], "columns": []}
    origin, last = span
    length = max(last - origin, 0.0)
    width = float(max(1, math.ceil(length / MAX_BUCKETS)))
    n = max(1, int(math.floor(length / width)) + 1)
    # Bucket index int((t - origin) // width), clipped to [-1, n] so it fits an int and stays outside.
    idx = lambda x: np.clip(np.floor_divide(x - origin, width), -1, n).astype(np.int32)  # noqa: E731
    count = lambda i: np.bincount(i[(i >= 0) & (i < n)], minlength=n)  # noqa: E731
    end = np.maximum(t.end_s, t.sent_s)
    i_sent, i_end = idx(t.sent_s), idx(end)
    cancelled = cancelled_mask(t)
    i_off = idx(np.where(np.isnan(t.scheduled_s), t.sent_s, t.scheduled_s))
    has_ttft = t.ok & ~np.isnan(t.ttft_s) & (i_sent >= 0) & (i_sent < n)
    # Busy seconds per bucket: each request adds its overlap with every bucket it spans (first and
    # last bucket partly, the ones between wholly), the same sums as a loop over each request's buckets.
    lo_edge = origin + np.arange(n + 1) * width
    a, b = np.maximum(0, i_sent), np.minimum(n - 1, i_end)
    live = a <= b
    a, b, s0, e0 = a[live], b[live], t.sent_s[live], end[live]
    part = lambda i: np.maximum(0.0, np.minimum(e0, lo_edge[i + 1]) - np.maximum(s0, lo_edge[i]))  # noqa: E731
    busy = np.zeros(n)  # (bincount with weights of nothing gives int64)
    busy += np.bincount(a, weights=part(a), minlength=n)
    multi = b > a
    busy += np.bincount(b[multi], weights=part(b)[multi], minlength=n)
    inner = np.bincount(a[multi] + 1, minlength=n + 1) - np.bincount(b[multi], minlength=n + 1)
    busy += np.cumsum(inner)[:n] * (lo_edge[1:] - lo_edge[:-1])
    out: dict = {
        "bucket_s": width, "origin": "load_start_s",
        "t_s": (np.arange(n) * width).tolist(),
        "window_start_t_s": None if window.start_s is None else window.start_s - origin,
        "window_end_t_s": None if window.end_s is None else window.end_s - origin,
        "offered_rps": (count(i_off) / width).tolist(), "sent_rps": (count(i_sent) / width).tolist(),
        "achieved_rps": (count(i_end[t.ok]) / width).tolist(), "errors": count(i_end[~t.ok & ~cancelled]).tolist(),
        "in_flight": (busy / width).tolist(),
        "ttft_p99_s": _p99_by_bucket(i_sent[has_ttft], t.ttft_s[has_ttft], n),
    }
    if cancelled.any():
        out["cancelled_at_stop"] = count(i_end[cancelled]).tolist()
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


def timeseries(records: list[RequestRecord], gpu: list[GpuSample], server: list[ServerSample],
               window: Window) -> dict:
    """table_timeseries() of a list of records."""
    return table_timeseries(from_records(records), gpu, server, window)
