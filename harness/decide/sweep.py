"""`slabench sweep SCENARIO`: the highest request rate (or concurrency) at which the SLA still holds.

Seam: the search itself is `harness.decide.search` (pure doubling then bisection); `run_sweep` is
the driver: one run folder per measured point (sim offline, real or --target servers live),
capacity, replicas, OUT/sweep.{html,json}.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from harness.config import ConfigError, Scenario
from harness.decide.common import PLAN_FILE, REPORTS_ROOT, choose_out, metric_value
from harness.decide.pareto import miss_text
from harness.decide.progress import Progress, fmt_s
from harness.decide.runs import DONE, Interrupted, expected_s, finished, load_summary, mode_of, run_one
from harness.decide.search import (SAMPLE_MARGIN, Point, SearchResult, judgeable_duration_s, point_key,
                                   point_scenario, search, sweep_passes)
from harness.report.fmt import plural

__all__ = ["run_sweep", "SweepOutcome", "search", "sweep_passes", "replicas_table", "sweep_scenario",
           "judgeable_duration_s", "point_scenario", "point_key", "Point", "SearchResult", "SAMPLE_MARGIN"]


def replicas_table(capacity: float, target: float | None, headroom: float) -> list[dict]:
    levels = sorted({*(v for v in (10.0, 100.0, 1000.0) if v >= capacity / 2), *([target] if target else [])})
    return [{"rps": v, "target": v == target, "replicas": math.ceil(v / capacity - 1e-9),
             "replicas_headroom": math.ceil(v / (capacity * (1 - headroom)) - 1e-9)} for v in levels]


@dataclass
class SweepOutcome:
    out_dir: Path
    capacity: float | None
    unit: str
    fail_at: float | None = None
    replicas: int | None = None  # for target_rps, at capacity (no headroom)
    interrupted: bool = False
    html: Path | None = None
    json: Path | None = None
    doc: dict = field(default_factory=dict)


def sweep_scenario(path: Path, concurrency: bool, target: str | None = None,
                   api_key_env: str | None = None) -> tuple[Scenario, float]:
    """The scenario every point varies, read as `slabench run` reads it (--target and --api-key-env
    make the backend an external server; dataset paths made absolute), and the starting value."""
    from harness.runner import prepare

    scn = prepare(Path(path), None, target, api_key_env=api_key_env)
    key_env = getattr(scn.backend, "api_key_env", None)
    if key_env and not os.environ.get(key_env):
        raise ConfigError(f"the API key variable ${key_env} is not set: export it before the sweep "
                          "(or drop --api-key-env / backend.api_key_env)")
    load = scn.load
    if load.mode == "replay":
        raise ConfigError(f"{path}: sweep searches a request rate or a user count; a replay's arrivals are its "
                          "trace's: run it with `slabench run`, or measure capacity on an open-loop copy "
                          "(load.mode: open with rate_rps)")
    if concurrency:
        if load.mode != "closed":
            raise ConfigError(f"{path}: --concurrency searches closed-loop users, this scenario is mode: open: "
                              "drop --concurrency to search its request rate")
        return scn, float(load.users)
    if load.mode != "open":
        raise ConfigError(f"{path}: sweep searches a request rate, this scenario is closed loop: set load.mode: open "
                          "with rate_rps (the starting rate), or add --concurrency to search users")
    if load.stages:
        raise ConfigError(f"{path}: sweep needs one rate, this scenario has load.stages: replace them with "
                          "rate_rps (the starting rate)")
    return scn, float(load.rate_rps)


def _points_left(rows: list[dict], precision: float, repeats: int, integer: bool) -> int:
    """Rough count of runs still to do, from the bracket measured so far (for the ETA)."""
    passed = [r["x"] for r in rows if r["passes"]]
    failed = [r["x"] for r in rows if not r["passes"]]
    lo = max(passed, default=None)
    hi = min((x for x in failed if lo is None or x > lo), default=None)
    if lo is None or hi is None:
        return (2 + math.ceil(math.log2(1 / precision))) * repeats
    width = hi - lo
    step = 1 if integer else precision * lo
    return max(math.ceil(math.log2(max(width / step, 1))), 0) * repeats + 1


def run_sweep(scenario_path: Path, out_dir: Path | None = None, resume: bool = False,
              echo: Callable[[str], None] = print, precision: float = 0.05, repeats: int = 1,
              target_rps: float | None = None, concurrency: bool = False, headroom: float = 0.2,
              offline: bool = True, max_points: int = 40, root: Path = REPORTS_ROOT,
              report_points: bool = False, target: str | None = None, api_key_env: str | None = None) -> SweepOutcome:
    """Search the capacity of one scenario; writes OUT/sweep.{html,json} and OUT/points/<x>-r<k>/ run folders.
    target / api_key_env: as `slabench run --target URL --api-key-env VAR` (only the variable's name
    is saved; every point reads the key from the environment)."""
    if not 0 < precision < 1:
        raise ConfigError(f"--precision {precision:g}: give a fraction in (0, 1), e.g. 0.05 for 5 %")
    if repeats < 1:
        raise ConfigError(f"--repeats {repeats}: give at least 1")
    if not 0 <= headroom < 1:
        raise ConfigError(f"--headroom {headroom:g}: give a fraction in [0, 1)")
    scenario_path = Path(scenario_path)
    scn, start = sweep_scenario(scenario_path, concurrency, target, api_key_env)
    unit, axis = ("users", "concurrent users") if concurrency else ("req/s", "request rate (req/s)")
    out = choose_out(f"sweep-{scn.name}", out_dir, resume, root, "sweep")
    out.mkdir(parents=True, exist_ok=True)
    plan = {"kind": "sweep", "scenario": scn.model_dump(mode="json"), "precision": precision, "repeats": repeats,
            "concurrency": concurrency}
    if resume and json.loads((out / PLAN_FILE).read_text(encoding="utf-8")) != plan:
        raise ConfigError(f"--resume: {out} was a sweep of a different scenario or settings: run without --resume")
    (out / PLAN_FILE).write_text(json.dumps(plan, indent=1), encoding="utf-8")
    mode, why_live = mode_of(scn, offline)
    echo(f"sweep {scn.name}: {axis} from {start:g}, precision {precision:.0%}, {plural(repeats, 'repeats')}, {mode} → {out}")
    progress = Progress(0, echo, what="point")
    rows: list[dict] = []

    def measure(x: float, k: int) -> tuple[bool, dict]:
        key = f"{point_key(x)}-r{k}"
        run_dir = out / "points" / key
        st = finished(run_dir) if resume else None
        if st is None:
            v = point_scenario(scn, x, k, concurrency)
            left = _points_left(rows, precision, repeats, concurrency) - k
            progress.start(len(rows) + 1, f"{x:g} {unit}, repeat {k + 1}/{repeats} (~{plural(max(left, 1), 'points')} to go)",
                           [expected_s(v, mode)] * max(left, 1))
            st = run_one(v, run_dir, out / "scenarios" / f"{key}.yaml", offline, echo, full_reports=report_points)
            progress.finish(count=st["status"] == DONE)
        if st["status"] != DONE:
            raise ConfigError(f"sweep point {x:g} cannot run: {st['reason']}")
        s = load_summary(run_dir) or {}
        ok, ms = sweep_passes(s)
        row = {"x": x, "repeat": k, "passes": ok, "run_dir": f"points/{key}", "report": f"points/{key}/report.html",
               "has_report": (run_dir / "report.html").is_file(),
               "ttft_p99_s": metric_value(s, "ttft_s", "p99"), "tpot_p99_s": metric_value(s, "tpot_s", "p99"),
               "e2e_p99_s": metric_value(s, "e2e_s", "p99"), "request_rate_rps": (s.get("rates") or {}).get("request_rate_rps"),
               "goodput_rps": (s.get("rates") or {}).get("goodput_rps"),
               "cost": (s.get("cost") or {}).get("usd_per_1k_output_tokens"),
               "gpu_util_mean_pct": ((s.get("metrics") or {}).get("gpu_utilization_pct") or {}).get("mean"),
               "why": "; ".join(miss_text(m) for m in ms)}
        rows.append(row)
        echo(f"    {x:g} {unit} r{k + 1}: {'meets the SLA' if ok else 'fails: ' + row['why']}")
        return ok, row

    interrupted = False
    try:
        res = search(measure, start, precision, repeats, integer=concurrency, max_points=max_points)
    except Interrupted:
        interrupted = True
        res = SearchResult(None, None, [], False, "interrupted: continue with --resume")
        echo("interrupted: finished points are kept; continue with --resume")
    cap = res.capacity
    at_cap = next((r for r in rows if r["x"] == cap and r["repeat"] == 0), {}) if cap else {}
    fail_row = next((r for r in rows if r["x"] == res.fail_at and not r["passes"]), {})
    # Replicas are sized in req/s: a user-count capacity counts as the request rate its point achieved.
    cap_rps = (at_cap.get("request_rate_rps") if concurrency else cap) if cap else None
    doc = {"schema_version": 1, "kind": "sweep", "name": scn.name, "scenario_path": str(scenario_path),
           "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"), "mode": mode,
           "why_live": why_live, "axis": "users" if concurrency else "rate_rps", "axis_label": axis, "unit": unit,
           "start": start, "precision": precision, "repeats": repeats, "capacity": cap, "fail_at": res.fail_at,
           "fail_reason": fail_row.get("why"), "converged": res.converged, "note": res.note,
           "interrupted": interrupted, "elapsed_s": round(progress.elapsed_s, 2), "at_capacity": at_cap,
           "headroom": headroom, "target": target_rps,
           "pass_rule": "every hard, measured lower-is-better SLA row (latency, errors, queue) PASS in every repeat",
           "replicas": replicas_table(cap_rps, target_rps, headroom) if cap_rps else [],
           "capacity_rps": cap_rps,
           "verdict_text": res.note or "no capacity found", "points": sorted(rows, key=lambda r: (r["x"], r["repeat"]))}
    from harness.decide.render import write_sweep_report

    html, js = write_sweep_report(out, doc)
    replicas = math.ceil(target_rps / cap_rps - 1e-9) if cap_rps and target_rps else None
    if cap:
        fails = f"fails at {res.fail_at:.4g}" if res.fail_at is not None else "no failing point measured"
        echo(f"capacity: {cap:.4g} {unit} per replica ({fails}){'' if res.converged else ' — ' + res.note}")
        if replicas:
            with_headroom = next(r["replicas_headroom"] for r in doc["replicas"] if r["target"])
            per = "" if not concurrency else f", {cap_rps:.3g} req/s per replica at {cap:g} users"
            echo(f"replicas for {target_rps:g} req/s: {replicas} ({with_headroom} with {headroom:.0%} headroom{per})")
    else:
        echo(f"no capacity: {res.note}")
    echo(f"sweep report: {html} ({fmt_s(progress.elapsed_s)})")
    return SweepOutcome(out, cap, unit, res.fail_at, replicas, interrupted, html, js, doc)
