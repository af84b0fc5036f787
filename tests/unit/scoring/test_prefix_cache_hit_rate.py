"""metrics.prefix_cache_hit_rate: hits / queries from the server's counters over the scored window."""

import json

import pytest

from harness.records import ServerSample
from harness.scoring import summarize
from harness.scoring.gauges import NO_PREFIX_COUNTERS, prefix_cache_hit_rate
from harness.scoring.metrics import Window

WINDOW = Window(0.0, 20.0, 5.0, 0.0, 5.0, 20.0)


def samples(points, simulated=False):
    return [ServerSample(t, 0.0, 0.0, prefix_cache_queries_total=q, prefix_cache_hits_total=h, simulated=simulated)
            for t, q, h in points]


def test_rate_is_the_counter_increase_from_just_before_the_window_to_its_end():
    # warm-up (before t=5) looked up 1000 tokens with no hit; the window adds 4000 queries, 3000 hits;
    # the scrape after the window end is not counted.
    pts = [(1.0, 500, 0), (4.0, 1000, 0), (6.0, 2000, 600), (12.0, 4000, 2000), (19.5, 5000, 3000),
           (21.0, 9000, 3100)]
    out = prefix_cache_hit_rate(samples(pts), WINDOW)
    assert out["queries_tokens"] == 4000 and out["hits_tokens"] == 3000
    assert out["value"] == pytest.approx(0.75) and out["reason"] is None


def test_a_counter_reset_counts_the_readings_after_it_from_zero():
    pts = [(4.0, 1000, 100), (8.0, 2000, 600), (10.0, 300, 200), (15.0, 1300, 700)]  # restart at ~9 s
    out = prefix_cache_hit_rate(samples(pts), WINDOW)
    assert out["queries_tokens"] == 1000 + 300 + 1000 and out["hits_tokens"] == 500 + 200 + 500


def test_no_counters_no_queries_and_too_few_scrapes_give_a_reason():
    tgi = [ServerSample(t, 1.0, 2.0) for t in (4.0, 10.0, 15.0)]
    out = prefix_cache_hit_rate(tgi, WINDOW)
    assert out["value"] is None and out["reason"] == NO_PREFIX_COUNTERS
    assert prefix_cache_hit_rate([], WINDOW)["reason"] == "no server metrics scraped"
    off = prefix_cache_hit_rate(samples([(4.0, 0, 0), (10.0, 0, 0)]), WINDOW)
    assert off["value"] is None and off["queries_tokens"] == 0 and "no prefix cache queries" in off["reason"]
    one = prefix_cache_hit_rate(samples([(10.0, 100, 50)]), WINDOW)
    assert one["value"] is None and "fewer than two scrapes" in one["reason"]


def test_without_a_scrape_before_the_window_the_first_one_inside_is_the_base():
    out = prefix_cache_hit_rate(samples([(6.0, 100, 0), (9.0, 300, 100)], simulated=True), WINDOW)
    assert out["value"] == pytest.approx(0.5) and out["simulated"] is True


def test_summary_carries_the_hit_rate(make_rec, make_run):
    recs = [make_rec(i, sent_s=0.1 * i) for i in range(200)]
    meta = {"load_start_s": 0.0, "load_end_s": 20.0}
    scen = {"name": "t", "load": {"warmup_s": 5}}
    server = samples([(4.0, 1000, 0), (10.0, 3000, 1500), (19.0, 5000, 3000)])
    s = summarize(make_run(recs, scenario=scen, meta=meta, server=server))
    json.dumps(s, allow_nan=False)
    hr = s["metrics"]["prefix_cache_hit_rate"]
    assert hr["value"] == pytest.approx(0.75) and hr["queries_tokens"] == 4000 and hr["hits_tokens"] == 3000
    s = summarize(make_run(recs, scenario=scen, meta=meta))
    assert s["metrics"]["prefix_cache_hit_rate"]["value"] is None
    assert s["metrics"]["prefix_cache_hit_rate"]["reason"] == "no server metrics scraped"
