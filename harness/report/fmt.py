"""Formatting: numbers and units as humans read them, shared by the HTML, Markdown and text reports.

Seconds below 10 s are shown in ms; None shows as an em dash; margins carry an explicit sign.
"""

from __future__ import annotations

import math

DASH = "—"


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
