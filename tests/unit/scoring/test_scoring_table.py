"""Columnar reading and scoring: the RecordTable paths give what the RequestRecord paths give."""

import json
import math
import random

import numpy as np
import pytest

from harness.records import RequestRecord, RunResult, iter_records
from harness.scoring import stats, summarize
from harness.scoring.jsonl import load_table
from harness.scoring.metrics import Window, table_concurrency
from harness.scoring.table import ItlPool, from_records
from harness.scoring.timeseries import table_timeseries

COLUMNS = ("sent_s", "end_s", "status", "ok", "scheduled_s", "ttft_s", "e2e_s", "prompt_tokens", "output_tokens",
           "itl", "itl_count", "err_index")


def _records(n: int, seed: int = 3) -> list[RequestRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        sent = 100.0 + i * 0.01 + rng.random() * 1e-3
        ok = i % 13 != 4
        itl = [rng.lognormvariate(-4.4, 0.4) for _ in range(rng.randint(0, 6))] if ok else []
        ttft = rng.random() * 0.3
        out.append(RequestRecord(
            request_id=f"id-{i}", api="openai-chat", sent_s=sent, end_s=sent + ttft + sum(itl),
            status=200 if ok else 503, ok=ok, scheduled_s=sent - 0.01 if i % 3 else None,
            ttft_s=ttft if ok else None, e2e_s=ttft + sum(itl) if ok else None, itl_s=itl,
            prompt_tokens=rng.randint(1, 99) if i % 11 else None, output_tokens=len(itl) + 1 if ok else 0,
            error_type=None if ok else "timeout", error=None if ok else 'HTTP 503: {"error": "busy, retry"}',
            user=f"u{i % 7}", turn=(i % 4) or None,
            chunk_tokens=[1 + (j % 2) for j in range(len(itl) + 1)] if ok and i % 5 == 0 else None))
    return out


def _odd_lines(recs: list[RequestRecord]) -> list[str]:
    """to_json lines plus every kind of line the bulk parser must hand to json.loads, or skip."""
    lines = [r.to_json() for r in recs]
    lines.insert(3, json.dumps(json.loads(lines[3])))  # ", " separators: not the canonical layout
    lines.insert(5, "")
    lines.insert(7, lines[7].replace('"sent_s":', '"sent_s":1.2.', 1))  # looks canonical, is not JSON: skipped
    lines.insert(9, lines[9].replace('"api":"openai-chat"', '"api":"chat, \\u00e9"'))  # escape: json.loads
    lines.insert(11, "   ")
    lines.append(lines[-1][:50])  # torn last line (no newline): skipped
    return lines


@pytest.fixture
def jsonl(tmp_path):
    p = tmp_path / "requests.jsonl"
    p.write_text("\n".join(_odd_lines(_records(300))), encoding="utf-8")
    return p


def test_load_table_equals_the_record_path(jsonl):
    objs = list(iter_records(jsonl))
    assert len(objs) == 302  # 300 + the re-spaced and the escaped copies; blank, corrupt and torn lines skipped
    t, ref = load_table(jsonl), from_records(objs)
    assert t.n == ref.n == 302
    for k in COLUMNS:
        a, b = getattr(t, k), getattr(ref, k)
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), k
    assert (t.err_type, t.err_msg, t.err_id) == (ref.err_type, ref.err_msg, ref.err_id)
    assert t.err_msg[0] == 'HTTP 503: {"error": "busy, retry"}' and t.itl_all_finite


def test_small_chunks_cut_lines_anywhere(jsonl, monkeypatch):
    import harness.scoring.jsonl as J
    whole = load_table(jsonl)
    parts = list(J.iter_parts(jsonl, chunk_bytes=997))  # chunk edges fall inside lines
    assert sum(p.table.n for p in parts) == whole.n
    assert np.array_equal(np.concatenate([p.table.itl for p in parts]), whole.itl)


def test_missing_file_and_empty_file(tmp_path):
    assert load_table(tmp_path / "nope.jsonl").n == 0
    (tmp_path / "e.jsonl").write_text("")
    t = load_table(tmp_path / "e.jsonl")
    assert t.n == 0 and t.itl.size == 0


def test_summarize_from_table_equals_summarize_from_records(jsonl):
    meta = {"load_start_s": 100.5, "load_end_s": 102.5, "load": {"mode": "open"}}
    scen = {"name": "t", "load": {"warmup_s": 0.2, "cooldown_s": 0.1}}
    objs = list(iter_records(jsonl))
    by_records = summarize(RunResult(None, scen, objs, [], [], meta))
    by_table = summarize(RunResult(None, scen, [], [], [], meta, table=load_table(jsonl)))
    assert by_table == by_records
    assert by_table["counts"]["scored"] > 0 and by_table["counts"]["excluded_warmup"] > 0
    assert by_table["errors"]["by_type"] == {"timeout": sum(1 for r in objs if not r.ok
                                                            and 100.7 <= r.sent_s <= 102.4)}


@pytest.mark.parametrize("kind", ["lognormal", "rounded", "constant", "with_nan"])
def test_pool_percentiles_by_radix_selection_match_numpy(kind, monkeypatch):
    monkeypatch.setattr(stats, "GATHER_MAX", 50)  # force the radix rounds on a small pool
    rng = np.random.default_rng(7)
    counts = rng.integers(0, 6, 20000)
    v = {"lognormal": lambda m: rng.lognormal(-4.4, 0.4, m), "rounded": lambda m: np.round(rng.normal(0, 1, m), 2),
         "constant": lambda m: np.full(m, 0.01), "with_nan": lambda m: rng.lognormal(0, 1, m)}[kind](counts.sum())
    if kind == "with_nan":
        v[::5] = np.nan
    keep = rng.random(counts.size) < 0.8
    got = stats.describe_pool(ItlPool(v, keep, counts, all_finite=bool(np.isfinite(v).all())))
    want = stats.describe(v[np.repeat(keep, counts)])
    assert got["n"] == want["n"] > 1000
    for k in ("min", "max", "p50", "p90", "p95", "p99", "p99.9"):
        assert got[k] == want[k], k  # the same order statistics and interpolation: equal, not close
    assert math.isclose(got["mean"], want["mean"], rel_tol=1e-12)


def _loop_concurrency(recs, w):
    """The original event sweep, as the reference."""
    events = []
    for r in recs:
        a, b = max(r.sent_s, w.start_s), min(max(r.end_s, r.sent_s), w.end_s)
        if b > a or (a == b and w.contains(a)):
            events += [(a, 1), (b, -1)]
    events.sort()
    level = peak = 0
    area, last = 0.0, w.start_s
    for t, d in events:
        area += level * (t - last)
        last, level = t, level + d
        peak = max(peak, level)
    return {"mean": (area + level * (w.end_s - last)) / w.duration_s, "max": peak}


def test_concurrency_matches_the_event_sweep():
    recs = _records(500)
    recs += [RequestRecord("z", "x", 101.0, 101.0, 200, True), RequestRecord("y", "x", 101.0, 101.5, 200, True)]
    w = Window(100.0, 106.0, 0.5, 0.5, 100.5, 105.5)
    got, want = table_concurrency(from_records(recs), w), _loop_concurrency(recs, w)
    assert got["max"] == want["max"] >= 2
    assert math.isclose(got["mean"], want["mean"], rel_tol=1e-9)


def test_timeseries_in_flight_and_ttft_p99_match_a_loop():
    recs = _records(400)
    w = Window(100.0, 104.0, 0.0, 0.0, 100.0, 104.0)
    ts = table_timeseries(from_records(recs), [], [], w)
    n, width = len(ts["t_s"]), ts["bucket_s"]
    busy, ttft = [0.0] * n, [[] for _ in range(n)]
    for r in recs:  # the original per-record loop
        idx = lambda t: int((t - 100.0) // width)  # noqa: E731
        end = max(r.end_s, r.sent_s)
        if r.ok and 0 <= idx(r.sent_s) < n:
            ttft[idx(r.sent_s)].append(r.ttft_s)
        for i in range(max(0, idx(r.sent_s)), min(n - 1, idx(end)) + 1):
            busy[i] += max(0.0, min(end, 100.0 + (i + 1) * width) - max(r.sent_s, 100.0 + i * width))
    assert np.allclose(ts["in_flight"], [b / width for b in busy], rtol=1e-9)
    assert ts["ttft_p99_s"] == [float(np.percentile(v, 99)) if v else None for v in ttft]
    assert sum(ts["sent_rps"]) * width == len(recs) and sum(ts["errors"]) == sum(1 for r in recs if not r.ok)
