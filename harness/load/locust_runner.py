"""Drives Locust headless as a child process (gevent never enters the harness process).

Writes the run's load settings to `load.json`, starts `locust -f loadtests/<api>.py`, prints a
progress line every 2 s from the records it appends, and stops it cleanly on time, on a
backend crash or on Ctrl-C. Locust's own stats go to `locust.log` and `locust.html`.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.backends.process import ChildProcess, free_port, tail
from harness.config import Scenario
from harness.load.progress import ProgressTail
from harness.records import REQUESTS_FILE

LOCUSTFILES = {
    "openai-chat": "openai_chat.py",
    "openai-completions": "openai_completions.py",
    "tgi-generate-stream": "tgi_generate_stream.py",
}
# harness/locustfiles links to the repo's loadtests/ and is shipped in the wheel, so an installed
# slabench finds its locustfiles wherever it runs from.
LOADTESTS_DIR = Path(__file__).resolve().parents[1] / "locustfiles"
LOCUST_META = "locust_meta.json"
LOCUST_STATUS = "locust_status.json"
STARTUP_SLACK_S = 30.0  # Locust's own start (imports, spawning) on a slow 2-core machine
STOP_SLACK_S = 15.0  # after SIGTERM and the drain: cancelled records, workers' flush, Locust's report
WORKER_WAIT_S = 300.0  # master mode: how long remote workers may take to connect


@dataclass
class LoadOutcome:
    exit_code: int | None
    reason: str  # "completed", "interrupted", "backend crashed: ...", "locust failed ..."
    locust_meta: dict


@dataclass(frozen=True)
class Distribution:
    """How Locust spreads the users: one process, --processes N here, or a master for remote workers."""

    processes: int = 1
    expect_workers: int | None = None  # master mode: wait for this many `slabench worker`s
    master_bind_port: int = 5557
    master_bind_host: str = "*"  # master mode: where remote workers can reach it

    def argv(self) -> list[str]:
        if self.expect_workers:
            return ["--master", "--expect-workers", str(self.expect_workers),
                    "--master-bind-host", self.master_bind_host, "--master-bind-port", str(self.master_bind_port)]
        if self.processes > 1:
            # Local workers only: loopback and a port of our own, so two runs never share a master.
            port = free_port()
            return ["--processes", str(self.processes), "--master-bind-host", "127.0.0.1",
                    "--master-bind-port", str(port), "--master-host", "127.0.0.1", "--master-port", str(port)]
        return []


WORKER_LOCUSTFILE = "any_api.py"  # every user class: the master's scenario picks which one runs


def worker_argv(api: str | None, master_host: str, master_port: int = 5557) -> list[str]:
    """A Locust worker for `slabench run --expect-workers N` on another machine (or this one).

    Without `api` the worker loads every user class, so it cannot disagree with its master's API
    (a worker with the wrong one crashed at start and the master ran no request at all).
    """
    locustfile = LOCUSTFILES[api] if api else WORKER_LOCUSTFILE
    return [sys.executable, "-m", "locust", "-f", str(LOADTESTS_DIR / locustfile), "--worker",
            "--master-host", master_host, "--master-port", str(master_port)]


def locust_argv(scn: Scenario, url: str, run_dir: Path, config_path: Path,
                dist: Distribution = Distribution()) -> list[str]:
    load = scn.load
    # At stop, in-flight requests get drain_timeout_s to finish, then the bridge cancels them (each one
    # recorded as cancelled_at_stop). Locust's stop timeout takes whole seconds: it is the backstop.
    stop_timeout_s = math.ceil(load.drain_timeout_s)
    # Users over time come from the scenario through the locustfile's load shape (SlabenchShape),
    # so no -u/-r/-t here: closed-loop stages, open-loop dispatch and the end of the run are its job.
    return [sys.executable, "-m", "locust", "-f", str(LOADTESTS_DIR / LOCUSTFILES[load.api]), "--headless",
            "--stop-timeout", f"{stop_timeout_s:g}", "--host", url, "--only-summary",
            "--html", str(run_dir / "locust.html"), "--slabench-config", str(config_path), *dist.argv()]


def _offered_rps(scn: Scenario) -> float | None:
    if scn.load.mode != "open":
        return None
    from harness.load.arrivals import rate_profile

    p = rate_profile(scn.load)
    return p.total_expected / p.duration_s


def run_load(scn: Scenario, url: str, model: str | None, run_dir: Path, api_key_env: str | None = None,
             crashed: Callable[[], str | None] = lambda: None, echo: Callable[[str], None] = print,
             progress_every_s: float = 2.0, dist: Distribution | None = None,
             on_tick: Callable[[], None] | None = None) -> LoadOutcome:
    """Run the scenario's traffic against `url`; records land in run_dir/requests.jsonl."""
    config_path = run_dir / "load.json"
    cfg = {"api": scn.load.api, "model": model, "workload": scn.workload.model_dump(mode="json"),
           "load": scn.load.model_dump(mode="json"), "records_path": str(run_dir / REQUESTS_FILE),
           "locust_meta_path": str(run_dir / LOCUST_META), "status_path": str(run_dir / LOCUST_STATUS),
           "api_key_env": api_key_env}
    config_path.write_text(json.dumps(cfg, indent=1), encoding="utf-8")
    dist = dist or Distribution(processes=scn.load.processes)
    child = ChildProcess(locust_argv(scn, url, run_dir, config_path, dist), run_dir / "locust.log",
                         stop_grace_s=scn.load.drain_timeout_s + STOP_SLACK_S)
    tail = ProgressTail(run_dir / REQUESTS_FILE, status_path=run_dir / LOCUST_STATUS,
                        offered_rps=_offered_rps(scn))
    total_s = scn.load.duration_s
    deadline_s = total_s + scn.load.drain_timeout_s + STARTUP_SLACK_S
    if dist.expect_workers:
        deadline_s += WORKER_WAIT_S
        echo(f"waiting for {dist.expect_workers} worker(s): slabench worker --master-host THIS_HOST "
             f"--master-port {dist.master_bind_port}")
    t0 = time.perf_counter()
    next_print = t0 + progress_every_s
    reason = "completed"
    child.start()
    try:
        while child.exited() is None:
            now = time.perf_counter()
            dead = crashed()
            if dead:
                reason = f"backend crashed: {dead.splitlines()[0]}"
                break
            if now - t0 > deadline_s:
                reason = f"locust did not finish within {deadline_s:.0f} s; stopped"
                break
            if now >= next_print:
                tail.poll()
                echo(tail.line(now - t0, total_s))
                if on_tick is not None:
                    on_tick()  # e.g. the live Prometheus exporter catching up
                next_print += progress_every_s
            time.sleep(0.05)
    except KeyboardInterrupt:
        reason = "interrupted"  # records so far are kept and scored; the caller reports it
    finally:
        rc = child.stop()  # SIGTERM lets Locust flush its records and write its report
        if reason == "completed" and rc not in (0, 1):  # 1 = some requests failed: data, not a crash
            reason = f"locust exited with code {rc}; see locust.log"
    meta_path = run_dir / LOCUST_META
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    except (OSError, ValueError):
        meta = {}
    if not isinstance(meta, dict):
        meta = {}
    if reason == "completed" and meta.get("load_error"):  # e.g. a trace row the replay could not read
        reason = str(meta["load_error"])
    if reason == "completed" and not meta:
        # The bridge writes locust_meta.json when the test stops; without it Locust never ran our
        # users (bad locustfile, import error, a worker that crashed at start).
        reason = f"the load generator never started: {last_line(run_dir / 'locust.log')} (see locust.log)"
    return LoadOutcome(rc, reason, meta)


def last_line(path: Path) -> str:
    """The last non-empty line of a log, for a one-line reason ('no output' when there is none)."""
    lines = [ln.strip() for ln in tail(path, 20).splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"
