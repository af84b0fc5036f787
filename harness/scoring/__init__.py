"""Scoring: `summarize(RunResult) -> dict`, the content of summary.json (records seam → report seam).

Pure: reads the run's scenario, records, samples and meta; never touches disk. Every input may be
missing or partial (old runs, interrupted runs): sections degrade to None / NOT MEASURED with a reason.
Layout documented in docs/metrics.md.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.records import RunResult
from harness.scoring.cost import cost_metrics, price_lookup
from harness.scoring.gauges import energy_j, gpu_gauges, prefix_hit_rate, server_gauges
from harness.scoring.metrics import (
    Window, cancelled_mask, distributions, in_window, latency_metrics, phase_of, scoring_window, split_records, table_concurrency,
    table_distributions, table_error_summary, table_goodput, table_rates,
)
from harness.scoring.overhead import client_overhead, token_lengths
from harness.scoring.recovery import recovery_summary
from harness.scoring.replay import replay_summary
from harness.scoring.sla import evaluate, resolve_policy
from harness.scoring.stats import MIN_TAIL_SAMPLES, PERCENTILE_METHOD
from harness.scoring.table import RecordTable, table_of
from harness.scoring.timeseries import table_timeseries
from harness.scoring.validity import run_validity

SCHEMA_VERSION = 1
MULTI_TOKEN_CHUNKS = 1.05  # mean output tokens per text chunk above which the report warns

__all__ = ["SCHEMA_VERSION", "summarize", "json_safe", "Window", "scoring_window", "split_records",
           "distributions", "phase_of", "RecordTable", "table_of"]


def json_safe(obj: Any) -> Any:
    """Deep copy with NaN/inf → None and numpy scalars → Python numbers (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return obj
    try:
        f = float(obj)
    except (TypeError, ValueError):
        return str(obj)
    if hasattr(obj, "dtype") and getattr(obj.dtype, "kind", "") in "iu":
        return int(obj)
    return f if math.isfinite(f) else None


def _run_echo(run: RunResult) -> dict:
    meta = run.meta if isinstance(run.meta, dict) else {}
    echo = dict(meta)  # every key the runner wrote (telemetry, load_outcome, open_loop, ...)
    echo["scenario_name"] = meta.get("scenario_name") or run.scenario.get("name")
    echo["run_dir"] = str(run.run_dir) if run.run_dir is not None else None
    echo["interrupted"] = bool(meta.get("interrupted", False))
    echo["meta_present"] = bool(meta)
    return echo


SATURATION_LAG_P99_S = 0.010  # open loop: sends later than this at p99 mean the client set the pace


def load_generator_health(lag_s: "list[float] | np.ndarray", meta: dict,
                          client_lag_s: "list[float] | np.ndarray | None" = None) -> dict:
    """Whether the load generator kept its open-loop schedule, what its cap delayed, and what became of
    every scheduled request (scheduled = sent + not_sent; None before it was counted). Lag is split:
    the wait for a max_in_flight slot is the cap's (the server's pace); the rest is the client's, and
    only a client lag p99 over 10 ms says the load generator was saturated."""
    ol = meta.get("open_loop") or {}
    out: dict[str, Any] = {"lag_p99_s": None, "lag_p50_s": None, "client_lag_p99_s": None,
                           "saturated": False, "cap_limited": False, "note": None,
                           "delayed_by_cap": ol.get("delayed_by_cap"), "scheduled": ol.get("scheduled"),
                           "sent": ol.get("sent", ol.get("launched")), "not_sent": ol.get("not_sent"),
                           "not_sent_note": None}
    if out["not_sent"] is None and isinstance(out["scheduled"], int) and isinstance(out["sent"], int):
        out["not_sent"] = out["scheduled"] - out["sent"]  # runs that did not count it (offline sim: all sent)
    if ol.get("not_sent"):
        out["not_sent_note"] = (
            f"{ol['not_sent']} of {ol.get('scheduled')} scheduled requests were never sent"
            f"{'' if ol.get('counted_exactly', True) else ' (estimated: too many to count)'}: the load ended "
            "while the load generator was behind its schedule or max_in_flight held them, so the offered "
            "rate was not delivered (lower rate_rps, raise max_in_flight, or use a bigger client machine)")
    if len(lag_s):
        p50, p99 = (float(x) for x in np.percentile(np.asarray(lag_s, float), [50, 99]))
        client = np.asarray(lag_s if client_lag_s is None else client_lag_s, float)
        c99 = float(np.percentile(client, 99)) if client.size else p99
        held = int(ol.get("delayed_by_cap") or 0)
        out.update(lag_p50_s=p50, lag_p99_s=p99, client_lag_p99_s=c99, saturated=c99 > SATURATION_LAG_P99_S,
                   cap_limited=held > 0 and p99 > SATURATION_LAG_P99_S)
        if out["saturated"]:
            out["note"] = (f"load generator saturated: its own schedule lag p99 {c99 * 1000:.1f} ms > "
                           f"{SATURATION_LAG_P99_S * 1000:.0f} ms, so latencies include client-side delay "
                           "(use --processes, a lower rate, or a bigger client machine)")
        elif out["cap_limited"]:
            out["note"] = (f"max_in_flight held {held} of {out['sent']} requests until a slot freed: schedule "
                           f"lag p99 {p99 * 1000:.1f} ms comes from the cap (the server did not keep up with the "
                           f"offered rate), not the client (its own lag p99 {c99 * 1000:.1f} ms); raise "
                           "load.max_in_flight, or lower the rate")
    return out


def summarize(run: RunResult) -> dict:
    """The summary.json content for one run (see docs/metrics.md for every key).

    Works on the run's RecordTable (`run.table` when loaded columnar, else built from run.records):
    every request-side number is a numpy reduction over its columns with a scored mask.
    """
    scenario = run.scenario if isinstance(run.scenario, dict) else {}
    meta = run.meta if isinstance(run.meta, dict) else {}
    table = table_of(run)
    window = scoring_window(meta, scenario, table)
    scored = in_window(table, window)
    dists = table_distributions(table, scored)
    latency = latency_metrics(dists)
    policy, policy_notes = resolve_policy(scenario.get("sla"))
    r = table_rates(table, scored, window.duration_s)
    gp = table_goodput(table, scored, (policy or {}).get("rows", []), window.duration_s)
    r["goodput_rps"], r["slo_attainment_pct"] = gp["goodput_rps"], gp["slo_attainment_pct"]
    gpu = gpu_gauges(list(run.gpu_samples or []), window)
    server = server_gauges(list(run.server_samples or []), window)
    gauges = {"gpu_utilization_pct": gpu["gpu_utilization_pct"], "queue_depth": server["queue_depth"]}
    metrics = {**latency, "concurrency": table_concurrency(table, window), **gauges,
               "gpu_mem_used_gib": gpu["gpu_mem_used_gib"], "gpu_power_w": gpu["gpu_power_w"],
               "kv_usage_frac": server["kv_usage_frac"], "server_running": server["running"],
               # Server counters first, else the cached tokens the server reported per request (gauges.py).
               "prefix_cache_hit_rate": prefix_hit_rate(list(run.server_samples or []), window, table, scored),
               # Against the server's own account: None unless the records carry one (overhead.py).
               "client_overhead": client_overhead(table, scored), "token_lengths": token_lengths(table, scored, meta)}
    ctx = {"metrics": latency, "gauges": gauges, "rates": r, "goodput": gp, "meta": meta}
    sla = evaluate(policy, ctx)
    sla["notes"] = policy_notes + sla["notes"]
    price = price_lookup(scenario, meta, gpu["gpu_names"])
    cost = cost_metrics(price, window.duration_s, r["tokens"], r["tokens"]["ok_requests"], gp["good_requests"],
                        energy_j(list(run.gpu_samples or []), window))
    n, n_ok = table.n, int(table.ok.sum())
    n_scored, n_scored_ok = int(scored.sum()), int((scored & table.ok).sum())
    cancelled = cancelled_mask(table)  # neither ok nor errors: counted apart (see metrics.cancelled_mask)
    n_cancelled, n_scored_cancelled = int(cancelled.sum()), int((scored & cancelled).sum())
    has_window = window.start_s is not None and window.end_s is not None
    n_warmup = int((~scored & (table.sent_s < window.start_s)).sum()) if has_window else 0
    n_cooldown = int((~scored & (table.sent_s > window.end_s)).sum()) if has_window else 0
    notes = list(getattr(run, "reader_notes", None) or []) + list(window.notes)  # files only partly read first
    if not n:
        notes.append("the run has no request records")
    elif n_ok == 0:
        notes.append("every request failed: latency metrics are empty" if not n_cancelled else
                     "no request completed: latency metrics are empty but for the TTFT of requests "
                     "cancelled at stop after their first token")
    if meta.get("interrupted"):
        notes.append("the run was interrupted: results cover a partial run")
    if n_cancelled:
        notes.append(f"{n_cancelled} request(s) still in flight when the load stopped did not finish within "
                     "load.drain_timeout_s: recorded as cancelled_at_stop, counted neither as completed nor as "
                     "errors (their TTFT counts when the first token came)")
    per_chunk = r["tokens"]["tokens_per_chunk"]
    if per_chunk is not None and per_chunk > MULTI_TOKEN_CHUNKS:
        notes.append(f"text chunks carried {per_chunk:.2f} output tokens on average (speculative decoding or a "
                     "stream interval): ITL figures are per chunk, TPOT is per token")
    load_gen = load_generator_health(dists["schedule_lag_s"], meta, dists.get("client_lag_s"))
    if load_gen["note"]:
        notes.append(load_gen["note"])
    if load_gen["not_sent_note"]:
        notes.append(load_gen["not_sent_note"])
    for section in (metrics["client_overhead"], metrics["token_lengths"]):
        notes += (section or {}).get("notes") or []
    validity = run_validity(meta, table, scored, getattr(run, "reader_problems", None))
    summary = {
        "schema_version": SCHEMA_VERSION,
        "validity": validity,
        "run": _run_echo(run),
        "window": window.as_dict(),
        "counts": {"total": n, "ok": n_ok, "errors": n - n_ok - n_cancelled, "scored": n_scored,
                   "scored_ok": n_scored_ok, "scored_errors": n_scored - n_scored_ok - n_scored_cancelled,
                   "cancelled_at_stop": n_cancelled, "scored_cancelled_at_stop": n_scored_cancelled,
                   "excluded_warmup_cooldown": n - n_scored, "excluded_warmup": n_warmup,
                   "excluded_cooldown": n_cooldown},
        "method": {"percentiles": PERCENTILE_METHOD, "min_tail_samples": MIN_TAIL_SAMPLES,
                   "latency_from": "ok requests sent in the window; itl_s pools every inter-chunk gap",
                   "tpot": "(e2e_s - ttft_s) / (output_tokens - 1), per ok request with >= 2 output tokens"},
        "metrics": metrics,
        "rates": r,
        "goodput": gp,
        "errors": table_error_summary(table, scored),
        "sla": sla,
        "cost": cost,
        "telemetry": {"gpu": {k: gpu[k] for k in ("gpu_names", "gpu_count_seen", "samples_total", "samples_in_window", "simulated")},
                      "server": {k: server[k] for k in ("samples_total", "samples_in_window", "simulated")}},
        "load_generator": load_gen,
        "timeseries": table_timeseries(table, list(run.gpu_samples or []), list(run.server_samples or []), window),
        # Overload and recovery (None without a `recovery:` block): spike, shed share, queue drain, time to recover.
        # Trace replay (None unless load.mode: replay): expected reuse vs hit rate, recorded vs achieved arrivals.
        "replay": replay_summary(meta, table, window, metrics["prefix_cache_hit_rate"]),
        "recovery": recovery_summary(scenario, policy, table, list(run.server_samples or []), window),
        "notes": notes,
    }
    return json_safe(summary)
