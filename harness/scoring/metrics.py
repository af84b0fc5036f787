"""Metrics: request-side numbers from RequestRecords (records seam → summary.json `metrics`, `rates`).

The scored window is [load_start_s + warmup_s, load_end_s - cooldown_s] on the monotonic clock; a
request is scored when its `sent_s` falls inside it (inclusive). Rates divide by the window length.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from harness.records import RequestRecord
from harness.scoring.stats import describe, safe_div

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


def scoring_window(meta: dict, scenario: dict, records: list[RequestRecord]) -> Window:
    """Window from meta's load_start_s/load_end_s and the scenario's warm-up/cool-down (degrades)."""
    load = scenario.get("load") if isinstance(scenario.get("load"), dict) else {}
    warmup_s = max(0.0, _num(load.get("warmup_s")) or 0.0)
    cooldown_s = max(0.0, _num(load.get("cooldown_s")) or 0.0)
    notes: list[str] = []
    start = _num(meta.get("load_start_s"))
    end = _num(meta.get("load_end_s"))
    if start is None and records:
        start = min(r.sent_s for r in records)
        notes.append("meta has no load_start_s: load start taken as the first request's sent_s")
    if end is None and records:
        end = max(max(r.end_s, r.sent_s) for r in records)
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


def request_value(rec: RequestRecord, metric: str) -> float | None:
    """A per-request metric value (None when the request has none, e.g. errors)."""
    if not rec.ok:
        return None
    if metric == "tpot_s":
        return rec.tpot_s
    return _num(getattr(rec, metric, None))


def distributions(scored: Iterable[RequestRecord]) -> dict[str, list[float]]:
    """Raw samples: ttft_s, tpot_s, e2e_s (one per ok request), itl_s (every gap, pooled), schedule_lag_s."""
    out: dict[str, list[float]] = {"ttft_s": [], "tpot_s": [], "itl_s": [], "e2e_s": [], "schedule_lag_s": []}
    for r in scored:
        if r.scheduled_s is not None:
            out["schedule_lag_s"].append(r.sent_s - r.scheduled_s)
        if not r.ok:
            continue
        for m in PER_REQUEST_METRICS:
            v = request_value(r, m)
            if v is not None:
                out[m].append(v)
        out["itl_s"].extend(float(g) for g in (r.itl_s or []) if _num(g) is not None)
    return out


def latency_metrics(dists: dict[str, list[float]]) -> dict[str, dict]:
    """describe() of every distribution (schedule_lag_s only when some request had scheduled_s)."""
    out = {m: describe(dists[m]) for m in ("ttft_s", "tpot_s", "itl_s", "e2e_s")}
    if dists.get("schedule_lag_s"):
        out["schedule_lag_s"] = describe(dists["schedule_lag_s"])
    return out


def token_counts(scored: Iterable[RequestRecord]) -> dict:
    """Prompt/output token totals of the ok scored requests."""
    ok = [r for r in scored if r.ok]
    prompt = sum(int(r.prompt_tokens or 0) for r in ok)
    missing = sum(1 for r in ok if r.prompt_tokens is None)
    output = sum(int(r.output_tokens or 0) for r in ok)
    return {"ok_requests": len(ok), "input_tokens": prompt, "output_tokens": output,
            "total_tokens": prompt + output, "requests_without_prompt_tokens": missing}


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


def goodput(scored: list[RequestRecord], policy_rows: list[dict], duration_s: float) -> dict:
    """Requests/s meeting every per-request SLO (rows on ttft_s/tpot_s/e2e_s) and attainment %."""
    rows = [r for r in policy_rows if r.get("metric") in PER_REQUEST_METRICS]
    good = sum(1 for r in scored if meets_slos(r, rows))
    note = None if rows else "the policy has no per-request rows (ttft_s/tpot_s/e2e_s): every ok request counts as good"
    att = safe_div(100.0 * good, len(scored))
    return {
        "good_requests": good, "scored_requests": len(scored),
        "goodput_rps": safe_div(good, duration_s), "slo_attainment_pct": att,
        "slos": [{"metric": r["metric"], "target": r["target"], "rule": "value < target"} for r in rows],
        "errors_count_as_misses": True, "note": note,
    }


def rates(scored: list[RequestRecord], duration_s: float) -> dict:
    """Per-second rates over the window: ok requests, input/output/total tokens, error rate %."""
    tok = token_counts(scored)
    errors = sum(1 for r in scored if not r.ok)
    return {
        "duration_s": duration_s,
        "request_rate_rps": safe_div(tok["ok_requests"], duration_s),
        "attempted_rate_rps": safe_div(len(scored), duration_s),
        "input_token_rate_tps": safe_div(tok["input_tokens"], duration_s),
        "output_token_rate_tps": safe_div(tok["output_tokens"], duration_s),
        "total_token_rate_tps": safe_div(tok["total_tokens"], duration_s),
        "error_rate_pct": safe_div(100.0 * errors, len(scored)),
        "tokens": tok,
    }


def error_summary(scored: list[RequestRecord], all_records: list[RequestRecord], max_examples: int = 5) -> dict:
    """Errors in the window by error_type (and over the whole run), with a few example messages."""
    bad = [r for r in scored if not r.ok]
    seen: set[tuple] = set()
    examples = []
    for r in bad:
        key = (r.error_type, (r.error or "")[:200])
        if key in seen or len(examples) >= max_examples:
            continue
        seen.add(key)
        examples.append({"request_id": r.request_id, "status": r.status, "error_type": r.error_type,
                         "error": (r.error or "")[:500]})
    return {
        "scored_errors": len(bad),
        "error_rate_pct": safe_div(100.0 * len(bad), len(scored)),
        "by_type": dict(Counter(r.error_type or "unknown" for r in bad).most_common()),
        "by_status": {str(k): v for k, v in Counter(r.status for r in bad).most_common()},
        "all_run_by_type": dict(Counter(r.error_type or "unknown" for r in all_records if not r.ok).most_common()),
        "examples": examples,
    }


def concurrency(records: Iterable[RequestRecord], window: Window) -> dict:
    """In-flight requests over the window (every record, scored or not): time-weighted mean and max."""
    if window.start_s is None or window.duration_s <= 0:
        return {"mean": None, "max": None}
    events: list[tuple[float, int]] = []
    for r in records:
        a, b = max(r.sent_s, window.start_s), min(max(r.end_s, r.sent_s), window.end_s)
        if b > a or (a == b and window.contains(a)):
            events.append((a, 1))
            events.append((b, -1))
    events.sort(key=lambda e: (e[0], e[1]))  # -1 before +1 at equal times
    level, peak, area, last_t = 0, 0, 0.0, window.start_s
    for t, d in events:
        area += level * (t - last_t)
        last_t = t
        level += d
        peak = max(peak, level)
    area += level * (window.end_s - last_t)
    return {"mean": area / window.duration_s, "max": peak}
