"""Gauges: GPU (GpuSample) and server (ServerSample) telemetry over the scored window.

GPU readings taken in one sampler pass are grouped into one timestamp and averaged across GPUs
(utilization) or summed (power, memory). Energy integrates power over the window (trapezoid), or
uses the cumulative energy counter where the GPU has one. Server counters (prefix cache) are
differenced over the window; without them the prefix-cache hit rate comes from the cached-token
figures the server gave per request (llama.cpp, vLLM with prompt token details).
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from harness.records import GpuSample, ServerSample
from harness.scoring.metrics import Window
from harness.scoring.table import RecordTable
from harness.scoring.stats import describe

NO_GPU_REASON = "no GPU samples: no NVML/GPU and backend gives no simulated telemetry"
NO_SERVER_REASON = "no server metrics scraped"
NO_PREFIX_COUNTERS = ("the server exposes no prefix cache counters (vLLM's vllm:prefix_cache_queries/hits; "
                      "TGI and llama.cpp have none)")
SOURCE_COUNTERS = "server counters"
SOURCE_REQUESTS = "per-request usage/timings"


def _ok(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def gpu_passes(samples: Iterable[GpuSample]) -> list[tuple[float, list[GpuSample]]]:
    """Group samples into sampler passes: a new pass starts when a GPU index repeats (sorted by time)."""
    passes: list[tuple[float, list[GpuSample]]] = []
    cur: list[GpuSample] = []
    for s in sorted(samples, key=lambda s: (s.t_s, s.gpu_index)):
        if cur and s.gpu_index in {c.gpu_index for c in cur}:
            passes.append((sum(c.t_s for c in cur) / len(cur), cur))
            cur = []
        cur.append(s)
    if cur:
        passes.append((sum(c.t_s for c in cur) / len(cur), cur))
    return passes


def gpu_series(samples: Iterable[GpuSample]) -> dict[str, list]:
    """Per pass: t_s, util_pct (mean over GPUs), mem_used_gib and power_w (sums over GPUs)."""
    out: dict[str, list] = {"t_s": [], "util_pct": [], "mem_used_gib": [], "power_w": []}
    for t, group in gpu_passes(samples):
        util = [g.util_gpu_pct for g in group if _ok(g.util_gpu_pct)]
        mem = [g.mem_used_bytes for g in group if _ok(g.mem_used_bytes)]
        pw = [g.power_w for g in group if _ok(g.power_w)]
        out["t_s"].append(t)
        out["util_pct"].append(sum(util) / len(util) if util else None)
        out["mem_used_gib"].append(sum(mem) / 2**30 if mem else None)
        out["power_w"].append(sum(pw) if pw else None)
    return out


def _gauge(values: list, reason_if_empty: str, simulated: bool) -> dict:
    d = describe(values)
    d["simulated"] = simulated
    d["reason"] = reason_if_empty if d["n"] == 0 else None
    return d


def _in_window(samples: list, window: Window, none_reason: str, what: str, unit: str,
               no_reading_reason: str) -> tuple[list, bool, str]:
    """Samples in the scored window, whether any is simulated, and why a gauge may be empty."""
    inside = [s for s in samples if window.contains(s.t_s)]
    if not samples:
        reason = none_reason
    elif not inside:
        reason = f"{what} in the scored window ({len(samples)} {unit} outside it)"
    else:
        reason = no_reading_reason
    return inside, any(s.simulated for s in samples), reason


def gpu_gauges(samples: list[GpuSample], window: Window) -> dict:
    """gpu_utilization_pct (describe of the per-pass mean) plus GPU names and simulated flag."""
    inside, simulated, reason = _in_window(samples, window, NO_GPU_REASON, "no GPU samples", "samples",
                                           "GPU samples carry no utilization reading")
    series = gpu_series(inside)
    util = _gauge(series["util_pct"], reason, simulated)
    return {
        "gpu_utilization_pct": util,
        "gpu_mem_used_gib": describe(series["mem_used_gib"]),
        "gpu_power_w": describe(series["power_w"]),
        "gpu_names": sorted({s.name for s in samples if s.name}),
        "gpu_count_seen": len({s.gpu_index for s in samples}),
        "samples_total": len(samples),
        "samples_in_window": len(inside),
        "simulated": simulated,
    }


def server_gauges(samples: list[ServerSample], window: Window) -> dict:
    """queue_depth (describe over scrapes in the window), running and KV-cache usage."""
    inside, simulated, reason = _in_window(samples, window, NO_SERVER_REASON, "no server metrics scraped",
                                           "scrapes", "server metrics carry no queue depth")
    return {
        "queue_depth": _gauge([s.queue_depth for s in inside], reason, simulated),
        "running": describe([s.running for s in inside]),
        "kv_usage_frac": describe([s.kv_usage_frac for s in inside]),
        "samples_total": len(samples),
        "samples_in_window": len(inside),
        "simulated": simulated,
    }


def _trapezoid_j(points: list[tuple[float, float]]) -> float:
    return sum((t1 - t0) * (p0 + p1) / 2.0 for (t0, p0), (t1, p1) in zip(points, points[1:]))


def energy_j(samples: list[GpuSample], window: Window) -> dict:
    """GPU energy over the window, summed over GPUs: counter difference where present, else ∫power dt."""
    inside = [s for s in samples if window.contains(s.t_s)]
    total, methods, covered = 0.0, set(), []
    for idx in sorted({s.gpu_index for s in inside}):
        mine = sorted((s for s in inside if s.gpu_index == idx), key=lambda s: s.t_s)
        ctr = [(s.t_s, s.energy_j) for s in mine if _ok(s.energy_j)]
        pw = [(s.t_s, s.power_w) for s in mine if _ok(s.power_w)]
        if len(ctr) >= 2 and ctr[-1][1] >= ctr[0][1]:
            total += ctr[-1][1] - ctr[0][1]
            methods.add("energy counter")
            covered.append(ctr[-1][0] - ctr[0][0])
        elif len(pw) >= 2:
            total += _trapezoid_j(pw)
            methods.add("trapezoid of power_w")
            covered.append(pw[-1][0] - pw[0][0])
    if not methods:
        return {"energy_j": None, "method": None, "covered_s": None,
                "reason": "no GPU power readings in the scored window", "simulated": False}
    return {"energy_j": total, "method": ", ".join(sorted(methods)), "covered_s": min(covered),
            "reason": None, "simulated": any(s.simulated for s in inside)}


def _increase(values: list[float]) -> float:
    """A cumulative counter's increase over consecutive readings; a drop is a restart from 0
    (Prometheus increase() semantics), so the reading after it counts whole."""
    return sum(b - a if b >= a else b for a, b in zip(values, values[1:]))


def prefix_cache_hit_rate(samples: list[ServerSample], window: Window) -> dict:
    """hits / queries (prompt tokens) over the scored window, from the server's cumulative counters:
    the increase from the last scrape at or before the window start (else the first one inside) to
    the last scrape inside it. Counts fall at admission, so this covers what the server looked up
    while the scored requests were being sent."""
    out = {"value": None, "queries_tokens": None, "hits_tokens": None, "reason": None,
           "simulated": any(s.simulated for s in samples)}
    pts = sorted((s for s in samples if _ok(s.prefix_cache_queries_total) and _ok(s.prefix_cache_hits_total)),
                 key=lambda s: s.t_s)
    if not pts:
        out["reason"] = NO_SERVER_REASON if not samples else NO_PREFIX_COUNTERS
        return out
    if window.start_s is None or window.end_s is None:
        out["reason"] = "no scored window"
        return out
    before = [p for p in pts if p.t_s <= window.start_s]
    span = before[-1:] + [p for p in pts if window.start_s < p.t_s <= window.end_s]
    if len(span) < 2:
        out["reason"] = "fewer than two scrapes with prefix cache counters in and just before the scored window"
        return out
    queries = _increase([p.prefix_cache_queries_total for p in span])
    hits = _increase([p.prefix_cache_hits_total for p in span])
    out["queries_tokens"], out["hits_tokens"] = queries, hits
    if queries <= 0:
        out["reason"] = "no prefix cache queries in the scored window (prefix caching off on the server?)"
    else:
        out["value"] = hits / queries
    return out


def request_prefix_hit_rate(table: RecordTable, scored: np.ndarray) -> dict:
    """Cached / looked-up prompt tokens summed over the scored ok requests whose server said both, from
    the per-request figures (the fallback when the server has no prefix-cache counters).

    Looked-up tokens per request, by what the server reported:
    - llama.cpp `timings` (server_prompt_tokens = prompt_n set): prompt_n counts only the tokens it had
      to compute, so the prompt it looked up is prompt_n + cache_n (server_cached_tokens);
    - OpenAI-style usage only (vLLM --enable-prompt-tokens-details): usage.prompt_tokens
      (`prompt_tokens`) already includes prompt_tokens_details.cached_tokens, so it is the total.
    A request with no cached figure, no total, or more cached than looked-up tokens (an inconsistent
    report) is left out; `requests` counts the ones that were used.
    """
    cached = table.server_cached_tokens
    computed = table.server_prompt_tokens
    with np.errstate(invalid="ignore"):
        looked_up = np.where(np.isfinite(computed), computed + cached, table.prompt_tokens)
        use = scored & table.ok & np.isfinite(cached) & np.isfinite(looked_up) & (cached <= looked_up)
    hits, queries = float(cached[use].sum()), float(looked_up[use].sum())
    out = {"value": None, "queries_tokens": queries, "hits_tokens": hits, "reason": None,
           "requests": int(use.sum())}
    if not out["requests"]:
        out.update(queries_tokens=None, hits_tokens=None,
                   reason="no scored ok request carried the server's cached-token count")
    elif queries <= 0:
        out["reason"] = "the scored requests looked up no prompt tokens"
    else:
        out["value"] = hits / queries
    return out


def prefix_hit_rate(samples: list[ServerSample], window: Window, table: RecordTable, scored: np.ndarray) -> dict:
    """metrics.prefix_cache_hit_rate: the server's counters over the window when they give a value
    (source "server counters"), else the per-request figures (source "per-request usage/timings",
    `requests` = how many carried them); when neither does, the counters' reason stays."""
    out = prefix_cache_hit_rate(samples, window)
    out["source"], out["requests"] = None, None
    if out["value"] is not None:
        out["source"] = SOURCE_COUNTERS
        return out
    per_request = request_prefix_hit_rate(table, scored)
    if per_request["value"] is not None:
        out.update(per_request, source=SOURCE_REQUESTS)
    return out
