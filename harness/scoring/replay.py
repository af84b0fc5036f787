"""Replay scoring: what a replayed trace offered against what the run sent (summary.json `replay`).

Pure: reads meta.json's `replay` (written by the dispatcher) and the records' due and send times. The
recorded arrival rate is the trace's (its offsets x time_scale are the records' `scheduled_s`); the
achieved rate is when requests really left, so a client or cap that fell behind shows as a gap.
"""

from __future__ import annotations

import math

import numpy as np

from harness.scoring.gauges import SOURCE_REQUESTS
from harness.scoring.metrics import Window
from harness.scoring.table import RecordTable

MAX_BINS = 120  # arrival-rate series: at most this many bins (1 s bins for runs up to two minutes)


def _bin_s(span_s: float) -> float:
    """A round bin width (1, 2, 5 x 10^k s) giving at most MAX_BINS bins over the span."""
    raw = max(span_s / MAX_BINS, 1.0)
    k = 10 ** math.floor(math.log10(raw))
    return next(m * k for m in (1, 2, 5, 10) if m * k >= raw)


def arrival_series(table: RecordTable, window: Window) -> dict | None:
    """Recorded (due) and achieved (sent) arrivals per second over the whole load (warm-up and
    cool-down included: the trace's shape is the point), in equal bins from the load start."""
    if window.load_start_s is None or window.load_end_s is None or table.n == 0:
        return None
    start, span = window.load_start_s, max(window.load_end_s - window.load_start_s, 1e-9)
    bin_s = _bin_s(span)
    n_bins = max(1, math.ceil(span / bin_s))
    edges = start + bin_s * np.arange(n_bins + 1)
    due = table.scheduled_s[np.isfinite(table.scheduled_s)]
    recorded, _ = np.histogram(due, bins=edges)
    achieved, _ = np.histogram(table.sent_s, bins=edges)
    return {"bin_s": bin_s, "t_s": [float(x) for x in (edges[:-1] - start)],
            "recorded_rps": [float(x) / bin_s for x in recorded], "achieved_rps": [float(x) / bin_s for x in achieved]}


def replay_summary(meta: dict, table: RecordTable, window: Window, hit_rate: dict | None) -> dict | None:
    """summary.json `replay` for a replay run (None otherwise): the trace, the reuse its sent traffic
    allowed a prefix cache (`expected_reuse`), the server's hit rate beside it, and the arrival series."""
    rp = meta.get("replay") if isinstance(meta, dict) else None
    if not isinstance(rp, dict):
        return None
    hit = (hit_rate or {}).get("value")
    expected = rp.get("expected_reuse")
    out = {k: rp.get(k) for k in ("path", "format", "time_scale", "start_s", "sample_sessions", "block_tokens",
                                  "sent_entries", "blocks", "reused_blocks", "rows_read", "rows_sampled_out",
                                  "lengths_raised_to_one", "rows_skipped")}
    out["expected_reuse"] = expected
    out["prefix_cache_hit_rate"] = hit
    # Where the hit rate came from: "server counters" or "per-request usage/timings" (gauges.prefix_hit_rate).
    source = (hit_rate or {}).get("source")
    out["prefix_cache_hit_rate_source"] = source
    note = None
    if expected is None:
        note = "the trace carries no block hashes: the reuse it allows is unknown"
    elif hit is None:
        note = (f"the trace allowed {expected:.0%} prefix reuse; the server's hit rate is unknown: "
                f"{(hit_rate or {}).get('reason') or 'no server metrics scraped'}, and no scored request "
                "reported its cached prompt tokens")
    else:
        how = ""
        if source == SOURCE_REQUESTS:
            how = f" (from the cached prompt tokens {(hit_rate or {}).get('requests')} requests reported)"
        elif source:
            how = f" (from the {source})"
        note = f"prefix-cache hit rate {hit:.0%}{how} against the {expected:.0%} the trace allowed"
    out["note"] = note
    out["arrival"] = arrival_series(table, window)
    return out
