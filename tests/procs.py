"""Test helpers for real processes: poll a condition with a deadline, find live processes in /proc."""

from __future__ import annotations

import os
import time
from pathlib import Path


def wait_until(pred, timeout_s: float = 10.0, every_s: float = 0.02) -> bool:
    """Poll `pred` until it is true or the deadline passes (tests never sleep to wait)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(every_s)
    return bool(pred())


def alive(pid: int) -> bool:
    """Running and not a zombie (a zombie still answers kill(0) until it is reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def processes_matching(*needles: str) -> list[int]:
    """PIDs of live processes whose command line contains every needle."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(n in cmd for n in needles) and alive(int(d.name)):
            pids.append(int(d.name))
    return pids
