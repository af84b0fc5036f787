"""Capacity per matrix variant (`slabench matrix --capacity`): price each variant where it is full.

Seam: one variant's scenario → `search.search` over its request rate (open loop) or users (closed
loop), each point an offline sim run under OUT/capacity/<id>/ → the highest point meeting the SLA
and the cost per 1k output tokens measured there. Only offline sim variants: a live capacity
search is `slabench sweep` on the variant's scenario, one GPU machine at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from harness.config import Scenario
from harness.decide.runs import DONE, finished, load_summary, mode_of, run_one
from harness.decide.search import point_key, point_scenario, search, sweep_passes


def variant_capacity(scn: Scenario, out_dir: Path, precision: float = 0.05, resume: bool = False,
                     echo: Callable[[str], None] = print, max_points: int = 24) -> dict:
    """Search one variant's capacity. Returns capacity, unit, fail_at, cost_at_capacity (USD per 1k
    output tokens in the run at capacity), the output rate there, points run, and a reason when no
    figure could be had."""
    mode, why = mode_of(scn, True)
    if mode != "offline":
        return {"capacity": None, "reason": f"capacity is searched offline on sim variants only ({why}): "
                                            "run `slabench sweep` on this variant's scenario"}
    closed = scn.load.mode == "closed"
    if scn.load.mode == "replay":
        return {"capacity": None, "reason": "a replay's arrivals are its trace's: capacity needs load.mode "
                                            "open (one rate_rps) or closed (users)"}
    if not closed and scn.load.stages:
        return {"capacity": None, "reason": "the scenario has load.stages: capacity needs one rate_rps"}
    start = float(scn.load.users if closed else scn.load.rate_rps)
    summaries: dict[float, dict] = {}

    def measure(x: float, k: int) -> tuple[bool, dict]:
        key = f"{point_key(x)}-r{k}"
        run_dir = out_dir / "points" / key
        st = finished(run_dir) if resume else None
        if st is None:
            st = run_one(point_scenario(scn, x, k, closed), run_dir, out_dir / "scenarios" / f"{key}.yaml", True,
                         echo, full_reports=False)
        if st["status"] != DONE:
            raise RuntimeError(st.get("reason") or "the point could not run")
        s = load_summary(run_dir) or {}
        ok, _ = sweep_passes(s)
        summaries[x] = s
        return ok, {}

    try:
        res = search(measure, start, precision, integer=closed, max_points=max_points)
    except RuntimeError as exc:
        return {"capacity": None, "reason": f"a capacity point could not run: {exc}"}
    unit = "users" if closed else "req/s"
    out = {"capacity": res.capacity, "unit": unit, "fail_at": res.fail_at, "converged": res.converged,
           "points": len(res.points), "reason": None if res.capacity else (res.note or "fails the SLA at every rate tried")}
    at = summaries.get(res.capacity) if res.capacity is not None else None
    if at:
        out["cost_at_capacity"] = (at.get("cost") or {}).get("usd_per_1k_output_tokens")
        out["output_token_rate_tps_at_capacity"] = (at.get("rates") or {}).get("output_token_rate_tps")
    if res.capacity is not None and not res.converged and res.note:
        out["note"] = res.note
    return out
