"""Client against server: overhead over the server's own timings, requested vs actual lengths, and the new
record columns read alike by the bulk and the object reader (old lines without them included)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import harness.scoring.jsonl as J
from harness.records import RecordWriter, iter_records
from harness.runfolder import LineSkips
from harness.scoring import summarize
from harness.scoring.overhead import DECODE_OVERHEAD_P99_S, client_overhead
from harness.scoring.table import from_records
from tests.fuzzing.run_folders import request_lines

NEW = ("requested_prompt_tokens", "requested_output_tokens", "server_prompt_s", "server_decode_s",
       "server_prompt_tokens", "server_cached_tokens")


def timed(make_rec, i, server_prompt_s=0.08, decode_extra_s=0.001, ttft_s=0.1, **kw):
    """An ok request (ttft 100 ms, 2 gaps of 10 ms) whose server says its prompt took `server_prompt_s` and
    its generation the client's decode time less `decode_extra_s`."""
    rec = make_rec(i, sent_s=0.1 * i, ttft_s=ttft_s, **kw)
    rec.server_prompt_s = server_prompt_s
    rec.server_decode_s = (rec.e2e_s - rec.ttft_s) - decode_extra_s
    return rec


def test_overhead_percentiles_are_client_minus_server(make_rec, make_run):
    recs = [timed(make_rec, i, server_prompt_s=0.1 - 0.001 * (i % 10 + 1)) for i in range(100)]
    s = summarize(make_run(recs))
    co = s["metrics"]["client_overhead"]
    assert co["n"] == 100 and co["ttft_below_server_prompt"] == 0 and not co["client_bound"]
    assert co["ttft_overhead_s"]["min"] == pytest.approx(0.001) and co["ttft_overhead_s"]["max"] == pytest.approx(0.010)
    assert co["ttft_overhead_s"]["p50"] == pytest.approx(0.0055)
    assert co["decode_overhead_s"]["p99"] == pytest.approx(0.001)
    assert not any("overhead" in n or "server's own prompt time" in n for n in s["notes"])


def test_a_decode_overhead_p99_over_the_limit_says_the_client_set_the_pace(make_rec, make_run):
    recs = [timed(make_rec, i, decode_extra_s=0.05 if i % 10 == 0 else 0.001) for i in range(100)]
    s = summarize(make_run(recs))
    co = s["metrics"]["client_overhead"]
    assert co["decode_overhead_s"]["p99"] > DECODE_OVERHEAD_P99_S and co["client_bound"]
    assert any(n.startswith("client decode overhead p99 50.0 ms > 10 ms") and "not the server" in n
               for n in s["notes"])


def test_a_client_ttft_below_the_servers_prompt_time_is_counted_and_noted(make_rec, make_run):
    recs = [timed(make_rec, i, server_prompt_s=0.15 if i < 3 else 0.05) for i in range(20)]
    s = summarize(make_run(recs))
    assert s["metrics"]["client_overhead"]["ttft_below_server_prompt"] == 3
    assert any(n.startswith("3 of 20 requests had a client TTFT below the server's own prompt time") for n in s["notes"])


def test_no_server_timings_no_overhead_section(make_rec, make_run):
    s = summarize(make_run([make_rec(i, sent_s=0.1 * i) for i in range(10)]))
    assert s["metrics"]["client_overhead"] is None


def test_only_ok_scored_requests_with_timings_count(make_rec, make_run):
    recs = [timed(make_rec, i) for i in range(5)] + [make_rec(9, sent_s=0.3, ok=False)]
    recs[0].server_prompt_s = None  # a server that did not say for this one
    assert client_overhead(from_records(recs), np.ones(6, dtype=bool))["n"] == 4


def test_requested_vs_actual_lengths_with_the_calibration_echoed(make_rec, make_run):
    recs = [make_rec(i, sent_s=0.1 * i, prompt_tokens=110 + (i % 3), requested_prompt_tokens=100,
                     requested_output_tokens=3) for i in range(30)]
    meta = {"prompt_calibration": {"status": "measured", "api": "openai-chat", "tokens_per_word": 1.1,
                                   "template_tokens": 9, "probe_output_tokens": 2, "secret": "not echoed"}}
    s = summarize(make_run(recs, meta=meta))
    tl = s["metrics"]["token_lengths"]
    assert tl["prompt"] == {"n": 30, "requested_mean": 100.0, "actual_mean": 111.0, "ratio_mean": pytest.approx(1.11),
                            "ratio_p50": pytest.approx(1.11), "diff_mean": 11.0, "diff_p50": 11.0}
    assert tl["output"]["ratio_mean"] == 1.0 and tl["output"]["n"] == 30
    assert tl["calibration"]["template_tokens"] == 9 and "secret" not in tl["calibration"]
    note = next(n for n in s["notes"] if n.startswith("prompts were +11 % off the requested length"))
    assert "prompt calibration measured" in note and "calibrate_prompt_tokens: on" not in note


def test_uncalibrated_prompts_off_by_more_than_5_pct_suggest_calibration(make_rec, make_run):
    recs = [make_rec(i, sent_s=0.1 * i, prompt_tokens=70, requested_prompt_tokens=100) for i in range(10)]
    s = summarize(make_run(recs))
    note = next(n for n in s["notes"] if n.startswith("prompts were -30 % off"))
    assert "not recorded" in note and "workload.calibrate_prompt_tokens: on" in note
    recs = [make_rec(i, sent_s=0.1 * i, prompt_tokens=104, requested_prompt_tokens=100) for i in range(10)]
    assert not any(n.startswith("prompts were") for n in summarize(make_run(recs))["notes"])  # within 5 %


def test_short_outputs_are_noted(make_rec, make_run):
    recs = [make_rec(i, sent_s=0.1 * i, requested_output_tokens=6) for i in range(10)]  # 3 tokens each
    s = summarize(make_run(recs))
    assert s["metrics"]["token_lengths"]["output"]["diff_p50"] == -3.0
    assert any(n.startswith("outputs were -50 % off the requested length") for n in s["notes"])


def test_no_requested_lengths_no_lengths_section(make_rec, make_run):
    assert summarize(make_run([make_rec(i, sent_s=0.1 * i) for i in range(5)]))["metrics"]["token_lengths"] is None


# ---------------------------------------------------------------- the columns through both readers

def _write(tmp: Path, recs) -> Path:
    p = tmp / "requests.jsonl"
    with RecordWriter(p) as w:
        for r in recs:
            w.write(r)
    return p


def test_new_columns_read_alike_by_bulk_and_object_readers(make_rec, tmp_path):
    recs = [timed(make_rec, i, requested_prompt_tokens=100 + i, requested_output_tokens=3) for i in range(5)]
    recs[1].server_prompt_s = None
    p = _write(tmp_path, recs)
    bulk, ref = J.load_table(p), from_records(list(iter_records(p)))
    for k in NEW:
        assert np.array_equal(getattr(bulk, k), getattr(ref, k), equal_nan=True), k
    assert bulk.requested_prompt_tokens.tolist() == [100, 101, 102, 103, 104] and np.isnan(bulk.server_prompt_s[1])


def test_old_lines_without_the_new_keys_read_as_not_recorded(make_rec, tmp_path):
    d = json.loads(make_rec(0).to_json())
    for k in ("cap_wait_s", "reconnects", "requested_prompt_tokens", "server_prompt_s", "server_decode_s",
              "server_prompt_tokens", "server_cached_tokens", "server_output_tokens"):
        d.pop(k)
    p = tmp_path / "requests.jsonl"
    p.write_text(json.dumps(d, separators=(",", ":")) + "\n")
    t = J.load_table(p)
    assert t.n == 1 and np.isnan(t.server_prompt_s[0]) and np.isnan(t.requested_prompt_tokens[0])


@pytest.mark.parametrize("key, value, why", [("server_prompt_s", -0.5, "'server_prompt_s' is negative"),
                                             ("requested_prompt_tokens", 1e13, "'requested_prompt_tokens' is out of range")])
def test_a_bad_value_skips_the_line_for_the_same_reason_on_both_paths(make_rec, tmp_path, key, value, why):
    good = make_rec(1)
    bad = make_rec(0)
    setattr(bad, key, value)
    p = _write(tmp_path, [bad, good])
    bulk, objs = LineSkips("requests.jsonl"), LineSkips("requests.jsonl")
    assert J.load_table(p, (), bulk).n == 1 and len(list(iter_records(p, objs))) == 1
    assert (bulk.count, bulk.first) == (objs.count, objs.first) and why in str(bulk.first)


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(request_lines(value_damage_only=True))
def test_damaged_values_in_the_new_columns_agree_on_both_paths(data):
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "requests.jsonl"
        p.write_bytes(data)
        table, ref = J.load_table(p), from_records(list(iter_records(p)))
    for k in NEW:
        assert np.array_equal(getattr(table, k), getattr(ref, k), equal_nan=True), k


def test_tokens_delivered_in_bunches_show_as_a_negative_decode_overhead(make_rec, make_run):
    # The fake llama-server before TCP_NODELAY: the first token came ~20 ms late, the rest bunched behind it.
    recs = [timed(make_rec, i, decode_extra_s=-0.021) for i in range(50)]
    s = summarize(make_run(recs))
    co = s["metrics"]["client_overhead"]
    assert co["delivery_bunched"] and not co["client_bound"]
    assert any(n.startswith("client decode time is 21.0 ms shorter than the server's generation time at p50")
               for n in s["notes"])
    assert not summarize(make_run([timed(make_rec, i) for i in range(50)]))["metrics"]["client_overhead"][
        "delivery_bunched"]


def test_prompts_shorter_than_the_chat_template_are_counted_apart(make_rec, make_run):
    # SmolLM2's chat template is 30 tokens: a 20-token prompt cannot exist, it goes out as one word (31).
    recs = [make_rec(i, sent_s=0.1 * i, requested_prompt_tokens=r, prompt_tokens=max(r, 31))
            for i, r in enumerate([20, 25, 40, 50, 60] * 4)]
    meta = {"prompt_calibration": {"status": "measured", "api": "openai-chat", "tokens_per_word": 1.0,
                                   "template_tokens": 30}}
    s = summarize(make_run(recs, meta=meta))
    tl = s["metrics"]["token_lengths"]
    assert tl["below_floor"] == 8 and tl["floor_tokens"] == 31.0
    assert tl["prompt"]["ratio_mean"] > 1.1 and tl["prompt_attainable"]["ratio_mean"] == 1.0
    assert tl["prompt_attainable"]["n"] == 12
    assert any(n.startswith("8 of 20 prompts asked for fewer tokens than this server's chat template and one word (31)")
               for n in s["notes"])
    assert not any(n.startswith("prompts were") for n in s["notes"])  # the attainable ones hit their length
    # Without a calibration nothing is known of the floor: the plain ratio is judged.
    s = summarize(make_run(recs))
    assert s["metrics"]["token_lengths"]["below_floor"] == 0 and any(n.startswith("prompts were +") for n in s["notes"])
