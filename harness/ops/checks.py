"""Checklist judges: probe results → checklist lines (pure; no network, files only for pre-deployment).

One line = {id, section, title, verdict, evidence, details}. Verdicts: PASS, WARN, FAIL, INCONCLUSIVE
(a tail percentile from fewer probes than the policy's min_samples), SKIP (an earlier step failed)
and MANUAL (a person must confirm). Latency and error-rate lines judge as a run's SLA table does.
"""

from __future__ import annotations

import json
from typing import Iterable

from prometheus_client.parser import text_string_to_metric_families

from harness.config import DISTRIBUTION_METRICS, METRICS, SlaPolicy
from harness.ops.probes import HttpResult
from harness.records import RequestRecord
from harness.scoring.sla import judge
from harness.scoring.stats import describe, is_insufficient, requests_for, stat_of

PASS, WARN, FAIL, SKIP, MANUAL, INCONCLUSIVE = "PASS", "WARN", "FAIL", "SKIP", "MANUAL", "INCONCLUSIVE"
VERDICTS = (PASS, WARN, INCONCLUSIVE, FAIL, SKIP, MANUAL)
POST, PRE = "post-deployment", "pre-deployment"
HEALTHY_WORDS = {"healthy", "ok", "pass", "up", "ready"}
DEFAULT_ERROR_RATE = (0.1, 1.0)  # guide section 4: target < 0.1 %, alert > 1 %

# Per server kind: sample names that must be present, and the request counter that must move.
EXPECTED_SERIES: dict[str, tuple[tuple[str, ...], str]] = {
    "vllm": (("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
              "vllm:request_success_total", "vllm:prompt_tokens_total", "vllm:generation_tokens_total",
              "vllm:time_to_first_token_seconds_count", "vllm:e2e_request_latency_seconds_count"),
             "vllm:request_success_total"),
    "tgi": (("tgi_request_count", "tgi_request_success", "tgi_queue_size", "tgi_batch_current_size",
             "tgi_request_duration_count"), "tgi_request_count"),
    "guide": (("llm_requests_total", "llm_request_latency_seconds_count", "llm_queue_size", "llm_gpu_memory_bytes"),
              "llm_requests_total"),
}


def line(lid: str, section: str, title: str, verdict: str, evidence: str, **details) -> dict:
    assert verdict in VERDICTS, verdict
    return {"id": lid, "section": section, "title": title, "verdict": verdict, "evidence": evidence,
            "details": details}


def skipped(lid: str, title: str, why: str, section: str = POST) -> dict:
    return line(lid, section, title, SKIP, why)


# ---------------------------------------------------------------- health

def judge_health(r: HttpResult) -> dict:
    """vLLM/TGI: 200 with an empty body; the guide's form: JSON {"status": healthy|degraded|unhealthy}."""
    title = "Health checks passing"
    took = f"{r.elapsed_s * 1000:.0f} ms"
    if r.status == 0:
        return line("health", POST, title, FAIL, f"GET /health: {r.describe()}", reachable=False)
    details = {"reachable": True, "status": r.status, "elapsed_s": r.elapsed_s}
    state = None
    try:
        obj = json.loads(r.body) if r.body.strip() else None
        state = str(obj.get("status")).lower() if isinstance(obj, dict) and "status" in obj else None
        reason = obj.get("reason") if isinstance(obj, dict) else None
    except ValueError:
        reason = None
    details.update(form="guide-json" if state else "vllm/tgi", state=state, reason=reason)
    ev = f"GET /health → {r.describe()} in {took}"
    if r.status != 200:
        return line("health", POST, title, FAIL, ev + " (vLLM answers 503 when the engine is dead, TGI 503 "
                    "when unhealthy)", **details)
    if state is None:
        return line("health", POST, title, PASS, ev + " (vLLM/TGI form)" if not r.body.strip() else ev, **details)
    if state in HEALTHY_WORDS:
        return line("health", POST, title, PASS, ev, **details)
    if state == "degraded":
        return line("health", POST, title, WARN, ev + " — degraded" + (f": {reason}" if reason else ""), **details)
    return line("health", POST, title, FAIL, ev + f" — status '{state}'", **details)


# ---------------------------------------------------------------- metrics

def sample_values(text: str) -> dict[str, float]:
    """Sample name → sum over its series. Raises ValueError (or another parser error) on malformed text."""
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[s.name] = out.get(s.name, 0.0) + float(s.value)
    return out


def with_bare_counter_names(values: dict[str, float]) -> dict[str, float]:
    """The parser names every counter sample `<family>_total`, even TGI's (exposed without the suffix):
    add the bare names too, so expectations read as the server writes them."""
    out = dict(values)
    for name in [n for n in values if n.endswith("_total")]:
        out.setdefault(name[: -len("_total")], values[name])
    return out


def server_kind(values: Iterable[str]) -> str | None:
    names = list(values)
    if any(n.startswith("vllm:") for n in names):
        return "vllm"
    if any(n.startswith("tgi_") for n in names):
        return "tgi"
    if "llm_requests_total" in names:
        return "guide"
    return None


def judge_metrics(before: HttpResult | None, after: HttpResult, ok_probe_requests: int) -> dict:
    """/metrics parses, has the families its server kind must expose, and its request counter moved."""
    title = "Metrics flowing"
    if after.status != 200:
        return line("metrics", POST, title, FAIL, f"GET /metrics → {after.describe()}")
    try:
        now = sample_values(after.text)
        prev = sample_values(before.text) if before is not None and before.status == 200 else {}
    except Exception as exc:  # the parser raises ValueError and others on malformed text
        first = (str(exc).splitlines() or [""])[0][:160]
        return line("metrics", POST, title, FAIL, f"GET /metrics → 200 but not Prometheus text: {first}")
    n_samples = len(now)
    now, prev = with_bare_counter_names(now), with_bare_counter_names(prev)
    kind = server_kind(now)
    if kind is None:
        return line("metrics", POST, title, WARN, f"/metrics parses ({n_samples} samples) but has no vLLM, TGI "
                    "or llm_* series", samples=n_samples)
    expected, counter = EXPECTED_SERIES[kind]
    missing = [n for n in expected if n not in now]
    delta = now.get(counter, 0.0) - prev.get(counter, 0.0)
    details = {"kind": kind, "samples": n_samples, "missing": missing, "counter": counter, "counter_delta": delta}
    ev = f"/metrics parses as {kind} ({n_samples} samples); {counter} +{delta:g} during the probe load"
    if missing:
        return line("metrics", POST, title, WARN, ev + f"; missing: {', '.join(missing)}", **details)
    if ok_probe_requests > 0 and delta <= 0:
        return line("metrics", POST, title, WARN, ev + " — the request counter did not move", **details)
    return line("metrics", POST, title, PASS, ev, **details)


# ---------------------------------------------------------------- authentication

def _denied(r: HttpResult | None) -> bool:
    return r is not None and r.status in (401, 403)


def judge_auth(key_given: bool, no_key: HttpResult, wrong_key: HttpResult | None,
               with_key: HttpResult | None) -> dict:
    """Key configured: no key and a wrong key must get 401/403, the key must not. No key: say what we saw."""
    title = "Authentication enforced"
    ev = f"no key → {no_key.describe(60)}"
    if wrong_key is not None:
        ev += f"; wrong key → {wrong_key.describe(60)}"
    if with_key is not None:
        ev += f"; configured key → {f'HTTP {with_key.status}' if with_key.status else with_key.describe(60)}"
    details = {"key_given": key_given, "no_key_status": no_key.status,
               "wrong_key_status": wrong_key.status if wrong_key else None,
               "with_key_status": with_key.status if with_key else None, "needs_key": False}
    if no_key.status == 0:
        return line("auth", POST, title, FAIL, ev, **details)
    if not key_given:
        if _denied(no_key):
            details["needs_key"] = True
            return line("auth", POST, title, WARN, ev + " — the server enforces a key but none was given: pass "
                        "--api-key-env VAR to run the remaining checks", **details)
        return line("auth", POST, title, WARN, ev + " — no API key configured and requests without one are "
                    "answered: authentication is not enforced (guide section 7)", **details)
    if not _denied(no_key) or (wrong_key is not None and not _denied(wrong_key)):
        return line("auth", POST, title, FAIL, ev + " — a request without a valid key was served", **details)
    if _denied(with_key):
        return line("auth", POST, title, FAIL, ev + " — the configured key is rejected: check --api-key-env",
                    **details)
    return line("auth", POST, title, PASS, ev, **details)


# ---------------------------------------------------------------- rate limiting

def observed_limit(rows: list[dict]) -> dict:
    """Accepted requests before the first 429 (bucket size) and the accept rate after it (refill rate)."""
    rows = sorted(rows, key=lambda r: r["offset_s"])
    limited = [r for r in rows if r["status"] == 429]
    if not limited:
        return {"first_429_offset_s": None, "accepted_before_first_429": None, "observed_limit_rps": None}
    first = limited[0]["offset_s"]
    before = sum(1 for r in rows if r["offset_s"] < first and r["status"] == 200)
    after = [r for r in rows if r["offset_s"] > first]
    span = rows[-1]["offset_s"] - first
    accepted_after = sum(1 for r in after if r["status"] == 200)
    rate = accepted_after / span if span > 0 else None
    return {"first_429_offset_s": first, "accepted_before_first_429": before, "observed_limit_rps": rate}


def judge_rate_limit(rows: list[dict], window_s: float) -> dict:
    title = "Rate limiting present"
    n = len(rows)
    if n == 0:
        return skipped("rate_limit", title, "burst disabled (--burst 0)")
    by_status: dict[str, int] = {}
    for r in rows:
        by_status[str(r["status"])] = by_status.get(str(r["status"]), 0) + 1
    k = by_status.get("429", 0)
    span = max(r["offset_s"] for r in rows) or window_s
    offered = n / span if span > 0 else None
    est = observed_limit(rows)
    details = {"sent": n, "by_status": by_status, "window_s": span, "offered_rps": offered, **est}
    offered_txt = f" (≈{offered:.0f} req/s offered)" if offered else ""
    if k == 0:
        return line("rate_limit", POST, title, WARN, f"no 429 in a burst of {n} requests over {span:.1f} s"
                    f"{offered_txt}: no rate limit at or below that rate (guide section 7)", **details)
    first429 = next(r for r in sorted(rows, key=lambda r: r["offset_s"]) if r["status"] == 429)
    details.update(limit_header=first429.get("limit_header"), retry_after=first429.get("retry_after"),
                   message=first429.get("message"))
    ev = (f"429 for {k} of {n} requests over {span:.1f} s{offered_txt}; first 429 after "
          f"{est['accepted_before_first_429']} accepted")
    if est["observed_limit_rps"] is not None:
        ev += f"; observed limit ≈ {est['observed_limit_rps']:.1f} req/s"
    if first429.get("limit_header"):
        ev += f"; X-RateLimit-Limit: {first429['limit_header']}"
    if first429.get("retry_after"):
        ev += f"; Retry-After: {first429['retry_after']} s"
    return line("rate_limit", POST, title, PASS, ev, **details)


# ---------------------------------------------------------------- probe load: errors and latency

def _policy_row(policy: SlaPolicy | None, metric: str):
    return next((r for r in (policy.rows if policy else []) if r.metric == metric), None)


def judge_error_rate(records: list[RequestRecord], policy: SlaPolicy | None) -> dict:
    """Error rate of the probe load against the policy's error_rate_pct row (else the guide's 0.1 / 1 %).
    429s are the checker meeting a rate limiter, not server errors: counted apart."""
    title = "Error rates normal"
    limited = [r for r in records if r.status == 429]
    judged = [r for r in records if r.status != 429]
    row = _policy_row(policy, "error_rate_pct")
    target, alert = (row.target, row.alert) if row else DEFAULT_ERROR_RATE
    if not judged:
        why = "every probe request got 429 (rate limited)" if limited else "no probe requests were sent"
        return skipped("error_rate", title, why)
    errors = [r for r in judged if not r.ok]
    value = 100.0 * len(errors) / len(judged)
    verdict = judge(value, target, alert, "lower")
    by_type: dict[str, int] = {}
    for r in errors:
        by_type[r.error_type or "unknown"] = by_type.get(r.error_type or "unknown", 0) + 1
    ev = (f"{len(errors)} of {len(judged)} probe requests failed = {value:.3g} % (target < {target:g} %, "
          f"alert > {alert:g} %; one error in {len(judged)} is {100 / len(judged):.3g} %)")
    if errors:
        ev += "; " + ", ".join(f"{k}: {v}" for k, v in by_type.items())
        example = next((r.error for r in errors if r.error), None)
        if example:
            ev += f"; e.g. {example[:120]}"
    if limited:
        ev += f"; {len(limited)} more got 429 (rate limited, not counted)"
        verdict = WARN if verdict == PASS else verdict
    return line("error_rate", POST, title, verdict, ev, value_pct=value, target_pct=target, alert_pct=alert,
                n=len(judged), errors=len(errors), by_type=by_type, rate_limited=len(limited))


def _values(records: list[RequestRecord], metric: str) -> list[float]:
    ok = [r for r in records if r.ok]
    if metric == "itl_s":
        return [g for r in ok for g in (r.itl_s or [])]
    if metric == "tpot_s":
        return [v for r in ok if (v := r.tpot_s) is not None]
    return [v for r in ok if (v := getattr(r, metric)) is not None]


def judge_latency(records: list[RequestRecord], policy: SlaPolicy) -> list[dict]:
    """One line per latency row of the policy, by scoring's rule: a tail percentile (p99, p99.9) from
    fewer samples than the policy's `min_samples` is INCONCLUSIVE, never PASS or WARN, unless even the
    median is beyond the alert (then FAIL). The line says how many requests a conclusive judgement needs."""
    rows = [r for r in policy.rows if r.metric in DISTRIBUTION_METRICS]
    if not rows:
        return [skipped("latency", "Latency within SLA", f"SLA policy '{policy.name}' has no latency rows")]
    ok_requests = sum(1 for r in records if r.ok)
    out = []
    for row in rows:
        lid, title = f"latency:{row.metric}:{row.stat}", f"Latency within SLA: {row.title}"
        vals = _values(records, row.metric)
        desc = describe(vals)
        value = stat_of(desc, row.stat)
        unit = METRICS[row.metric][1]
        if value is None:
            out.append(skipped(lid, title, "no successful probe request measured it"))
            continue
        verdict = judge(value, row.target, row.alert, row.better)
        ev = (f"{row.metric} {row.stat} = {value * 1000:.1f} ms" if unit == "s" else f"{value:.4g} {unit}")
        ev += f" from {desc['n']} probe samples (target < {row.target:g} {unit}, alert > {row.alert:g} {unit})"
        extra: dict = {"insufficient_samples": False, "needed_samples": None, "needed_requests": None}
        if is_insufficient(row.stat, desc["n"], policy.min_samples):
            needed = requests_for(policy.min_samples, desc["n"], ok_requests) or policy.min_samples
            extra.update(insufficient_samples=True, needed_samples=policy.min_samples, needed_requests=needed)
            what = "inter-token gaps" if row.metric == "itl_s" else "samples"
            ev += (f"; {row.stat} from {desc['n']} {what} is not conclusive (needs {policy.min_samples}, the "
                   f"policy's min_samples): about {needed} ok requests; `slabench run` measures it under load "
                   f"(or raise --probe-requests)")
            if row.better == "lower" and desc["p50"] is not None and desc["p50"] > row.alert:
                verdict = FAIL
                ev += "; FAIL all the same: the median is already beyond the alert"
            else:
                verdict = INCONCLUSIVE
        out.append(line(lid, POST, title, verdict, ev, metric=row.metric, stat=row.stat, value=value,
                        target=row.target, alert=row.alert, n=desc["n"], p50=desc["p50"], max=desc["max"], **extra))
    return out


# ---------------------------------------------------------------- cost

def judge_cost(price: dict) -> dict:
    title = "Cost tracking enabled"
    per_hour = price.get("price_usd_per_gpu_hour")
    if per_hour is None:
        why = price.get("reason") or "GPU unknown"
        return line("cost", POST, title, WARN, f"no GPU price: {why} (or pass --gpu)", **price)
    ev = (f"{price.get('gpu')} × {price.get('gpu_count')} at ${per_hour:.2f}/GPU-hour "
          f"({price.get('price_source')}; GPU from {price.get('gpu_from', 'the run folder')})")
    return line("cost", POST, title, PASS, ev, **price)
