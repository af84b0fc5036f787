"""parse_server_metrics on vLLM/TGI expositions, and MetricsScraper with injected and real HTTP."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest

from harness.telemetry import MetricsScraper, ScrapeError, detect_server, parse_server_metrics
from harness.telemetry.scrape import metrics_url

FIXTURES = Path(__file__).parent / "fixtures"
VLLM = (FIXTURES / "vllm_0.33_metrics.txt").read_text(encoding="utf-8")
TGI = (FIXTURES / "tgi_3.3_metrics.txt").read_text(encoding="utf-8")

TWO_ENGINES = """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 8.0
vllm:num_requests_running{engine="1",model_name="m"} 6.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 2.0
vllm:num_requests_waiting{engine="1",model_name="m"} 5.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.9
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.5
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{engine="0",model_name="m"} 4.0
vllm:num_preemptions_total{engine="1",model_name="m"} 1.0
"""

# Pre-0.10 vLLM: old KV name, only the model_name label (docs/usage/metrics.md shape).
OLD_VLLM = """\
# HELP vllm:num_requests_running Number of requests currently running on GPU.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="m"} 1.0
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="m"} 0.25
"""


def test_vllm_033_exposition():
    s = parse_server_metrics(VLLM, t_s=12.5)
    assert s.t_s == 12.5
    assert s.queue_depth == 3.0
    assert s.running == 12.0
    assert s.kv_usage_frac == pytest.approx(0.4171875)  # a fraction, not percent
    assert s.preemptions_total == 0.0  # present and zero, not None
    assert s.simulated is False
    assert detect_server(VLLM) == "vllm"


def test_vllm_sums_counts_over_engines_and_averages_kv():
    s = parse_server_metrics(TWO_ENGINES, t_s=0.0)
    assert (s.queue_depth, s.running, s.preemptions_total) == (7.0, 14.0, 5.0)
    assert s.kv_usage_frac == pytest.approx(0.7)


def test_vllm_old_kv_name_fallback_and_missing_series_are_none():
    s = parse_server_metrics(OLD_VLLM, t_s=0.0)
    assert s.kv_usage_frac == 0.25 and s.running == 1.0
    assert s.queue_depth is None and s.preemptions_total is None


def test_tgi_exposition():
    s = parse_server_metrics(TGI, t_s=3.0, simulated=True)
    assert detect_server(TGI) == "tgi"
    assert (s.queue_depth, s.running) == (0.0, 3.0)
    assert s.kv_usage_frac is None and s.preemptions_total is None
    assert s.simulated is True


@pytest.mark.parametrize("text", ["", "# TYPE python_info gauge\npython_info{version=\"3.11\"} 1.0\n"])
def test_unknown_exposition_gives_all_none(text):
    s = parse_server_metrics(text, t_s=1.0)
    assert s.t_s == 1.0
    assert (s.queue_depth, s.running, s.kv_usage_frac, s.preemptions_total) == (None,) * 4


@pytest.mark.parametrize("text", [
    'vllm:num_requests_running{engine="0" 12.0\n',
    "tgi_queue_size many\n",
    "<html><body><h1>502 Bad Gateway</h1></body></html>\n",
])
def test_malformed_exposition_raises_one_line_scrape_error(text):
    with pytest.raises(ScrapeError) as ei:
        parse_server_metrics(text, t_s=0.0)
    msg = str(ei.value)
    assert msg.startswith("malformed Prometheus exposition") and "\n" not in msg


def test_metrics_url():
    assert metrics_url("http://h:8000") == "http://h:8000/metrics"
    assert metrics_url("http://h:8000/") == "http://h:8000/metrics"
    assert metrics_url("http://h:8000/metrics") == "http://h:8000/metrics"


def test_scraper_counts_failed_scrapes_and_keeps_going(fake_clock, wait_until):
    calls = []

    def fetch(url):
        calls.append(url)
        fake_clock.advance(0.02)  # 20 ms round trip
        n = len(calls)
        if n == 2:
            raise ConnectionRefusedError("[Errno 111] Connection refused")
        if n == 4:
            return "<html>oops</html>"
        return VLLM

    sc = MetricsScraper("http://127.0.0.1:8000/", interval_s=1.0, clock=fake_clock, fetch=fetch,
                        wait=fake_clock.wait)
    fake_clock.stopped = lambda: sc.stop_requested
    sc.start()
    assert wait_until(lambda: len(sc.samples) >= 6)
    rows = sc.stop()
    assert calls[0] == "http://127.0.0.1:8000/metrics"
    assert sc.errors == 2
    assert sc.last_error.startswith("ScrapeError: malformed")
    assert all(r.running == 12.0 for r in rows)
    t0 = sc.start_s
    # sample time = midpoint of the round trip; ticks 1 and 3 failed and left gaps
    assert [r.t_s - t0 for r in rows[:4]] == pytest.approx([0.01, 2.01, 4.01, 5.01])


def test_scraper_over_real_http(wait_until):
    state = {"status": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = TGI.encode()
            self.send_response(state["status"] if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        sc = MetricsScraper(f"http://127.0.0.1:{srv.server_address[1]}", interval_s=0.02)
        with sc:
            assert wait_until(lambda: len(sc.samples) >= 2)
            state["status"] = 503
            assert wait_until(lambda: sc.errors >= 1)
        assert sc.samples[0].running == 3.0
        assert "503" in sc.last_error
    finally:
        srv.shutdown()
        srv.server_close()
