"""Wire protocol of the simulated server (vLLM and TGI flavors) over real sockets on 127.0.0.1."""

import asyncio
import gc
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.sim.common import FaultConfig
from harness.sim.server import ServeOptions
from harness.sim.testing import running_server
from tests.procs import wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def http(url, body=None, method=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def sse(raw, prefix="data: "):
    events = raw.split("\n\n")
    assert events[-1] == ""
    assert all(e.startswith(prefix) for e in events[:-1]), events
    return [e[len(prefix):] for e in events[:-1]]


@pytest.fixture(scope="module")
def vllm():
    with running_server(ServeOptions(flavor="vllm", speed=50.0, max_model_len=2048, seed=3)) as s:
        yield s.url


@pytest.fixture(scope="module")
def tgi():
    with running_server(ServeOptions(flavor="tgi", speed=50.0, max_total_tokens=2048, max_input_tokens=1024)) as s:
        yield s.url


def test_vllm_chat_stream_framing_usage_and_done(vllm):
    body = {"model": "llama-3-8b", "messages": [{"role": "user", "content": " ".join(["w"] * 100)}],
            "max_tokens": 20, "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}
    status, raw, headers = http(vllm + "/v1/chat/completions", body)
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    ev = sse(raw)
    assert ev[-1] == "[DONE]"
    chunks = [json.loads(e) for e in ev[:-1]]
    assert re.fullmatch(r"chatcmpl-[0-9a-f]{16}", chunks[0]["id"])
    assert list(chunks[0]) == ["id", "object", "created", "model", "choices", "prompt_token_ids", "prompt_text"]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    tokens = chunks[1:-1]
    assert len(tokens) == 20 and all(len(c["choices"][0]["delta"]["content"].split()) == 1 for c in tokens)
    assert tokens[-1]["choices"][0]["finish_reason"] == "length"
    assert all(c["choices"][0]["finish_reason"] is None for c in tokens[:-1])
    usage = chunks[-1]
    assert usage["choices"] == [] and list(usage["usage"]) == ["prompt_tokens", "total_tokens", "completion_tokens"]
    assert usage["usage"] == {"prompt_tokens": 107, "total_tokens": 127, "completion_tokens": 20}  # 100 + 4 + 3


def test_vllm_completions_stream_without_usage(vllm):
    body = {"prompt": "one two three four", "max_tokens": 5, "ignore_eos": True, "stream": True}
    status, raw, _ = http(vllm + "/v1/completions", body)
    ev = sse(raw)
    assert ev[-1] == "[DONE]" and len(ev) == 6
    chunks = [json.loads(e) for e in ev[:-1]]
    assert re.fullmatch(r"cmpl-[0-9a-f]{16}", chunks[0]["id"])
    assert all("usage" not in c for c in chunks)
    assert list(chunks[0]["choices"][0]) == ["index", "text", "logprobs", "finish_reason", "stop_reason",
                                             "prompt_token_ids", "token_ids", "weight_versions"]


def test_vllm_non_stream_defaults_and_usage(vllm):
    status, raw, _ = http(vllm + "/v1/completions", {"prompt": "a b c", "ignore_eos": True})
    out = json.loads(raw)
    assert status == 200 and out["usage"]["completion_tokens"] == 16  # completions default max_tokens
    assert len(out["choices"][0]["text"].split()) == 16


def test_vllm_early_stop_is_seeded_and_bounded(vllm):
    reasons = []
    for _ in range(10):
        out = json.loads(http(vllm + "/v1/completions", {"prompt": "x", "max_tokens": 600})[1])
        n, fr = out["usage"]["completion_tokens"], out["choices"][0]["finish_reason"]
        assert (fr == "length" and n == 600) or (fr == "stop" and n < 600)
        reasons.append(fr)
    assert "stop" in reasons


def test_vllm_errors(vllm):
    def err(path, body):
        status, raw, _ = http(vllm + path, body)
        e = json.loads(raw)["error"]
        assert list(e) == ["message", "type", "param", "code"] and e["code"] == status
        return status, e
    status, e = err("/v1/completions", {"prompt": " ".join(["w"] * 3000)})
    assert status == 400 and e["type"] == "BadRequestError" and e["param"] == "input_tokens"
    assert e["message"].startswith("This model's maximum context length is 2048 tokens. However, your prompt "
                                   "contains 3000 input tokens")
    status, e = err("/v1/chat/completions", {"model": "nope", "messages": []})
    assert status == 404 and e["type"] == "NotFoundError" and "`nope` does not exist" in e["message"]
    status, e = err("/v1/completions", {"prompt": "x", "stream_options": {"include_usage": True}})
    assert status == 400 and e["param"] == "stream_options"
    status, e = err("/v1/chat/completions", b"{not json")
    assert status == 400 and e["type"] == "Bad Request"
    status, e = err("/v1/chat/completions", {"model": "llama-3-8b"})
    assert status == 400 and e["param"] == "body.messages"


def test_vllm_routes_and_metrics(vllm):
    assert http(vllm + "/health")[:2] == (200, "")
    assert json.loads(http(vllm + "/version")[1]) == {"version": "0.33.0"}
    models = json.loads(http(vllm + "/v1/models")[1])
    assert models["data"][0]["id"] == "llama-3-8b" and models["data"][0]["max_model_len"] == 2048
    http(vllm + "/v1/completions", {"prompt": "a b", "max_tokens": 3, "ignore_eos": True})
    fams = {f.name: f for f in text_string_to_metric_families(http(vllm + "/metrics")[1])}
    assert fams["vllm:num_requests_running"].type == "gauge"
    assert fams["vllm:kv_cache_usage_perc"].type == "gauge"
    assert fams["vllm:generation_tokens"].type == "counter"
    assert fams["vllm:time_to_first_token_seconds"].type == "histogram"
    les = [s.labels["le"] for s in fams["vllm:inter_token_latency_seconds"].samples if s.name.endswith("_bucket")]
    assert les[:3] == ["0.01", "0.025", "0.05"] and les[-1] == "+Inf"
    succ = {s.labels["finished_reason"]: s.value for s in fams["vllm:request_success"].samples
            if s.name.endswith("_total")}
    assert set(succ) == {"stop", "length", "abort", "error", "repetition"} and succ["length"] >= 1
    sample = fams["vllm:num_requests_waiting"].samples[0]
    assert sample.labels == {"engine": "0", "model_name": "llama-3-8b"}


def test_sim_gpu_shape(vllm):
    g = json.loads(http(vllm + "/sim/gpu")[1])
    assert g["simulated"] is True and len(g["gpus"]) == 1
    e = g["gpus"][0]
    assert e["name"] == "NVIDIA A100-SXM4-80GB (simulated)" and e["index"] == 0
    assert set(e) == {"index", "name", "util_gpu_pct", "util_mem_pct", "mem_used_bytes", "mem_total_bytes",
                      "power_w", "temp_c", "sm_clock_mhz"}
    assert 16e9 < e["mem_used_bytes"] < e["mem_total_bytes"] and 0 <= e["util_gpu_pct"] <= 100


def test_tgi_generate_stream_framing(tgi):
    body = {"inputs": "hello there world", "parameters": {"max_new_tokens": 6, "details": True, "ignore_eos": True}}
    status, raw, _ = http(tgi + "/generate_stream", body)
    assert status == 200
    ev = [json.loads(e) for e in sse(raw, "data:")]
    assert "[DONE]" not in raw and not raw.startswith("data: ")
    assert [e["index"] for e in ev] == [1, 2, 3, 4, 5, 6]
    assert list(ev[0]) == ["index", "token", "generated_text", "details"]
    assert all(e["generated_text"] is None and e["details"] is None for e in ev[:-1])
    assert ev[-1]["generated_text"] == "".join(e["token"]["text"] for e in ev)
    assert ev[-1]["details"] == {"finish_reason": "length", "generated_tokens": 6, "seed": None, "input_length": 3}


def test_tgi_validation_and_openai_routes(tgi):
    status, raw, _ = http(tgi + "/generate", {"inputs": " ".join(["w"] * 1500), "parameters": {"max_new_tokens": 600}})
    assert status == 422
    assert json.loads(raw) == {"error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 2048. "
                                        "Given: 1500 `inputs` tokens and 600 `max_new_tokens`", "error_type": "validation"}
    status, raw, _ = http(tgi + "/generate_stream", {"inputs": "x", "parameters": {"max_new_tokens": 0}})
    assert status == 200 and json.loads(sse(raw, "data:")[0])["error_type"] == "validation"
    body = {"model": "tgi", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": True,
            "ignore_eos": True, "stream_options": {"include_usage": True}}
    ev = sse(http(tgi + "/v1/chat/completions", body)[1], "data:")
    assert ev[-1] == "[DONE]"
    chunks = [json.loads(e) for e in ev[:-1]]
    assert list(chunks[0])[:2] == ["object", "id"] and chunks[0]["id"] == ""
    assert all(c["choices"][0]["delta"]["role"] == "assistant" for c in chunks[:-1])
    assert chunks[-1]["usage"] == {"prompt_tokens": 8, "completion_tokens": 4, "total_tokens": 12}
    ev = sse(http(tgi + "/v1/completions", {"prompt": "a b", "max_tokens": 3, "stream": True, "ignore_eos": True})[1],
             "data:")
    chunks = [json.loads(e) for e in ev[:-1]]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == ["", "", "length"]
    assert chunks[-1]["usage"]["completion_tokens"] == 3


def test_tgi_metrics_and_info(tgi):
    info = json.loads(http(tgi + "/info")[1])
    assert info["max_concurrent_requests"] == 128 and info["max_total_tokens"] == 2048
    http(tgi + "/generate", {"inputs": "a b", "parameters": {"max_new_tokens": 2}})
    text = http(tgi + "/metrics")[1]
    assert not re.search(r"^tgi_request_(count|success)_total", text, re.M)  # no _total suffix on counters
    assert re.search(r"^tgi_request_success \d+$", text, re.M)  # integer counter values
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert fams["tgi_request_count"].type == "counter" and fams["tgi_request_success"].samples[0].value >= 1
    assert fams["tgi_queue_size"].type == "gauge"
    dur = fams["tgi_request_duration"]
    assert dur.type == "histogram"
    assert len([s for s in dur.samples if s.name.endswith("_bucket")]) == 36  # 35 + +Inf
    assert 'tgi_request_duration_bucket{le="0.00015000000000000001"}' in text


def test_tgi_overload_429_and_in_stream():
    opts = ServeOptions(flavor="tgi", fixed_ttft_ms=2000, fixed_itl_ms=10, max_concurrent_requests=1)
    with running_server(opts) as s:
        async def go():
            async with aiohttp.ClientSession() as sess:
                slow = asyncio.ensure_future(sess.post(s.url + "/generate", json={"inputs": "x",
                                                        "parameters": {"max_new_tokens": 1}}))
                deadline = time.monotonic() + 5
                while s.ctx.in_flight < 1:  # poll until the first request holds the permit
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.01)
                async with sess.post(s.url + "/generate", json={"inputs": "y"}) as r:
                    assert r.status == 429
                    assert await r.json() == {"error": "Model is overloaded", "error_type": "overloaded"}
                async with sess.post(s.url + "/generate_stream", json={"inputs": "y"}) as r:
                    assert r.status == 200
                    assert await r.text() == 'data:{"error":"Model is overloaded","error_type":"overloaded"}\n\n'
                slow.cancel()
        asyncio.run(go())


def test_calibration_mode_timings():
    with running_server(ServeOptions(fixed_ttft_ms=80, fixed_itl_ms=20)) as s:
        async def one(sess):
            t0 = time.perf_counter()
            times = []
            async with sess.post(s.url + "/v1/completions", json={"prompt": "a", "max_tokens": 10, "stream": True,
                                                                  "ignore_eos": True}) as r:
                async for line in r.content:
                    if line.startswith(b"data: {"):
                        times.append(time.perf_counter() - t0)
            return times

        async def go():
            async with aiohttp.ClientSession() as sess:
                return await asyncio.gather(*(one(sess) for _ in range(8)))
        for times in asyncio.run(go()):
            assert len(times) == 10
            # Never early (absolute schedule from arrival); upper bounds are loose because this
            # client shares the GIL with the in-process server (tight bounds: test_sim_timing.py).
            assert 0.079 <= times[0] <= 0.200
            gaps = [b - a for a, b in zip(times, times[1:])]
            assert statistics.median(gaps) == pytest.approx(0.020, abs=0.004), gaps
            assert abs((times[-1] - times[0]) - 0.18) < 0.030  # absolute schedule: no drift


def test_calibration_zero_prerenders_one_write():
    with running_server(ServeOptions(fixed_ttft_ms=0, fixed_itl_ms=0)) as s:
        body = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 50, "stream": True, "ignore_eos": True}
        status, raw, _ = http(s.url + "/v1/chat/completions", body)
        ev = sse(raw)
        assert len(ev) == 1 + 50 + 1 and ev[-1] == "[DONE]"


def test_subprocess_serve_line_and_sigterm():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-m", "harness.sim", "serve", "--port", "0", "--flavor", "tgi"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        line = p.stdout.readline()
        m = re.fullmatch(r"slabench-sim: serving llama-3-8b \(flavor tgi\) on http://127\.0\.0\.1:(\d+)\n", line)
        assert m, line
        assert http(f"http://127.0.0.1:{m.group(1)}/health")[0] == 200
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0
        assert p.stdout.read() == ""
    finally:
        if p.poll() is None:
            p.kill()


def test_fault_injection_error_and_abort():
    opts = ServeOptions(fixed_ttft_ms=0, fixed_itl_ms=1, seed=1)
    opts.faults.error_rate = 1.0
    with running_server(opts) as s:
        status, raw, _ = http(s.url + "/v1/completions", {"prompt": "x", "max_tokens": 4})
        assert status == 500 and json.loads(raw)["error"]["type"] == "InternalServerError"
    opts = ServeOptions(fixed_ttft_ms=0, fixed_itl_ms=1, seed=1)
    opts.faults.abort_rate = 1.0
    with running_server(opts) as s:
        with pytest.raises(Exception):  # connection cut mid-stream: the chunked body never completes
            http(s.url + "/v1/completions", {"prompt": "x", "max_tokens": 10, "stream": True, "ignore_eos": True})


def _samples(text):
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("engine", "model_name")))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_vllm_request_phase_and_parameter_families():
    with running_server(ServeOptions(flavor="vllm", speed=50.0, max_model_len=2048, seed=4)) as s:
        for _ in range(3):
            assert http(s.url + "/v1/completions", {"prompt": "a b c", "max_tokens": 5, "ignore_eos": True})[0] == 200
        text = http(s.url + "/metrics")[1]
    v = _samples(text)
    for phase in ("queue", "prefill", "decode", "inference"):
        assert v[(f"vllm:request_{phase}_time_seconds_count", ())] == 3
    # inference (first scheduled → last token) = prefill (→ first token) + decode (→ last token)
    assert abs(v[("vllm:request_inference_time_seconds_sum", ())]
               - v[("vllm:request_prefill_time_seconds_sum", ())] - v[("vllm:request_decode_time_seconds_sum", ())]) < 1e-9
    assert v[("vllm:request_params_max_tokens_sum", ())] == 15 and v[("vllm:request_params_n_sum", ())] == 3
    assert v[("vllm:request_max_num_generation_tokens_sum", ())] == 15
    assert v[("vllm:num_requests_waiting_by_reason", (("reason", "capacity"),))] == 0
    assert v[("vllm:num_requests_waiting_by_reason", (("reason", "deferred"),))] == 0
    assert v[("vllm:engine_sleep_state", (("sleep_state", "awake"),))] == 1
    assert v[("vllm:engine_sleep_state", (("sleep_state", "discard_all"),))] == 0
    prompt = v[("vllm:prompt_tokens_total", ())]
    assert prompt > 0 and v[("vllm:prefix_cache_queries_total", ())] == prompt
    assert v[("vllm:prefix_cache_hits_total", ())] == 0 and v[("vllm:prompt_tokens_cached_total", ())] == 0
    assert v[("vllm:prompt_tokens_by_source_total", (("source", "local_compute"),))] == prompt
    assert v[("vllm:prompt_tokens_by_source_total", (("source", "local_cache_hit"),))] == 0


def test_tgi_queue_and_inference_durations():
    with running_server(ServeOptions(flavor="tgi", speed=50.0, max_total_tokens=2048, max_input_tokens=1024)) as s:
        for _ in range(2):
            assert http(s.url + "/generate", {"inputs": "a b", "parameters": {"max_new_tokens": 3}})[0] == 200
        v = _samples(http(s.url + "/metrics")[1])
    assert v[("tgi_request_queue_duration_count", ())] == 2
    assert v[("tgi_request_inference_duration_count", ())] == 2
    assert v[("tgi_request_mean_time_per_token_duration_count", ())] == 2
    # inference starts once the request is batched: never longer than the whole request
    assert 0 < v[("tgi_request_inference_duration_sum", ())] <= v[("tgi_request_duration_sum", ())]
    # 3 generated tokens each: every cumulative bucket from the first (2048 / 100 = 20.48) counts both
    gen = sorted((float(dict(k[1])["le"]), c) for k, c in v.items() if k[0] == "tgi_request_generated_tokens_bucket")
    assert len(gen) == 101 and gen[0] == (20.48, 2) and all(c == 2 for _, c in gen)


def test_first_token_release_is_logged_only_for_requests_with_an_id():
    with running_server(ServeOptions(flavor="vllm", fixed_ttft_ms=5, fixed_itl_ms=1)) as s:
        body = json.dumps({"prompt": "a", "max_tokens": 2, "stream": True}).encode()
        for rid in ("client-1", None):
            headers = {"Content-Type": "application/json", **({"X-Request-Id": rid} if rid else {})}
            req = urllib.request.Request(s.url + "/v1/completions", data=body, headers=headers)
            with urllib.request.urlopen(req, timeout=10) as r:
                text = r.read().decode()
            assert text.endswith("data: [DONE]\n\n")
        seen = json.loads(http(s.url + "/sim/first-tokens")[1])
    assert seen["clock"] == "perf_counter" and list(seen["first_token_s"]) == ["client-1"]


@pytest.mark.parametrize("path,body", [
    ("/generate_stream", {"inputs": "a b", "parameters": {"max_new_tokens": 6, "details": True}}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 6, "stream": True}),
    ("/v1/completions", {"prompt": "a b", "max_tokens": 6, "stream": True})])
def test_tgi_engine_written_stream_equals_the_per_token_path(path, body):
    # A stall fault sends the stream through the per-token path; the same seed gives the same tokens.
    texts = []
    for faults in (FaultConfig(), FaultConfig(stall_s=0.01)):
        with running_server(ServeOptions(flavor="tgi", fixed_ttft_ms=2, fixed_itl_ms=1, seed=5, faults=faults)) as s:
            status, text, _ = http(s.url + path, body)
        assert status == 200
        texts.append(re.sub(r'"created":\d+', '"created":0', text))
    assert texts[0] == texts[1] and texts[0].count("data:") >= 6


@pytest.mark.parametrize("flavor,path,body", [
    ("vllm", "/v1/completions", {"prompt": "a b", "max_tokens": 5, "stream": True}),
    ("tgi", "/generate_stream", {"inputs": "a b", "parameters": {"max_new_tokens": 5}})])
def test_a_finished_request_is_freed_without_the_garbage_collector(flavor, path, body):
    # A reference cycle per request (ticket → writer → tracker → ticket) left every stream's objects
    # to the collector, whose passes then delayed all streams by tens of milliseconds.
    tickets = []
    with running_server(ServeOptions(flavor=flavor, fixed_ttft_ms=1, fixed_itl_ms=1)) as s:
        submit = s.ctx.engine.submit
        s.ctx.engine.submit = lambda *a, **kw: tickets.append(weakref.ref(t := submit(*a, **kw))) or t
        gc.disable()
        try:
            for _ in range(3):
                assert http(s.url + path, body)[0] == 200
            freed = wait_until(lambda: all(r() is None for r in tickets), timeout_s=5)
        finally:
            gc.enable()
    assert len(tickets) == 3 and freed
