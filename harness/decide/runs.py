"""One decision run: a scenario into its own run folder, offline (sim) or live, with a status marker.

Seam for matrix and sweep: `run_one` → `variant.json` {status done | cannot_run, mode, reason} next
to the usual run files; `finished(dir)` reads it back so `--resume` skips what is complete. A run
with no marker (interrupted, crashed) is removed and repeated on resume.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from harness.config import ConfigError, Scenario, scenario_to_yaml
from harness.decide.offline import offline_reason, sim_plan, write_offline_run
from harness.decide.progress import LIVE_STARTUP_S
from harness.records import SUMMARY_FILE

STATUS_FILE = "variant.json"
DONE, CANNOT_RUN = "done", "cannot_run"


class Interrupted(Exception):
    """Ctrl-C during a run: finished runs are kept, this one is repeated on --resume."""


def finished(run_dir: Path) -> dict | None:
    """The status marker of a complete run (done or cannot_run), else None."""
    p = Path(run_dir) / STATUS_FILE
    try:
        st = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if st.get("status") == DONE and not (Path(run_dir) / SUMMARY_FILE).is_file():
        return None
    return st if st.get("status") in (DONE, CANNOT_RUN) else None


def load_summary(run_dir: Path) -> dict | None:
    p = Path(run_dir) / SUMMARY_FILE
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None


def mode_of(scn: Scenario, offline: bool) -> tuple[str, str | None]:
    """('offline' | 'live', why not offline)."""
    if not offline:
        return "live", "offline disabled"
    why = offline_reason(scn)
    return ("live", why) if why else ("offline", None)


def expected_s(scn: Scenario, mode: str) -> float | None:
    return None if mode == "offline" else scn.load.duration_s + LIVE_STARTUP_S


def _mark(run_dir: Path, status: str, mode: str, reason: str | None, took: float) -> dict:
    st = {"status": status, "mode": mode, "reason": reason, "elapsed_s": round(took, 3),
          "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / STATUS_FILE).write_text(json.dumps(st, indent=1), encoding="utf-8")
    return st


def run_one(scn: Scenario, run_dir: Path, scenario_file: Path, offline: bool = True,
            echo: Callable[[str], None] = print, full_reports: bool = True) -> dict:
    """Run `scn` (resolved) into `run_dir`; returns the status marker. Raises Interrupted on Ctrl-C."""
    from harness.sim.catalog import SimConfigError

    run_dir = Path(run_dir)
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an unfinished earlier attempt
    scenario_file.parent.mkdir(parents=True, exist_ok=True)
    scenario_file.write_text(scenario_to_yaml(scn), encoding="utf-8")
    mode, _ = mode_of(scn, offline)
    t0 = time.perf_counter()
    if scn.backend.type == "sim":
        try:
            plan = sim_plan(scn.backend)
        except SimConfigError as exc:
            return _mark(run_dir, CANNOT_RUN, mode, str(exc), time.perf_counter() - t0)
    if mode == "offline":
        try:
            write_offline_run(scn, run_dir, str(scenario_file), plan=plan, full_reports=full_reports)
        except KeyboardInterrupt:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise Interrupted() from None
        return _mark(run_dir, DONE, mode, None, time.perf_counter() - t0)
    from harness.backends import BackendError
    from harness.runner import HarnessError, execute

    try:
        outcome = execute(scenario_file, out=run_dir, echo=echo)
    except (BackendError, HarnessError) as exc:
        return _mark(run_dir, CANNOT_RUN, mode, str(exc).splitlines()[0], time.perf_counter() - t0)
    except ConfigError:
        raise
    except KeyboardInterrupt:
        raise Interrupted() from None
    if outcome.interrupted:
        raise Interrupted()
    reason = None if outcome.load_reason == "completed" else f"load ended early: {outcome.load_reason}"
    return _mark(run_dir, DONE, mode, reason, time.perf_counter() - t0)
