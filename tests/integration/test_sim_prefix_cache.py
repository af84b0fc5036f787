"""The live sim's prefix cache over HTTP (127.0.0.1, port 0): requests sharing a long prefix move
vLLM's counters on /metrics, the scraper reads them, and the summary's hit rate comes out of them."""

from __future__ import annotations

import json
import urllib.request

import pytest

from harness.records import ServerSample
from harness.scoring.gauges import prefix_cache_hit_rate
from harness.scoring.metrics import Window
from harness.sim.server import ServeOptions
from harness.sim.testing import running_server
from harness.telemetry import MetricsScraper

PREFIX = " ".join(f"w{i}" for i in range(1024))  # 64 full blocks of the sim's one-word tokens


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200
        return json.loads(r.read())


def scrape(url) -> ServerSample:
    scraper = MetricsScraper(url, interval_s=1.0)
    [s] = scraper.poll_once(0.0)
    return s


def test_shared_prefix_moves_the_vllm_counters_and_gives_the_hit_rate():
    with running_server(ServeOptions(flavor="vllm", speed=20.0, seed=2)) as srv:
        before = scrape(srv.url)
        for k in range(5):  # 1028 tokens each: 1024 shared + 4 of its own
            body = post(srv.url + "/v1/completions", {"prompt": f"{PREFIX} tail{k} a b c", "max_tokens": 2})
            assert body["usage"]["prompt_tokens"] == 1028
        after = scrape(srv.url)
    assert (before.prefix_cache_queries_total, before.prefix_cache_hits_total) == (0.0, 0.0)
    assert after.prefix_cache_queries_total == 5 * 1028
    assert after.prefix_cache_hits_total == 4 * 1024  # the first request filled the cache
    window = Window(0.0, 10.0, 0.0, 0.0, 0.0, 10.0)
    before.t_s, after.t_s = 0.0, 5.0
    rate = prefix_cache_hit_rate([before, after], window)
    assert rate["value"] == pytest.approx(4 * 1024 / (5 * 1028))


def test_chat_requests_with_the_same_system_prompt_hit_it():
    system = {"role": "system", "content": PREFIX}
    with running_server(ServeOptions(flavor="vllm", speed=20.0, seed=2)) as srv:
        for q in ("first question", "second question here"):
            post(srv.url + "/v1/chat/completions",
                 {"messages": [system, {"role": "user", "content": q}], "max_tokens": 2})
        s = scrape(srv.url)
    # the system message renders as 3 header tokens + 1024 words + 1 end-of-turn: 64 whole blocks
    assert s.prefix_cache_hits_total == 64 * 16


def test_caching_off_counts_nothing_and_tgi_exposes_no_counters():
    with running_server(ServeOptions(flavor="vllm", speed=20.0, prefix_caching=False)) as srv:
        for k in range(2):
            post(srv.url + "/v1/completions", {"prompt": f"{PREFIX} {k}", "max_tokens": 2})
        s = scrape(srv.url)
    assert (s.prefix_cache_queries_total, s.prefix_cache_hits_total) == (0.0, 0.0)
    with running_server(ServeOptions(flavor="tgi", speed=20.0, max_total_tokens=4096)) as srv:
        for k in range(2):
            post(srv.url + "/generate", {"inputs": f"{PREFIX} {k}", "parameters": {"max_new_tokens": 2}})
        cache = srv.ctx.engine.sched.cache
        s = scrape(srv.url)
        with urllib.request.urlopen(srv.url + "/metrics", timeout=10) as r:
            text = r.read().decode()
    assert cache.hits_tokens == 1024  # TGI's cache works the same way inside ...
    assert s.prefix_cache_queries_total is None and "prefix" not in text  # ... but TGI has no such metric
