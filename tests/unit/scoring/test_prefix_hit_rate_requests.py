"""metrics.prefix_cache_hit_rate from the cached tokens the server reported per request (the fallback when
it has no prefix-cache counters), and the two record columns it reads through both readers."""

from __future__ import annotations

import json

import numpy as np
import pytest

import harness.scoring.jsonl as J
from harness.records import RecordWriter, ServerSample, iter_records
from harness.runfolder import LineSkips
from harness.scoring import summarize
from harness.scoring.gauges import (
    NO_PREFIX_COUNTERS, SOURCE_COUNTERS, SOURCE_REQUESTS, prefix_hit_rate, request_prefix_hit_rate,
)
from harness.scoring.metrics import Window
from harness.scoring.replay import replay_summary
from harness.scoring.table import from_records

META = {"load_start_s": 0.0, "load_end_s": 20.0}
SCEN = {"name": "t", "load": {"warmup_s": 5}}
WINDOW = Window(0.0, 20.0, 5.0, 0.0, 5.0, 20.0)
COLS = ("server_prompt_tokens", "server_cached_tokens")


def llama(make_rec, i, computed, cached, sent_s=None, **kw):
    """A llama.cpp-style record: timings.prompt_n (computed, cache hits excluded) and cache_n; its usage
    prompt_tokens is the whole prompt."""
    rec = make_rec(i, sent_s=6.0 + 0.1 * i if sent_s is None else sent_s, prompt_tokens=computed + cached, **kw)
    rec.server_prompt_tokens, rec.server_cached_tokens = computed, cached
    return rec


def openai(make_rec, i, prompt, cached, sent_s=None, **kw):
    """A vLLM-style record: usage.prompt_tokens (cached included) and prompt_tokens_details.cached_tokens."""
    rec = make_rec(i, sent_s=6.0 + 0.1 * i if sent_s is None else sent_s, prompt_tokens=prompt, **kw)
    rec.server_cached_tokens = cached
    return rec


def replayed_sessions(make_rec):
    """4 sessions x 4 turns of 2/4/6/8 blocks of 16 tokens, each turn extending the last (as measured on
    llama.cpp: prompt_n stays 32, cache_n grows 0/32/64/96): 192 of 320 prompt tokens per session cached."""
    return [llama(make_rec, 4 * t + s, 32, 32 * t) for t in range(4) for s in range(4)]


def hit_rate(run):
    return summarize(run)["metrics"]["prefix_cache_hit_rate"]


def test_llamacpp_timings_count_computed_plus_cached_tokens(make_rec, make_run):
    hr = hit_rate(make_run(replayed_sessions(make_rec), scenario=SCEN, meta=META))
    assert hr["value"] == pytest.approx(0.6) and hr["source"] == SOURCE_REQUESTS and hr["requests"] == 16
    assert (hr["hits_tokens"], hr["queries_tokens"]) == (4 * 192, 4 * 320) and hr["reason"] is None


def test_with_timings_the_usage_total_is_not_what_is_summed(make_rec):
    # prompt_n + cache_n is the prompt looked up; a usage count beside it (here absent or odd) is not used.
    recs = [llama(make_rec, 0, 20, 60), llama(make_rec, 1, 20, 60)]
    recs[0].prompt_tokens, recs[1].prompt_tokens = None, 999
    t = from_records(recs)
    out = request_prefix_hit_rate(t, np.ones(t.n, bool))
    assert out["value"] == pytest.approx(0.75) and out["queries_tokens"] == 160 and out["requests"] == 2


def test_openai_usage_prompt_tokens_already_include_the_cached_ones(make_rec, make_run):
    recs = [openai(make_rec, i, 100, 80 if i % 2 else 40) for i in range(10)]
    hr = hit_rate(make_run(recs, scenario=SCEN, meta=META))
    assert hr["value"] == pytest.approx(0.6) and hr["queries_tokens"] == 1000 and hr["hits_tokens"] == 600
    assert hr["source"] == SOURCE_REQUESTS and hr["requests"] == 10


def test_mixed_records_count_only_those_that_carry_both_figures(make_rec, make_run):
    recs = [llama(make_rec, 0, 32, 96), openai(make_rec, 1, 100, 50),
            make_rec(2, sent_s=6.2, prompt_tokens=500),  # no cached count (TGI, or a server that did not say)
            openai(make_rec, 3, None, 10),  # cached but no total
            openai(make_rec, 4, 10, 30)]  # more cached than the prompt: an inconsistent report
    hr = hit_rate(make_run(recs, scenario=SCEN, meta=META))
    assert hr["requests"] == 2 and hr["hits_tokens"] == 146 and hr["queries_tokens"] == 228
    assert hr["value"] == pytest.approx(146 / 228)


def test_warmup_and_failed_requests_are_left_out(make_rec, make_run):
    recs = [openai(make_rec, 0, 100, 100, sent_s=1.0),  # warm-up: before the 5 s window start
            openai(make_rec, 1, 100, 100, ok=False),  # failed
            openai(make_rec, 2, 100, 25)]
    hr = hit_rate(make_run(recs, scenario=SCEN, meta=META))
    assert hr["requests"] == 1 and hr["value"] == pytest.approx(0.25)


def test_no_per_request_figures_keep_the_counters_reason(make_rec, make_run):
    recs = [make_rec(i, sent_s=6.0 + 0.1 * i) for i in range(5)]
    hr = hit_rate(make_run(recs, scenario=SCEN, meta=META))
    assert hr["value"] is None and hr["reason"] == "no server metrics scraped"
    assert hr["source"] is None and hr["requests"] is None
    tgi = [ServerSample(t, 1.0, 2.0) for t in (4.0, 10.0, 15.0)]
    hr = hit_rate(make_run(recs, scenario=SCEN, meta=META, server=tgi))
    assert hr["value"] is None and hr["reason"] == NO_PREFIX_COUNTERS
    # Records that carry the fields but looked nothing up give no value either.
    t = from_records([openai(make_rec, 0, 0, 0)])
    assert request_prefix_hit_rate(t, np.ones(1, bool))["value"] is None


def test_counters_are_preferred_when_they_give_a_value(make_rec, make_run):
    recs = replayed_sessions(make_rec)  # per request: 0.6
    server = [ServerSample(t, 0.0, 0.0, prefix_cache_queries_total=q, prefix_cache_hits_total=h)
              for t, q, h in [(4.0, 1000, 0), (10.0, 3000, 1500), (19.0, 5000, 3000)]]
    hr = hit_rate(make_run(recs, scenario=SCEN, meta=META, server=server))
    assert hr["value"] == pytest.approx(0.75) and hr["source"] == SOURCE_COUNTERS and hr["requests"] is None
    # Counters that looked nothing up give no value: the per-request figures take over.
    off = [ServerSample(t, 0.0, 0.0, prefix_cache_queries_total=0, prefix_cache_hits_total=0) for t in (4.0, 10.0)]
    t = from_records(recs)
    hr = prefix_hit_rate(off, WINDOW, t, np.ones(t.n, bool))
    assert hr["value"] == pytest.approx(0.6) and hr["source"] == SOURCE_REQUESTS and hr["reason"] is None


def test_replay_note_names_the_per_request_source(make_rec, make_run):
    meta = {**META, "replay": {"expected_reuse": 0.6, "block_tokens": 16}}
    s = summarize(make_run(replayed_sessions(make_rec), scenario=SCEN, meta=meta))
    rp = s["replay"]
    assert rp["prefix_cache_hit_rate"] == pytest.approx(0.6) and rp["prefix_cache_hit_rate_source"] == SOURCE_REQUESTS
    assert "60%" in rp["note"] and "16 requests reported" in rp["note"] and "unknown" not in rp["note"]
    t = from_records([make_rec(0)])
    none = replay_summary(meta, t, WINDOW, {"value": None, "reason": NO_PREFIX_COUNTERS, "source": None})
    assert "unknown" in none["note"] and "no scored request reported its cached prompt tokens" in none["note"]


# ---------------------------------------------------------------- the columns through both readers

def _write(path, recs):
    with RecordWriter(path) as w:
        for r in recs:
            w.write(r)
    return path


def test_columns_read_alike_by_bulk_and_object_readers_and_score_alike(make_rec, make_run, tmp_path):
    recs = replayed_sessions(make_rec) + [openai(make_rec, 20, 100, 50), make_rec(21, sent_s=7.0)]
    p = _write(tmp_path / "requests.jsonl", recs)
    bulk, ref = J.load_table(p), from_records(list(iter_records(p)))
    for k in COLS:
        assert np.array_equal(getattr(bulk, k), getattr(ref, k), equal_nan=True), k
    assert bulk.server_cached_tokens[:8].tolist() == [0, 0, 0, 0, 32, 32, 32, 32]
    assert bulk.server_prompt_tokens[16] != bulk.server_prompt_tokens[16] and np.isnan(bulk.server_cached_tokens[17])
    run = make_run(scenario=SCEN, meta=META)
    run.table = bulk
    assert hit_rate(run) == hit_rate(make_run(recs, scenario=SCEN, meta=META))
    assert hit_rate(run)["requests"] == 17


def test_old_lines_without_the_keys_read_as_not_said(make_rec, tmp_path):
    d = json.loads(make_rec(0).to_json())
    for k in ("server_prompt_tokens", "server_cached_tokens", "server_output_tokens"):
        d.pop(k)
    p = tmp_path / "requests.jsonl"
    p.write_text(json.dumps(d, separators=(",", ":")) + "\n")
    t, ref = J.load_table(p), from_records(list(iter_records(p)))
    assert t.n == ref.n == 1
    assert np.isnan(t.server_cached_tokens[0]) and np.isnan(ref.server_cached_tokens[0])
    assert np.isnan(t.server_prompt_tokens[0]) and np.isnan(ref.server_prompt_tokens[0])


@pytest.mark.parametrize("key, value, why", [("server_cached_tokens", -3, "'server_cached_tokens' is negative"),
                                             ("server_prompt_tokens", 1e13, "'server_prompt_tokens' is out of range")])
def test_a_bad_count_skips_the_line_for_the_same_reason_on_both_paths(make_rec, tmp_path, key, value, why):
    bad, good = make_rec(0), make_rec(1)
    setattr(bad, key, value)
    p = _write(tmp_path / "requests.jsonl", [bad, good])
    bulk, objs = LineSkips("requests.jsonl"), LineSkips("requests.jsonl")
    assert J.load_table(p, (), bulk).n == 1 and len(list(iter_records(p, objs))) == 1
    assert (bulk.count, bulk.first) == (objs.count, objs.first) and why in str(bulk.first)
