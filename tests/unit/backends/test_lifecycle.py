"""Backend lifecycle against small fake servers: ready, crash at start, hang, teardown."""

import os
import signal
import sys
import textwrap
import time

import pytest

from tests.procs import alive, wait_until

from harness.backends import BackendError, make_backend
from harness.backends.external import ExternalServer
from harness.backends.process import ChildProcess, redact
from harness.backends.sim import SimProcessBackend, sim_argv
from harness.config import ExternalBackend, SimBackend

FAKE_OK = textwrap.dedent("""
    import http.server, json, sys
    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a): pass
        def do_GET(self):
            body = b"" if self.path == "/health" else json.dumps({"object": "list", "data": [{"id": "fake-model"}]}).encode()
            self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
            self.wfile.write(body)
    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    print(f"slabench-sim: serving fake-model (flavor vllm) on http://127.0.0.1:{srv.server_port}", flush=True)
    srv.serve_forever()
""")
FAKE_CRASH = "import sys; print('CUDA out of memory (fake)', flush=True); sys.exit(3)"
FAKE_HANG = "import time, os; open(os.environ['PIDFILE'], 'w').write(str(os.getpid())); time.sleep(600)"
FAKE_IGNORES_TERM = textwrap.dedent("""
    import signal, time, os
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    open(os.environ['PIDFILE'], 'w').write(str(os.getpid()))
    print('started', flush=True)
    time.sleep(600)
""")


def backend_with(script, tmp_path, timeout_s=20.0):
    b = SimProcessBackend(SimBackend(startup_timeout_s=timeout_s), tmp_path / "backend.log")
    b.child.argv = [sys.executable, "-c", script]
    return b


def test_ready_backend_reports_url_and_model_then_stops(tmp_path):
    b = backend_with(FAKE_OK, tmp_path)
    with b:
        assert b.url.startswith("http://127.0.0.1:")
        assert b.model == "fake-model"
        pid = b.child.proc.pid
        assert b.poll_crash() is None
    assert not alive(pid)
    assert b.child.proc.returncode is not None


def test_crash_at_start_fails_fast_with_log_tail(tmp_path):
    b = backend_with(FAKE_CRASH, tmp_path)
    t0 = time.monotonic()
    with pytest.raises(BackendError) as ei:
        with b:
            pass
    assert time.monotonic() - t0 < 10
    assert "exited with code 3" in str(ei.value) and "CUDA out of memory" in str(ei.value)


def test_never_ready_times_out_and_leaves_no_process(tmp_path, monkeypatch):
    pidfile = tmp_path / "pid"
    monkeypatch.setenv("PIDFILE", str(pidfile))
    b = backend_with(FAKE_HANG, tmp_path, timeout_s=1.0)
    with pytest.raises(BackendError) as ei:
        with b:
            pass
    assert "did not start within 1 s" in str(ei.value)
    assert wait_until(lambda: pidfile.exists() and pidfile.read_text().strip())
    assert not alive(int(pidfile.read_text()))


def test_sigterm_ignored_gets_sigkill(tmp_path, monkeypatch):
    pidfile = tmp_path / "pid"
    monkeypatch.setenv("PIDFILE", str(pidfile))
    child = ChildProcess([sys.executable, "-c", FAKE_IGNORES_TERM], tmp_path / "log", stop_grace_s=0.5)
    child.start()
    assert wait_until(lambda: pidfile.exists() and pidfile.read_text().strip())
    pid = int(pidfile.read_text())
    assert os.getpgid(pid) == pid  # own session/process group, so Ctrl-C on the terminal never hits it
    rc = child.stop()
    assert rc == -signal.SIGKILL
    assert not alive(pid)


def test_missing_program_is_a_clear_error(tmp_path):
    child = ChildProcess(["/nonexistent/vllm", "serve"], tmp_path / "log")
    with pytest.raises(BackendError, match="cannot start /nonexistent/vllm"):
        child.start()


def test_unreachable_external_target_is_one_line(tmp_path):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    b = make_backend(ExternalBackend(url=f"http://127.0.0.1:{port}", startup_timeout_s=2), tmp_path / "log")
    assert isinstance(b, ExternalServer)
    with pytest.raises(BackendError) as ei:
        with b:
            pass
    msg = str(ei.value)
    assert "\n" not in msg and f"cannot reach http://127.0.0.1:{port}" in msg and "--target" in msg


def test_sim_argv_and_redaction():
    argv = sim_argv(SimBackend(flavor="vllm", fixed_ttft_ms=50, fixed_itl_ms=10, max_num_seqs=64,
                               extra_args=["--rate-limit-rps", "5"]))
    argv += ["--api-key", "s3cret"]  # what a by-hand sim command line may carry
    assert argv[1:4] == ["-m", "harness.sim", "serve"]
    assert argv[argv.index("--port") + 1] == "0"
    assert argv[argv.index("--fixed-ttft-ms") + 1] == "50.0" and "--max-num-seqs" in argv
    assert "s3cret" not in redact(argv) and redact(["x", "--api-key=abc"]) == ["x", "--api-key=***"]
    tgi = sim_argv(SimBackend(flavor="tgi", max_num_seqs=64))
    assert "--max-num-seqs" not in tgi  # a vLLM flag; TGI has its own capacity flags
