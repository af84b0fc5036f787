import math

import pytest

from harness.records import GpuSample, ServerSample
from harness.scoring import summarize
from harness.scoring.sla import FAIL, NOT_MEASURED, PASS, WARN, judge, margins, resolve_policy

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


def test_insufficient_samples_cap_at_warn(make_rec, make_run):
    s = _ttft_run(make_rec, make_run, 50, 2.0, [TTFT_P99])
    row = s["sla"]["rows"][0]
    assert row["n"] == 50 and row["insufficient_samples"] is True
    assert row["verdict"] == WARN and "insufficient samples" in row["note"]
    assert s["sla"]["overall"] == WARN  # WARN at worst, never FAIL


def test_enough_samples_can_fail(make_rec, make_run):
    s = _ttft_run(make_rec, make_run, 100, 2.0, [TTFT_P99])
    row = s["sla"]["rows"][0]
    assert row["insufficient_samples"] is False and row["verdict"] == FAIL and s["sla"]["overall"] == FAIL


def test_insufficient_but_passing_stays_pass(make_rec, make_run):
    s = _ttft_run(make_rec, make_run, 10, 0.1, [TTFT_P99])
    assert s["sla"]["rows"][0]["verdict"] == PASS and s["sla"]["overall"] == PASS


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


def test_closed_loop_throughput_note_keeps_verdict(make_rec, make_run):
    meta = {**META, "load": {"mode": "closed", "users": 4}}
    rows = [{"metric": "request_rate_rps", "target": 100, "alert": 50}]
    s = _ttft_run(make_rec, make_run, 20, 0.1, rows, meta=meta)  # 20 req / 10 s = 2 req/s
    row = s["sla"]["rows"][0]
    assert row["verdict"] == FAIL and row["offered_limited"] is True
    assert "closed loop with 4 users: achieved 2 req/s" in row["note"] and "run a sweep" in row["note"]


def test_open_loop_offered_below_target_is_warn(make_rec, make_run):
    meta = {**META, "load": {"mode": "open"}, "offered_rate_rps": 8}
    rows = [{"metric": "request_rate_rps", "target": 100, "alert": 50}]
    s = _ttft_run(make_rec, make_run, 20, 0.1, rows, meta=meta)
    row = s["sla"]["rows"][0]
    assert row["verdict"] == WARN and row["offered_limited"] is True
    assert row["note"] == "offered 8 req/s, below the 100 req/s target: run a sweep to measure capacity"


def test_open_loop_offered_rate_inside_meta_load(make_rec, make_run):
    meta = {**META, "load": {"mode": "open", "offered_rate_rps": 2.0}}
    rows = [{"metric": "request_rate_rps", "target": 100, "alert": 50}, {"metric": "goodput_rps", "target": 1, "alert": 0.5}]
    s = _ttft_run(make_rec, make_run, 20, 0.1, rows, meta=meta)
    assert s["sla"]["rows"][0]["verdict"] == WARN and "offered 2 req/s" in s["sla"]["rows"][0]["note"]
    assert s["sla"]["rows"][1]["verdict"] == PASS and s["sla"]["rows"][1]["offered_limited"] is False
    assert s["sla"]["overall"] == WARN


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


def test_no_policy_rows_gives_warn_with_note(make_rec, make_run):
    s = summarize(make_run([make_rec(0, sent_s=1.0)], scenario={"name": "t", "sla": "no-such-policy"}, meta=META))
    assert s["sla"]["rows"] == [] and s["sla"]["overall"] == WARN and s["sla"]["notes"]
