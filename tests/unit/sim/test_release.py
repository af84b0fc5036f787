"""Token release without a task per stream: the calibration ticker (injected clock), the wire
writer, bulk word draws, pre-rendered vLLM events, the cheap ITL histogram and /sim/stats windows."""

import asyncio
import json
import random

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import generate_latest

from harness.sim.common import ServerContext, Tracker, sim_stats
from harness.sim.engine import FixedEngine
from harness.sim.metrics import ITL_BUCKETS, CountingHistogram
from harness.sim.textgen import WORDS, TextGen
from harness.sim.vllm_api import _Render
from harness.sim.wire import TokenWriter, Wire


class FakeClock:
    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t


def test_ticker_releases_each_token_at_its_absolute_target():
    clock = FakeClock()
    eng = FixedEngine(0.050, 0.010, clock=clock)  # not started: the test drives release_due itself
    got = {0: [], 1: []}
    a = eng.submit(8, 3, arrival_s=100.0)
    a.attach(lambda k, now: got[0].append((k, now)))
    b = eng.submit(8, 2, arrival_s=100.004)
    b.attach(lambda k, now: got[1].append((k, now)))
    assert eng.release_due(100.0499) == 100.050  # nothing due yet: the next target is a's first token
    assert got == {0: [], 1: []}
    nxt = eng.release_due(100.050)
    assert got[0] == [(0, 100.050)] and got[1] == [] and nxt == 100.054
    clock.t = 100.0545
    assert eng.release_due() == 100.060  # b's first token, 0.5 ms late, read off the clock
    assert got[1] == [(0, 100.0545)]
    eng.release_due(100.080)  # a: tokens 1 (100.060) and 2 (100.070); b: token 1 (100.064)
    assert [k for k, _ in got[0]] == [0, 1, 2] and [k for k, _ in got[1]] == [0, 1]
    assert eng.release_due(101.0) is None  # every token released, nothing left in the heap
    late = sorted(eng.lateness_s)
    assert len(late) == 5 and abs(late[-2] - 0.0160) < 1e-9 and abs(late[-1] - 0.020) < 1e-9


def test_ticker_skips_cancelled_tickets_and_zero_delay_tickets_stay_out():
    eng = FixedEngine(0.0, 0.010, clock=FakeClock())
    seen = []
    t = eng.submit(1, 5, arrival_s=100.0)
    t.attach(lambda k, now: seen.append(k))
    eng.release_due(100.0)
    t.cancel()
    assert eng.release_due(200.0) is None and seen == [0]
    zero = FixedEngine(0.0, 0.0, clock=FakeClock())
    assert zero.submit(1, 5).instant and zero.release_due(200.0) is None  # written at once by the handler


class FakeTransport:
    def __init__(self):
        self.data, self.closing = [], False

    def write(self, b):
        self.data.append(b)

    def is_closing(self):
        return self.closing


class FakeMetrics:
    def __init__(self):
        self.first, self.itl = [], []

    def on_first_token(self, ttft, prompt):
        self.first.append(ttft)

    def on_token(self, itl):
        self.itl.append(itl)

    def on_tokens(self, itl, n):
        self.itl += [itl] * n


def ctx_with(metrics):
    return ServerContext(flavor="vllm", served_model_name="m", model_id="m", hf_name="m", engine=None,
                         metrics=metrics, seed=0, faults=None, gpu_snapshot=dict, max_model_len=4096,
                         fingerprint="fp")


def test_writer_frames_one_chunk_per_token_then_tail_and_feeds_metrics():
    async def go():
        tr, m = FakeTransport(), FakeMetrics()
        tracker = Tracker(ctx_with(m), 10.0, 5, 3)
        w = TokenWriter(Wire(tr, True), lambda k: b"tok%d" % k, 3, tracker, tail=b"TAIL")
        for k, now in enumerate((10.05, 10.06, 10.07)):
            w(k, now)
        assert await w.done == "ok"
        assert tr.data == [b"4\r\ntok0\r\n", b"4\r\ntok1\r\n", b"4\r\ntok2\r\n4\r\nTAIL\r\n"]
        assert [round(x, 6) for x in m.first + m.itl] == [0.05, 0.01, 0.01] and tracker.generated == 3
        tr2 = FakeTransport()
        w2 = TokenWriter(Wire(tr2, False), lambda k: b"x", 5, Tracker(ctx_with(FakeMetrics()), 0.0, 1, 5))
        w2(0, 1.0)
        tr2.closing = True  # the client went away
        w2(1, 1.1)
        assert await w2.done == "abort" and tr2.data == [b"x"]
    asyncio.run(go())


def test_bulk_word_draw_equals_one_choice_per_token():
    for seed in range(50):
        n = random.Random(seed).randint(0, 600)
        ref = TextGen(random.Random(f"s{seed}")).tokens(n)
        assert [" " + WORDS[i] for i in TextGen(random.Random(f"s{seed}")).word_indices(n)] == ref


def test_prerendered_vllm_events_equal_whole_json_rendering():
    ctx = ctx_with(FakeMetrics())
    for chat in (False, True):
        for opts in ({}, {"include_usage": True}, {"include_usage": True, "continuous_usage_stats": True}):
            words = TextGen(random.Random(1)).word_indices(6)
            r = _Render(ctx, "cmpl-x\"y", chat, {"stream_options": opts}, 7, "length", 6, words)
            ref = [r._event(r._chunk_dict(k, " " + WORDS[w], k == 5)) for k, w in enumerate(words)]
            assert [r.chunk(k) for k in range(6)] == ref
            assert r.everything() == (r.head() if chat else b"") + b"".join(ref) + r.tail()
            assert json.loads(ref[0][6:])["id"] == "cmpl-x\"y"


def test_counting_histogram_exposes_exactly_what_prometheus_histogram_does():
    values = [0.0, 0.004, 0.01, 0.0100001, 0.3, 7.0, 100.0]
    outs = []
    for kind in ("prometheus", "counting"):
        reg = CollectorRegistry(auto_describe=True)
        if kind == "prometheus":
            h = Histogram("vllm:itl", "doc", ["model_name", "engine"], buckets=ITL_BUCKETS,
                          registry=reg).labels(model_name="m", engine="0")
        else:
            h = CountingHistogram("vllm:itl", "doc", {"model_name": "m", "engine": "0"}, ITL_BUCKETS, reg)
        for v in values:
            h.observe(v)
        lines = generate_latest(reg).decode().splitlines()
        outs.append([ln for ln in lines if "_created{" not in ln])
    assert outs[0] == outs[1]
    reg = CollectorRegistry()
    h = CountingHistogram("x", "doc", {"engine": "0"}, (0.01, 0.1), reg)
    h.observe_many(0.0, 5)
    assert 'x_bucket{engine="0",le="0.01"} 5.0' in generate_latest(reg).decode()


def test_sim_stats_window_resets_on_request():
    eng = FixedEngine(0.05, 0.01, clock=FakeClock())
    eng.lateness_s.extend([0.001, 0.002, 0.0005])
    ctx = ctx_with(FakeMetrics())
    ctx.engine = eng
    first = sim_stats(ctx, reset=True)
    assert first["tokens"] == 3 and first["token_lateness_ms"]["max"] == 2.0
    assert sim_stats(ctx) == {"mode": "fixed", "tokens": 0}
