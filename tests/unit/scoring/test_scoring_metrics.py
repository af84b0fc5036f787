import math

from harness.scoring import summarize
from harness.scoring.metrics import (
    concurrency, distributions, goodput, rates, scoring_window, split_records,
)


def test_tpot_and_itl_differ_on_uneven_gaps(make_rec, make_run):
    a = make_rec(0, sent_s=1.0, ttft_s=0.1, itl_s=[0.01] * 9)  # 10 tokens, TPOT 0.01
    b = make_rec(1, sent_s=1.0, ttft_s=0.1, itl_s=[0.1])  # 2 tokens, TPOT 0.1
    c = make_rec(2, sent_s=1.0, ttft_s=0.2, itl_s=[0.01, 0.01, 0.28])  # 4 tokens, TPOT 0.1, one stall
    d = distributions([a, b, c])
    assert [round(x, 9) for x in d["tpot_s"]] == [0.01, 0.1, 0.1]
    assert len(d["itl_s"]) == 9 + 1 + 3  # every gap pooled, not one mean per request
    assert math.isclose(sum(d["itl_s"]) / len(d["itl_s"]), (0.09 + 0.1 + 0.3) / 13)
    assert sorted(d["itl_s"])[6] == 0.01  # the ITL median is a fast gap; TPOT's median is 0.1
    s = summarize(make_run([a, b, c], meta={"load_start_s": 0, "load_end_s": 10}))
    assert math.isclose(s["metrics"]["tpot_s"]["p50"], 0.1)
    assert math.isclose(s["metrics"]["itl_s"]["p50"], 0.01)
    assert math.isclose(s["metrics"]["itl_s"]["max"], 0.28)


def test_tpot_needs_two_tokens_and_ok(make_rec, make_run):
    one = make_rec(0, itl_s=[], output_tokens=1)
    bad = make_rec(1, ok=False)
    assert one.tpot_s is None and bad.tpot_s is None
    assert distributions([one, bad])["tpot_s"] == []


def test_warmup_and_cooldown_are_excluded(make_rec, make_run):
    recs = [make_rec(i, sent_s=100.0 + i) for i in range(10)]  # sent at 100..109
    scen = {"name": "t", "load": {"warmup_s": 2, "cooldown_s": 1}}
    w = scoring_window({"load_start_s": 100.0, "load_end_s": 110.0}, scen, recs)
    assert (w.start_s, w.end_s, w.duration_s) == (102.0, 109.0, 7.0)
    scored, excluded = split_records(recs, w)
    assert [r.sent_s for r in scored] == [102.0 + k for k in range(8)]  # 102..109 inclusive
    assert len(excluded) == 2
    s = summarize(make_run(recs, scenario=scen, meta={"load_start_s": 100.0, "load_end_s": 110.0}))
    assert s["counts"]["scored"] == 8 and s["counts"]["excluded_warmup_cooldown"] == 2
    assert s["counts"]["excluded_warmup"] == 2 and s["counts"]["excluded_cooldown"] == 0
    assert math.isclose(s["rates"]["request_rate_rps"], 8 / 7)


def test_warmup_requests_do_not_change_latency(make_rec, make_run):
    slow = [make_rec(i, sent_s=100.0 + 0.1 * i, ttft_s=5.0) for i in range(5)]  # in warm-up
    fast = [make_rec(10 + i, sent_s=103.0 + 0.1 * i, ttft_s=0.2) for i in range(5)]
    s = summarize(make_run(slow + fast, scenario={"name": "t", "load": {"warmup_s": 2}},
                           meta={"load_start_s": 100.0, "load_end_s": 110.0}))
    assert s["metrics"]["ttft_s"]["max"] == 0.2 and s["metrics"]["ttft_s"]["n"] == 5


def test_window_falls_back_to_records_without_meta(make_rec, make_run):
    recs = [make_rec(0, sent_s=5.0), make_rec(1, sent_s=7.0)]
    w = scoring_window({}, {}, recs)
    assert w.start_s == 5.0 and w.end_s == recs[1].end_s
    assert any("load_start_s" in n for n in w.notes)


def test_window_too_short_for_warmup_scores_everything(make_rec, make_run):
    w = scoring_window({"load_start_s": 0.0, "load_end_s": 3.0}, {"load": {"warmup_s": 5}}, [])
    assert (w.start_s, w.end_s) == (0.0, 3.0) and w.notes


def test_goodput_counts_errors_as_misses_and_target_is_strict(make_rec, make_run):
    rows = [{"metric": "ttft_s", "stat": "p99", "target": 0.5, "alert": 1.0}]
    recs = [make_rec(0, ttft_s=0.1), make_rec(1, ttft_s=0.2), make_rec(2, ttft_s=0.5),  # 0.5 is not < 0.5
            make_rec(3, ttft_s=0.9), make_rec(4, ok=False), make_rec(5, ok=False)]
    g = goodput(recs, rows, duration_s=2.0)
    assert g["good_requests"] == 2
    assert g["goodput_rps"] == 1.0
    assert math.isclose(g["slo_attainment_pct"], 100 * 2 / 6)


def test_goodput_checks_every_per_request_row(make_rec, make_run):
    rows = [{"metric": "ttft_s", "target": 0.5, "alert": 1}, {"metric": "e2e_s", "target": 0.3, "alert": 1},
            {"metric": "error_rate_pct", "target": 0.1, "alert": 1}]
    ok = make_rec(0, ttft_s=0.1, itl_s=[0.05])  # e2e 0.15
    slow_tail = make_rec(1, ttft_s=0.1, itl_s=[0.3])  # e2e 0.4 misses e2e target
    assert goodput([ok, slow_tail], rows, 1.0)["good_requests"] == 1


def test_rates_and_error_rate(make_rec, make_run):
    recs = [make_rec(i, itl_s=[0.01] * 4, prompt_tokens=100) for i in range(4)] + [make_rec(9, ok=False)]
    r = rates(recs, duration_s=2.0)
    assert r["request_rate_rps"] == 2.0
    assert r["output_token_rate_tps"] == 4 * 5 / 2.0
    assert r["input_token_rate_tps"] == 4 * 100 / 2.0  # errors' prompts are not throughput
    assert r["total_token_rate_tps"] == (400 + 20) / 2.0
    assert r["error_rate_pct"] == 20.0


def test_errors_by_type(make_rec, make_run):
    recs = [make_rec(0, ok=False, error_type="timeout"), make_rec(1, ok=False, error_type="timeout"),
            make_rec(2, ok=False, error_type="http_5xx"), make_rec(3)]
    s = summarize(make_run(recs, meta={"load_start_s": 0.0, "load_end_s": 10.0}))
    assert s["errors"]["by_type"] == {"timeout": 2, "http_5xx": 1}
    assert s["counts"]["errors"] == 3 and math.isclose(s["rates"]["error_rate_pct"], 75.0)


def test_concurrency_time_weighted(make_rec, make_run):
    from harness.scoring.metrics import Window
    w = Window(0.0, 10.0, 0.0, 0.0, 0.0, 10.0)
    a = make_rec(0, sent_s=0.0, ttft_s=4.0, itl_s=[])  # busy 0..4
    b = make_rec(1, sent_s=2.0, ttft_s=4.0, itl_s=[])  # busy 2..6
    c = concurrency([a, b], w)
    assert c["max"] == 2
    assert math.isclose(c["mean"], 8.0 / 10.0)


def test_schedule_lag_when_present(make_rec, make_run):
    recs = [make_rec(i, sent_s=1.0 + i, scheduled_s=1.0 + i - 0.01 * i) for i in range(5)]
    s = summarize(make_run(recs, meta={"load_start_s": 0.0, "load_end_s": 10.0}))
    assert math.isclose(s["metrics"]["schedule_lag_s"]["max"], 0.04)
    s2 = summarize(make_run([make_rec(0, sent_s=1.0)], meta={"load_start_s": 0.0, "load_end_s": 10.0}))
    assert "schedule_lag_s" not in s2["metrics"]
