"""Fail closed, end to end: runs that measured nothing exit 2 with one line, never PASS or 0.

Real processes on 127.0.0.1 (the sim, Locust, slabench itself); bounded durations. Each test is a
reproduction from issue #12.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.procs import alive, processes_matching, wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def slabench(*args, timeout=120, env=None):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def start_sim(tmp_path, *extra) -> tuple[subprocess.Popen, str]:
    log = open(tmp_path / "sim.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "harness.sim", "serve", "--flavor", "vllm", "--model", "llama-3-8b",
                             "--gpu", "a100-80gb", "--port", "0", "--fixed-ttft-ms", "20", "--fixed-itl-ms", "5",
                             *extra], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    assert wait_until(lambda: b" on http://" in (tmp_path / "sim.log").read_bytes(), timeout_s=30)
    url = (tmp_path / "sim.log").read_text().split(" on ", 1)[1].split()[0]
    return proc, url


def scenario(tmp_path, duration_s=3, **load) -> Path:
    extra = "".join(f"  {k}: {v}\n" for k, v in load.items())
    path = tmp_path / "scenario.yaml"
    path.write_text(f"""
name: failclosed
backend: {{type: sim, flavor: vllm, model: llama-3-8b, gpu: a100-80gb, fixed_ttft_ms: 20, fixed_itl_ms: 5}}
load:
  api: openai-chat
  users: 2
  duration_s: {duration_s}
{extra}workload: {{prompt_tokens: 8, output_tokens: 8}}
sla: guide
""")
    return path


def one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("slabench: error:")]
    assert lines, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    return lines[0]


def test_target_needing_a_key_stops_before_load_and_names_the_flag(tmp_path):
    sim, url = start_sim(tmp_path, "--api-key", "sekrit-123")
    try:
        res = slabench("run", str(scenario(tmp_path)), "--target", url, "--out", str(tmp_path / "run"))
        assert res.returncode == 2
        line = one_error_line(res.stderr)
        assert "401" in line and "--api-key-env" in line
        assert not (tmp_path / "run" / "requests.jsonl").exists()  # no load was sent

        env = {**os.environ, "MY_KEY": "sekrit-123"}
        ok = slabench("run", str(scenario(tmp_path, duration_s=2)), "--target", url, "--api-key-env", "MY_KEY",
                      "--out", str(tmp_path / "run2"), env=env)
        assert ok.returncode == 0, ok.stderr[-2000:]
        summary = json.loads((tmp_path / "run2" / "summary.json").read_text())
        assert summary["validity"]["valid"] and summary["counts"]["ok"] > 0
        # The key itself is in no file of the run folder.
        for f in (tmp_path / "run2").iterdir():
            assert b"sekrit-123" not in f.read_bytes(), f.name
    finally:
        os.killpg(sim.pid, signal.SIGKILL)
        sim.wait()


def test_external_target_that_dies_mid_run_is_an_invalid_run(tmp_path):
    sim, url = start_sim(tmp_path)
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(scenario(tmp_path, duration_s=20)),
                             "--target", url, "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        records = out / "requests.jsonl"
        assert wait_until(lambda: records.exists() and records.stat().st_size > 0, timeout_s=40)
        os.killpg(sim.pid, signal.SIGKILL)
        sim.wait()
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, stderr[-2000:]
    assert "stopped answering" in one_error_line(stderr)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["validity"]["valid"] is False
    assert any("stopped answering" in r for r in summary["validity"]["reasons"])


def test_load_generator_that_never_starts_is_an_invalid_run(tmp_path):
    # A `locust` that cannot load its locustfile, as an installed package missing loadtests/ did.
    fake = tmp_path / "fakepkgs" / "locust"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "__main__.py").write_text("import sys; print('Could not find locustfile'); sys.exit(1)\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'fakepkgs'}{os.pathsep}{ROOT}"}
    out = tmp_path / "run"
    res = slabench("run", str(scenario(tmp_path)), "--out", str(out), "--gate", env=env)
    assert res.returncode == 2, res.stdout[-2000:] + res.stderr[-2000:]
    assert "never started" in one_error_line(res.stderr)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["validity"]["valid"] is False
    assert (out / "report.html").is_file()  # the report is still written, and says why


def start_long_run(tmp_path, marker: str, **popen) -> tuple[subprocess.Popen, Path]:
    """`slabench run` of a 60 s scenario (sim seed `marker`) in its own session, once records flow."""
    scn = scenario(tmp_path, duration_s=60)
    scn.write_text(scn.read_text().replace("fixed_itl_ms: 5}", f"fixed_itl_ms: 5, seed: {marker}}}"))
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(scn), "--out", str(out)], cwd=ROOT,
                            start_new_session=True, **popen)
    records = out / "requests.jsonl"
    if not wait_until(lambda: records.exists() and records.stat().st_size > 0, timeout_s=60):
        proc.kill()
        pytest.fail("the run never recorded a request")
    return proc, out


def test_sighup_stops_the_run_like_ctrl_c_and_leaves_nothing_running(tmp_path):
    marker = "913377"
    proc, out = start_long_run(tmp_path, marker, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        proc.send_signal(signal.SIGHUP)
        _, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr[-2000:]
    assert (out / "report.html").is_file() and (out / "summary.json").is_file()
    assert wait_until(lambda: not processes_matching("harness.sim", f"--seed {marker} "), timeout_s=20)


def test_sigkill_of_slabench_takes_the_sim_and_locust_down(tmp_path):
    marker = "913378"
    proc, out = start_long_run(tmp_path, marker, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sims = processes_matching("harness.sim", f"--seed {marker} ")
        locusts = processes_matching("locust", str(out / "load.json"))
        assert sims and locusts
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert wait_until(lambda: not any(alive(p) for p in sims + locusts), timeout_s=30), \
            "the sim or Locust outlived a SIGKILLed slabench"
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in processes_matching("harness.sim", f"--seed {marker} "):
            os.kill(pid, signal.SIGKILL)


def test_unexpected_exception_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    from harness import cli

    def boom(_args):
        raise RuntimeError("something nobody expected\nsecond line")

    monkeypatch.setattr(cli, "cmd_report", boom)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    rc = cli.main(["report", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "internal error (RuntimeError: something nobody expected)" in err
    crash = list(tmp_path.glob("slabench-crash-*.txt"))
    assert crash and "Traceback" in crash[0].read_text()


def test_no_secret_in_any_file_of_a_run_folder(tmp_path):
    scn = scenario(tmp_path, duration_s=2)
    scn.write_text(scn.read_text().replace("fixed_itl_ms: 5}", "fixed_itl_ms: 5, api_key_env: SIM_KEY}"))
    out = tmp_path / "run"
    res = slabench("run", str(scn), "--out", str(out), env={**os.environ, "SIM_KEY": "sekrit-456"})
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["ok"] > 0  # the sim required the key and the load sent it
    assert "sekrit-456" not in res.stdout + res.stderr
    for f in out.iterdir():
        assert b"sekrit-456" not in f.read_bytes(), f.name


def test_a_key_in_extra_args_is_refused_before_anything_is_written(tmp_path):
    scn = scenario(tmp_path)
    scn.write_text(scn.read_text().replace("fixed_itl_ms: 5}", "fixed_itl_ms: 5, extra_args: [--api-key, sekrit-789]}"))
    out = tmp_path / "run"
    res = slabench("run", str(scn), "--out", str(out))
    assert res.returncode == 2
    line = one_error_line(res.stderr)
    assert "api_key_env" in line and "sekrit-789" not in line
    assert not out.exists() or not any(b"sekrit-789" in f.read_bytes() for f in out.iterdir())
