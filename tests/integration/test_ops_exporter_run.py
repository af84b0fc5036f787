"""LiveExporter during a real short run: Locust appends requests.jsonl, the progress loop polls the
exporter (as the runner will), a scrape mid-run sees traffic, and the final numbers equal the records."""

import threading
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.config import parse_scenario
from harness.load.locust_runner import run_load
from harness.ops.exporter import LiveExporter
from harness.records import REQUESTS_FILE, iter_records
from harness.sim.server import ServeOptions
from harness.sim.testing import running_server

pytestmark = pytest.mark.integration


def scrape(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def val(m, name, **labels):
    return m[(name, tuple(sorted(labels.items())))]


def test_exporter_scraped_during_a_short_run_matches_the_records(tmp_path):
    scn = parse_scenario({"name": "exp", "load": {"api": "openai-chat", "users": 3, "duration_s": 3},
                          "workload": {"prompt_tokens": 32, "output_tokens": 8, "seed": 2}})
    mid_run: list[dict] = []
    with running_server(ServeOptions(flavor="vllm", fixed_ttft_ms=20, fixed_itl_ms=5)) as sim, \
            LiveExporter(0, tmp_path) as exp:
        lock = threading.Lock()

        def progress(line: str) -> None:  # what the runner's 2-second loop will do
            with lock:
                exp.poll()
                exp.update_gauges(queue_depth=1.0, gpu_memory_bytes=2.5e10)
                mid_run.append(scrape(exp.url))

        outcome = run_load(scn, sim.url, "llama-3-8b", tmp_path, echo=progress, progress_every_s=0.5)
        assert outcome.reason == "completed", outcome
        exp.poll()
        final = scrape(exp.url)
    records = list(iter_records(tmp_path / REQUESTS_FILE))
    ok = [r for r in records if r.ok]
    assert len(ok) >= 10
    seen = [val(m, "llm_requests_total", status="ok") for m in mid_run]
    assert any(0 < n < len(ok) for n in seen), seen  # scraped while the run was going
    assert seen == sorted(seen)  # counters only grow
    assert val(final, "llm_requests_total", status="ok") == len(ok)
    cancelled = [r for r in records if r.error_type == "cancelled_at_stop"]  # neither ok nor error, as in scoring
    assert val(final, "llm_requests_total", status="error") == len(records) - len(ok) - len(cancelled)
    assert val(final, "llm_requests_total", status="cancelled") == len(cancelled)
    assert val(final, "llm_request_latency_seconds_count") == len(ok)
    assert val(final, "llm_request_latency_seconds_sum") == sum(r.e2e_s for r in ok)  # same order, same floats
    assert val(final, "llm_time_to_first_token_seconds_sum") == sum(  # a cancelled request's TTFT counts too
        r.ttft_s for r in records if r.ttft_s is not None and (r.ok or r.error_type == "cancelled_at_stop"))
    assert val(final, "llm_tokens_total", kind="output") == sum(r.output_tokens for r in ok) == 8 * len(ok)
    assert val(final, "llm_tokens_total", kind="prompt") == sum(r.prompt_tokens for r in ok)
    assert val(final, "llm_gpu_memory_bytes") == 2.5e10 and val(final, "llm_queue_size") == 1.0
    # TTFT bucket ≤ 0.01 s must be empty: the sim holds every first token for 20 ms
    assert val(final, "llm_time_to_first_token_seconds_bucket", le="0.01") == 0
