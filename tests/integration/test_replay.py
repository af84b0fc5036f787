"""Trace replay end to end: each format replayed by `slabench run` (mode: replay) against a sim, launched
and as `--target`; send times follow the scaled trace offsets; the summary carries reuse and hit rate.

Real processes on 127.0.0.1, port 0, a few seconds each.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from harness.sim.server import ServeOptions
from harness.sim.testing import running_server

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration
N, GAP_S = 24, 0.1  # requests per trace, recorded gap between them


def slabench(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def write_trace(tmp_path: Path, fmt: str) -> Path:
    if fmt == "mooncake":  # every request shares its first block with the first request
        p = tmp_path / "t.jsonl"
        p.write_text("".join(json.dumps({"timestamp": int(1000 * GAP_S * i), "input_length": 40, "output_length": 4,
                                         "hash_ids": [7, 100 + i]}) + "\n" for i in range(N)))
        return p
    if fmt == "azure-csv":
        p = tmp_path / "t.csv"
        t0 = datetime(2023, 11, 16, 18, 15, 46, tzinfo=timezone.utc)
        with p.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["TIMESTAMP", "ContextTokens", "GeneratedTokens"])
            for i in range(N):
                w.writerow([(t0 + timedelta(seconds=GAP_S * i)).strftime("%Y-%m-%d %H:%M:%S.%f0"), 30, 4])
        return p
    if fmt == "burstgpt-csv":
        p = tmp_path / "b.csv"
        with p.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type"])
            for i in range(N):
                w.writerow([5 + GAP_S * i, "ChatGPT", 30, 4, 34, "Conversation log"])
        return p
    raise AssertionError(fmt)


def scenario(tmp_path: Path, trace: Path, fmt: str, seed: int, extra: str = "") -> Path:
    p = tmp_path / f"replay-{fmt}.yaml"
    p.write_text(f"""
name: replay-{fmt}
backend: {{type: sim, flavor: vllm, model: llama-3-8b, gpu: a100-80gb, seed: {seed}}}
load: {{mode: replay, api: openai-completions, duration_s: 10, drain_timeout_s: 5}}
workload:
  trace: {{path: {trace.name}, format: {fmt}, time_scale: 0.5{", block_tokens: 16" if fmt == "mooncake" else ""}}}
  calibrate_prompt_tokens: off
sla: guide
{extra}""")
    return p


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "requests.jsonl").read_text().splitlines() if line.strip()]


def check_replayed(run_dir: Path, scale: float = 0.5) -> dict:
    recs = sorted(records(run_dir), key=lambda r: r["scheduled_s"])
    assert len(recs) == N and all(r["ok"] for r in recs), [r.get("error") for r in recs if not r["ok"]][:3]
    meta = json.loads((run_dir / "meta.json").read_text())
    due = np.array([r["scheduled_s"] for r in recs]) - meta["load_start_s"]
    # Due times are the recorded offsets x time_scale, from the replay's start.
    assert np.allclose(due - due[0], np.arange(N) * GAP_S * scale, atol=1e-3)
    lag = np.array([r["sent_s"] - r["scheduled_s"] for r in recs])
    assert (lag >= 0).all()  # never before its due time; how far behind is `make bench`'s figure (200 req/s)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["validity"]["valid"] and summary["replay"]["sent_entries"] == N
    return summary


def test_every_format_replays_against_a_target(tmp_path):
    # One in-process sim given as --target (a launched sim per format would only repeat the launch, which
    # the slabench test below covers); the sim's prefix cache is on, as vLLM's is by default.
    with running_server(ServeOptions(flavor="vllm", fixed_ttft_ms=5.0, fixed_itl_ms=1.0)) as s:
        for i, fmt in enumerate(("mooncake", "azure-csv", "burstgpt-csv")):
            trace = write_trace(tmp_path, fmt)
            out = tmp_path / f"run-{fmt}"
            res = slabench("run", str(scenario(tmp_path, trace, fmt, 9100 + i)), "--target", s.url, "--out", str(out))
            assert res.returncode in (0, 1), res.stdout + res.stderr
            summary = check_replayed(out)
            rp = summary["replay"]
            assert rp["format"] == fmt
            if fmt == "mooncake":
                # 24 requests x 2 ids, id 7 repeated 23 times: 23/48 of the blocks were seen before.
                assert rp["expected_reuse"] == pytest.approx(23 / 48)
                assert rp["block_tokens"] == 16
            else:
                assert rp["expected_reuse"] is None and "no block hashes" in rp["note"]


def test_a_slabench_run_replays_against_a_target(tmp_path):
    # First a run to replay: the mooncake trace on a launched sim (its prefix cache hit what the trace
    # shares); then its requests.jsonl replayed (format slabench) against a sim given as --target.
    trace = write_trace(tmp_path, "mooncake")
    first = tmp_path / "first"
    assert slabench("run", str(scenario(tmp_path, trace, "mooncake", 9200)), "--out", str(first)).returncode in (0, 1)
    launched = check_replayed(first)
    assert launched["metrics"]["prefix_cache_hit_rate"]["queries_tokens"] > 0
    src = tmp_path / "src.jsonl"
    src.write_bytes((first / "requests.jsonl").read_bytes())
    (tmp_path / "scenario.yaml").write_bytes((first / "scenario.yaml").read_bytes())  # its timeout for re-sorting
    with running_server(ServeOptions(flavor="vllm", fixed_ttft_ms=5.0, fixed_itl_ms=1.0)) as s:
        scn = scenario(tmp_path, src, "slabench", 9201)
        out = tmp_path / "again"
        res = slabench("run", str(scn), "--target", s.url, "--out", str(out))
        assert res.returncode in (0, 1), res.stdout + res.stderr
        summary = check_replayed(out, scale=0.25)  # the first run's offsets (x 0.5), x 0.5 again
    first_recs = sorted(records(first), key=lambda r: r["scheduled_s"])
    again = sorted(records(out), key=lambda r: r["scheduled_s"])
    # The same prompt and output lengths, in the same order.
    assert [r["output_tokens"] for r in again] == [r["output_tokens"] for r in first_recs]
    assert [r["prompt_tokens"] for r in again] == [r["prompt_tokens"] for r in first_recs]
    assert summary["replay"]["format"] == "slabench"


def test_a_bad_trace_is_one_line_and_exit_2(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text('{"timestamp": 5, "input_length": 10, "output_length": 2}\n'
                 '{"timestamp": 1, "input_length": 10, "output_length": 2}\n')
    res = slabench("run", str(scenario(tmp_path, p, "mooncake", 9300)))
    assert res.returncode == 2
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and "t.jsonl:2:" in err[0] and "sort the trace" in err[0] and "Traceback" not in res.stderr, res.stderr
