"""SLA: judge each policy row against the computed metrics (metrics/gauges seam → summary `sla`).

The guide's strict reading: lower-is-better PASS if value < target, FAIL if value > alert, else
WARN; higher-is-better PASS if value > target, FAIL if value < alert, else WARN. A tail row (p99,
p99.9) from fewer than the policy's `min_samples` is INCONCLUSIVE, never PASS or WARN. Overall:
FAIL if a hard row FAILs, else INCONCLUSIVE if one is (or none could be judged), else the worst.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import ValidationError

from harness.config import METRICS, ConfigError, SlaPolicy, load_sla
from harness.config.errors import format_validation_error
from harness.scoring.stats import MIN_TAIL_SAMPLES, is_insufficient, requests_for, safe_div, stat_of

PASS, WARN, FAIL, NOT_MEASURED, INCONCLUSIVE = "PASS", "WARN", "FAIL", "NOT MEASURED", "INCONCLUSIVE"
RANK = {PASS: 0, WARN: 1, INCONCLUSIVE: 2, FAIL: 3}  # worse is higher; only PASS and WARN are passing
VERDICTS = (PASS, WARN, INCONCLUSIVE, FAIL, NOT_MEASURED)
RATE_METRICS = ("request_rate_rps", "output_token_rate_tps", "total_token_rate_tps", "goodput_rps")
OFFERED_COMPARABLE = ("request_rate_rps", "goodput_rps")  # same unit as an offered req/s rate
LATENCY_METRICS = ("ttft_s", "tpot_s", "itl_s", "e2e_s")


def judge(value: float | None, target: float, alert: float, better: str) -> str:
    """PASS / WARN / FAIL by the strict reading (value exactly at target or alert is WARN)."""
    if value is None or not math.isfinite(value):
        return NOT_MEASURED
    if better == "lower":
        return PASS if value < target else FAIL if value > alert else WARN
    return PASS if value > target else FAIL if value < alert else WARN


def margins(value: float | None, target: float, alert: float) -> dict:
    """value - target and value - alert, absolute and as % of the threshold."""
    if value is None:
        return {"vs_target": None, "vs_alert": None, "vs_target_pct": None, "vs_alert_pct": None}
    pct = lambda d, base: None if (p := safe_div(100.0 * d, abs(base))) is None else p  # noqa: E731
    return {"vs_target": value - target, "vs_alert": value - alert,
            "vs_target_pct": pct(value - target, target), "vs_alert_pct": pct(value - alert, alert)}


def resolve_policy(sla: Any) -> tuple[dict | None, list[str]]:
    """The scenario's `sla` (inline dict, or a name for old runs) as a policy dict; notes on trouble."""
    if sla is None:
        sla = "guide"
    try:
        if isinstance(sla, dict):
            return SlaPolicy.model_validate(sla).model_dump(mode="json"), []
        return load_sla(str(sla)).model_dump(mode="json"), [f"SLA policy '{sla}' loaded by name (scenario had no inline policy)"]
    except ValidationError as exc:
        return None, [f"SLA policy unusable, no rows judged: {format_validation_error('sla', exc, SlaPolicy)}"]
    except (ConfigError, ValueError, OSError) as exc:  # OSError: a name no file system accepts (too long)
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None, [f"SLA policy unusable, no rows judged: {why[:300]}"]


def _lookup(metric: str, stat: str, ctx: dict) -> tuple[float | None, int | None, dict]:
    """(value, n, extra) for one row from the scoring context built by summarize()."""
    if metric in LATENCY_METRICS:
        d = ctx["metrics"].get(metric) or {}
        reason = None if d.get("n") else "no successful requests with this metric in the scored window"
        return stat_of(d, stat), d.get("n", 0), {"reason": reason}
    if metric in ("gpu_utilization_pct", "queue_depth"):
        d = ctx["gauges"].get(metric) or {}
        return stat_of(d, stat), d.get("n", 0), {"reason": d.get("reason"), "simulated": bool(d.get("simulated"))}
    if metric == "goodput_rps":
        v = ctx["goodput"].get("goodput_rps")
    else:
        v = ctx["rates"].get(metric)
    reason = None
    if v is None:
        reason = "no requests in the scored window" if metric == "error_rate_pct" else "scored window is empty"
    return v, None, {"reason": reason}


def _sweep_hint(ctx: dict, closed: bool) -> str:
    path = ctx["meta"].get("scenario_path") or "SCENARIO"
    if closed:  # the sweep that keeps the scenario's closed loop searches the user count
        return f"measure capacity with `slabench sweep {path} --concurrency`"
    return f"measure capacity with `slabench sweep {path}`"


def _replayed_rate(meta: dict) -> float | None:
    """A replay offers what its trace held: the entries scheduled over the time the load ran."""
    ol = meta.get("open_loop") if isinstance(meta.get("open_loop"), dict) else {}
    try:
        span_s = float(meta["load_end_s"]) - float(meta["load_start_s"])
        return float(ol["scheduled"]) / span_s if span_s > 0 else None
    except (KeyError, TypeError, ValueError):
        return None


def _offered_rule(row: dict, metric: str, verdict: str, ctx: dict, notes: list[str]) -> str:
    """A throughput row short of its target only because the test offered less cannot answer it:
    NOT MEASURED (offered-limited), in closed loop and open loop alike, with the command that can."""
    if metric not in RATE_METRICS or verdict not in (WARN, FAIL):
        return verdict
    load = ctx["meta"].get("load") if isinstance(ctx["meta"].get("load"), dict) else {}
    offered = ctx["meta"].get("offered_rate_rps")
    if offered is None:
        offered = load.get("offered_rate_rps")
    if offered is None and load.get("mode") == "replay":
        offered = _replayed_rate(ctx["meta"])
    if load.get("mode") == "closed":
        # A closed loop offers what its users can send: the achieved rate is the users' pace, not
        # the server's limit, so a shortfall says nothing about whether the server sustains the target.
        users = load.get("users", "?")
        achieved = ctx["rates"].get("request_rate_rps") or 0.0
        notes.append(f"offered-limited: {users} closed-loop users drove {achieved:.3g} req/s, which cannot show "
                     f"whether the server sustains the target; {_sweep_hint(ctx, True)}")
        row["offered_limited"] = True
        return NOT_MEASURED
    if offered is not None and metric in OFFERED_COMPARABLE and float(offered) < float(row["target"]):
        hint = ("replay the trace faster (a smaller workload.trace.time_scale), or measure capacity with "
                "`slabench sweep` on an open-loop scenario" if load.get("mode") == "replay" else _sweep_hint(ctx, False))
        notes.append(f"offered-limited: the run offered {float(offered):.3g} req/s, below the "
                     f"{float(row['target']):.3g} req/s target; {hint}")
        row["offered_limited"] = True
        return NOT_MEASURED
    return verdict


def _inconclusive(row: dict, min_samples: int, ctx: dict) -> str:
    """Mark a tail row judged on too few samples; returns its note (samples had, needed, requests)."""
    n, metric, stat = row["n"], row["metric"], row["stat"]
    row["insufficient_samples"] = True
    row["needed_samples"] = min_samples
    what = "inter-token gaps" if metric == "itl_s" else "samples"
    note = f"inconclusive: {stat} from {n} {what}, needs at least {min_samples}"
    if metric in LATENCY_METRICS:
        # Samples per scored request as observed (ITL: gaps per request; errors give no sample).
        scored = int((ctx.get("goodput") or {}).get("scored_requests") or 0)
        row["needed_requests"] = requests_for(min_samples, n, scored)
        if row["needed_requests"] is not None:
            note += f": a run of about {row['needed_requests']} requests in the scored window ({scored} now)"
    else:
        note += f": a run about {math.ceil(min_samples / max(n, 1))}x longer"
    return note


def judge_row(spec: dict, ctx: dict, min_samples: int = MIN_TAIL_SAMPLES) -> dict:
    """One SLA row with value, verdict, margins and notes."""
    metric, stat = spec["metric"], spec.get("stat") or "value"
    better, unit = METRICS[metric][0], METRICS[metric][1]
    target, alert = float(spec["target"]), float(spec["alert"])
    label = spec.get("label") or (metric if stat == "value" else f"{metric} {stat}")
    value, n, extra = _lookup(metric, stat, ctx)
    row: dict = {"metric": metric, "stat": stat, "label": label, "value": value, "unit": unit,
                 "better": better, "target": target, "alert": alert, "hard": bool(spec.get("hard", True)),
                 "n": n, "insufficient_samples": False, "needed_samples": None, "needed_requests": None,
                 "advisory": not spec.get("hard", True), "offered_limited": False,
                 "simulated": bool(extra.get("simulated"))}
    notes: list[str] = []
    verdict = judge(value, target, alert, better)
    if verdict == NOT_MEASURED:
        notes.append(extra.get("reason") or "not measured")
    else:
        if n is not None and is_insufficient(stat, n, min_samples):
            notes.append(_inconclusive(row, min_samples, ctx))
            # Too few samples to place the tail: never PASS or WARN. One exception fails closed:
            # when the median itself is beyond the alert, most samples are, and so is the tail.
            median = stat_of(_distribution(metric, ctx), "p50")
            if better == "lower" and median is not None and median > alert:
                verdict = FAIL
                notes.append("FAIL all the same: the median is already beyond the alert")
            else:
                verdict = INCONCLUSIVE
        verdict = _offered_rule(row, metric, verdict, ctx, notes)
        if row["simulated"]:
            notes.append("simulated telemetry")
    row["verdict"] = verdict
    row["margins"] = margins(value, target, alert)
    row["note"] = "; ".join(notes) or None
    return row


def _distribution(metric: str, ctx: dict) -> dict:
    source = ctx["metrics"] if metric in LATENCY_METRICS else ctx["gauges"]
    return source.get(metric) or {}


def overall_verdict(rows: list[dict]) -> tuple[str, list[str]]:
    """FAIL if a hard row FAILs; else INCONCLUSIVE if a hard row is (or no hard row could be
    judged: a gate never passes on nothing); else the worst of WARN / PASS."""
    counted = [r for r in rows if r["hard"] and r["verdict"] in RANK]
    if not counted:
        return INCONCLUSIVE, ["no hard SLA row could be judged: overall INCONCLUSIVE (nothing the policy "
                              "gates on was measured)"]
    return max((r["verdict"] for r in counted), key=RANK.__getitem__), []


def evaluate(policy: dict | None, ctx: dict) -> dict:
    """The summary's `sla` section: policy, rows, overall, counts, inconclusive hard rows, notes."""
    min_samples = int((policy or {}).get("min_samples") or MIN_TAIL_SAMPLES)
    rows = [judge_row(spec, ctx, min_samples) for spec in (policy or {}).get("rows", [])]
    overall, notes = overall_verdict(rows)
    counts = {v: sum(1 for r in rows if r["verdict"] == v) for v in VERDICTS}
    return {"policy": {"name": (policy or {}).get("name"), "description": (policy or {}).get("description", ""),
                       "min_samples": min_samples},
            "overall": overall, "counts": counts, "rows": rows, "notes": notes,
            "inconclusive_hard": [r["label"] for r in rows if r["hard"] and r["verdict"] == INCONCLUSIVE],
            "rule": "lower: PASS if value < target, FAIL if value > alert, else WARN; "
                    "higher: PASS if value > target, FAIL if value < alert, else WARN; "
                    f"a p99/p99.9 from fewer than {min_samples} samples: INCONCLUSIVE"}
