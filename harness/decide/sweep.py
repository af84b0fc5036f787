"""`slabench sweep SCENARIO`: the highest request rate (or concurrency) at which the SLA still holds.

Seam: `search(measure, start, ...)` is pure — double from the starting rate until a point fails (or
halve until one passes), then bisect to a relative precision, `repeats` runs per point, a point
passing only when every repeat passes (MLPerf's and vLLM's serve_sla approach). `run_sweep` is the
driver: one run folder per measured point (sim offline), capacity, replicas, sweep.html/json.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from harness.config import MAX_DURATION_S, ConfigError, Scenario, load_scenario, resolve_scenario
from harness.decide.matrix import PLAN_FILE, REPORTS_ROOT, _m, choose_out
from harness.decide.pareto import RANK, decision_verdict, miss_text, misses
from harness.decide.progress import Progress, fmt_s
from harness.decide.runs import DONE, Interrupted, expected_s, finished, load_summary, mode_of, run_one
from harness.scoring.stats import TAIL_STATS

Measure = Callable[[float, int], "tuple[bool, dict]"]


@dataclass
class Point:
    x: float
    repeat: int
    passes: bool
    info: dict = field(default_factory=dict)


@dataclass
class SearchResult:
    capacity: float | None  # highest measured value where every repeat passed
    fail_at: float | None  # lowest measured value above it where a repeat failed
    points: list[Point]
    converged: bool  # the bracket is within the precision
    note: str = ""


def search(measure: Measure, start: float, precision: float = 0.05, repeats: int = 1, integer: bool = False,
           max_value: float = 1e5, min_value: float | None = None, max_points: int = 60) -> SearchResult:
    """Doubling then bisection. measure(x, repeat) -> (passes, info). precision: the final bracket
    [capacity, fail_at] is at most precision x capacity wide (integer search: adjacent integers)."""
    if start <= 0 or precision <= 0 or repeats < 1:
        raise ValueError("start and precision must be > 0 and repeats >= 1")
    points: list[Point] = []
    lo_bound = min_value if min_value is not None else (1 if integer else start / 1024)

    def at(x: float) -> bool:
        for k in range(repeats):
            ok, info = measure(x, k)
            points.append(Point(x, k, bool(ok), info))
            if not ok:
                return False  # one failed repeat fails the point; later repeats are not needed
        return True

    def close(lo: float, hi: float) -> bool:
        return hi - lo <= 1 if integer else hi - lo <= precision * lo

    def budget_left() -> bool:
        return len(points) + repeats <= max_points

    lo: float | None = None
    hi: float | None = None
    x = int(start) if integer else start
    if at(x):
        lo = x
        while budget_left():
            nxt = x * 2
            if nxt > max_value:
                return SearchResult(lo, None, points, False, f"still meets the SLA at {lo:g}, the search limit")
            if at(nxt):
                lo = x = nxt
            else:
                hi = nxt
                break
    else:
        hi = x
        while budget_left():
            nxt = x // 2 if integer else x / 2
            if nxt < lo_bound:
                return SearchResult(None, hi, points, False, f"fails the SLA even at {x:g}, the lowest value tried")
            if at(nxt):
                lo = nxt
                break
            hi = x = nxt
    if lo is None or hi is None:
        return SearchResult(lo, hi, points, False, "stopped: the point budget ran out before the SLA boundary was found")
    while not close(lo, hi):
        if not budget_left():
            return SearchResult(lo, hi, points, False, "stopped: the point budget ran out during bisection")
        mid = (lo + hi) // 2 if integer else (lo + hi) / 2
        if at(mid):
            lo = mid
        else:
            hi = mid
    return SearchResult(lo, hi, points, True)


def sweep_passes(summary: dict, accept: tuple[str, ...] = ("PASS",)) -> tuple[bool, list[dict]]:
    """A point passes when every hard, measured lower-is-better row (latency, errors, queue) is
    accepted (an INCONCLUSIVE row never is: the point ran too short to judge). Rows where higher is
    better (throughput, GPU utilization) rise with load: they are reported at capacity, not searched on."""
    rows = [r for r in (summary.get("sla") or {}).get("rows") or []
            if r.get("hard") and r.get("better") == "lower" and r.get("verdict") in RANK]
    ms = [m for m in misses(summary, accept) if m.get("better") == "lower"]
    return bool(rows) and decision_verdict(summary, rows) in accept, ms


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


def sweep_scenario(path: Path, concurrency: bool) -> tuple[Scenario, float]:
    scn = resolve_scenario(load_scenario(path), base_dir=Path(path).parent)
    load = scn.load
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


# An open-loop point is run long enough that its tail rows can be judged: the policy's min_samples
# scored requests, plus a quarter for Poisson variation and errors (which give no latency sample).
# Otherwise a low rate would be INCONCLUSIVE, never passing, and the search would halve into nothing.
SAMPLE_MARGIN = 1.25


def judgeable_duration_s(scn: Scenario, rate_rps: float) -> float:
    """The point's duration_s: the scenario's, or longer so the scored window holds enough requests
    for every p99/p99.9 row (MAX_DURATION_S at most)."""
    load, policy = scn.load, scn.sla
    tails = [r for r in getattr(policy, "rows", []) if r.stat in TAIL_STATS]
    if not tails or rate_rps <= 0:
        return load.duration_s
    scored_s = math.ceil(policy.min_samples * SAMPLE_MARGIN) / rate_rps
    return min(max(load.duration_s, load.warmup_s + load.cooldown_s + scored_s), MAX_DURATION_S)


def _variant(scn: Scenario, x: float, repeat: int, concurrency: bool) -> Scenario:
    update = {"users": int(x)} if concurrency else {"rate_rps": float(x), "duration_s": judgeable_duration_s(scn, x)}
    load = scn.load.model_copy(update=update)
    wl = scn.workload.model_copy(update={"seed": scn.workload.seed + repeat})
    return scn.model_copy(update={"load": load, "workload": wl, "name": f"{scn.name}-{_key(x)}-r{repeat}"})


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


def _key(x: float) -> str:
    return f"{x:.6g}".replace("+", "")


def run_sweep(scenario_path: Path, out_dir: Path | None = None, resume: bool = False,
              echo: Callable[[str], None] = print, precision: float = 0.05, repeats: int = 1,
              target_rps: float | None = None, concurrency: bool = False, headroom: float = 0.2,
              offline: bool = True, max_points: int = 40, root: Path = REPORTS_ROOT,
              report_points: bool = False) -> SweepOutcome:
    """Search the capacity of one scenario; writes OUT/sweep.{html,json} and OUT/points/<x>-r<k>/ run folders."""
    if not 0 < precision < 1:
        raise ConfigError(f"--precision {precision:g}: give a fraction in (0, 1), e.g. 0.05 for 5 %")
    if repeats < 1:
        raise ConfigError(f"--repeats {repeats}: give at least 1")
    if not 0 <= headroom < 1:
        raise ConfigError(f"--headroom {headroom:g}: give a fraction in [0, 1)")
    scenario_path = Path(scenario_path)
    scn, start = sweep_scenario(scenario_path, concurrency)
    unit, axis = ("users", "concurrent users") if concurrency else ("req/s", "request rate (req/s)")
    out = choose_out(f"sweep-{scn.name}", out_dir, resume, root, "sweep")
    out.mkdir(parents=True, exist_ok=True)
    plan = {"kind": "sweep", "scenario": scn.model_dump(mode="json"), "precision": precision, "repeats": repeats,
            "concurrency": concurrency}
    if resume and json.loads((out / PLAN_FILE).read_text(encoding="utf-8")) != plan:
        raise ConfigError(f"--resume: {out} was a sweep of a different scenario or settings: run without --resume")
    (out / PLAN_FILE).write_text(json.dumps(plan, indent=1), encoding="utf-8")
    mode, why_live = mode_of(scn, offline)
    echo(f"sweep {scn.name}: {axis} from {start:g}, precision {precision:.0%}, {repeats} repeat(s), {mode} → {out}")
    progress = Progress(0, echo, what="point")
    rows: list[dict] = []

    def measure(x: float, k: int) -> tuple[bool, dict]:
        key = f"{_key(x)}-r{k}"
        run_dir = out / "points" / key
        st = finished(run_dir) if resume else None
        if st is None:
            v = _variant(scn, x, k, concurrency)
            left = _points_left(rows, precision, repeats, concurrency) - k
            progress.start(len(rows) + 1, f"{x:g} {unit}, repeat {k + 1}/{repeats} (~{max(left, 1)} point(s) to go)",
                           [expected_s(v, mode)] * max(left, 1))
            st = run_one(v, run_dir, out / "scenarios" / f"{key}.yaml", offline, echo, full_reports=report_points)
            progress.finish(count=st["status"] == DONE)
        if st["status"] != DONE:
            raise ConfigError(f"sweep point {x:g} cannot run: {st['reason']}")
        s = load_summary(run_dir) or {}
        ok, ms = sweep_passes(s)
        row = {"x": x, "repeat": k, "passes": ok, "run_dir": f"points/{key}", "report": f"points/{key}/report.html",
               "has_report": (run_dir / "report.html").is_file(),
               "ttft_p99_s": _m(s, "ttft_s", "p99"), "tpot_p99_s": _m(s, "tpot_s", "p99"),
               "e2e_p99_s": _m(s, "e2e_s", "p99"), "request_rate_rps": (s.get("rates") or {}).get("request_rate_rps"),
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
    doc = {"schema_version": 1, "kind": "sweep", "name": scn.name, "scenario_path": str(scenario_path),
           "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"), "mode": mode,
           "why_live": why_live, "axis": "users" if concurrency else "rate_rps", "axis_label": axis, "unit": unit,
           "start": start, "precision": precision, "repeats": repeats, "capacity": cap, "fail_at": res.fail_at,
           "fail_reason": fail_row.get("why"), "converged": res.converged, "note": res.note,
           "interrupted": interrupted, "elapsed_s": round(progress.elapsed_s, 2), "at_capacity": at_cap,
           "headroom": headroom, "target": target_rps,
           "pass_rule": "every hard, measured lower-is-better SLA row (latency, errors, queue) PASS in every repeat",
           "replicas": replicas_table(cap, target_rps, headroom) if cap else [],
           "verdict_text": res.note or "no capacity found", "points": sorted(rows, key=lambda r: (r["x"], r["repeat"]))}
    from harness.decide.render import write_sweep_report

    html, js = write_sweep_report(out, doc)
    replicas = math.ceil(target_rps / cap - 1e-9) if cap and target_rps else None
    if cap:
        echo(f"capacity: {cap:.4g} {unit} per replica (fails at {res.fail_at:.4g}){'' if res.converged else ' — ' + res.note}")
        if replicas:
            with_headroom = next(r["replicas_headroom"] for r in doc["replicas"] if r["target"])
            echo(f"replicas for {target_rps:g} {unit}: {replicas} ({with_headroom} with {headroom:.0%} headroom)")
    else:
        echo(f"no capacity: {res.note}")
    echo(f"sweep report: {html} ({fmt_s(progress.elapsed_s)})")
    return SweepOutcome(out, cap, unit, res.fail_at, replicas, interrupted, html, js, doc)
