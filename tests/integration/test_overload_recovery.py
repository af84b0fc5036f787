"""Overload and recovery end to end: vLLM's queue cap (503 + counter) and the gateway's circuit breaker
over real sockets, then short spikes through `slabench run` on both sim flavors: vLLM queues (nothing
shed), TGI sheds past --max-concurrent-requests, and the breaker sheds more and recovers later.

Real processes on 127.0.0.1, ports from the OS; the three runs go in parallel (11 s of load each).
"""

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness.sim.server import ServeOptions
from harness.sim.testing import running_server

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration
CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 64, "ignore_eos": True}


def post(url, body, stream=False, timeout=30):
    data = json.dumps({**body, "stream": stream}).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_vllm_queue_cap_answers_503_with_vllms_body_and_counts_it():
    with running_server(ServeOptions(flavor="vllm", speed=2.0, max_num_seqs=2, max_num_queued_reqs=4)) as s:
        with ThreadPoolExecutor(10) as ex:
            res = list(ex.map(lambda _: post(s.url + "/v1/chat/completions", CHAT), range(10)))
        codes = sorted(c for c, _ in res)
        assert codes.count(200) >= 4 and codes.count(503) >= 1 and set(codes) <= {200, 503}
        body = json.loads(next(b for c, b in res if c == 503))
        assert body == {"error": {"message": "The engine is currently busy and cannot accept new requests. Please "
                                             "try again later or on a different instance.",
                                  "type": "Service Unavailable", "param": None, "code": 503}}
        metrics = urllib.request.urlopen(s.url + "/metrics", timeout=10).read().decode()
        line = next(x for x in metrics.splitlines()
                    if x.startswith('vllm:admission_rejections_total{model_name="llama-3-8b",reason="max_num_queued_reqs"}'))
        assert float(line.split()[-1]) == codes.count(503)
        assert all(post(s.url + "/v1/chat/completions", CHAT)[0] == 200 for _ in range(2))  # the queue emptied


def test_breaker_trips_on_tgi_in_stream_overload_then_probes_and_closes():
    opts = ServeOptions(flavor="tgi", speed=1.0, max_concurrent_requests=1, max_total_tokens=2048,
                        max_input_tokens=1024, circuit_failure_threshold=2, circuit_recovery_s=0.5)
    long_chat = {**CHAT, "max_tokens": 120}
    with running_server(opts) as s:
        url = s.url + "/v1/chat/completions"
        holder = threading.Thread(target=post, args=(url, long_chat, True))
        holder.start()  # holds the only permit for ~1.5 s
        deadline = time.monotonic() + 10
        while urllib.request.urlopen(s.url + "/metrics", timeout=5).read().find(b"tgi_batch_current_size 1") < 0:
            assert time.monotonic() < deadline, "the long request never started"
        for _ in range(2):  # overloaded inside a 200 stream: the breaker must read the event
            status, body = post(url, CHAT, stream=True)
            assert status == 200 and b'"Model is overloaded"' in body
        status, body = post(url, CHAT, stream=True)
        assert status == 503 and json.loads(body)["error_type"] == "circuit_open"
        holder.join(20)
        deadline = time.monotonic() + 10
        while (status := post(url, CHAT)[0]) == 503:  # open for 0.5 s, then one probe closes it
            assert time.monotonic() < deadline, "the circuit never closed"
        assert status == 200 and post(url, CHAT)[0] == 200


SCENARIO = """
name: {name}
backend: {{type: sim, model: llama-3-8b, gpu: a100-80gb, speed: 4, seed: 7, {backend}}}
load:
  api: openai-chat
  mode: open
  arrival: constant
  stages:
    - {{duration_s: 2, rate_rps: 4}}
    - {{duration_s: 3, rate_rps: 36}}
    - {{duration_s: 6, rate_rps: 4}}
  timeout_s: 30
  drain_timeout_s: 2
workload: {{prompt_tokens: 64, output_tokens: 64}}
sla:
  name: overload
  min_samples: 5
  rows:
    - {{metric: ttft_s, stat: p99, target: 0.25, alert: 0.5}}
    - {{metric: error_rate_pct, target: 0.1, alert: 1.0}}
recovery: {{window_s: 2, min_samples: 5}}
"""
# Capacity about 12 req/s on both flavors (2 sequences, 64 tokens at speed 4): 4 req/s is a third of
# it, the spike 3x. The breaker trips early in the spike and stays open 5 s, past the spike's end.
VARIANTS = {
    "vllm": "flavor: vllm, max_num_seqs: 2",
    "tgi": "flavor: tgi, extra_args: [--max-concurrent-requests, '2']",
    "tgi-breaker": "flavor: tgi, extra_args: [--max-concurrent-requests, '2'], circuit_failure_threshold: 2, "
                   "circuit_recovery_s: 5",
}


@pytest.fixture(scope="module")
def spikes(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("overload")
    procs = {}
    for name, backend in VARIANTS.items():
        (tmp / f"{name}.yaml").write_text(SCENARIO.format(name=f"ovr-{name}", backend=backend))
        procs[name] = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(tmp / f"{name}.yaml"),
                                        "--out", str(tmp / name)], cwd=ROOT, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True)
    out = {}
    for name, p in procs.items():
        log, _ = p.communicate(timeout=150)
        assert p.returncode == 0, log[-2000:]
        out[name] = {"summary": json.loads((tmp / name / "summary.json").read_text()),
                     "backend_log": (tmp / name / "backend.log").read_text()}
    return out


def test_vllm_queues_and_sheds_nothing(spikes):
    rec = spikes["vllm"]["summary"]["recovery"]
    assert rec["shed"] == 0 and rec["shed_pct"] == 0.0 and rec["timeouts"] == 0
    assert rec["peak_queue_depth"] >= 10  # the spike waited in the queue
    assert rec["capacity_crossed_at"] == 36


def test_tgi_sheds_past_max_concurrent_requests(spikes):
    rec = spikes["tgi"]["summary"]["recovery"]
    assert rec["shed_by_kind"]["in_stream"] == rec["shed"] and rec["shed_pct"] > 20
    assert rec["peak_queue_depth"] <= 2  # nothing waits beyond the permits
    assert rec["recovered"] is True and rec["time_to_recover_s"] is not None


def test_breaker_sheds_more_and_recovers_later(spikes):
    plain, breaker = spikes["tgi"]["summary"]["recovery"], spikes["tgi-breaker"]["summary"]["recovery"]
    assert "circuit breaker open" in spikes["tgi-breaker"]["backend_log"]
    assert breaker["shed_by_kind"]["http_503"] > 0
    assert breaker["shed_pct"] > plain["shed_pct"] + 10
    # Open for 5 s from early in the 3 s spike: about 2 s of refusals after it ends (or longer, if a probe fails).
    assert breaker["time_to_recover_s"] is None or breaker["time_to_recover_s"] > plain["time_to_recover_s"] + 1
