"""Timing fidelity: the live server agrees with the offline `simulate`, and calibration-mode
streams keep sub-millisecond-order jitter with many concurrent streams (server in a subprocess)."""

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from harness.sim.catalog import default_catalog
from harness.sim.perfmodel import Deployment
from harness.sim.scheduler import SchedulerConfig, TraceRequest, simulate
from harness.sim.server import ServeOptions
from harness.sim.testing import running_server

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
# The sim releases tokens from one ticker (p50 lateness ~10 us, p99 < 1 ms at 256 streams on a
# quiet core), but this shared 2-core VM deschedules any process for up to ~12 ms at times and
# the client runs beside the server, so the tail bound here is loose and asserted at 64 streams.
STREAMS = 64


async def stream_times(sess, url, prompt_words, max_tokens):
    t0 = time.perf_counter()
    times = []
    body = {"prompt": " ".join(["w"] * prompt_words), "max_tokens": max_tokens, "stream": True, "ignore_eos": True}
    async with sess.post(url + "/v1/completions", json=body) as r:
        async for line in r.content:
            if line.startswith(b"data: {"):
                times.append(time.perf_counter() - t0)
    return times


def test_server_agrees_with_offline_simulate():
    speed = 1.0
    with running_server(ServeOptions(speed=speed)) as s:
        async def go():
            async with aiohttp.ClientSession() as sess:
                await stream_times(sess, s.url, 4, 2)  # warm up the connection pool / code paths
                return await stream_times(sess, s.url, 128, 32)
        times = asyncio.run(go())
    cat = default_catalog()
    dep = Deployment(cat.gpu("a100-80gb"), cat.model("llama-3-8b"), cat.quant("fp16"), 1, 0.92, 2048)
    ref = simulate([TraceRequest(0.0, 128, 32)], dep, SchedulerConfig(256, 2048, dep.kv_blocks)).requests[0]
    assert len(times) == 32
    assert times[0] * speed == pytest.approx(ref.ttft_s, abs=0.006)
    live_itl = (times[-1] - times[0]) * speed / 31
    ref_itl = (ref.token_times_s[-1] - ref.token_times_s[0]) / 31
    assert live_itl == pytest.approx(ref_itl, rel=0.05)


def test_calibration_jitter_64_streams():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-m", "harness.sim", "serve", "--port", "0", "--fixed-ttft-ms", "200",
                          "--fixed-itl-ms", "20"], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        url = re.search(r"on (http://\S+)", p.stdout.readline()).group(1)

        async def go():
            conn = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=conn) as sess:
                return await asyncio.gather(*(stream_times(sess, url, 8, 20) for _ in range(STREAMS)))
        runs = asyncio.run(go())
        import json
        import urllib.request
        stats = json.load(urllib.request.urlopen(url + "/sim/stats", timeout=5))
        assert stats["tokens"] == STREAMS * 20
        late = stats["token_lateness_ms"]
        print(late)
        # Server side: every token released within ~1 ms of its absolute target (p50), tail bounded. The
        # tail is loose: `make test` runs two integration files at once on two cores, and a sim starved of
        # its core releases late through no fault of its own (`make bench` measures the tail on a quiet core).
        assert late["p50"] < 1.5 and late["p99"] < 30.0
        for times in runs:
            assert len(times) == 20
            # Client side (noisy: the client shares the 2 cores): the schedule does not drift.
            assert abs((times[-1] - times[0]) - 19 * 0.020) < 0.030
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0
