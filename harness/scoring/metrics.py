"""Metrics: request-side numbers from a RecordTable (records seam → summary.json `metrics`, `rates`).

The scored window is [load_start_s + warmup_s, load_end_s - cooldown_s] on the monotonic clock; a
request is scored when its `sent_s` falls inside it (inclusive). Rates divide by the window length.
`table_*` functions take a table and a scored mask; the list-of-records functions wrap them.
Requests `cancelled_at_stop` (cut off by the end of the load) are counted apart: see cancelled_mask.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from harness.records import CANCELLED_AT_STOP, RequestRecord
from harness.scoring.stats import describe, describe_pool, safe_div
from harness.scoring.table import ItlPool, RecordTable, from_records

# Per-request SLO metrics: each request has its own value to compare with a row's target.
PER_REQUEST_METRICS = ("ttft_s", "tpot_s", "e2e_s")


@dataclass(frozen=True)
class Window:
    """The scored window on the monotonic clock (None bounds: nothing to score)."""

    load_start_s: float | None
    load_end_s: float | None
    warmup_s: float
    cooldown_s: float
    start_s: float | None
    end_s: float | None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def duration_s(self) -> float:
        if self.start_s is None or self.end_s is None:
            return 0.0
        return max(0.0, self.end_s - self.start_s)

    def contains(self, t_s: float | None) -> bool:
        if t_s is None or self.start_s is None or self.end_s is None:
            return False
        return self.start_s <= t_s <= self.end_s

    def as_dict(self) -> dict:
        return {
            "load_start_s": self.load_start_s, "load_end_s": self.load_end_s,
            "warmup_s": self.warmup_s, "cooldown_s": self.cooldown_s,
            "start_s": self.start_s, "end_s": self.end_s, "duration_s": self.duration_s,
            "rule": "a request is scored when sent_s is in [start_s, end_s]; rates divide by duration_s",
            "notes": list(self.notes),
        }


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _bounds(records: "list[RequestRecord] | RecordTable") -> tuple[float, float] | None:
    """(first sent_s, last max(end_s, sent_s)) of the records, or None when there are none."""
    if isinstance(records, RecordTable):
        if records.n == 0:
            return None
        return float(records.sent_s.min()), float(np.maximum(records.end_s, records.sent_s).max())
    if not records:
        return None
    return min(r.sent_s for r in records), max(max(r.end_s, r.sent_s) for r in records)


def scoring_window(meta: dict, scenario: dict, records: "list[RequestRecord] | RecordTable") -> Window:
    """Window from meta's load_start_s/load_end_s and the scenario's warm-up/cool-down (degrades)."""
    load = scenario.get("load") if isinstance(scenario.get("load"), dict) else {}
    warmup_s = max(0.0, _num(load.get("warmup_s")) or 0.0)
    cooldown_s = max(0.0, _num(load.get("cooldown_s")) or 0.0)
    notes: list[str] = []
    start = _num(meta.get("load_start_s"))
    end = _num(meta.get("load_end_s"))
    bounds = _bounds(records) if start is None or end is None else None
    if start is None and bounds:
        start = bounds[0]
        notes.append("meta has no load_start_s: load start taken as the first request's sent_s")
    if end is None and bounds:
        end = bounds[1]
        notes.append("meta has no load_end_s: load end taken as the last request's end_s")
    if start is None or end is None:
        notes.append("no load start/end and no records: nothing to score")
        return Window(start, end, warmup_s, cooldown_s, None, None, tuple(notes))
    w_start, w_end = start + warmup_s, end - cooldown_s
    if w_end <= w_start:
        notes.append(
            f"load lasted {end - start:.1f} s, not longer than warmup_s + cooldown_s "
            f"({warmup_s + cooldown_s:g} s): scoring the whole load period instead"
        )
        w_start, w_end = start, end
    return Window(start, end, warmup_s, cooldown_s, w_start, w_end, tuple(notes))


def window_needs_records(meta: dict) -> bool:
    """True when meta lacks load_start_s/load_end_s, so scoring_window falls back to the records."""
    return _num(meta.get("load_start_s")) is None or _num(meta.get("load_end_s")) is None


def split_records(records: Iterable[RequestRecord], window: Window) -> tuple[list[RequestRecord], list[RequestRecord]]:
    """(scored, excluded): scored when sent_s is inside the window."""
    scored, excluded = [], []
    for r in records:
        (scored if window.contains(r.sent_s) else excluded).append(r)
    return scored, excluded


def phase_of(rec: RequestRecord, window: Window) -> str:
    """'warmup', 'scored' or 'cooldown' (or 'unscored' when there is no window)."""
    if window.start_s is None or window.end_s is None:
        return "unscored"
    if rec.sent_s < window.start_s:
        return "warmup"
    return "cooldown" if rec.sent_s > window.end_s else "scored"


def in_window(t: RecordTable, window: Window) -> np.ndarray:
    """Scored mask: sent_s inside [start_s, end_s] (all False without a window)."""
    if window.start_s is None or window.end_s is None:
        return np.zeros(t.n, dtype=bool)
    return (t.sent_s >= window.start_s) & (t.sent_s <= window.end_s)


def cancelled_mask(t: RecordTable) -> np.ndarray:
    """Records that ended `cancelled_at_stop`: in flight when the load stopped, unfinished after the drain.

    How they count, everywhere in scoring: such a request says nothing about the server's success or
    failure (the client gave up on it), so it is neither a completed request (not in throughput,
    goodput or token rates) nor an error (not in the error rate, whose denominator is the requests
    that finished). It is counted on its own as `cancelled_at_stop`, and it was in flight (concurrency).
    Its TTFT is in the TTFT distribution when its first token came: that value is a complete
    measurement, and leaving out the slow ones cut off mid-stream would bias TTFT low. A request
    cut off before its first token has no TTFT to give; that leaves a (small, documented) bias low.
    """
    out = np.zeros(t.n, dtype=bool)
    if len(t.err_type):
        kinds = np.fromiter((e == CANCELLED_AT_STOP for e in t.err_type), dtype=bool, count=len(t.err_type))
        out[t.err_index[kinds]] = True
    return out


def request_value(rec: RequestRecord, metric: str) -> float | None:
    """A per-request metric value (None when the request has none, e.g. errors)."""
    if not rec.ok:
        return None
    if metric == "tpot_s":
        return rec.tpot_s
    return _num(getattr(rec, metric, None))


def _values(t: RecordTable, metric: str) -> np.ndarray:
    """Per-request metric values of the table, NaN where request_value would give None."""
    v = t.tpot() if metric == "tpot_s" else getattr(t, metric)
    return np.where(t.ok, v, np.nan)


FROM_SCHEDULE = ("ttft_from_schedule_s", "e2e_from_schedule_s")  # open loop: latency from the scheduled time


def table_distributions(t: RecordTable, scored: np.ndarray) -> dict[str, Any]:
    """Samples of the scored records: arrays for ttft_s, tpot_s, e2e_s, schedule_lag_s; itl_s as an
    ItlPool (every finite gap of every ok scored request, read in blocks: it can be 64M values).

    Open loop also gets TTFT and E2E measured from each request's scheduled send time: a client
    that falls behind its schedule then shows in latency, not only in schedule_lag_s (the
    coordinated-omission correction; empty arrays when no request had a schedule). TTFT (both ways)
    also takes cancelled_at_stop requests whose first token came (see cancelled_mask).
    """
    out: dict[str, Any] = {}
    with_ttft = t.ok | cancelled_mask(t)  # a cancelled request without a first token has NaN: dropped below
    for m in PER_REQUEST_METRICS:
        v = (np.where(with_ttft, t.ttft_s, np.nan) if m == "ttft_s" else _values(t, m))[scored]
        out[m] = v[~np.isnan(v)]
    out["itl_s"] = t.itl_pool(scored & t.ok)
    has = scored & ~np.isnan(t.scheduled_s)
    out["schedule_lag_s"] = t.sent_s[has] - t.scheduled_s[has]
    # The client's own lag: what is left of the schedule lag once the wait for a max_in_flight slot
    # (a full cap: the server's pace) is taken out. Only this says the load generator fell behind.
    out["client_lag_s"] = out["schedule_lag_s"] - np.nan_to_num(t.cap_wait_s[has], nan=0.0)
    for name, col, keep in (("ttft_from_schedule_s", t.ttft_s, with_ttft), ("e2e_from_schedule_s", t.e2e_s, t.ok)):
        sel = has & keep
        v = col[sel] + (t.sent_s[sel] - t.scheduled_s[sel])
        out[name] = v[~np.isnan(v)]
    return {k: out[k] for k in ("ttft_s", "tpot_s", "itl_s", "e2e_s", "schedule_lag_s", "client_lag_s",
                                *FROM_SCHEDULE)}


def distributions(scored: Iterable[RequestRecord]) -> dict[str, list[float]]:
    """Raw samples: ttft_s, tpot_s, e2e_s (one per ok request), itl_s (every gap, pooled), schedule_lag_s."""
    t = from_records(scored)
    d = table_distributions(t, np.ones(t.n, dtype=bool))
    d["itl_s"] = np.concatenate(list(d["itl_s"].blocks())) if t.itl.size else np.empty(0)
    return {k: v.tolist() for k, v in d.items()}


def latency_metrics(dists: dict[str, Any]) -> dict[str, dict]:
    """describe() of every distribution (schedule_lag_s and the latencies from the schedule only
    when some request had scheduled_s)."""
    d = lambda v: describe_pool(v) if isinstance(v, ItlPool) else describe(v)  # noqa: E731
    out = {m: d(dists[m]) for m in ("ttft_s", "tpot_s", "itl_s", "e2e_s")}
    if len(dists.get("schedule_lag_s", [])):
        out["schedule_lag_s"] = describe(dists["schedule_lag_s"])
        for m in FROM_SCHEDULE:
            out[m] = describe(dists[m])
    return out


def _tokens(t: RecordTable, scored: np.ndarray) -> dict:
    ok = scored & t.ok
    p = t.prompt_tokens[ok]
    missing = int(np.isnan(p).sum())
    prompt = int(np.trunc(np.nan_to_num(p)).astype(np.int64).sum())  # int(prompt_tokens or 0)
    output = int(np.trunc(t.output_tokens[ok]).astype(np.int64).sum())
    # Text chunks of the ok requests that streamed any text (the first chunk plus one per ITL gap):
    # more output tokens than chunks means chunks carried several tokens (speculative decoding, a
    # stream interval), so a gap is not one token's latency.
    streamed = ok & ~np.isnan(t.ttft_s)
    chunks = int((t.itl_count[streamed] + 1).sum())
    streamed_tokens = int(np.trunc(t.output_tokens[streamed]).astype(np.int64).sum())
    return {"ok_requests": int(ok.sum()), "input_tokens": prompt, "output_tokens": output,
            "total_tokens": prompt + output, "requests_without_prompt_tokens": missing,
            "text_chunks": chunks, "tokens_per_chunk": safe_div(streamed_tokens, chunks)}


def token_counts(scored: Iterable[RequestRecord]) -> dict:
    """Prompt/output token totals of the ok scored requests."""
    t = from_records(scored)
    return _tokens(t, np.ones(t.n, dtype=bool))


def meets_slos(rec: RequestRecord, rows: list[dict]) -> bool:
    """True when an ok request is strictly under every per-request row's target (errors: False).

    A request with no value for a row (TPOT of a one-token answer) is not held to that row.
    """
    if not rec.ok:
        return False
    for row in rows:
        v = request_value(rec, row["metric"])
        if v is not None and not v < float(row["target"]):
            return False
    return True


def table_goodput(t: RecordTable, scored: np.ndarray, policy_rows: list[dict], duration_s: float) -> dict:
    """goodput() over the scored records of a table (vectorised meets_slos)."""
    rows = [r for r in policy_rows if r.get("metric") in PER_REQUEST_METRICS]
    good_mask = scored & t.ok
    for row in rows:
        v = _values(t, row["metric"])
        good_mask &= np.isnan(v) | (v < float(row["target"]))
    # Attainment is over the requests that finished: a cancelled_at_stop one is neither good nor a miss.
    good, n = int(good_mask.sum()), int((scored & ~cancelled_mask(t)).sum())
    note = None if rows else "the policy has no per-request rows (ttft_s/tpot_s/e2e_s): every ok request counts as good"
    return {
        "good_requests": good, "scored_requests": n,
        "goodput_rps": safe_div(good, duration_s), "slo_attainment_pct": safe_div(100.0 * good, n),
        "slos": [{"metric": r["metric"], "target": r["target"], "rule": "value < target"} for r in rows],
        "errors_count_as_misses": True, "note": note,
    }


def goodput(scored: list[RequestRecord], policy_rows: list[dict], duration_s: float) -> dict:
    """Requests/s meeting every per-request SLO (rows on ttft_s/tpot_s/e2e_s) and attainment %."""
    t = from_records(scored)
    return table_goodput(t, np.ones(t.n, dtype=bool), policy_rows, duration_s)


def table_rates(t: RecordTable, scored: np.ndarray, duration_s: float) -> dict:
    """rates() over the scored records of a table."""
    tok = _tokens(t, scored)
    n = int(scored.sum())
    cancelled = int((scored & cancelled_mask(t)).sum())
    finished = n - cancelled  # ok or failed: the error rate's denominator (see cancelled_mask)
    errors = finished - tok["ok_requests"]
    return {
        "duration_s": duration_s,
        "request_rate_rps": safe_div(tok["ok_requests"], duration_s),
        "attempted_rate_rps": safe_div(n, duration_s),  # every request sent, cancelled ones too
        "input_token_rate_tps": safe_div(tok["input_tokens"], duration_s),
        "output_token_rate_tps": safe_div(tok["output_tokens"], duration_s),
        "total_token_rate_tps": safe_div(tok["total_tokens"], duration_s),
        "error_rate_pct": safe_div(100.0 * errors, finished),
        "cancelled_at_stop": cancelled,
        "tokens": tok,
    }


def rates(scored: list[RequestRecord], duration_s: float) -> dict:
    """Per-second rates over the window: ok requests, input/output/total tokens, error rate %."""
    t = from_records(scored)
    return table_rates(t, np.ones(t.n, dtype=bool), duration_s)


def table_error_summary(t: RecordTable, scored: np.ndarray, max_examples: int = 5) -> dict:
    """error_summary() of a table: errors in the scored mask, by type and status, plus the whole run.
    cancelled_at_stop records are not errors: they are counted apart (see cancelled_mask)."""
    seen: set[tuple] = set()
    examples = []
    cancelled = cancelled_mask(t)
    is_error = ~cancelled[t.err_index]
    in_scored = scored[t.err_index] & is_error
    bad = [i for i, k in enumerate(in_scored) if k]
    for i in bad:
        etype, msg = t.err_type[i], t.err_msg[i]
        key = (etype, (msg or "")[:200])
        if key in seen or len(examples) >= max_examples:
            continue
        seen.add(key)
        examples.append({"request_id": t.err_id[i], "status": int(t.status[t.err_index[i]]), "error_type": etype,
                         "error": (msg or "")[:500]})
    statuses = t.status[t.err_index[in_scored]].tolist()
    return {
        "scored_errors": len(bad),
        "error_rate_pct": safe_div(100.0 * len(bad), int((scored & ~cancelled).sum())),
        "by_type": dict(Counter(t.err_type[i] or "unknown" for i in bad).most_common()),
        "by_status": {str(k): v for k, v in Counter(statuses).most_common()},
        "all_run_by_type": dict(Counter(e or "unknown" for e, k in zip(t.err_type, is_error) if k).most_common()),
        "cancelled_at_stop": int((scored & cancelled).sum()),
        "all_run_cancelled_at_stop": int(cancelled.sum()),
        "examples": examples,
    }


def error_summary(scored: list[RequestRecord], all_records: list[RequestRecord], max_examples: int = 5) -> dict:
    """Errors in the window by error_type (and over the whole run), with a few example messages."""
    out = table_error_summary(from_records(scored), np.ones(len(scored), dtype=bool), max_examples)
    out["all_run_by_type"] = dict(Counter(r.error_type or "unknown" for r in all_records
                                          if not r.ok and r.error_type != CANCELLED_AT_STOP).most_common())
    out["all_run_cancelled_at_stop"] = sum(1 for r in all_records if r.error_type == CANCELLED_AT_STOP)
    return out


def table_concurrency(t: RecordTable, window: Window) -> dict:
    """concurrency() of every record of a table. Each request is in flight over [a, b] = [sent, end]
    clipped to the window: the mean is sum(b - a) / window (the integral of the level), the max is
    the level just after the busiest start, with ends at the same instant counted first."""
    if window.start_s is None or window.duration_s <= 0:
        return {"mean": None, "max": None}
    a = np.maximum(t.sent_s, window.start_s)
    b = np.minimum(np.maximum(t.end_s, t.sent_s), window.end_s)
    take = (b > a) | ((a == b) & (a >= window.start_s) & (a <= window.end_s))
    a, b = a[take], b[take]
    area = float(np.sum(b - a))
    a.sort()
    b.sort()
    peak = int((np.arange(1, a.size + 1) - np.searchsorted(b, a, side="right")).max()) if a.size else 0
    return {"mean": area / window.duration_s, "max": max(0, peak)}


def concurrency(records: Iterable[RequestRecord], window: Window) -> dict:
    """In-flight requests over the window (every record, scored or not): time-weighted mean and max."""
    return table_concurrency(from_records(records), window)
