"""Formatting: numbers, units and metric names as humans read them, shared by every report (HTML,
Markdown, text, JUnit, the matrix/sweep/compare pages and their plots).

Seconds below 10 s are shown in ms; None shows as an em dash; margins carry an explicit sign;
a count of 1 takes the singular ("1 request"); metric keys (ttft_s) show as labels (TTFT).
"""

from __future__ import annotations

import math

DASH = "—"

# Metric key → the name every table and plot shows (one mapping, so a plot axis and a table agree).
METRIC_LABELS = {
    "ttft_s": "TTFT", "tpot_s": "TPOT", "itl_s": "ITL", "e2e_s": "E2E latency",
    "schedule_lag_s": "Schedule lag", "ttft_from_schedule_s": "TTFT from schedule",
    "e2e_from_schedule_s": "E2E latency from schedule",
    "request_rate_rps": "Request rate", "output_token_rate_tps": "Output tokens/s",
    "total_token_rate_tps": "Total tokens/s", "input_token_rate_tps": "Input tokens/s",
    "goodput_rps": "Goodput", "error_rate_pct": "Error rate", "slo_attainment_pct": "SLO attainment",
    "gpu_utilization_pct": "GPU utilization", "queue_depth": "Queue depth",
    "usd_per_1k_output_tokens": "Cost per 1k output tokens",
}
# Count units that take the singular for exactly one ("1 request", "0 requests").
SINGULAR = {"requests": "request", "errors": "error", "users": "user", "runs": "run", "variants": "variant",
            "repeats": "repeat", "gaps": "gap", "samples": "sample", "tokens": "token", "points": "point"}


def count(n) -> str:
    """An integer count with thousands separators ('12,410'); anything else as num() shows it."""
    if isinstance(n, int) and not isinstance(n, bool):
        return f"{n:,}"
    return num(n)


def plural(n, word: str) -> str:
    """'1 request', '3 requests', '0 requests': `word` is the plural; SINGULAR (or dropping a
    final 's') gives the singular. A non-integer count (a mean) keeps the plural."""
    shown = num(n) if isinstance(n, float) and not float(n).is_integer() else (
        DASH if n is None else f"{int(n):,}")
    one = n is not None and not isinstance(n, bool) and float(n) == 1
    return f"{shown} {SINGULAR.get(word, word[:-1] if word.endswith('s') else word) if one else word}"


def metric_label(key: str | None, stat: str | None = None) -> str:
    """'TTFT p99' for ("ttft_s", "p99"); unknown keys show as they are; stat 'value' is dropped."""
    label = METRIC_LABELS.get(key or "", key or DASH)
    return f"{label} {stat}" if stat and stat != "value" else label


def axis_label(key: str, unit: str) -> str:
    """A plot axis: 'TTFT (ms)'."""
    return f"{metric_label(key)} ({unit})"


def num(v, digits: int = 3) -> str:
    """A number with `digits` significant digits (no scientific notation for everyday sizes)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return DASH
    if isinstance(v, bool):
        return str(v)
    v = float(v)
    if v == 0:
        return "0"
    if abs(v) >= 10 ** digits:
        return f"{v:,.0f}"
    s = f"{v:.{digits}g}"
    if "e" in s:
        s = f"{v:.{max(digits, 6)}f}".rstrip("0").rstrip(".")
    return s


def value(v, unit: str | None) -> str:
    """A value with its unit; seconds under 10 s are shown as ms."""
    if v is None:
        return DASH
    if unit == "s" and abs(float(v)) < 10:
        return f"{num(float(v) * 1000)} ms"
    if unit == "%":
        return f"{num(v)} %"
    if unit == "usd":
        return usd(v)
    if unit in SINGULAR and num(v) == "1":
        return f"1 {SINGULAR[unit]}"
    return f"{num(v)} {unit}" if unit else num(v)


def signed(v, unit: str | None) -> str:
    if v is None:
        return DASH
    s = value(abs(float(v)), unit)
    return ("+" if float(v) > 0 else "−" if float(v) < 0 else "±") + s


def pct(v) -> str:
    if v is None:
        return DASH
    return f"{'+' if v > 0 else ''}{num(v)} %"


def usd(v) -> str:
    if v is None:
        return DASH
    v = float(v)
    if v != 0 and abs(v) < 0.01:
        return f"${v:.6f}".rstrip("0")
    return f"${v:,.4f}" if abs(v) < 1 else f"${v:,.2f}"


# Regression rows (harness.scoring.regression) carry the summary path of their metric: its unit.
_REGRESSION_UNITS = {"rates.request_rate_rps": "req/s", "rates.goodput_rps": "req/s",
                     "rates.output_token_rate_tps": "tok/s", "rates.error_rate_pct": "%",
                     "cost.usd_per_1k_output_tokens": "usd"}


def regression_unit(row: dict) -> str | None:
    """The unit of a regression row's values: seconds for every latency (shown in ms)."""
    key = str(row.get("key") or "")
    return "s" if key.startswith("metrics.") else _REGRESSION_UNITS.get(key)


def regression_cells(row: dict) -> tuple[str, str, str]:
    """(baseline, this run, change) of one regression row, with units: ('12.4 ms', '15 ms', '+21 %').
    A change from a baseline of 0 has no percentage: 'new'."""
    unit = regression_unit(row)
    base, cur = row.get("baseline"), row.get("current")
    if row.get("change_pct") is not None:
        change = f"{row['change_pct']:+.1f} %"
    elif base is not None and cur is not None and base == 0 and cur != 0:
        change = "new (baseline 0)"
    else:
        change = DASH
    return value(base, unit), value(cur, unit), change


def threshold(row: dict, key: str) -> str:
    """'< 500 ms' / '> 100 req/s' for a target, the opposite comparison for an alert."""
    lower = row.get("better") == "lower"
    op = ("<" if lower else ">") if key == "target" else (">" if lower else "<")
    return f"{op} {value(row.get(key), row.get('unit'))}"


def verdict_class(verdict: str | None) -> str:
    return {"PASS": "pass", "WARN": "warn", "FAIL": "fail", "INCONCLUSIVE": "inc", "INVALID": "invalid"}.get(
        verdict or "", "nm")


def invalid_reasons(summary: dict) -> list[str] | None:
    """The reasons a run is invalid (summary `validity`), or None for a valid run. Runs scored before
    validity existed have no such key: valid."""
    validity = summary.get("validity")
    if not isinstance(validity, dict) or validity.get("valid", True) is not False:
        return None
    reasons = [str(r) for r in validity.get("reasons") or [] if r]
    return reasons or ["no reason recorded"]


def shown_overall(summary: dict) -> str:
    """The overall verdict every report shows: INVALID for an invalid run, else the SLA's overall."""
    if invalid_reasons(summary) is not None:
        return "INVALID"
    return str((summary.get("sla") or {}).get("overall") or "NOT MEASURED")
