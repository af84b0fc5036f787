"""Run validity: which runs measured nothing (invalid, exit 2) and which did (valid)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.records import RequestRecord
from harness.scoring import summarize
from harness.scoring.table import from_records
from harness.scoring.validity import run_validity


def rec(i, ok=True, status=200, error_type=None, sent_s=1.0):
    return RequestRecord(request_id=str(i), api="openai-chat", sent_s=sent_s, end_s=sent_s + 0.5, status=status,
                         ok=ok, ttft_s=0.1 if ok else None, e2e_s=0.5 if ok else None, output_tokens=4 if ok else 0,
                         error_type=error_type)


def validity(records, meta=None, scored=None, problems=None):
    table = from_records(records)
    mask = np.ones(table.n, bool) if scored is None else np.asarray(scored, bool)
    return run_validity(meta or {}, table, mask, problems)


def test_a_run_with_successes_is_valid():
    v = validity([rec(0), rec(1, ok=False, status=500, error_type="http_5xx")])
    assert v == {"valid": True, "reasons": []}


def test_no_records_is_invalid():
    v = validity([])
    assert not v["valid"] and v["reasons"] == ["no request was recorded: nothing was measured"]


def test_every_request_unauthorized_names_the_flag():
    v = validity([rec(i, ok=False, status=401, error_type="http_4xx") for i in range(5)])
    assert not v["valid"] and "--api-key-env" in v["reasons"][0] and "401" in v["reasons"][0]


def test_no_success_lists_what_failed():
    recs = [rec(i, ok=False, status=0, error_type="connect") for i in range(3)] + [
        rec(9, ok=False, status=503, error_type="overloaded_503")]
    v = validity(recs)
    assert not v["valid"] and "connect x3" in v["reasons"][0] and "HTTP 503 x1" in v["reasons"][0]


def test_nothing_in_the_scored_window_is_invalid():
    v = validity([rec(0), rec(1)], scored=[False, False])
    assert not v["valid"] and "scored window" in v["reasons"][0]


def test_runner_reasons_and_reader_problems_come_first_and_once():
    v = validity([rec(0)], meta={"invalid_reasons": ["load ended early: x", "load ended early: x"]},
                 problems=["requests.jsonl unreadable"])
    assert v == {"valid": False, "reasons": ["load ended early: x", "requests.jsonl unreadable"]}


def test_open_loop_that_did_not_deliver_its_load_is_invalid():
    meta = {"open_loop": {"scheduled": 1000, "sent": 60, "not_sent": 940}}
    v = validity([rec(0)], meta=meta)
    assert not v["valid"] and "940 of 1000" in v["reasons"][0] and "max_in_flight" in v["reasons"][0]
    # A few due in the run's last instant are tolerated.
    assert validity([rec(0)], meta={"open_loop": {"scheduled": 1000, "sent": 995, "not_sent": 5}})["valid"]


def test_summary_carries_validity():
    s = summarize(__import__("harness.records", fromlist=["RunResult"]).RunResult(
        run_dir=None, scenario={"name": "t"}, records=[], gpu_samples=[], server_samples=[], meta={}))
    assert s["validity"]["valid"] is False


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from([0, 200, 401, 403, 429, 500, 503])), max_size=20),
       st.lists(st.booleans(), max_size=20))
def test_valid_exactly_when_a_scored_request_could_exist(flags, scored_bits):
    records = [rec(i, ok=ok, status=200 if ok else status or 0, error_type=None if ok else "x")
               for i, (ok, status) in enumerate(flags)]
    scored = (scored_bits + [True] * len(records))[:len(records)]
    v = validity(records, scored=scored)
    any_ok = any(ok for ok, _ in flags)
    # Valid needs records, at least one success and at least one scored request; every reason is one line.
    assert v["valid"] == (bool(records) and any_ok and any(scored))
    assert all("\n" not in r for r in v["reasons"])
