"""Child-process lifecycle for launched servers: own session, log file, SIGTERM then SIGKILL.

Shared by every backend that starts a program (sim now; vllm and TGI later), so that Ctrl-C,
an exception or a failed readiness never leaves a server running.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from harness.backends.base import BackendError

REDACT_FLAGS = {"--api-key"}
LIFELINE = Path(__file__).with_name("lifeline.py")


GROUP_EXIT_WAIT_S = 2.0  # how long stop() waits for SIGKILLed leftovers of the group to exit (zombies may stay)


def with_lifeline(argv: list[str]) -> list[str]:
    """`argv` run through the lifeline shim, so the program gets SIGTERM if this process dies (even by SIGKILL)."""
    return [sys.executable, "-S", str(LIFELINE), str(os.getpid()), *argv]


def redact(argv: list[str]) -> list[str]:
    """The command line with secrets replaced (for logs and run metadata)."""
    out, hide = [], False
    for a in argv:
        if hide:
            out.append("***")
            hide = False
        elif a in REDACT_FLAGS:
            out.append(a)
            hide = True
        elif any(a.startswith(f + "=") for f in REDACT_FLAGS):
            out.append(a.split("=", 1)[0] + "=***")
        else:
            out.append(a)
    return out


def free_port() -> int:
    """A port nothing listens on right now (bind 127.0.0.1:0, read it, close). Racy, but only briefly."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, n: int = 50) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return "".join(deque(fh, maxlen=n))
    except OSError:
        return ""


class ChildProcess:
    """One launched program writing stdout+stderr to `log_path`, in its own session."""

    def __init__(self, argv: list[str], log_path: Path, env: dict | None = None, stop_grace_s: float = 10.0):
        self.argv = argv
        self.log_path = Path(log_path)
        self.env = env
        self.stop_grace_s = stop_grace_s
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        path = (self.env or os.environ).get("PATH")
        if shutil.which(self.argv[0], path=path) is None:
            raise BackendError(f"cannot start {self.argv[0]}: not found or not executable (is it installed and on PATH?)")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(with_lifeline(self.argv), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        except OSError as exc:
            raise BackendError(f"cannot start {self.argv[0]}: {exc.strerror} (is it installed and on PATH?)") from None
        finally:
            log.close()

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def death_message(self) -> str | None:
        rc = self.exited()
        if rc is None:
            return None
        return f"{Path(self.argv[0]).name} exited with code {rc}; last log lines:\n{tail(self.log_path)}"

    def wait_for_log(self, pattern: str, timeout_s: float, clock=time.monotonic, sleep=time.sleep) -> re.Match:
        """Poll the log until `pattern` matches (e.g. the line announcing the port)."""
        rx = re.compile(pattern)
        deadline = clock() + timeout_s
        while True:
            m = rx.search(tail(self.log_path, 200))
            if m:
                return m
            dead = self.death_message()
            if dead:
                raise BackendError(dead)
            if clock() >= deadline:
                raise BackendError(f"{Path(self.argv[0]).name} did not start within {timeout_s:g} s; "
                                   f"last log lines:\n{tail(self.log_path)}")
            sleep(0.05)

    def stop(self) -> int | None:
        """SIGTERM the whole process group, wait, then SIGKILL. Returns the exit code."""
        p = self.proc
        if p is None:
            return None
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=self.stop_grace_s)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=10)
        # Children the server left behind in its group get the same treatment, and stop() returns only
        # once they are gone: SIGKILL is delivered asynchronously, and on a busy machine a killed process
        # can still be running when the caller (or the next run on the same port) looks.
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return p.returncode
        deadline = time.monotonic() + GROUP_EXIT_WAIT_S
        while time.monotonic() < deadline:
            try:
                os.killpg(p.pid, 0)
            except (ProcessLookupError, PermissionError):
                break
            time.sleep(0.01)
        return p.returncode
