"""LiveExporter: records appended to requests.jsonl → llm_* series; scraped over HTTP, numbers exact."""

import math
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.ops.exporter import EXPOSED_SAMPLE_NAMES, LiveExporter
from harness.records import REQUESTS_FILE, GpuSample, RecordWriter, RequestRecord, ServerSample


def rec(i, ok=True, ttft=0.05, e2e=0.4, prompt=100, out=20, itl=(0.01, 0.02, 0.03)):
    return RequestRecord(request_id=f"r{i}", api="openai-chat", sent_s=10.0 + i, end_s=10.0 + i + e2e,
                         status=200 if ok else 500, ok=ok, ttft_s=ttft if ok else None, e2e_s=e2e,
                         itl_s=list(itl) if ok else [], prompt_tokens=prompt, output_tokens=out if ok else 0,
                         error_type=None if ok else "http_5xx")


def scrape(exp) -> dict:
    with urllib.request.urlopen(exp.url, timeout=5) as r:
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = s.name + ("{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}" if s.labels else "")
            out[key] = s.value
    return out


@pytest.fixture
def exporter(tmp_path):
    exp = LiveExporter(0, tmp_path)
    exp.start()
    yield exp
    exp.stop()


def test_scraped_numbers_match_the_records_exactly(exporter, tmp_path):
    records = [rec(0, ttft=0.031, e2e=0.42), rec(1, ttft=0.72, e2e=1.3, prompt=333, out=7),
               rec(2, ok=False, e2e=0.002), rec(3, ttft=0.5, e2e=0.5, out=1, itl=())]
    with RecordWriter(tmp_path / REQUESTS_FILE) as w:
        for r in records:
            w.write(r)
    assert exporter.poll() == 4
    m = scrape(exporter)
    ok = [r for r in records if r.ok]
    assert m["llm_requests_total{status=ok}"] == 3
    assert m["llm_requests_total{status=error}"] == 1
    assert m["llm_request_latency_seconds_count"] == len(ok)
    assert m["llm_request_latency_seconds_sum"] == sum(r.e2e_s for r in ok)
    assert m["llm_time_to_first_token_seconds_count"] == 3
    assert m["llm_time_to_first_token_seconds_sum"] == sum(r.ttft_s for r in ok)
    assert m["llm_tokens_total{kind=prompt}"] == sum(r.prompt_tokens for r in ok)
    assert m["llm_tokens_total{kind=output}"] == sum(r.output_tokens for r in ok)
    tpots = [r.tpot_s for r in ok if r.tpot_s is not None]
    assert m["llm_time_per_output_token_seconds_count"] == len(tpots) == 2
    assert m["llm_time_per_output_token_seconds_sum"] == sum(tpots)
    gaps = [g for r in ok for g in r.itl_s]
    assert m["llm_inter_token_latency_seconds_count"] == len(gaps)
    # bucket boundaries: e2e 0.5 lands in le=0.5 (inclusive), 1.3 only from le=1.5
    assert m["llm_request_latency_seconds_bucket{le=0.5}"] == 2
    assert m["llm_request_latency_seconds_bucket{le=1.0}"] == 2
    assert m["llm_request_latency_seconds_bucket{le=1.5}"] == 3
    # gauges stay NaN until telemetry reports
    assert math.isnan(m["llm_queue_size"]) and math.isnan(m["llm_gpu_memory_bytes"])


def test_poll_reads_only_new_complete_lines(exporter, tmp_path):
    path = tmp_path / REQUESTS_FILE
    assert exporter.poll() == 0  # no file yet
    path.write_text(rec(0).to_json() + "\n" + rec(1).to_json()[:25], encoding="utf-8")  # torn second line
    assert exporter.poll() == 1
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(rec(1).to_json()[25:] + "\n" + "not json\n" + rec(2, ok=False).to_json() + "\n")
    assert exporter.poll() == 2  # the completed line and the next one; junk skipped
    assert exporter.poll() == 0
    m = scrape(exporter)
    assert m["llm_requests_total{status=ok}"] == 2 and m["llm_requests_total{status=error}"] == 1
    assert exporter.records_seen == 3


def test_gauges_from_values_and_from_telemetry_samples(exporter):
    exporter.update_gauges(queue_depth=7, gpu_memory_bytes=None)
    m = scrape(exporter)
    assert m["llm_queue_size"] == 7 and math.isnan(m["llm_gpu_memory_bytes"])
    gpu = [GpuSample(t_s=1, gpu_index=0, name="x", mem_used_bytes=100, util_gpu_pct=10),
           GpuSample(t_s=2, gpu_index=0, name="x", mem_used_bytes=300, util_gpu_pct=50),
           GpuSample(t_s=2, gpu_index=1, name="x", mem_used_bytes=200, util_gpu_pct=70)]
    exporter.update_from_samples(gpu, ServerSample(t_s=2, queue_depth=3))
    m = scrape(exporter)
    assert m["llm_gpu_memory_bytes"] == 500  # latest per GPU, summed
    assert m["llm_gpu_utilization_percent"] == 60  # mean of the latest
    assert m["llm_queue_size"] == 3


def test_every_declared_name_is_exposed_and_nothing_global(tmp_path, exporter):
    (tmp_path / REQUESTS_FILE).write_text(rec(0).to_json() + "\n", encoding="utf-8")
    exporter.poll()
    names = {k.split("{")[0] for k in scrape(exporter)}
    assert EXPOSED_SAMPLE_NAMES <= names
    from prometheus_client import REGISTRY
    assert REGISTRY.get_sample_value("llm_requests_total", {"status": "ok"}) is None


def test_stop_releases_the_port(tmp_path):
    exp = LiveExporter(0, tmp_path)
    exp.start()
    url = exp.url
    exp.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)
    again = LiveExporter(0, tmp_path)  # two exporters do not collide on names (own registries)
    with again:
        assert scrape(again)["llm_requests_total{status=ok}"] == 0


def test_gauges_from_a_telemetry_session_shape(exporter):
    from types import SimpleNamespace
    gpu = SimpleNamespace(samples=[GpuSample(t_s=i, gpu_index=0, name="x", mem_used_bytes=i * 10) for i in range(100)])
    session = SimpleNamespace(gpu=gpu, scraper=SimpleNamespace(samples=[ServerSample(t_s=1, queue_depth=9)]))
    exporter.update_from_telemetry(session)
    m = scrape(exporter)
    assert m["llm_gpu_memory_bytes"] == 990 and m["llm_queue_size"] == 9
    exporter.update_from_telemetry(SimpleNamespace(gpu=None, scraper=None))  # no telemetry: unchanged
    assert scrape(exporter)["llm_queue_size"] == 9


def test_cancelled_at_stop_is_neither_ok_nor_error(exporter, tmp_path):
    """As scoring's cancelled_mask: a request cut off at stop gets status="cancelled", never "error"
    (the shipped alert's error rate divides by ok + error only), and only its TTFT is a measurement."""
    cut = RequestRecord(request_id="c1", api="openai-chat", sent_s=20.0, end_s=30.0, status=200, ok=False,
                        ttft_s=0.3, e2e_s=10.0, itl_s=[0.01, 0.02], prompt_tokens=50, output_tokens=2,
                        error_type="cancelled_at_stop", error="still in flight when the load stopped")
    early = RequestRecord(request_id="c2", api="openai-chat", sent_s=21.0, end_s=30.0, status=0, ok=False,
                          e2e_s=9.0, error_type="cancelled_at_stop", error="still in flight when the load stopped")
    with RecordWriter(tmp_path / REQUESTS_FILE) as w:
        for r in (rec(0, ttft=0.05), rec(1, ok=False), cut, early):
            w.write(r)
    assert exporter.poll() == 4
    m = scrape(exporter)
    assert (m["llm_requests_total{status=ok}"], m["llm_requests_total{status=error}"],
            m["llm_requests_total{status=cancelled}"]) == (1, 1, 2)
    assert m["llm_time_to_first_token_seconds_count"] == 2 and m["llm_time_to_first_token_seconds_sum"] == 0.35
    assert m["llm_request_latency_seconds_count"] == 1 and m["llm_inter_token_latency_seconds_count"] == 3
    assert m["llm_tokens_total{kind=output}"] == 20 and m["llm_tokens_total{kind=prompt}"] == 100
    # The error-rate series the alerts and dashboard use: 1 error of 2 finished = 50 %, not 1 of 4.
    from harness.ops.alerts import error_rate_expr
    expr = error_rate_expr()
    assert 'llm_requests_total{status=~"ok|error"}' in expr and 'llm_requests_total{status="error"}' in expr
    finished = sum(m[f"llm_requests_total{{status={s}}}"] for s in ("ok", "error"))
    assert 100 * m["llm_requests_total{status=error}"] / finished == 50.0


def test_a_fresh_exporter_shows_every_status_at_zero(exporter):
    m = scrape(exporter)
    assert {k for k in m if k.startswith("llm_requests_total{")} == {
        "llm_requests_total{status=ok}", "llm_requests_total{status=error}", "llm_requests_total{status=cancelled}"}
