"""Bench helper for the `replay` section: a 100,000-row trace, read and replayed.

Three figures: how long after the load starts the first request goes out (the trace is streamed, not
loaded), send-time lag behind the scaled timestamps at 200 req/s on a fixed-latency sim, and the
reader's peak Python memory over 10,000 vs 100,000 rows (flat when the file is streamed).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RATE_RPS = 200


def write_trace(path: Path, rows: int) -> None:
    """Mooncake layout at RATE_RPS: 4 blocks of 16 tokens each, the first shared by every 4th session."""
    with path.open("w") as fh:
        for i in range(rows):
            ids = [i % 50, 1000 + i, 2_000_000 + i, 3_000_000 + i]
            fh.write(json.dumps({"timestamp": round(1000 * i / RATE_RPS, 3), "input_length": 64,
                                 "output_length": 4, "hash_ids": ids}) + "\n")


def reader_peak_bytes(trace: Path) -> tuple[int, float]:
    """(peak traced bytes, seconds) to replay-read every row and build every prompt, no network."""
    from harness.config import Scenario
    from harness.load.replay import replay_feed
    from harness.load.traceprompts import TracePrompts

    scn = Scenario.model_validate({"name": "b", "backend": {"type": "sim"},
                                   "load": {"mode": "replay", "duration_s": 600_000},
                                   "workload": {"trace": {"path": str(trace), "format": "mooncake",
                                                          "block_tokens": 16}}})
    def walk() -> float:
        feed, prompts = replay_feed(scn), TracePrompts(scn.workload)
        t0 = time.perf_counter()
        for _ in feed:
            prompts.spec(feed.take())
        return time.perf_counter() - t0

    took = walk()  # timed without tracemalloc, which slows every allocation ~20x
    tracemalloc.start()
    walk()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, took


def replay(tmp: Path, duration_s: float = 10.0) -> list[tuple[str, str, str, bool | None]]:
    """(figure, value, target, met) rows."""
    big, small = tmp / "trace-100k.jsonl", tmp / "trace-10k.jsonl"
    write_trace(big, 100_000)
    write_trace(small, 10_000)
    rows = []
    peak_small, _ = reader_peak_bytes(small)
    peak_big, took = reader_peak_bytes(big)
    rows.append(("reader peak memory, 10k / 100k rows", f"{peak_small / 1e6:.2f} / {peak_big / 1e6:.2f} MB",
                 "100k <= 1.5 x 10k", peak_big <= 1.5 * peak_small))
    rows.append(("read + build 100k prompts", f"{took:.1f} s ({100_000 / took:,.0f} rows/s)", "-", None))
    scn = tmp / "replay-bench.yaml"
    scn.write_text(f"""
name: replay-bench
backend: {{type: sim, flavor: vllm, model: llama-3-8b, gpu: a100-80gb, fixed_ttft_ms: 5, fixed_itl_ms: 1}}
load: {{mode: replay, api: openai-completions, duration_s: {duration_s:g}, drain_timeout_s: 5}}
workload:
  calibrate_prompt_tokens: off
  trace: {{path: {big}, format: mooncake, block_tokens: 16}}
sla: guide
""")
    out = tmp / "replay-run"
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(scn), "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=duration_s + 120)
    wall = time.perf_counter() - t0
    if res.returncode not in (0, 1):
        raise RuntimeError(f"replay run exited {res.returncode}: {res.stderr.strip()[-200:]}")
    meta = json.loads((out / "meta.json").read_text())
    recs = [json.loads(x) for x in (out / "requests.jsonl").read_text().splitlines() if x.strip()]
    first_sent = min(r["sent_s"] for r in recs) - meta["load_start_s"]
    lag_ms = 1000 * np.array([r["sent_s"] - r["scheduled_s"] for r in recs])
    rows.append(("first request after load start", f"{first_sent * 1000:.1f} ms", "< 2 s", first_sent < 2.0))
    rows.append((f"send lag behind the trace @ {RATE_RPS} req/s, p50 / p99",
                 f"{np.percentile(lag_ms, 50):.2f} / {np.percentile(lag_ms, 99):.2f} ms ({len(recs)} requests)",
                 "p99 <= 5 ms", bool(np.percentile(lag_ms, 99) <= 5.0)))
    rows.append(("whole `slabench run` (prepare reads 10k rows)", f"{wall:.1f} s for a {duration_s:g} s replay", "-", None))
    return rows
