"""Locust's own scale-out: --processes N, and a master with two `slabench worker`s on 127.0.0.1.
Every worker's records reach the master's run folder, none lost, none duplicated.
"""

import json
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def scenario(tmp_path, users=6, duration_s=6, api="openai-chat", flavor="vllm"):
    path = tmp_path / "scenario.yaml"
    path.write_text(f"""
name: dist
backend: {{type: sim, flavor: {flavor}, model: llama-3-8b, gpu: a100-80gb, fixed_ttft_ms: 20, fixed_itl_ms: 5}}
load: {{api: {api}, users: {users}, duration_s: {duration_s}}}
workload: {{prompt_tokens: 8, output_tokens: 16}}
""")
    return path


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def check_folder(out: Path, min_workers: int):
    df = pd.read_json(out / "requests.jsonl", lines=True)
    meta = json.loads((out / "locust_meta.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert len(df) > 20
    assert df["request_id"].is_unique  # no duplicates
    assert meta["completed"] == len(df) == summary["counts"]["total"]  # nothing lost on the way
    assert meta["role"] == "master" and len(meta["workers"]) >= min_workers
    pids = {u.rsplit("-", 2)[1] for u in df["user"]}
    assert len(pids) >= min_workers  # records came from every worker process
    assert df["ok"].all()


def test_processes_on_one_machine(tmp_path):
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(scenario(tmp_path)), "--out", str(out),
                          "--processes", "2"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    check_folder(out, 2)


def test_master_and_two_workers(tmp_path):
    # The master's scenario is TGI's API; the workers are started without --api (they once defaulted
    # to openai-chat, crashed at start, and the master measured nothing).
    out = tmp_path / "run"
    port = free_port()
    scn = scenario(tmp_path, api="tgi-generate-stream", flavor="tgi")
    master = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(scn), "--out", str(out),
                               "--expect-workers", "2", "--master-bind-port", str(port),
                               "--master-bind-host", "127.0.0.1"],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers = [subprocess.Popen([sys.executable, "-m", "harness.cli", "worker", "--master-host", "127.0.0.1",
                                 "--master-port", str(port)], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        _, err = master.communicate(timeout=150)
        assert master.returncode == 0, err[-2000:]
        for w in workers:
            w.wait(timeout=30)  # the master's quit message ends them
    finally:
        for p in [master, *workers]:
            if p.poll() is None:
                p.kill()
    check_folder(out, 2)
