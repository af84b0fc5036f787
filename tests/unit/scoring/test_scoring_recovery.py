"""Recovery scoring on synthetic runs with known answers: a spike with a known recovery time, one that
never recovers, too few samples per window (fail closed), shed share and queue drain, and summarize()."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.records import ServerSample
from harness.scoring import summarize
from harness.scoring.metrics import Window
from harness.scoring.recovery import recovery_summary
from harness.scoring.table import from_records

T0 = 1000.0
STAGES = [{"duration_s": 20, "rate_rps": 5}, {"duration_s": 10, "rate_rps": 20}, {"duration_s": 30, "rate_rps": 5}]
POLICY = {"name": "p", "rows": [
    {"metric": "ttft_s", "stat": "p99", "target": 0.5, "alert": 1.0, "hard": True, "label": "TTFT p99"},
    {"metric": "error_rate_pct", "stat": "value", "target": 0.1, "alert": 1.0, "hard": True},
    {"metric": "request_rate_rps", "stat": "value", "target": 100, "alert": 50, "hard": True},
    {"metric": "tpot_s", "stat": "p99", "target": 0.01, "alert": 0.02, "hard": False}]}


def scenario(recovery: dict | None = None, stages=STAGES) -> dict:
    return {"name": "t", "load": {"mode": "open", "stages": stages},
            "recovery": {"window_s": 4, "min_samples": 10, **(recovery or {})}}


def window(end_s: float = T0 + 60) -> Window:
    return Window(T0, end_s, 0.0, 0.0, T0, end_s)


def records(make_rec, ttft_of, rate_of=lambda t: 10.0, errors_of=lambda t: False, end=60.0):
    """One request every 1/rate s: TTFT by send time (seconds since load start), an error where errors_of."""
    out, t, i = [], 0.0, 0
    while t < end:
        if errors_of(t):
            out.append(make_rec(i, sent_s=T0 + t, ok=False, status=503, error_type="overloaded_503"))
        else:
            out.append(make_rec(i, sent_s=T0 + t, ttft_s=ttft_of(t)))
        t, i = t + 1.0 / rate_of(t), i + 1
    return out


def summary_of(recs, scn=None, server=(), policy=POLICY, win=None):
    return recovery_summary(scn or scenario(), policy, from_records(recs), list(server), win or window())


def test_known_recovery_time(make_rec):
    # Slow (2 s TTFT) from the spike's start (20 s) until 37 s; fast from then on. Windows after the
    # spike start at its end (30 s): the first all-fast, full window is [37, 41) → recovered 11 s after.
    rec = summary_of(records(make_rec, lambda t: 2.0 if 20 <= t < 37 else 0.1))
    assert rec["status"] == "recovered" and rec["recovered"] is True
    assert rec["time_to_recover_s"] == pytest.approx(11.0)
    assert rec["capacity_crossed_at"] == 20  # the spike's rate: the first outside window ended inside it
    assert 20 < rec["capacity_crossed_t_s"] <= 21
    assert rec["spike"] == {"stage": 2, "level": 20.0, "unit": "req/s", "start_t_s": 20.0, "end_t_s": 30.0}
    assert [r["metric"] for r in rec["rows"]] == ["ttft_s", "error_rate_pct"]  # hard latency + error rows only
    assert rec["series"]["metric"] == "ttft_s" and len(rec["series"]["t_s"]) == len(rec["series"]["state"])
    assert len(rec["series"]["error_rate_pct"]) == len(rec["series"]["t_s"])  # the second row, for the plot


def test_never_recovers(make_rec):
    rec = summary_of(records(make_rec, lambda t: 2.0 if t >= 20 else 0.1))
    assert rec["status"] == "not recovered" and rec["recovered"] is False
    assert rec["time_to_recover_s"] is None
    assert rec["reason"] == "did not recover within the run"


def test_held_sla_through_the_spike(make_rec):
    rec = summary_of(records(make_rec, lambda t: 0.1))
    assert rec["status"] == "held" and rec["recovered"] is True and rec["time_to_recover_s"] == 0.0
    assert rec["capacity_crossed_at"] is None


def test_too_few_samples_never_count_as_inside(make_rec):
    # After the spike only 1 request/s: a 4 s window holds 4 < min_samples 10, so no window is
    # inside and the clock never stops, although every one of those requests is fast.
    recs = records(make_rec, lambda t: 2.0 if 20 <= t < 30 else 0.1, rate_of=lambda t: 1.0 if t >= 30 else 10.0)
    rec = summary_of(recs)
    assert rec["recovered"] is False and rec["time_to_recover_s"] is None
    assert rec["status"] == "inconclusive" and "samples" in rec["reason"]
    assert set(rec["series"]["state"][-20:]) == {"inconclusive"}
    # The same run with a threshold the sparse windows meet recovers: min_samples decides.
    rec = summary_of(recs, scenario({"min_samples": 3}))
    assert rec["recovered"] is True


def test_inconclusive_window_does_not_end_the_clock_but_outside_resets_it(make_rec):
    # Fast at 32-34 s, slow again at 34-36, fast after: recovery counts only from the last outside window.
    slow = lambda t: 2.0 if 20 <= t < 32 or 34 <= t < 36 else 0.1  # noqa: E731
    rec = summary_of(records(make_rec, slow))
    assert rec["recovered"] is True and rec["time_to_recover_s"] == pytest.approx(10.0)  # window [36, 40)


def test_errors_after_the_spike_keep_it_outside(make_rec):
    recs = records(make_rec, lambda t: 0.1, errors_of=lambda t: 20 <= t < 44 and int(t * 10) % 2 == 0)
    rec = summary_of(recs)
    assert rec["time_to_recover_s"] == pytest.approx(18.0)  # window [44, 48) is the first without errors
    assert rec["shed_by_kind"]["http_503"] == rec["shed"] > 0
    assert rec["shed_pct"] == pytest.approx(100.0 * rec["shed"] / rec["requests"])


def test_threshold_target_is_stricter(make_rec):
    recs = records(make_rec, lambda t: 2.0 if 20 <= t < 30 else (0.7 if t < 40 else 0.1))
    assert summary_of(recs)["time_to_recover_s"] == pytest.approx(1.0)  # 0.7 s is within the 1 s alert
    assert summary_of(recs, scenario({"threshold": "target"}))["time_to_recover_s"] == pytest.approx(14.0)


def test_shed_kinds_and_timeouts(make_rec):
    recs = records(make_rec, lambda t: 0.1, end=10)
    base = len(recs)
    recs += [make_rec(900, sent_s=T0 + 25, ok=False, status=429, error_type="overloaded_429"),
             make_rec(901, sent_s=T0 + 25, ok=False, status=200, error_type="overloaded_429", error="Model is overloaded"),
             make_rec(902, sent_s=T0 + 25, ok=False, status=200, error_type="stream_error",
                      error='{"error": {"message": "Model is overloaded", "http_status_code": 422}}'),
             make_rec(903, sent_s=T0 + 25, ok=False, status=200, error_type="stream_error", error="boom"),
             make_rec(904, sent_s=T0 + 25, ok=False, status=0, error_type="timeout", error="timed out"),
             make_rec(905, sent_s=T0 + 25, ok=False, status=0, error_type="cancelled_at_stop", error="stop")]
    rec = summary_of(recs)
    assert rec["shed_by_kind"] == {"http_429": 1, "http_503": 0, "in_stream": 2}
    assert rec["timeouts"] == 1
    assert rec["requests"] == base + 5  # cancelled at stop: neither shed nor counted


def test_queue_peak_and_drain():
    server = [ServerSample(t_s=T0 + t, queue_depth=q, simulated=True)
              for t, q in ((5, 0), (25, 40), (30, 60), (31, 50), (35, 12), (38.5, 1), (40, 0))]
    rec = recovery_summary(scenario(), POLICY, from_records([]), server, window())
    assert rec["reason"] == "no load start or no requests: nothing to judge"
    from tests.unit.scoring.conftest import _make_rec
    rec = summary_of([_make_rec(0, sent_s=T0 + 1)], server=server)
    assert rec["peak_queue_depth"] == 60 and rec["queue_depth_at_spike_end"] == 60
    assert rec["drain_time_s"] == pytest.approx(8.5) and rec["drained"] is True
    rec = summary_of([_make_rec(0, sent_s=T0 + 1)], server=server[:-2])
    assert rec["drain_time_s"] is None and rec["drained"] is False and "did not drain" in rec["queue_note"]
    rec = summary_of([_make_rec(0, sent_s=T0 + 1)])
    assert rec["peak_queue_depth"] is None and "no server" in rec["queue_note"]


def test_closed_loop_stages_report_users(make_rec):
    scn = {"name": "t", "load": {"mode": "closed", "user_stages": [
        {"duration_s": 20, "users": 4}, {"duration_s": 10, "users": 32}, {"duration_s": 30, "users": 4}]},
        "recovery": {"window_s": 4, "min_samples": 10}}
    rec = summary_of(records(make_rec, lambda t: 2.0 if 20 <= t < 37 else 0.1), scn)
    assert rec["capacity_unit"] == "users" and rec["capacity_crossed_at"] == 32
    assert rec["time_to_recover_s"] == pytest.approx(11.0)


def test_named_metrics_and_missing_rows(make_rec):
    recs = records(make_rec, lambda t: 2.0 if 20 <= t < 37 else 0.1)
    rec = summary_of(recs, scenario({"metrics": ["error_rate_pct", "e2e_s"]}))
    assert [r["metric"] for r in rec["rows"]] == ["error_rate_pct"]
    assert any("e2e_s" in n for n in rec["notes"])
    assert rec["status"] == "held"  # no errors at all: the error-rate row never left the SLA
    rec = summary_of(recs, policy={"name": "p", "rows": [POLICY["rows"][2]]})
    assert rec["status"] == "unusable" and "no latency or error-rate row" in rec["reason"]


def test_absent_and_unusable_blocks(make_rec):
    recs = records(make_rec, lambda t: 0.1, end=5)
    scn = scenario()
    del scn["recovery"]
    assert summary_of(recs, scn) is None
    rec = summary_of(recs, scenario(stages=[{"duration_s": 60, "rate_rps": 5}]))
    assert rec["status"] == "unusable" and rec["recovered"] is False and "staged load" in rec["reason"]
    rec = summary_of(recs, scenario({"window_s": -1}))
    assert rec["status"] == "unusable" and "window_s" in rec["reason"]


def test_summarize_carries_the_section(make_rec, make_run):
    recs = records(make_rec, lambda t: 2.0 if 20 <= t < 37 else 0.1)
    scn = {**scenario(), "sla": POLICY}
    s = summarize(make_run(recs, scenario=scn, meta={"load_start_s": T0, "load_end_s": T0 + 60}))
    assert s["recovery"]["time_to_recover_s"] == pytest.approx(11.0)
    assert summarize(make_run(recs, scenario={"name": "t", "sla": POLICY}))["recovery"] is None


@settings(max_examples=25, deadline=None)
@given(recover_at=st.floats(31.0, 50.0), seed=st.integers(0, 1000))
def test_recovery_time_follows_the_last_slow_request(recover_at, seed):
    """Whatever the arrival jitter: never recovered before the last slow send plus a full window, and
    within one step of the window that follows it (dense traffic: every window is conclusive)."""
    from tests.unit.scoring.conftest import _make_rec
    rng = random.Random(seed)
    recs, t, i = [], 0.0, 0
    while t < 60:
        recs.append(_make_rec(i, sent_s=T0 + t, ttft_s=2.0 if 20 <= t < recover_at else 0.1))
        t, i = t + rng.uniform(0.02, 0.08), i + 1
    rec = summary_of(recs)
    last_slow = max(r.sent_s for r in recs if r.ttft_s == 2.0) - T0
    assert rec["recovered"] is True
    assert rec["time_to_recover_s"] + 30 > last_slow
    assert rec["time_to_recover_s"] + 30 <= max(last_slow, 30) + 4 + 1 + 1e-9
