"""Source seam of `slabench k8s`: a matrix folder, a sweep folder or a scenario → what was measured.

A matrix folder gives its recommended (or --variant) scenario, and the capacity `matrix --capacity`
searched, or else the same offline search run now; a sweep folder gives its capacity and points; a
scenario gives --capacity-rps, or the offline search for a sim backend. Every refusal is one line.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from harness.config import ConfigError, Scenario, load_scenario, parse_scenario
from harness.config.errors import clip, read_text_file

MAX_JSON_BYTES = 64 * 1024 * 1024  # comparison.json / sweep.json / summary.json: far below this
OFFERED_SHARE = 0.9  # below this share of the offered rate, a point did not run at the rate it names
KINDS = "a matrix folder (`slabench matrix`), a sweep folder (`slabench sweep`) or a scenario file"


@dataclass
class Measured:
    kind: str  # matrix | sweep | scenario
    path: Path
    scenario: Scenario  # resolved; its backend is the engine to deploy
    label: str  # what was measured, for the README
    variant: str | None = None
    capacity: float | None = None  # in `unit`
    unit: str = "req/s"  # req/s (open loop) or users (closed loop)
    fail_at: float | None = None
    capacity_rps: float | None = None  # one replica's request rate at capacity
    at_capacity: dict | None = None  # summary.json of the point at capacity
    at_fail: dict | None = None  # ... of the first point past it
    lightest: dict | None = None  # ... of the lightest point measured
    evidence: str = ""  # where the points are
    needs_search: bool = False  # no capacity yet: search it offline into the out folder
    notes: list[str] = field(default_factory=list)


def read_json(path: Path, what: str) -> dict:
    """A JSON object from a file, or a one-line ConfigError naming the file."""
    try:
        data = json.loads(read_text_file(path, what, MAX_JSON_BYTES))
    except ValueError as exc:
        raise ConfigError(f"{path}: {what} is not valid JSON ({str(exc).splitlines()[0]}): "
                          "write the folder again with the command that made it") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {what} is not a JSON object: write the folder again with the command that made it")
    return data


def _summary(run_dir: Path) -> dict | None:
    p = run_dir / "summary.json"
    return read_json(p, "summary.json") if p.is_file() else None


def points_in(points_dir: Path) -> dict[float, dict]:
    """Searched value → summary.json of its first repeat, from a `points/<x>-r0/` folder."""
    out: dict[float, dict] = {}
    if not points_dir.is_dir():
        return out
    for d in points_dir.iterdir():
        x, sep, rep = d.name.rpartition("-r")
        if not sep or rep != "0":
            continue
        try:
            value = float(x)
        except ValueError:
            continue
        s = _summary(d)
        if s is not None:
            out[value] = s
    return out


def read_source(path: Path, variant: str | None = None, capacity_rps: float | None = None) -> Measured:
    """What SOURCE says; capacity still unknown (needs_search) only for a sim scenario to search offline."""
    path = Path(path)
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except (OSError, ValueError):
        exists = is_dir = False
    if not exists:
        raise ConfigError(f"SOURCE {clip(str(path))} does not exist: give {KINDS}")
    if is_dir:
        if capacity_rps is not None:
            raise ConfigError(f"--capacity-rps is for a scenario SOURCE: {path} is a folder whose measured capacity "
                              "is used: drop --capacity-rps")
        if (path / "comparison.json").is_file():
            return _from_matrix(path, variant)
        if variant is not None:
            raise ConfigError(f"--variant picks a matrix variant: {path} is not a matrix folder: drop --variant")
        if (path / "sweep.json").is_file():
            return _from_sweep(path)
        if (path / "summary.json").is_file():
            raise ConfigError(f"{path} is a run folder (one load level), not a capacity: run `slabench sweep` on its "
                              "scenario and give the sweep folder")
        raise ConfigError(f"{path} holds no comparison.json or sweep.json: give {KINDS}")
    if variant is not None:
        raise ConfigError(f"--variant picks a matrix variant: {path} is a scenario file: drop --variant")
    return _from_scenario(path, capacity_rps)


def _from_matrix(path: Path, variant: str | None) -> Measured:
    doc = read_json(path / "comparison.json", "comparison.json")
    if doc.get("kind") != "matrix":
        raise ConfigError(f"{path}/comparison.json is not a matrix comparison (`slabench compare` writes those too): "
                          "give the folder `slabench matrix` wrote")
    rows = {r.get("id"): r for r in doc.get("variants") or [] if isinstance(r, dict)}
    rec = doc.get("recommendation") or {}
    vid = variant or rec.get("variant")
    if vid is None:
        raise ConfigError(f"matrix {path} recommends no variant ({clip(rec.get('text') or 'none met the SLA')}): "
                          "pick one with --variant ID")
    passing = [i for i, r in rows.items() if r.get("meets_sla")]
    if vid not in rows:
        raise ConfigError(f"unknown --variant '{clip(vid)}': matrix {path} has "
                          f"{', '.join(map(str, rows)) or 'no variants'}")
    row = rows[vid]
    if not row.get("meets_sla"):
        why = row.get("reason") or f"verdict {row.get('verdict') or row.get('status')}"
        raise ConfigError(f"variant {vid} did not meet the SLA in matrix {path} ({clip(why)}): choose one that did "
                          f"({', '.join(passing) or 'none did'})")
    scn_path = path / "scenarios" / f"{vid}.yaml"
    if not scn_path.is_file():
        raise ConfigError(f"{scn_path} is missing: the matrix folder is incomplete: run the matrix again")
    scn = load_scenario(scn_path)
    m = Measured("matrix", path, scn, f"matrix {doc.get('name')} variant {vid} ({row.get('label')})", variant=vid)
    if variant is None:
        m.notes.append(f"the matrix's recommendation: {rec.get('text')}")
    if row.get("capacity"):
        m.capacity, m.unit, m.fail_at = float(row["capacity"]), row.get("capacity_unit") or "req/s", row.get("capacity_fail_at")
        m.evidence = f"{path}/capacity/{vid}/points"
        _fill_points(m, points_in(path / "capacity" / vid / "points"))
    else:
        _needs_search(m, f"run `slabench sweep {scn_path}` and give the sweep folder")
    return m


def _needs_search(m: Measured, fix: str) -> None:
    from harness.decide.runs import mode_of

    mode, why = mode_of(m.scenario, True)
    if mode != "offline":
        raise ConfigError(f"the capacity of {m.label} is not known ({why}): {fix}")
    m.needs_search = True


def _from_sweep(path: Path) -> Measured:
    doc = read_json(path / "sweep.json", "sweep.json")
    plan = read_json(path / "plan.json", "plan.json") if (path / "plan.json").is_file() else {}
    if doc.get("kind") != "sweep" or not isinstance(plan.get("scenario"), dict):
        raise ConfigError(f"{path} is not a complete sweep folder (sweep.json or plan.json missing parts): "
                          "run `slabench sweep` again")
    scn = parse_scenario(plan["scenario"], f"{path}/plan.json: scenario")
    if doc.get("capacity") is None:
        raise ConfigError(f"sweep {path} found no capacity ({clip(doc.get('note') or doc.get('verdict_text'))}): "
                          "nothing to size replicas from: sweep again from a lower starting load")
    m = Measured("sweep", path, scn, f"sweep {doc.get('name')} ({doc.get('axis_label')})",
                 capacity=float(doc["capacity"]), unit=doc.get("unit") or "req/s", fail_at=doc.get("fail_at"),
                 evidence=f"{path}/points")
    if not doc.get("converged", True):
        m.notes.append(f"the sweep did not converge: {doc.get('note')}")
    points: dict[float, dict] = {}
    for r in doc.get("points") or []:
        if isinstance(r, dict) and r.get("repeat") == 0 and isinstance(r.get("x"), (int, float)):
            s = _summary(path / str(r.get("run_dir") or ""))
            if s is not None:
                points[float(r["x"])] = s
    _fill_points(m, points)
    return m


def _from_scenario(path: Path, capacity_rps: float | None) -> Measured:
    from harness.runner import prepare

    scn = prepare(path, None, None)
    m = Measured("scenario", path, scn, f"scenario {scn.name}")
    if capacity_rps is not None:
        m.capacity = m.capacity_rps = capacity_rps
        m.notes.append("capacity per replica given with --capacity-rps (not measured here)")
        return m
    _needs_search(m, f"run `slabench sweep {path}` and give the sweep folder, or give --capacity-rps")
    return m


def search_capacity(m: Measured, out_dir: Path, echo: Callable[[str], None]) -> None:
    """The offline capacity search `matrix --capacity` runs, into out_dir/capacity/points/."""
    from harness.decide.capacity import variant_capacity
    from harness.decide.runs import Interrupted

    echo(f"searching the capacity of {m.label} offline through the sim (seconds) → {out_dir / 'capacity'}")
    try:
        c = variant_capacity(m.scenario, out_dir / "capacity", echo=lambda s: None)
    except Interrupted:
        raise KeyboardInterrupt from None
    if not c.get("capacity"):
        raise ConfigError(f"no capacity for {m.label}: {clip(c.get('reason'))}")
    m.capacity, m.unit, m.fail_at = float(c["capacity"]), c["unit"], c.get("fail_at")
    m.evidence = f"{out_dir}/capacity/points"
    m.notes.append(f"capacity searched offline now ({c.get('points')} points, precision 5 %)")
    _fill_points(m, points_in(out_dir / "capacity" / "points"))


def _at(points: dict[float, dict], x: float | None) -> dict | None:
    """The point measured at x: folder names keep 6 significant digits (point_key), so match on that."""
    from harness.decide.search import point_key

    if x is None:
        return None
    return next((s for k, s in points.items() if point_key(k) == point_key(float(x))), None)


def _fill_points(m: Measured, points: dict[float, dict]) -> None:
    """At-capacity, first-failing and lightest summaries; the request rate at capacity."""
    m.at_capacity = _at(points, m.capacity)
    m.at_fail = _at(points, m.fail_at)
    m.lightest = points[min(points)] if points else None
    if m.unit == "users":
        # Closed loop: replicas are counted in requests per second, so the rate measured at the
        # capacity point is the capacity (users alone do not say how much traffic that is).
        rate = ((m.at_capacity or {}).get("rates") or {}).get("request_rate_rps")
        if not rate or not math.isfinite(rate):
            raise ConfigError(f"{m.evidence}: the point at capacity ({m.capacity:g} users) has no measured request "
                              "rate: run the sweep again")
        m.capacity_rps = float(rate)
        m.notes.append(f"closed-loop capacity ({m.capacity:g} users, {rate:.4g} req/s measured there): open-loop "
                       "(Poisson) arrivals at the same mean rate queue more; a `mode: open` sweep measures the rate "
                       "itself")
    else:
        m.capacity_rps = m.capacity
        rate = ((m.at_capacity or {}).get("rates") or {}).get("request_rate_rps")
        # Poisson arrivals stray a few per cent from the offered rate; far below it, the load generator
        # held requests back (max_in_flight) and the server never took the offered rate: trust what it took.
        if rate and m.capacity and rate < OFFERED_SHARE * m.capacity:
            m.capacity_rps = float(rate)
            m.notes.append(f"the run at capacity offered {m.capacity:g} req/s but sent and measured only {rate:.4g} "
                           "(held back by load.max_in_flight): the measured rate is used as the capacity")
