import math

import pytest

from harness.records import GpuSample, ServerSample
from harness.scoring import summarize
from harness.scoring.sla import FAIL, INCONCLUSIVE, NOT_MEASURED, PASS, WARN, judge, margins, resolve_policy

META = {"load_start_s": 0.0, "load_end_s": 10.0}


@pytest.mark.parametrize("value,expected", [
    (0.49, PASS), (0.5, WARN), (0.75, WARN), (1.0, WARN), (1.01, FAIL),
])
def test_lower_is_better_boundaries(value, expected):
    assert judge(value, target=0.5, alert=1.0, better="lower") == expected


@pytest.mark.parametrize("value,expected", [
    (100.1, PASS), (100.0, WARN), (75.0, WARN), (50.0, WARN), (49.9, FAIL),
])
def test_higher_is_better_boundaries(value, expected):
    assert judge(value, target=100.0, alert=50.0, better="higher") == expected


def test_none_and_nan_are_not_measured():
    assert judge(None, 1, 2, "lower") == NOT_MEASURED
    assert judge(float("nan"), 1, 2, "lower") == NOT_MEASURED


def test_margins():
    m = margins(0.6, 0.5, 1.0)
    assert math.isclose(m["vs_target"], 0.1) and math.isclose(m["vs_alert"], -0.4)
    assert math.isclose(m["vs_target_pct"], 20.0) and math.isclose(m["vs_alert_pct"], -40.0)
    assert margins(None, 1, 2)["vs_target"] is None


def _ttft_run(make_rec, make_run, n, ttft_s, policy_rows, meta=META, **kw):
    recs = [make_rec(i, sent_s=0.01 * i, ttft_s=ttft_s) for i in range(n)]
    return summarize(make_run(recs, scenario={"name": "t", "sla": {"name": "p", "rows": policy_rows}}, meta=meta, **kw))


TTFT_P99 = {"metric": "ttft_s", "stat": "p99", "target": 0.5, "alert": 1.0}


def _tail_run(make_rec, make_run, ttfts, rows, meta=META, scenario_extra=None):
    recs = [make_rec(i, sent_s=0.01 * i, ttft_s=t) for i, t in enumerate(ttfts)]
    sla = {"name": "p", "rows": rows, **(scenario_extra or {})}
    return summarize(make_run(recs, scenario={"name": "t", "sla": sla}, meta=meta))


def test_short_run_with_a_bad_tail_is_inconclusive_never_pass_or_warn(make_rec, make_run):
    # 50 requests, p99 4.2 s against a 1 s alert: too few samples to judge a p99, so not PASS, not WARN.
    s = _tail_run(make_rec, make_run, [0.1] * 48 + [4.2, 4.2], [TTFT_P99])
    row = s["sla"]["rows"][0]
    assert row["n"] == 50 and row["insufficient_samples"] is True
    assert row["verdict"] == INCONCLUSIVE and math.isclose(row["value"], 4.2)  # the measured value is kept
    assert row["needed_samples"] == 100 and row["needed_requests"] == 100
    assert row["note"] == ("inconclusive: p99 from 50 samples, needs at least 100: a run of about 100 requests "
                           "in the scored window (50 now)")
    assert s["sla"]["overall"] == INCONCLUSIVE and s["sla"]["inconclusive_hard"] == ["ttft_s p99"]
    assert s["sla"]["counts"][INCONCLUSIVE] == 1


def test_short_run_with_a_good_tail_is_inconclusive_too(make_rec, make_run):
    s = _tail_run(make_rec, make_run, [0.1] * 10, [TTFT_P99])
    assert s["sla"]["rows"][0]["verdict"] == INCONCLUSIVE and s["sla"]["overall"] == INCONCLUSIVE


def test_median_beyond_the_alert_fails_even_with_few_samples(make_rec, make_run):
    s = _tail_run(make_rec, make_run, [2.0] * 50, [TTFT_P99])
    row = s["sla"]["rows"][0]
    assert row["verdict"] == FAIL and row["insufficient_samples"] is True and "median" in row["note"]
    assert s["sla"]["overall"] == FAIL and s["sla"]["inconclusive_hard"] == []


def test_enough_samples_can_fail(make_rec, make_run):
    s = _ttft_run(make_rec, make_run, 100, 2.0, [TTFT_P99])
    row = s["sla"]["rows"][0]
    assert row["insufficient_samples"] is False and row["verdict"] == FAIL and s["sla"]["overall"] == FAIL
    assert row["needed_requests"] is None


def test_policy_min_samples_sets_the_threshold(make_rec, make_run):
    s = _tail_run(make_rec, make_run, [0.1] * 48 + [4.2, 4.2], [TTFT_P99], scenario_extra={"min_samples": 20})
    assert s["sla"]["rows"][0]["verdict"] == FAIL and s["sla"]["policy"]["min_samples"] == 20
    s = _tail_run(make_rec, make_run, [0.1] * 300, [TTFT_P99], scenario_extra={"min_samples": 1000})
    assert s["sla"]["rows"][0]["verdict"] == INCONCLUSIVE and s["sla"]["rows"][0]["needed_requests"] == 1000


def test_needed_requests_counts_errors_and_itl_gaps_per_request(make_rec, make_run):
    # Half the requests fail: 40 TTFT samples from 80 scored requests -> about 200 requests for 100 samples.
    recs = [make_rec(i, sent_s=0.1 * i, ok=i % 2 == 0) for i in range(80)]
    itl_row = {"metric": "itl_s", "stat": "p99", "target": 0.5, "alert": 1.0}
    rows = [TTFT_P99, itl_row]
    s = summarize(make_run(recs, scenario={"name": "t", "sla": {"name": "p", "rows": rows}}, meta=META))
    ttft, itl = s["sla"]["rows"]
    assert ttft["n"] == 40 and ttft["needed_requests"] == 200
    # 40 ok requests x 2 gaps = 80 gaps from 80 scored requests: 100 gaps need about 100 requests.
    assert itl["n"] == 80 and itl["needed_requests"] == 100 and "80 inter-token gaps" in itl["note"]


def test_overall_fail_beats_inconclusive_beats_warn(make_rec, make_run):
    warn_row = {"metric": "e2e_s", "stat": "p50", "target": 0.05, "alert": 1.0}  # e2e 0.12 s: WARN
    fail_row = {"metric": "e2e_s", "stat": "mean", "target": 0.01, "alert": 0.02}
    s = _tail_run(make_rec, make_run, [0.1] * 10, [TTFT_P99, warn_row])
    assert [r["verdict"] for r in s["sla"]["rows"]] == [INCONCLUSIVE, WARN] and s["sla"]["overall"] == INCONCLUSIVE
    s = _tail_run(make_rec, make_run, [0.1] * 10, [TTFT_P99, warn_row, fail_row])
    assert s["sla"]["overall"] == FAIL and s["sla"]["inconclusive_hard"] == ["ttft_s p99"]
    s = _tail_run(make_rec, make_run, [0.1] * 10, [{**TTFT_P99, "hard": False}, warn_row])
    assert s["sla"]["rows"][0]["verdict"] == INCONCLUSIVE and s["sla"]["overall"] == WARN
    assert s["sla"]["inconclusive_hard"] == []


def test_gauge_tail_row_with_few_samples_asks_for_a_longer_run(make_rec, make_run):
    server = [ServerSample(t_s=1.0 + k, queue_depth=1.0) for k in range(5)]
    rows = [{"metric": "queue_depth", "stat": "p99", "target": 100, "alert": 500}]
    s = _ttft_run(make_rec, make_run, 5, 0.1, rows, server=server)
    row = s["sla"]["rows"][0]
    assert row["verdict"] == INCONCLUSIVE and row["needed_requests"] is None
    assert row["note"] == "inconclusive: p99 from 5 samples, needs at least 100: a run about 20x longer"


def test_gauges_not_measured_without_samples_do_not_fail_overall(make_rec, make_run):
    rows = [TTFT_P99, {"metric": "gpu_utilization_pct", "stat": "mean", "target": 80, "alert": 50},
            {"metric": "queue_depth", "stat": "max", "target": 100, "alert": 500}]
    s = _ttft_run(make_rec, make_run, 200, 0.1, rows)
    by = {r["metric"]: r for r in s["sla"]["rows"]}
    assert by["gpu_utilization_pct"]["verdict"] == NOT_MEASURED
    assert by["gpu_utilization_pct"]["note"].startswith("no GPU samples: no NVML/GPU")
    assert by["queue_depth"]["verdict"] == NOT_MEASURED and by["queue_depth"]["note"] == "no server metrics scraped"
    assert s["sla"]["overall"] == PASS
    assert s["sla"]["counts"][NOT_MEASURED] == 2


def test_gauges_measured_and_gpus_averaged(make_rec, make_run):
    gpu = [GpuSample(t_s=1.0 + k, gpu_index=g, name="NVIDIA A100-SXM4-80GB", util_gpu_pct=(60.0 if g == 0 else 90.0),
                     simulated=True) for k in range(5) for g in range(2)]
    server = [ServerSample(t_s=1.0 + k, queue_depth=float(k * 100)) for k in range(5)]  # max 400
    rows = [{"metric": "gpu_utilization_pct", "stat": "mean", "target": 80, "alert": 50},
            {"metric": "queue_depth", "stat": "max", "target": 100, "alert": 500}]
    s = _ttft_run(make_rec, make_run, 5, 0.1, rows, gpu=gpu, server=server)
    by = {r["metric"]: r for r in s["sla"]["rows"]}
    assert by["gpu_utilization_pct"]["value"] == 75.0 and by["gpu_utilization_pct"]["n"] == 5
    assert by["gpu_utilization_pct"]["verdict"] == WARN and by["gpu_utilization_pct"]["simulated"] is True
    assert "simulated" in by["gpu_utilization_pct"]["note"]
    assert by["queue_depth"]["value"] == 400.0 and by["queue_depth"]["verdict"] == WARN


def test_gauge_samples_outside_window_are_not_measured(make_rec, make_run):
    gpu = [GpuSample(t_s=50.0, gpu_index=0, name="x", util_gpu_pct=99.0)]
    rows = [{"metric": "gpu_utilization_pct", "stat": "mean", "target": 80, "alert": 50}]
    s = _ttft_run(make_rec, make_run, 5, 0.1, rows, gpu=gpu)
    row = s["sla"]["rows"][0]
    assert row["verdict"] == NOT_MEASURED and "outside" in row["note"]


def test_advisory_row_never_changes_overall(make_rec, make_run):
    rows = [TTFT_P99, {"metric": "e2e_s", "stat": "max", "target": 0.01, "alert": 0.02, "hard": False}]
    s = _ttft_run(make_rec, make_run, 200, 0.1, rows)
    assert s["sla"]["rows"][1]["verdict"] == FAIL and s["sla"]["rows"][1]["hard"] is False
    assert s["sla"]["overall"] == PASS


def test_closed_loop_throughput_short_of_target_is_offered_limited_not_fail(make_rec, make_run):
    meta = {**META, "load": {"mode": "closed", "users": 4}, "scenario_path": "scenarios/demo.yaml"}
    rows = [TTFT_P99, {"metric": "request_rate_rps", "target": 100, "alert": 50}]
    s = _ttft_run(make_rec, make_run, 200, 0.1, rows, meta=meta)  # 200 req / 10 s = 20 req/s
    row = s["sla"]["rows"][1]
    assert row["verdict"] == NOT_MEASURED and row["offered_limited"] is True
    assert "offered-limited: 4 closed-loop users drove 20 req/s" in row["note"]
    assert "`slabench sweep scenarios/demo.yaml --concurrency`" in row["note"]
    assert s["sla"]["overall"] == PASS  # judged on the rows this run can answer


def test_closed_loop_throughput_above_target_is_judged(make_rec, make_run):
    meta = {**META, "load": {"mode": "closed", "users": 4}}
    rows = [{"metric": "request_rate_rps", "target": 10, "alert": 5}]
    s = _ttft_run(make_rec, make_run, 200, 0.1, rows, meta=meta)  # 20 req/s > 10: the users drove it
    assert s["sla"]["rows"][0]["verdict"] == PASS and s["sla"]["rows"][0]["offered_limited"] is False


def test_open_loop_offered_below_target_is_offered_limited(make_rec, make_run):
    meta = {**META, "load": {"mode": "open"}, "offered_rate_rps": 8}
    rows = [{"metric": "request_rate_rps", "target": 100, "alert": 50}]
    s = _ttft_run(make_rec, make_run, 20, 0.1, rows, meta=meta)
    row = s["sla"]["rows"][0]
    assert row["verdict"] == NOT_MEASURED and row["offered_limited"] is True
    assert row["note"] == ("offered-limited: the run offered 8 req/s, below the 100 req/s target; "
                           "measure capacity with `slabench sweep SCENARIO`")


def test_open_loop_offered_rate_inside_meta_load(make_rec, make_run):
    meta = {**META, "load": {"mode": "open", "offered_rate_rps": 2.0}}
    rows = [{"metric": "request_rate_rps", "target": 100, "alert": 50}, {"metric": "goodput_rps", "target": 1, "alert": 0.5}]
    s = _ttft_run(make_rec, make_run, 20, 0.1, rows, meta=meta)
    assert s["sla"]["rows"][0]["verdict"] == NOT_MEASURED and "offered 2 req/s" in s["sla"]["rows"][0]["note"]
    assert s["sla"]["rows"][1]["verdict"] == PASS and s["sla"]["rows"][1]["offered_limited"] is False
    assert s["sla"]["overall"] == PASS


def test_open_loop_offered_at_target_but_server_short_still_fails(make_rec, make_run):
    meta = {**META, "load": {"mode": "open", "offered_rate_rps": 100.0}}
    rows = [{"metric": "request_rate_rps", "target": 100, "alert": 50}]
    s = _ttft_run(make_rec, make_run, 20, 0.1, rows, meta=meta)  # offered 100, achieved 2: the server's shortfall
    assert s["sla"]["rows"][0]["verdict"] == FAIL and s["sla"]["rows"][0]["offered_limited"] is False


def test_error_rate_row(make_rec, make_run):
    recs = [make_rec(i, sent_s=0.1 * i) for i in range(99)] + [make_rec(99, sent_s=5.0, ok=False)]
    rows = [{"metric": "error_rate_pct", "target": 0.1, "alert": 1.0}]
    s = summarize(make_run(recs, scenario={"name": "t", "sla": {"name": "p", "rows": rows}}, meta=META))
    assert s["sla"]["rows"][0]["value"] == 1.0 and s["sla"]["rows"][0]["verdict"] == WARN  # exactly at alert


def test_policy_by_name_and_bad_policy():
    pol, notes = resolve_policy("guide")
    assert pol["name"] == "guide" and len(pol["rows"]) == 5 and notes
    pol, notes = resolve_policy({"name": "x", "rows": [{"metric": "nope", "target": 1, "alert": 2}]})
    assert pol is None and "unusable" in notes[0]


def test_no_policy_rows_is_inconclusive_with_note(make_rec, make_run):
    # Fail closed: a gate never passes on nothing judged.
    s = summarize(make_run([make_rec(0, sent_s=1.0)], scenario={"name": "t", "sla": "no-such-policy"}, meta=META))
    assert s["sla"]["rows"] == [] and s["sla"]["overall"] == INCONCLUSIVE
    assert any("no hard SLA row could be judged" in n for n in s["sla"]["notes"])


# ---- properties: the verdict contract for any sample set and any mix of rows

from hypothesis import given, settings, strategies as st  # noqa: E402

from harness.scoring.sla import judge_row, overall_verdict  # noqa: E402
from harness.scoring.stats import describe  # noqa: E402

_latency = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(values=st.lists(_latency, min_size=1, max_size=300), min_samples=st.integers(1, 400),
       stat=st.sampled_from(["p50", "p99", "p99.9", "mean", "max"]), errors=st.integers(0, 50))
def test_a_tail_from_too_few_samples_is_never_pass_or_warn(values, min_samples, stat, errors):
    ctx = {"metrics": {"ttft_s": describe(values)}, "gauges": {}, "rates": {}, "meta": {},
           "goodput": {"scored_requests": len(values) + errors}}
    row = judge_row({"metric": "ttft_s", "stat": stat, "target": 0.5, "alert": 1.0}, ctx, min_samples)
    short = stat in ("p99", "p99.9") and len(values) < min_samples
    assert row["value"] is not None  # the measured value is always kept
    if short:
        assert row["verdict"] in (INCONCLUSIVE, FAIL) and row["insufficient_samples"]
        assert row["needed_requests"] >= len(values) + errors and str(min_samples) in row["note"]
        assert (row["verdict"] == FAIL) == (describe(values)["p50"] > 1.0)
    else:
        assert row["verdict"] == judge(row["value"], 0.5, 1.0, "lower") and row["needed_requests"] is None


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from([PASS, WARN, FAIL, INCONCLUSIVE, NOT_MEASURED])),
                max_size=8))
def test_overall_is_fail_then_inconclusive_then_worst(rows):
    overall, _ = overall_verdict([{"hard": h, "verdict": v} for h, v in rows])
    hard = [v for h, v in rows if h and v != NOT_MEASURED]
    if FAIL in hard:
        assert overall == FAIL
    elif INCONCLUSIVE in hard or not hard:
        assert overall == INCONCLUSIVE
    else:
        assert overall == (WARN if WARN in hard else PASS)
