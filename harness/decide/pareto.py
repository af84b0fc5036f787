"""Decision rules (pure): which variant meets the SLA, the cost-vs-latency Pareto frontier, and
the recommendation — the cheapest variant that meets the SLA, else the one closest to it and why.

Input is summary.json content (scoring seam); nothing here reads files.
"""

from __future__ import annotations

from typing import Any

from harness.report.fmt import plural

# Worse is higher. INCONCLUSIVE (a tail from too few samples) is never accepted: no `accept` tuple
# holds it, so a variant or sweep point judged on too short a run does not meet the SLA.
RANK = {"PASS": 0, "WARN": 1, "INCONCLUSIVE": 2, "FAIL": 3}


def decision_rows(summary: dict) -> list[dict]:
    """The SLA rows a decision is made on: hard, measured, and not limited by the offered load
    (a throughput row below target only because the test offered less says nothing of the server)."""
    rows = (summary.get("sla") or {}).get("rows") or []
    return [r for r in rows if r.get("hard") and r.get("verdict") in RANK and not r.get("offered_limited")]


def invalid_reasons(summary: dict) -> list[str] | None:
    """Why the run is invalid (summary `validity`), or None: an invalid run never meets the SLA."""
    validity = summary.get("validity")
    if isinstance(validity, dict) and validity.get("valid") is False:
        return [str(r) for r in validity.get("reasons") or []] or ["no reason recorded"]
    return None


def decision_verdict(summary: dict, rows: list[dict] | None = None) -> str:
    """Worst verdict over `decision_rows` ("NOT MEASURED" when there is none; "INVALID" for an invalid run)."""
    if invalid_reasons(summary) is not None:
        return "INVALID"
    rows = decision_rows(summary) if rows is None else rows
    if not rows:
        return "NOT MEASURED"
    return max((r["verdict"] for r in rows), key=RANK.__getitem__)


def row_miss(row: dict) -> float:
    """How far a row is from its target, as a fraction of the target (0 when it meets it)."""
    v, t = row.get("value"), float(row["target"])
    if v is None:
        return float("inf")
    base = abs(t) or 1.0
    miss = (v - t) / base if row.get("better") == "lower" else (t - v) / base
    return max(miss, 0.0)


def misses(summary: dict, accept: tuple[str, ...] = ("PASS",)) -> list[dict]:
    """Decision rows whose verdict is not accepted: label, value, target, unit, verdict, miss fraction
    (first, for an invalid run: its reasons, as a miss no variant can be closest by)."""
    out = []
    reasons = invalid_reasons(summary)
    if reasons is not None:
        out.append({"label": "run validity", "metric": "validity", "stat": None, "value": None, "target": None,
                    "alert": None, "unit": None, "better": None, "verdict": "INVALID", "miss": float("inf"),
                    "reasons": reasons, "needed_requests": None})
    for r in decision_rows(summary):
        if r["verdict"] not in accept:
            out.append({"label": r.get("label") or r["metric"], "metric": r["metric"], "stat": r.get("stat"),
                        "value": r.get("value"), "target": r["target"], "alert": r.get("alert"),
                        "unit": r.get("unit"), "better": r.get("better"), "verdict": r["verdict"],
                        "miss": row_miss(r), "needed_requests": r.get("needed_requests")})
    return out


def pareto_front(points: list[tuple[float | None, float | None]]) -> list[int]:
    """Indices of points not dominated in (x, y), both lower-is-better; points with a None are skipped.
    A point is dominated when another is <= in both and < in at least one."""
    idx = [i for i, (x, y) in enumerate(points) if x is not None and y is not None]
    front = []
    for i in idx:
        xi, yi = points[i]
        dominated = any(points[j][0] <= xi and points[j][1] <= yi and (points[j][0] < xi or points[j][1] < yi)
                        for j in idx if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], points[i][1]))


def _fmt(v: Any, unit: str | None) -> str:
    if v is None:
        return "not measured"
    if unit == "s":
        return f"{v * 1000:.0f} ms"
    return f"{v:.3g} {unit or ''}".strip()


def miss_text(m: dict) -> str:
    if m.get("verdict") == "INVALID":
        return "invalid run: " + "; ".join(m.get("reasons") or [])
    if m.get("note"):  # a point that did not offer its load (search.sweep_passes): no value to compare
        return f"{m['label']}: {m['note']}"
    sign = "<" if m.get("better") == "lower" else ">"
    pct = "" if m["miss"] in (0.0, float("inf")) else f", {m['miss'] * 100:+.0f}%"
    text = f"{m['label']} {_fmt(m['value'], m.get('unit'))} (target {sign} {_fmt(m['target'], m.get('unit'))}{pct})"
    if m.get("verdict") == "INCONCLUSIVE":
        need = f"about {m['needed_requests']} requests" if m.get("needed_requests") else "a longer run"
        text += f" inconclusive: too few samples, needs {need}"
    return text


def recommend(rows: list[dict], accept: tuple[str, ...] = ("PASS",), cost_key: str = "cost") -> dict:
    """rows: one per variant with id, label, status ('done' for variants that ran), verdict, cost
    (USD per 1k output tokens), latency (tie-break), misses. Returns the recommendation dict.
    cost_key "cost_at_capacity": passing variants are ranked by their cost at capacity instead."""
    ran = [r for r in rows if r.get("status") == "done"]
    if not ran:
        return {"kind": "none", "variant": None,
                "text": "no variant ran: see the reasons listed for each variant"}
    passing = [r for r in ran if r.get("verdict") in accept]
    if passing:
        inf = float("inf")
        best = min(passing, key=lambda r: (r.get(cost_key) is None, r.get(cost_key) or inf, r.get("latency") or inf))
        cost = "no price" if best.get(cost_key) is None else f"${best[cost_key]:.5f} per 1k output tokens"
        if cost_key == "cost_at_capacity" and best.get("capacity"):
            cost += f" at its capacity of {best['capacity']:.3g} {best.get('capacity_unit') or ''}".rstrip()
        others = len(passing) - 1
        text = (f"{best['label']}: the cheapest of {plural(len(passing), 'variants')} meeting the SLA ({cost})"
                if others else f"{best['label']}: the only variant meeting the SLA ({cost})")
        return {"kind": "cheapest_passing", "variant": best["id"], "text": text, "passing": [r["id"] for r in passing]}
    best = min(ran, key=lambda r: (max((m["miss"] for m in r.get("misses") or []), default=float("inf")),
                                   r.get("cost") is None, r.get("cost") or 0.0))
    why = "; ".join(miss_text(m) for m in best.get("misses") or []) or "no SLA row could be judged"
    return {"kind": "closest", "variant": best["id"], "passing": [],
            "text": f"no variant meets the SLA; closest is {best['label']}: {why}"}
