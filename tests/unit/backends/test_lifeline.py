"""Launched programs die with slabench: even a SIGKILLed parent leaves no server behind."""

import os
import signal
import subprocess
import sys
import textwrap

from tests.procs import alive, wait_until

from harness.backends.process import ChildProcess, with_lifeline

PARENT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from harness.backends.process import ChildProcess
    tmp = Path(sys.argv[1])
    child = ChildProcess([sys.executable, "-c",
        "import os, time; open(os.environ['PIDFILE'], 'w').write(str(os.getpid())); time.sleep(600)"],
        tmp / "child.log", env={**__import__('os').environ, "PIDFILE": str(tmp / "pid")})
    child.start()
    print("started", flush=True)
    time.sleep(600)
""")


def test_child_dies_when_parent_is_sigkilled(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path)], stdout=subprocess.PIPE,
                              cwd=os.getcwd(), env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        pidfile = tmp_path / "pid"
        assert wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout_s=20)
        child_pid = int(pidfile.read_text())
        assert alive(child_pid)
        parent.send_signal(signal.SIGKILL)  # no handler, no finally: only the kernel can tell the child
        parent.wait(timeout=10)
        assert wait_until(lambda: not alive(child_pid), timeout_s=10), "launched program outlived slabench"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_lifeline_execs_in_place_and_keeps_exit_code(tmp_path):
    child = ChildProcess([sys.executable, "-c", "import sys; print('hi', flush=True); sys.exit(7)"],
                         tmp_path / "log")
    child.start()
    assert wait_until(lambda: child.exited() is not None)
    assert child.exited() == 7
    assert (tmp_path / "log").read_text().strip() == "hi"


def test_lifeline_refuses_when_parent_already_gone():
    # A parent pid that is not ours: the shim must not exec an orphan nobody will ever stop.
    argv = with_lifeline([sys.executable, "-c", "print('ran')"])
    argv[3] = "1"  # pretend init is the expected parent
    out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    assert out.returncode == 143 and "ran" not in out.stdout
