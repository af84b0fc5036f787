"""cancelled_at_stop records: neither successes nor server errors. They never raise the error rate nor
count as completed; their TTFT counts only when the first token came; the summary counts them apart."""

import json

from hypothesis import given, settings, strategies as st

from harness.records import RequestRecord
from harness.scoring import summarize
from harness.scoring.metrics import cancelled_mask, error_summary, rates, table_distributions
from harness.scoring.table import from_records

import numpy as np


def cancelled(i, sent_s, ttft_s=None, tokens=0, scheduled_s=None):
    return RequestRecord(request_id=f"c{i}", api="openai-chat", sent_s=sent_s, end_s=sent_s + 5, status=200,
                         ok=False, ttft_s=ttft_s, e2e_s=5.0, output_tokens=tokens, error_type="cancelled_at_stop",
                         error="still in flight when the load stopped", scheduled_s=scheduled_s,
                         first_token_s=None if ttft_s is None else sent_s + ttft_s)


META = {"load_start_s": 0.0, "load_end_s": 10.0}


def test_cancelled_requests_do_not_raise_the_error_rate_or_the_throughput(make_rec, make_run):
    ok = [make_rec(i, sent_s=i * 0.1) for i in range(18)]
    err = [make_rec(90, sent_s=2.0, ok=False), make_rec(91, sent_s=3.0, ok=False)]
    base = summarize(make_run(ok + err, meta=META))
    s = summarize(make_run(ok + err + [cancelled(1, 9.0, ttft_s=0.2, tokens=3), cancelled(2, 9.5)], meta=META))
    assert s["rates"]["error_rate_pct"] == base["rates"]["error_rate_pct"] == 10.0  # 2 of 20 finished
    assert s["rates"]["request_rate_rps"] == base["rates"]["request_rate_rps"]
    assert s["rates"]["output_token_rate_tps"] == base["rates"]["output_token_rate_tps"]  # tokens so far: not output
    assert s["goodput"]["scored_requests"] == 20 and s["goodput"]["slo_attainment_pct"] == \
        base["goodput"]["slo_attainment_pct"]
    assert s["rates"]["cancelled_at_stop"] == 2 and s["rates"]["attempted_rate_rps"] == 22 / 10
    c = s["counts"]
    assert (c["total"], c["ok"], c["errors"], c["cancelled_at_stop"], c["scored_cancelled_at_stop"]) == (22, 18, 2, 2, 2)
    assert c["ok"] + c["errors"] + c["cancelled_at_stop"] == c["total"]
    e = s["errors"]
    assert e["scored_errors"] == 2 and "cancelled_at_stop" not in e["by_type"] and e["cancelled_at_stop"] == 2
    assert "cancelled_at_stop" not in e["all_run_by_type"] and e["all_run_cancelled_at_stop"] == 2
    assert any("cancelled_at_stop" in n and "drain_timeout_s" in n for n in s["notes"])
    json.dumps(s, allow_nan=False)


def test_ttft_counts_only_when_the_first_token_came(make_rec, make_run):
    ok = [make_rec(i, sent_s=i * 0.1, ttft_s=0.1) for i in range(5)]
    s = summarize(make_run(ok + [cancelled(1, 9.0, ttft_s=0.7, tokens=2), cancelled(2, 9.1)], meta=META))
    m = s["metrics"]
    assert m["ttft_s"]["n"] == 6 and abs(m["ttft_s"]["max"] - 0.7) < 1e-9  # the cut-off stream's TTFT is real
    assert m["e2e_s"]["n"] == 5 and m["tpot_s"]["n"] == 5 and m["itl_s"]["n"] == 10  # not complete: not in these
    assert s["metrics"]["concurrency"]["max"] >= 2  # they were in flight


def test_open_loop_ttft_from_the_schedule_takes_the_same_cancelled_requests(make_rec):
    recs = [make_rec(0, sent_s=1.0, scheduled_s=0.99), cancelled(1, 2.0, ttft_s=0.5, scheduled_s=1.9),
            cancelled(2, 3.0, scheduled_s=2.95)]
    t = from_records(recs)
    d = table_distributions(t, np.ones(t.n, dtype=bool))
    assert np.allclose(sorted(d["ttft_from_schedule_s"]), [0.11, 0.6])
    assert np.allclose(d["e2e_from_schedule_s"], [0.13]) and len(d["schedule_lag_s"]) == 3


def test_all_cancelled_means_no_error_rate_not_a_hundred_percent():
    r = rates([cancelled(1, 1.0), cancelled(2, 2.0)], 10.0)
    assert r["error_rate_pct"] is None and r["cancelled_at_stop"] == 2 and r["request_rate_rps"] == 0


def test_list_error_summary_counts_cancelled_apart(make_rec):
    recs = [make_rec(1, ok=False), cancelled(2, 1.0)]
    out = error_summary(recs, recs)
    assert out["all_run_by_type"] == {"overloaded_503": 1} and out["all_run_cancelled_at_stop"] == 1


@settings(max_examples=60, deadline=None)
@given(kinds=st.lists(st.sampled_from(["ok", "err", "cancel", "cancel_ttft"]), max_size=40))
def test_counts_always_add_up_and_cancelled_never_moves_the_error_rate(kinds):
    from tests.unit.scoring.conftest import _make_rec, _make_run

    recs = []
    for i, k in enumerate(kinds):
        sent = i * 0.2
        recs.append(_make_rec(i, sent_s=sent) if k == "ok" else _make_rec(i, sent_s=sent, ok=False) if k == "err"
                    else cancelled(i, sent, ttft_s=0.3 if k == "cancel_ttft" else None, tokens=1))
    t = from_records(recs)
    assert int(cancelled_mask(t).sum()) == sum(k.startswith("cancel") for k in kinds)
    s = summarize(_make_run(recs, meta=META))
    c = s["counts"]
    assert c["ok"] + c["errors"] + c["cancelled_at_stop"] == c["total"] == len(kinds)
    finished = [k for k in kinds if k in ("ok", "err")]
    want = 100.0 * finished.count("err") / len(finished) if finished else None
    got = s["rates"]["error_rate_pct"]
    assert (got is None and want is None) or abs(got - want) < 1e-9
    assert s["metrics"]["ttft_s"]["n"] == kinds.count("ok") + kinds.count("cancel_ttft")


def test_the_per_second_error_series_leaves_cancelled_requests_out(make_rec):
    from harness.scoring.metrics import Window
    from harness.scoring.timeseries import table_timeseries

    recs = [make_rec(i, sent_s=i * 0.5) for i in range(6)] + [make_rec(90, sent_s=1.0, ok=False),
                                                             cancelled(1, 4.0, ttft_s=0.2, tokens=2), cancelled(2, 4.5)]
    w = Window(0.0, 10.0, 0.0, 0.0, 0.0, 10.0)
    ts = table_timeseries(from_records(recs), [], [], w)
    assert sum(ts["errors"]) == 1  # the one failed request; the two cut off at stop are not errors
    assert sum(ts["cancelled_at_stop"]) == 2 and "cancelled_at_stop" in ts["columns"]
    assert ts["cancelled_at_stop"][9] == 2  # counted where they ended (sent + 5 s)
    assert "cancelled_at_stop" not in table_timeseries(from_records(recs[:7]), [], [], w)  # none: no column
