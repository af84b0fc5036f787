"""End to end: `slabench run` launches the sim, drives Locust, scores and reports; bad input exits 2.

Real processes on 127.0.0.1 with ports chosen by the OS; bounded durations.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.procs import processes_matching

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

TTFT_MS, ITL_MS, OUT_TOKENS, USERS = 50, 10, 32, 4


def slabench(*args, timeout=120, **kw):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, **kw)


def sim_processes(marker: str) -> list[int]:
    """PIDs of live sims whose command line carries `marker` (a seed unique to one test)."""
    return processes_matching("harness.sim", f"--seed {marker} ")


def write_scenario(tmp_path, seed, duration_s=10, extra_backend="", name="e2e"):
    path = tmp_path / "scenario.yaml"
    path.write_text(f"""
name: {name}
backend:
  type: sim
  flavor: vllm
  model: llama-3-8b
  gpu: a100-80gb
  seed: {seed}
  fixed_ttft_ms: {TTFT_MS}
  fixed_itl_ms: {ITL_MS}
{extra_backend}
load:
  api: openai-chat
  users: {USERS}
  duration_s: {duration_s}
  warmup_s: 1
workload:
  prompt_tokens: 16
  output_tokens: {OUT_TOKENS}
sla: guide
""")
    return path


def test_run_end_to_end_on_the_sim(tmp_path):
    scn = write_scenario(tmp_path, seed=424242)
    out = tmp_path / "run"
    res = slabench("run", str(scn), "--out", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    for name in ("scenario.yaml", "requests.jsonl", "summary.json", "report.html", "junit.xml", "summary.md",
                 "backend.log", "meta.json"):
        assert (out / name).is_file(), name
    assert "report:" in res.stdout and "Request latency" in res.stdout

    df = pd.read_json(out / "requests.jsonl", lines=True)
    summary = json.loads((out / "summary.json").read_text())
    meta = json.loads((out / "meta.json").read_text())
    # Counts add up: every record is either ok or an error, and the summary counts them all.
    assert len(df) == summary["counts"]["total"] > 20
    assert summary["counts"]["ok"] + summary["counts"]["errors"] == summary["counts"]["total"]
    assert df["ok"].all(), df[~df["ok"]][["error_type", "error"]].head().to_dict()
    assert df["request_id"].is_unique
    assert (df["output_tokens"] == OUT_TOKENS).all() and (df["output_tokens_source"] == "usage").all()
    # TTFT and ITL fall where the sim was set (client + loopback overhead of a few ms allowed).
    assert TTFT_MS / 1000 <= df["ttft_s"].median() < (TTFT_MS + 15) / 1000
    itl = pd.Series([g for gaps in df["itl_s"] for g in gaps])
    assert abs(itl.median() - ITL_MS / 1000) < 0.003
    # Closed loop: each user completes one request per TTFT + (n-1) x ITL.
    per_request_s = (TTFT_MS + (OUT_TOKENS - 1) * ITL_MS) / 1000
    expected_rps = USERS / per_request_s
    rps = summary["rates"]["request_rate_rps"]
    assert 0.75 * expected_rps <= rps <= 1.05 * expected_rps, (rps, expected_rps)
    assert meta["backend"]["simulated"] and meta["load_end_s"] > meta["load_start_s"]
    assert not sim_processes("424242")

    # The report re-renders from the saved folder alone, to the same verdicts.
    os.remove(out / "report.html")
    again = slabench("report", str(out))
    assert again.returncode == 0, again.stderr
    assert (out / "report.html").stat().st_size > 10_000
    resummary = json.loads((out / "summary.json").read_text())
    assert resummary["sla"] == summary["sla"]


def test_gate_exit_code_follows_the_overall_verdict(tmp_path):
    # A 5 ms p99 TTFT target the 50 ms sim cannot meet: FAIL, so --gate exits 1.
    (tmp_path / "strict.yaml").write_text("""
name: strict
rows:
  - {metric: ttft_s, stat: p50, target: 0.002, alert: 0.005}
""")
    scn = write_scenario(tmp_path, seed=434343, duration_s=4)
    res = slabench("run", str(scn), "--out", str(tmp_path / "r"), "--sla", str(tmp_path / "strict.yaml"), "--gate")
    assert res.returncode == 1, res.stderr[-2000:]
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["sla"]["overall"] == "FAIL"


@pytest.mark.parametrize("case", ["missing", "misspelled", "unreachable", "sim_bad_flag"])
def test_bad_input_exits_2_with_one_line_and_no_child_left(tmp_path, case):
    seed = {"missing": 717171, "misspelled": 727272, "unreachable": 737373, "sim_bad_flag": 515151}[case]
    scn = write_scenario(tmp_path, seed=seed)
    args = ["run", str(scn), "--out", str(tmp_path / "r")]
    if case == "missing":
        args[1] = str(tmp_path / "nope.yaml")
    elif case == "misspelled":
        scn.write_text(scn.read_text().replace("users:", "userz:"))
    elif case == "unreachable":
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        args += ["--target", f"http://127.0.0.1:{port}"]
    else:
        scn = write_scenario(tmp_path, seed=seed, extra_backend="  extra_args: ['--no-such-flag']")
    res = slabench(*args, timeout=60)
    assert res.returncode == 2, (res.stdout, res.stderr)
    first = res.stderr.strip().splitlines()[0]
    assert first.startswith("slabench: error: ")
    expect = {"missing": "file not found", "misspelled": "did you mean 'users'", "unreachable": "cannot reach",
              "sim_bad_flag": "exited with code"}[case]
    assert expect in first
    if case != "sim_bad_flag":
        assert len(res.stderr.strip().splitlines()) == 1
    assert not sim_processes(str(seed))


def test_ctrl_c_keeps_partial_results_and_tears_down(tmp_path):
    scn = write_scenario(tmp_path, seed=626262, duration_s=60)
    out = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(scn), "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            p = out / "requests.jsonl"
            if p.exists() and p.read_text().count("\n") >= 5:
                break
            time.sleep(0.1)
        else:
            pytest.fail("no records within 60 s")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["total"] >= 5
    assert (out / "report.html").exists()
    assert json.loads((out / "meta.json").read_text())["interrupted"] is True
    assert not sim_processes("626262")


def test_prometheus_port_serves_live_metrics_during_the_run(tmp_path):
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    scn = write_scenario(tmp_path, seed=838383, duration_s=8)
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(scn), "--out", str(tmp_path / "r"),
                             "--prometheus-port", "0"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        url = None
        for line in proc.stdout:
            if line.startswith("live metrics: "):
                url = line.split(": ", 1)[1].strip()
                break
        assert url, "no 'live metrics:' line"
        seen = 0.0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and seen == 0:
            text = urllib.request.urlopen(url, timeout=2).read().decode()
            for fam in text_string_to_metric_families(text):
                if fam.name == "llm_requests":
                    seen = sum(s.value for s in fam.samples if s.name == "llm_requests_total")
            time.sleep(0.2)
        assert seen > 0  # requests counted while the run was still going
        proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0


def test_backend_crash_mid_run_still_reports(tmp_path):
    scn = write_scenario(tmp_path, seed=858585, duration_s=20,
                         extra_backend="  extra_args: ['--fault-crash-after-s', '8']")  # after the load began, on a busy CI
    out = tmp_path / "r"
    t0 = time.monotonic()
    res = slabench("run", str(scn), "--out", str(out), timeout=90)
    assert time.monotonic() - t0 < 20 + 15  # stopped soon after the crash, not at the planned end
    assert res.returncode == 2, res.stderr[-1500:]
    assert "backend crashed" in res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["ok"] > 0  # what ran before the crash is kept and scored
    assert (out / "report.html").exists()
    assert "backend crashed" in json.loads((out / "meta.json").read_text())["load_outcome"]
    assert not sim_processes("858585")


def test_vllm_backend_crashing_mid_run_still_reports(tmp_path):
    """The real-vLLM launch path with the fake `vllm` executable: it becomes ready, then dies."""
    import os

    fake = ROOT / "tests" / "fakes" / "vllm"
    scn = tmp_path / "s.yaml"
    scn.write_text(f"""
name: vllm-crash
backend: {{type: vllm, model: fake/model, executable: "{fake}", gpu: h100-sxm, startup_timeout_s: 30}}
load: {{users: 2, duration_s: 20}}
workload: {{prompt_tokens: 4, output_tokens: 4}}
""")
    env = {**os.environ, "FAKE_MODE": "crash_after_ready"}
    res = slabench("run", str(scn), "--out", str(tmp_path / "r"), timeout=90, env=env)
    assert res.returncode == 2, res.stderr[-1500:]
    assert "backend crashed" in res.stderr
    meta = json.loads((tmp_path / "r" / "meta.json").read_text())
    assert meta["backend"]["type"] == "vllm" and meta["backend"]["command"][1] == "serve"
    assert (tmp_path / "r" / "report.html").exists() and (tmp_path / "r" / "summary.json").exists()
    assert not processes_matching(str(fake))
