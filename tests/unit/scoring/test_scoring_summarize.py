import json

from harness.config import load_sla
from harness.records import GpuSample, RunResult
from harness.scoring import SCHEMA_VERSION, summarize

TOP = {"schema_version", "run", "window", "counts", "metrics", "rates", "errors", "sla", "cost", "timeseries"}


def test_zero_records_no_meta_degrades(make_run):
    s = summarize(make_run([], scenario={}, meta={}))
    json.dumps(s, allow_nan=False)
    assert TOP <= set(s) and s["schema_version"] == SCHEMA_VERSION == 1
    assert s["counts"]["total"] == 0 and s["metrics"]["ttft_s"]["n"] == 0
    assert all(r["verdict"] == "NOT MEASURED" for r in s["sla"]["rows"])  # guide policy, nothing to judge
    assert s["sla"]["overall"] == "INCONCLUSIVE"  # fail closed: nothing judged never passes a gate
    assert s["timeseries"]["t_s"] == []


def test_all_errors(make_rec, make_run):
    recs = [make_rec(i, sent_s=float(i), ok=False, error_type="connect", status=0) for i in range(5)]
    s = summarize(make_run(recs, meta={"load_start_s": 0.0, "load_end_s": 5.0}))
    json.dumps(s, allow_nan=False)
    assert s["counts"]["ok"] == 0 and s["rates"]["error_rate_pct"] == 100.0
    assert s["rates"]["request_rate_rps"] == 0.0 and s["goodput"]["good_requests"] == 0
    by = {r["metric"]: r for r in s["sla"]["rows"]}
    assert by["ttft_s"]["verdict"] == "NOT MEASURED" and by["error_rate_pct"]["verdict"] == "FAIL"
    assert any("every request failed" in n for n in s["notes"])


def test_broken_inputs_do_not_crash():
    run = RunResult(run_dir=None, scenario={"load": "bogus", "sla": 42, "cost": {}}, records=[],
                    gpu_samples=[], server_samples=[], meta={"load": None, "backend": "x", "interrupted": True})
    s = summarize(run)
    assert s["run"]["interrupted"] is True and any("interrupted" in n for n in s["notes"])


def test_full_summary_layout(make_rec, make_run):
    recs = [make_rec(i, sent_s=0.05 * i) for i in range(150)]
    gpu = [GpuSample(t_s=0.5 * k, gpu_index=0, name="NVIDIA H100 80GB HBM3", util_gpu_pct=85.0, power_w=400.0,
                     mem_used_bytes=2**33, simulated=True) for k in range(20)]
    scen = {"name": "demo", "sla": load_sla("guide").model_dump(mode="json"), "backend": {"type": "sim", "gpu": "h100"}}
    meta = {"load_start_s": 0.0, "load_end_s": 10.0, "scenario_name": "demo", "load": {"mode": "closed", "users": 2},
            "backend": {"type": "sim", "command": ["slabench", "sim", "serve"], "simulated": True}}
    s = summarize(make_run(recs, scenario=scen, meta=meta, gpu=gpu))
    json.dumps(s, allow_nan=False)
    assert s["run"]["scenario_name"] == "demo" and s["run"]["backend"]["command"][0] == "slabench"
    for m in ("ttft_s", "tpot_s", "itl_s", "e2e_s"):
        assert {"n", "p50", "p90", "p95", "p99", "p99.9", "mean", "min", "max"} <= set(s["metrics"][m])
    row = s["sla"]["rows"][0]
    assert {"metric", "stat", "label", "value", "unit", "target", "alert", "verdict", "margins", "hard", "note"} <= set(row)
    assert s["metrics"]["gpu_utilization_pct"]["simulated"] is True and s["telemetry"]["gpu"]["simulated"] is True
    ts = s["timeseries"]
    assert ts["bucket_s"] == 1.0 and len(ts["t_s"]) == len(ts["achieved_rps"]) == len(ts["gpu_util_pct"])
    assert sum(ts["sent_rps"]) == 150 and ts["gpu_simulated"] is True
    assert s["cost"]["price_usd_per_gpu_hour"] == 5.0


def test_open_loop_lag_over_10ms_marks_the_load_generator_saturated():
    from harness.scoring import load_generator_health

    fine = load_generator_health([0.001] * 99 + [0.009], {"open_loop": {"delayed_by_cap": 0}})
    assert not fine["saturated"] and fine["delayed_by_cap"] == 0 and fine["note"] is None
    bad = load_generator_health([0.001] * 90 + [0.05] * 10, {})
    assert bad["saturated"] and "load generator saturated" in bad["note"] and bad["lag_p99_s"] > 0.01
    assert load_generator_health([], {})["lag_p99_s"] is None


def test_lag_from_a_full_max_in_flight_cap_is_the_caps_not_the_clients(make_rec, make_run):
    # 100 open-loop requests: the last 20 waited 0.5 s for a slot (cap_wait_s), the client itself was on time.
    recs = [make_rec(i, sent_s=0.1 * i + (0.5 if i >= 80 else 0.001), scheduled_s=0.1 * i,
                     cap_wait_s=0.5 if i >= 80 else None) for i in range(100)]
    meta = {"load": {"mode": "open"}, "open_loop": {"delayed_by_cap": 20, "scheduled": 100, "sent": 100}}
    lg = summarize(make_run(recs, meta=meta))["load_generator"]
    assert lg["lag_p99_s"] > 0.4 and lg["client_lag_p99_s"] < 0.002
    assert not lg["saturated"] and lg["cap_limited"]
    assert "max_in_flight held 20 of 100 requests" in lg["note"] and "not the client" in lg["note"]
    assert "load generator saturated" not in lg["note"]
    # Same lags without the cap's share recorded: the client is blamed.
    for r in recs:
        r.cap_wait_s = None
    lg = summarize(make_run(recs, meta={**meta, "open_loop": {"delayed_by_cap": 0}}))["load_generator"]
    assert lg["saturated"] and lg["note"].startswith("load generator saturated")


def test_multi_token_chunks_are_counted_and_noted(make_rec, make_run):
    # 3 text chunks (2 gaps) carrying 6 tokens each: 2 tokens per chunk, so a gap is not one token.
    recs = [make_rec(i, sent_s=i * 0.1, itl_s=[0.02, 0.02], output_tokens=6) for i in range(10)]
    s = summarize(make_run(recs))
    assert s["rates"]["tokens"]["text_chunks"] == 30 and s["rates"]["tokens"]["tokens_per_chunk"] == 2.0
    assert any("carried 2.00 output tokens on average" in n for n in s["notes"])
    one = summarize(make_run([make_rec(i, sent_s=i * 0.1) for i in range(10)]))
    assert one["rates"]["tokens"]["tokens_per_chunk"] == 1.0
    assert not any("output tokens on average" in n for n in one["notes"])


def test_open_loop_latency_is_also_measured_from_the_scheduled_time(make_rec, make_run):
    # Each request went out 20 ms after its scheduled time: TTFT 100 ms from the send is 120 ms
    # from the schedule (what a user arriving on schedule waited). Errors have no latency.
    recs = [make_rec(i, sent_s=i * 0.1, scheduled_s=i * 0.1 - 0.02) for i in range(10)]
    recs.append(make_rec(99, sent_s=0.5, ok=False, scheduled_s=0.45))
    m = summarize(make_run(recs))["metrics"]
    assert m["schedule_lag_s"]["n"] == 11
    assert m["ttft_from_schedule_s"]["n"] == 10 and abs(m["ttft_from_schedule_s"]["p50"] - 0.12) < 1e-9
    assert abs(m["e2e_from_schedule_s"]["max"] - (0.12 + 0.02)) < 1e-9  # e2e = ttft + two 10 ms gaps
    closed = summarize(make_run([make_rec(i, sent_s=i * 0.1) for i in range(5)]))["metrics"]
    assert "ttft_from_schedule_s" not in closed and "schedule_lag_s" not in closed
