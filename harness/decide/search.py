"""The capacity search and its points, shared by `slabench sweep` and `matrix --capacity`.

Seam: `search(measure, start, ...)` is pure — double from the starting rate until a point fails (or
halve until one passes), then bisect to a relative precision, `repeats` runs per point, a point
passing only when every repeat passes (MLPerf's and vLLM's serve_sla approach). `point_scenario`
turns the searched value into the scenario one point runs; `sweep_passes` judges its summary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from harness.config import MAX_DURATION_S, Scenario
from harness.decide.pareto import RANK, decision_verdict, misses
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
    # Open loop: a server that did not keep up with the offered rate had its requests held by
    # max_in_flight (latency is measured from the send, so the held time is in no SLA row) or left
    # unsent; a client that fell behind offered less than asked. Neither point measured the rate.
    lg = summary.get("load_generator") or {}
    scheduled, not_sent = lg.get("scheduled") or 0, lg.get("not_sent") or 0
    held = bool(lg.get("cap_limited")) or (scheduled > 0 and not_sent / scheduled > MAX_NOT_SENT_SHARE)
    if held or lg.get("saturated"):
        why = ("max_in_flight held requests back (the server did not keep up with the rate)" if held
               else "the load generator fell behind its schedule")
        ms.append({"label": "offered rate", "metric": "offered_rate", "stat": None, "value": None, "target": None,
                   "alert": None, "unit": None, "better": "lower", "verdict": "FAIL", "miss": float("inf"),
                   "needed_requests": None, "note": why})
        return False, ms
    return bool(rows) and decision_verdict(summary, rows) in accept, ms


MAX_NOT_SENT_SHARE = 0.01  # of scheduled requests never sent, past which a point did not offer its rate


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


def point_scenario(scn: Scenario, x: float, repeat: int, concurrency: bool) -> Scenario:
    """The scenario one point runs: `x` users (concurrency) or `x` req/s for a judgeable duration,
    the workload seed moved by `repeat` so repeats draw other requests."""
    update = {"users": int(x)} if concurrency else {"rate_rps": float(x), "duration_s": judgeable_duration_s(scn, x)}
    load = scn.load.model_copy(update=update)
    wl = scn.workload.model_copy(update={"seed": scn.workload.seed + repeat})
    return scn.model_copy(update={"load": load, "workload": wl, "name": f"{scn.name}-{point_key(x)}-r{repeat}"})


def point_key(x: float) -> str:
    """The searched value as a folder name: 12.5 -> '12.5', 1e+06 -> '1e06'."""
    return f"{x:.6g}".replace("+", "")

