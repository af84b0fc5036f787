"""Process plumbing for scripts/bench.py: pinned child processes, their CPU time, the sim and Locust.

Every child runs in its own session (so a Ctrl-C in the terminal reaches only the bench, which then
tears the children down itself), is pinned to one core with sched_setaffinity (what `taskset -c N`
does), and is reaped with os.wait4 so that its own rusage (CPU time, peak RSS) is known exactly,
without mixing in other children the way RUSAGE_CHILDREN would.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
SIM_URL_RE = re.compile(rb"slabench-sim: serving .* on (http://127\.0\.0\.1:\d+)")


def cores() -> tuple[int | None, int | None]:
    """(client core, server core): the first two CPUs this process may use, or no pinning on 1 CPU."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None, None
    return allowed[0], allowed[1]


def proc_cpu_s(pid: int) -> float | None:
    """utime + stime of a live process (all its threads) from /proc/<pid>/stat, in seconds.

    Resolution is one clock tick (10 ms at CLK_TCK=100): fine over windows of several seconds.
    """
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2:].split()  # after "(comm)"; field 3 (state) is fields[0]
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Child:
    """One child process, pinned, in its own session; `close()` always kills its whole group.

    Use as a context manager (or register `close` on an ExitStack) so that an exception or Ctrl-C
    in the bench never leaves it running.
    """

    def __init__(self, argv: list[str], log_path: Path, core: int | None, stdout_pipe: bool = False,
                 env: dict | None = None):
        self.argv = argv
        self.log_path = Path(log_path)
        self.rusage = None  # resource.struct_rusage of the child once reaped
        self.returncode: int | None = None
        log = open(self.log_path, "ab")

        def pin() -> None:
            if core is not None:
                os.sched_setaffinity(0, {core})

        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE if stdout_pipe else log, stderr=log,
                                         start_new_session=True, preexec_fn=pin, cwd=REPO, env=env)
        finally:
            log.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_s(self) -> float | None:
        return proc_cpu_s(self.pid)

    def poll(self) -> int | None:
        """Exit code once the child has ended (reaping it with wait4 to keep its rusage)."""
        if self.returncode is None:
            try:
                pid, status, ru = os.wait4(self.pid, os.WNOHANG)
            except ChildProcessError:
                return self.returncode
            if pid:
                self.rusage = ru
                self.returncode = os.waitstatus_to_exitcode(status)
                self.proc.returncode = self.returncode  # keep Popen from waiting again
        return self.returncode

    def wait(self, timeout_s: float) -> int | None:
        deadline = time.monotonic() + timeout_s
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.returncode

    def close(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM the group, wait up to grace_s, then SIGKILL; reap. Safe to call twice."""
        if self.poll() is None:
            self._signal(signal.SIGTERM)
            if self.wait(grace_s) is None:
                self._signal(signal.SIGKILL)
                self.wait(10.0)
        self._signal(signal.SIGKILL)  # anything it left behind in its group
        if self.proc.stdout:
            self.proc.stdout.close()
        return self.returncode

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self) -> "Child":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def start_sim(log_dir: Path, core: int | None, ttft_ms: float, itl_ms: float, timeout_s: float = 30.0) -> tuple[Child, str]:
    """Start `python -m harness.sim serve` in calibration mode; returns (child, base URL)."""
    argv = [sys.executable, "-m", "harness.sim", "serve", "--flavor", "vllm", "--model", "llama-3-8b",
            "--gpu", "a100-80gb", "--host", "127.0.0.1", "--port", "0",
            "--fixed-ttft-ms", f"{ttft_ms:g}", "--fixed-itl-ms", f"{itl_ms:g}"]
    child = Child(argv, log_dir / f"sim-{ttft_ms:g}-{itl_ms:g}-{time.monotonic_ns()}.log", core, stdout_pipe=True)
    try:
        url = _read_url(child, timeout_s)
    except BaseException:
        child.close()
        raise
    return child, url


def _read_url(child: Child, timeout_s: float) -> str:
    """Read the sim's stdout until its `serving ... on URL` line (the harness's contract)."""
    sel = selectors.DefaultSelector()
    sel.register(child.proc.stdout, selectors.EVENT_READ)
    buf = b""
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if sel.select(timeout=0.1):
                chunk = os.read(child.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                buf += chunk
                m = SIM_URL_RE.search(buf)
                if m:
                    return m.group(1).decode()
            elif child.poll() is not None:
                break
    finally:
        sel.close()
    raise RuntimeError(f"the sim did not print its URL within {timeout_s:g} s; see {child.log_path}")


def get_json(url: str, timeout_s: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # only ever 127.0.0.1
        return json.loads(resp.read())


def locust_run_dir(parent: Path, users: int, duration_s: float, prompt_tokens: int, output_tokens: int,
                   api: str, url: str, name: str) -> tuple[Path, list[str]]:
    """A run folder with `load.json` as `run_load` writes it, and the Locust argv `run_load` would use.

    Mirrors harness.load.locust_runner.run_load (same config keys, same `locust_argv`) but leaves
    the launching to the bench, which must pin Locust to one core and read its CPU time.
    """
    from harness.config import LoadConfig, Scenario, WorkloadConfig
    from harness.load.locust_runner import LOCUST_META, LOCUST_STATUS, locust_argv
    from harness.records import REQUESTS_FILE

    run_dir = parent / name
    run_dir.mkdir(parents=True, exist_ok=True)
    scn = Scenario(name=name,
                   # Users start evenly over 1 s, as the bench's raw reference client does: started at
                   # once, a closed loop moves in lock-step and every stream's tokens arrive in one burst.
                   load=LoadConfig(api=api, users=users, spawn_rate=users / 1.0, duration_s=duration_s,
                                   timeout_s=30),
                   workload=WorkloadConfig(prompt_tokens=prompt_tokens, output_tokens=output_tokens, seed=1))
    cfg = {"api": scn.load.api, "model": "llama-3-8b", "workload": scn.workload.model_dump(mode="json"),
           "load": scn.load.model_dump(mode="json"), "records_path": str(run_dir / REQUESTS_FILE),
           "locust_meta_path": str(run_dir / LOCUST_META), "status_path": str(run_dir / LOCUST_STATUS),
           "api_key_env": None}
    config_path = run_dir / "load.json"
    config_path.write_text(json.dumps(cfg, indent=1), encoding="utf-8")
    return run_dir, locust_argv(scn, url, run_dir, config_path)


def run_locust(argv: list[str], run_dir: Path, core: int | None, limit_s: float, watch: list[int] = (),
               sample_every_s: float = 0.25) -> dict:
    """Run Locust to its end (pinned), sampling its CPU time and that of the `watch` pids.

    `samples` is [(perf_counter time, (locust cpu s, *watched cpu s))], so the caller can take the
    CPU spent inside any window of the load (startup imports and the final report excluded).
    """
    samples: list[tuple[float, tuple[float, ...]]] = []
    with Child(argv, run_dir / "locust.log", core) as child:
        deadline = time.perf_counter() + limit_s
        while child.poll() is None:
            now = time.perf_counter()
            if now > deadline:
                break
            cpus = (child.cpu_s(), *(proc_cpu_s(p) for p in watch))
            if None not in cpus:
                samples.append((now, cpus))
            time.sleep(sample_every_s)
        rc = child.close()
    meta_path = run_dir / "locust_meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    ru = child.rusage
    return {"samples": samples, "rc": rc, "meta": meta,
            "cpu_total_s": (ru.ru_utime + ru.ru_stime) if ru else None}


def cpu_between(samples: list[tuple[float, tuple[float, ...]]], t_a: float,
                t_b: float) -> tuple[tuple[float, ...], float, float] | None:
    """(cpu seconds per watched process, window start, window end) between the samples nearest
    inside [t_a, t_b]; None with fewer than two samples there."""
    inside = [s for s in samples if t_a <= s[0] <= t_b]
    if len(inside) < 2:
        return None
    (ta, ca), (tb, cb) = inside[0], inside[-1]
    return tuple(b - a for a, b in zip(ca, cb)), ta, tb


PROFILED_LOCUSTFILE = """\
# Written by scripts/bench.py --profile: the real locustfile plus cProfile over a window of the load.
import cProfile
import sys

sys.path.insert(0, {repo!r})
import gevent
from locust import events

from harness.load.locust_bridge import {user}, SlabenchShape  # noqa: F401

_prof = cProfile.Profile()


@events.test_start.add_listener
def _window(**_kw):
    def run():
        gevent.sleep({start_s!r})
        _prof.enable()
        gevent.sleep({seconds!r})
        _prof.disable()
        _prof.dump_stats({out!r})
    gevent.spawn(run)
"""


def profiled_argv(argv: list[str], tmp: Path, user: str, start_s: float, seconds: float, out: Path) -> list[str]:
    """The same Locust argv with a locustfile that profiles the process from start_s for seconds."""
    path = tmp / "profiled_locustfile.py"
    path.write_text(PROFILED_LOCUSTFILE.format(repo=str(REPO), user=user, start_s=start_s, seconds=seconds,
                                               out=str(out)), encoding="utf-8")
    argv = list(argv)
    argv[argv.index("-f") + 1] = str(path)
    return argv
