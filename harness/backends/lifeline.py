"""Lifeline: run a program that gets SIGTERM when slabench dies, however slabench dies.

Launched as `python -S lifeline.py PARENT_PID PROGRAM ARGS...` (stdlib only, no harness import):
asks Linux for a parent-death signal (prctl PR_SET_PDEATHSIG, kept across exec), checks the
parent is still alive, then execs PROGRAM in its place. SIGTERM lets the program shut down its own
children (vLLM, TGI, Locust and the sim all do); elsewhere it is a plain exec.
"""

import ctypes
import ctypes.util
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def arm(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # no prctl: the program still runs; only the SIGKILL-of-slabench case is uncovered
    # The parent may have died between fork and prctl: then nobody would ever signal us.
    if os.getppid() != parent_pid:
        sys.exit(143)


def main(argv: list[str]) -> None:
    parent_pid, program = int(argv[1]), argv[2:]
    arm(parent_pid)
    try:
        os.execvp(program[0], program)
    except OSError as exc:
        print(f"lifeline: cannot start {program[0]}: {exc.strerror}", file=sys.stderr, flush=True)
        sys.exit(127)


if __name__ == "__main__":
    main(sys.argv)
