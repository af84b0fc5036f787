"""Checklist judges (pure): health forms, metrics families and flow, auth, rate-limit estimate,
error rate with 429s apart, latency with few samples, cost; HTML escaping of server strings."""

import json
from pathlib import Path

import pytest

from harness.config import SlaPolicy, SlaRow, load_sla
from harness.ops.check_report import checklist_text, render_html
from harness.ops.checks import (
    judge_auth, judge_cost, judge_error_rate, judge_health, judge_latency, judge_metrics, judge_rate_limit,
    observed_limit,
)
from harness.ops.predeploy import alerts_line, find_run_dir, load_test_lines
from harness.ops.probes import HttpResult
from harness.records import RequestRecord

FIXTURES = Path(__file__).resolve().parents[1] / "telemetry" / "fixtures"


def R(status, body=b"", **kw):
    return HttpResult(status, body if isinstance(body, bytes) else json.dumps(body).encode(), **kw)


@pytest.mark.parametrize("res,verdict", [
    (R(200), "PASS"),  # vLLM / TGI: empty 200
    (R(200, {"status": "healthy"}), "PASS"),  # the guide's JSON form
    (R(200, {"status": "degraded", "reason": "high memory"}), "WARN"),
    (R(200, {"status": "unhealthy", "reason": "model not loaded"}), "FAIL"),
    (R(503), "FAIL"),  # vLLM engine dead
    (R(503, {"error": "unhealthy", "error_type": "healthcheck"}), "FAIL"),  # TGI
    (R(0, error="Connection refused"), "FAIL"),
])
def test_health_forms(res, verdict):
    ln = judge_health(res)
    assert ln["verdict"] == verdict, ln
    if verdict == "WARN":
        assert "high memory" in ln["evidence"]


def vllm_text(success: float) -> str:
    text = (FIXTURES / "vllm_0.33_metrics.txt").read_text()
    import re
    text += ("# TYPE vllm:e2e_request_latency_seconds histogram\n"  # the fixture excerpt has no e2e family
             'vllm:e2e_request_latency_seconds_bucket{engine="0",le="+Inf"} 1.0\n'
             'vllm:e2e_request_latency_seconds_count{engine="0"} 1.0\n'
             'vllm:e2e_request_latency_seconds_sum{engine="0"} 0.5\n')
    return re.sub(r'(vllm:request_success_total\{[^}]*finished_reason="stop"[^}]*\}) [0-9.e+]+',
                  lambda m: f"{m.group(1)} {success}", text)


def test_metrics_pass_when_families_present_and_counter_moves():
    before, after = R(200, vllm_text(5).encode()), R(200, vllm_text(25).encode())
    ln = judge_metrics(before, after, ok_probe_requests=20)
    assert ln["verdict"] == "PASS", ln
    assert ln["details"]["kind"] == "vllm" and ln["details"]["counter_delta"] == 20


def test_metrics_warn_when_counter_still_and_fail_when_malformed_or_missing():
    same = R(200, vllm_text(5).encode())
    assert judge_metrics(same, same, ok_probe_requests=3)["verdict"] == "WARN"
    assert judge_metrics(None, R(200, b"this is { not prometheus"), 3)["verdict"] == "FAIL"
    assert judge_metrics(None, R(404, b"Not Found"), 3)["verdict"] == "FAIL"
    assert judge_metrics(None, R(200, b"# TYPE foo gauge\nfoo 1\n"), 3)["verdict"] == "WARN"


def test_metrics_tgi_counters_without_total_and_missing_families():
    tgi = (FIXTURES / "tgi_3.3_metrics.txt").read_text()
    ln = judge_metrics(None, R(200, tgi.encode()), 1)
    assert ln["details"]["kind"] == "tgi"
    assert "tgi_request_count" not in ln["details"]["missing"]
    partial = R(200, b"# TYPE tgi_queue_size gauge\ntgi_queue_size 0\n")
    ln = judge_metrics(None, partial, 1)
    assert ln["verdict"] == "WARN" and "tgi_request_count" in ln["details"]["missing"]


def test_auth_matrix():
    d401, ok = R(401, {"error": "Unauthorized"}), R(200, {"object": "chat.completion"})
    assert judge_auth(True, d401, d401, ok)["verdict"] == "PASS"
    assert judge_auth(True, R(403), R(403), ok)["verdict"] == "PASS"  # the guide's FastAPI form
    assert judge_auth(True, ok, ok, ok)["verdict"] == "FAIL"
    assert judge_auth(True, d401, ok, ok)["verdict"] == "FAIL"  # a wrong key is accepted
    assert judge_auth(True, d401, d401, d401)["verdict"] == "FAIL"  # the configured key is rejected
    no_key = judge_auth(False, d401, None, None)
    assert no_key["verdict"] == "WARN" and no_key["details"]["needs_key"]
    open_ = judge_auth(False, ok, None, None)
    assert open_["verdict"] == "WARN" and not open_["details"]["needs_key"]


def test_rate_limit_estimate_from_a_token_bucket_trace():
    # 40 requests at 20 req/s into a bucket of 6 refilling at 4 req/s
    rows, tokens, last = [], 6.0, 0.0
    for i in range(40):
        t = i * 0.05
        tokens = min(6.0, tokens + (t - last) * 4)
        last = t
        ok = tokens >= 1
        tokens -= 1 if ok else 0
        rows.append({"offset_s": t, "status": 200 if ok else 429, "limit_header": "4", "retry_after": "1"})
    est = observed_limit(rows)
    assert est["accepted_before_first_429"] == 7
    assert est["observed_limit_rps"] == pytest.approx(4, abs=0.8)
    ln = judge_rate_limit(rows, 2.0)
    assert ln["verdict"] == "PASS" and "X-RateLimit-Limit: 4" in ln["evidence"]
    none = judge_rate_limit([{"offset_s": i * 0.05, "status": 200} for i in range(40)], 2.0)
    assert none["verdict"] == "WARN" and "no 429" in none["evidence"]
    assert judge_rate_limit([], 2.0)["verdict"] == "SKIP"


def rec(i, ok=True, status=200, ttft=0.1, e2e=0.5):
    return RequestRecord(request_id=str(i), api="openai-chat", sent_s=0, end_s=e2e, status=status, ok=ok,
                         ttft_s=ttft if ok else None, e2e_s=e2e, output_tokens=16 if ok else 0,
                         error_type=None if ok else ("overloaded_429" if status == 429 else "http_5xx"))


def test_error_rate_counts_429_apart():
    guide = load_sla("guide")
    assert judge_error_rate([rec(i) for i in range(20)], guide)["verdict"] == "PASS"
    one_bad = [rec(i) for i in range(19)] + [rec(19, ok=False, status=500)]
    ln = judge_error_rate(one_bad, guide)
    assert ln["verdict"] == "FAIL" and ln["details"]["value_pct"] == 5.0
    limited = [rec(i) for i in range(15)] + [rec(i, ok=False, status=429) for i in range(5)]
    ln = judge_error_rate(limited, guide)
    assert ln["verdict"] == "WARN" and ln["details"]["n"] == 15 and ln["details"]["rate_limited"] == 5
    assert judge_error_rate([rec(0, ok=False, status=429)], guide)["verdict"] == "SKIP"


def test_latency_tail_from_few_samples_is_inconclusive_never_pass():
    """Scoring's rule (harness/scoring/sla.py): a p99 from fewer than min_samples is INCONCLUSIVE;
    only a median beyond the alert FAILs it. 20 fast probes used to PASS a p99."""
    policy = SlaPolicy(name="p", rows=[SlaRow(metric="ttft_s", stat="p99", target=0.5, alert=1.0)])
    (ln,) = judge_latency([rec(i, ttft=0.1) for i in range(20)], policy)
    assert ln["verdict"] == "INCONCLUSIVE", ln
    assert ("ttft_s p99 = 100.0 ms from 20 probe samples (target < 0.5 s, alert > 1 s); p99 from 20 samples "
            "is not conclusive (needs 100, the policy's min_samples): about 100 ok requests; `slabench run` "
            "measures it under load (or raise --probe-requests)") == ln["evidence"]
    assert ln["details"]["needed_requests"] == 100 and ln["details"]["insufficient_samples"]
    one_slow = [rec(i, ttft=0.1) for i in range(19)] + [rec(19, ttft=3.0)]
    assert judge_latency(one_slow, policy)[0]["verdict"] == "INCONCLUSIVE"  # was WARN
    (ln,) = judge_latency([rec(i, ttft=2.0) for i in range(20)], policy)
    assert ln["verdict"] == "FAIL" and "the median is already beyond the alert" in ln["evidence"]
    assert judge_latency([rec(0, ok=False, status=500)], policy)[0]["verdict"] == "SKIP"
    no_rows = SlaPolicy(name="q", rows=[SlaRow(metric="error_rate_pct", target=1, alert=2)])
    assert judge_latency([rec(0)], no_rows)[0]["verdict"] == "SKIP"


def test_latency_uses_the_policys_min_samples_and_errors_count_in_the_requests_needed():
    strict = SlaPolicy(name="s", min_samples=500, rows=[SlaRow(metric="ttft_s", stat="p99", target=0.5, alert=1)])
    recs = [rec(i, ttft=0.1) for i in range(150)] + [rec(150 + i, ok=False, status=500) for i in range(50)]
    (ln,) = judge_latency(recs, strict)
    assert ln["verdict"] == "INCONCLUSIVE" and "needs 500" in ln["evidence"]
    assert ln["details"]["needed_requests"] == 500  # 150 samples from 150 ok requests: 1 per ok request
    loose = SlaPolicy(name="l", min_samples=20, rows=[SlaRow(metric="ttft_s", stat="p99", target=0.5, alert=1)])
    assert judge_latency([rec(i, ttft=0.1) for i in range(20)], loose)[0]["verdict"] == "PASS"
    # A median row is judged from any number of probes; so is a p99 from enough samples.
    p50 = SlaPolicy(name="m", rows=[SlaRow(metric="ttft_s", stat="p50", target=0.5, alert=1)])
    assert judge_latency([rec(i, ttft=0.1) for i in range(5)], p50)[0]["verdict"] == "PASS"
    assert judge_latency([rec(i, ttft=0.7) for i in range(100)], policy_p99())[0]["verdict"] == "WARN"


def policy_p99():
    return SlaPolicy(name="p", rows=[SlaRow(metric="ttft_s", stat="p99", target=0.5, alert=1.0)])


def test_an_inconclusive_line_keeps_the_checklist_from_passing():
    from harness.ops.check import _overall
    from harness.ops.checks import line

    ok = line("health", "post-deployment", "Health", "PASS", "200")
    inc = judge_latency([rec(i, ttft=0.1) for i in range(20)], policy_p99())[0]
    warn = line("auth", "post-deployment", "Auth", "WARN", "open")
    assert _overall([ok, inc]) == "INCONCLUSIVE" and _overall([ok, warn, inc]) == "INCONCLUSIVE"
    assert _overall([ok, inc, line("x", "post-deployment", "X", "FAIL", "bad")]) == "FAIL"
    assert _overall([ok, warn]) == "WARN" and _overall([ok]) == "PASS"
    c = {"url": "http://x", "policy": {"name": "p"}, "overall": "INCONCLUSIVE",
         "sections": [{"id": "post-deployment", "title": "Post-deployment"}], "lines": [ok, inc],
         "counts": {"PASS": 1, "INCONCLUSIVE": 1}}
    text = checklist_text(c)
    assert "[INCONCLUSIVE] Latency within SLA" in text and "overall INCONCLUSIVE: PASS 1, INCONCLUSIVE 1" in text


def test_cost_needs_a_price():
    assert judge_cost({"gpu": "a100-80gb", "gpu_count": 1, "price_usd_per_gpu_hour": 4.0,
                       "price_source": "guide"})["verdict"] == "PASS"
    assert judge_cost({"gpu": None, "price_usd_per_gpu_hour": None, "reason": "GPU unknown"})["verdict"] == "WARN"


def test_pre_deployment_files(tmp_path):
    assert find_run_dir(tmp_path) is None
    assert {ln["verdict"] for ln in load_test_lines(None, None)} == {"MANUAL"}
    run = tmp_path / "r1"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"sla": {"overall": "FAIL"}, "run": {}, "counts": {}}))
    (run / "scenario.yaml").write_text("name: x\nbackend: {type: sim, quantization: fp16}\n")
    assert find_run_dir(tmp_path) == run and find_run_dir(run / "summary.json") == run
    quant, load = load_test_lines(run, tmp_path)
    assert load["verdict"] == "FAIL" and quant["verdict"] == "WARN" and "unquantized" in quant["evidence"]
    policy = load_sla("guide")
    assert alerts_line(None, policy)["verdict"] == "MANUAL"
    assert alerts_line(tmp_path / "nope.yaml", policy)["verdict"] == "FAIL"  # named but absent: never a todo
    bad = tmp_path / "bad.yaml"
    bad.write_text("groups: 3\n")
    assert alerts_line(bad, policy)["verdict"] == "FAIL"


def test_html_escapes_server_strings():
    evil = '<script>alert(1)</script>'
    c = {"url": "http://x", "checked_utc": "t", "overall": "FAIL", "exit_code": 1, "usage_error": None,
         "counts": {"FAIL": 1}, "server": {"model": evil}, "policy": {"name": "guide"}, "notes": [],
         "probe": {"sent": 0, "ok": 0, "concurrency": 4, "max_tokens": 16, "burst": 0, "burst_window_s": 2,
                   "api_key_given": False},
         "sections": [{"id": "post-deployment", "title": "Post-deployment"}], "slabench_version": "0",
         "lines": [{"id": "auth", "section": "post-deployment", "title": "Authentication enforced",
                    "verdict": "FAIL", "evidence": f"no key → HTTP 200 {evil}", "details": {}}]}
    html = render_html(c)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "[FAIL] Authentication enforced" in checklist_text(c)
