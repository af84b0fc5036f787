"""Validation runner: each published point through the offline sim (the path `matrix` takes).

`run_point` builds the point's sim backend and load (closed loop, burst or Poisson) as a Scenario,
sizes it with `sim_plan`, runs `simulate_load` (harness/decide/offline.py) and reads the point's
metric off the request records. `run_points` does the whole set; `format_table` prints it.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass

from harness.config import ConfigError, Scenario, SimBackend
from harness.config.scenario import LoadConfig, TokenDist, WorkloadConfig
from harness.sim import perfmodel
from harness.sim.catalog import SimConfigError

from .points import Point, PointSet

# A closed-loop point without `requests` sends this many per user: enough waves that the first
# (every user prefilling at once) weighs like it does in a `--num-prompts` run of that size.
REQUESTS_PER_USER = 10
_TIMEOUT_S = 86_400.0  # no simulated request times out: a published run reports every request
# The offline run samples telemetry up to load.duration_s, so a closed-loop point gets a duration
# estimated from the step model and doubled (at most _MAX_TRIES times) until every request was sent.
_MAX_TRIES = 12


@dataclass(frozen=True)
class Result:
    point: Point
    simulated: float | None  # None: the sim cannot run this deployment (reason says why)
    reason: str = ""

    @property
    def error(self) -> float | None:
        """Signed relative error (simulated / published - 1)."""
        return None if self.simulated is None else self.simulated / self.point.value - 1.0

    @property
    def inside(self) -> bool:
        e = self.error
        return e is not None and abs(e) * 100 <= self.point.band_pct + 1e-9


def point_scenario(p: Point, duration_s: float = 1.0, catalog: str | None = None) -> Scenario:
    """The point as an offline scenario: one replica's share of the load, fixed lengths."""
    s = p.server
    extra: list[str] = ["--catalog", str(catalog)] if catalog else []
    if s.max_num_batched_tokens is not None:
        extra += ["--max-num-batched-tokens", str(s.max_num_batched_tokens)]
    if s.gpu_memory_utilization is not None:
        extra += ["--gpu-memory-utilization", str(s.gpu_memory_utilization)]
    backend = SimBackend(model=p.model, gpu=p.gpu, quantization=p.precision, tensor_parallel_size=p.tp,
                         max_num_seqs=s.max_num_seqs, max_model_len=s.max_model_len, extra_args=extra)
    ld = p.load
    if ld.rate_rps is not None:
        total = max(ld.requests // p.replicas, 1)
        rate = ld.rate_rps / p.replicas
        load = LoadConfig(mode="open", arrival="poisson", rate_rps=rate, max_requests=total, max_in_flight=None,
                          duration_s=max(duration_s, 2.0 * total / rate), timeout_s=_TIMEOUT_S)
    else:
        if ld.burst is not None:
            users = total = ld.burst // p.replicas
        else:
            users = ld.concurrency // p.replicas
            total = (ld.requests // p.replicas) if ld.requests else users * REQUESTS_PER_USER
        load = LoadConfig(mode="closed", users=users, max_requests=total, duration_s=duration_s,
                          timeout_s=_TIMEOUT_S)
    wl = WorkloadConfig(prompt_tokens=_lengths(p.workload.input_tokens, p.workload),
                        output_tokens=_lengths(p.workload.output_tokens, p.workload), seed=0)
    return Scenario(name=p.id, backend=backend, load=load, workload=wl)


def _lengths(mean: int, w) -> TokenDist:
    if w.spread is None:
        return TokenDist(value=mean)
    return TokenDist(dist="lognormal", mean=mean, stddev=w.spread * mean, min=1, max=w.max_tokens or 8 * mean)


def run_point(p: Point, catalog: str | None = None) -> Result:
    from harness.decide.offline import sim_plan, simulate_load

    try:
        scn = point_scenario(p, catalog=catalog)
        plan = _adjust(sim_plan(scn.backend), p)
        if p.load.concurrency is not None:
            scn = point_scenario(p, _estimate_s(p, scn, plan), catalog)
    except (SimConfigError, ConfigError, ValueError) as exc:
        return Result(p, None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    duration = scn.load.duration_s
    for _ in range(_MAX_TRIES):
        res = simulate_load(scn, plan)
        if res.scheduled >= scn.load.max_requests:
            break
        duration *= 2
        scn = point_scenario(p, duration, catalog)
    else:
        return Result(p, None, f"not every request was sent within {duration:g} simulated seconds")
    ok = [r for r in res.records if r.ok]
    if not ok:
        return Result(p, None, "no request completed in the simulation")
    return Result(p, _metric(p, ok))


def _adjust(plan, p: Point):
    """What the sim server has no flag for: an fp8 KV cache (half the bytes per token, so more blocks
    fit and decode reads half as much), an older engine core (its CPU time per step) and an in-process
    client (no API-server time)."""
    if plan.dep is None:
        return plan
    if p.server.kv_cache_dtype == "fp8":
        plan.dep = dataclasses.replace(plan.dep, kv_dtype_bytes=1)
        plan.cfg.kv_blocks = plan.dep.kv_blocks
    if p.server.engine_core == "v0":
        plan.dep = dataclasses.replace(plan.dep, host_step_s=perfmodel.V0_STEP_OVERHEAD_S)
    if p.client == "in-process":
        plan.cfg.frontend_overhead_s = 0.0
    return plan


def _estimate_s(p: Point, scn: Scenario, plan) -> float:
    """Rough simulated length of a closed-loop point: waves x (prefill of every user + decode)."""
    if plan.dep is None:
        return 60.0
    users, total = scn.load.users, scn.load.max_requests
    w = p.workload
    batch = min(users, plan.cfg.max_num_seqs)
    decode = plan.dep.step_cost([w.input_tokens + w.output_tokens // 2] * batch, []).time_s
    prefill = plan.dep.step_cost([], [(w.input_tokens, w.input_tokens)]).time_s
    waves = math.ceil(total / batch)
    return waves * (w.output_tokens * decode + batch * prefill) + 1.0


def _metric(p: Point, recs: list) -> float:
    m = p.metric
    stat = statistics.fmean if p.stat == "mean" else statistics.median
    if m == "ttft_ms":
        return stat([r.ttft_s for r in recs]) * 1000
    if m == "tpot_ms":
        return stat([(r.e2e_s - r.ttft_s) / (r.output_tokens - 1) for r in recs if r.output_tokens > 1]) * 1000
    if m == "itl_ms":
        return stat([g for r in recs for g in r.itl_s]) * 1000
    if m == "e2e_s":
        return stat([r.e2e_s for r in recs])
    span = max(r.end_s for r in recs) - min(r.sent_s for r in recs)
    count = len(recs) if m == "request_s" else sum(r.output_tokens for r in recs)
    per = p.replicas / p.gpu_count if m == "output_tok_s_per_gpu" else p.replicas
    return count / span * per


def run_points(points: PointSet, catalog: str | None = None, progress=None) -> list[Result]:
    """Every point, in file order (`catalog`: the --catalog file its ids may refer to);
    `progress(i, n, point)` is called before each (e.g. a status line)."""
    out = []
    for i, p in enumerate(points.points):
        if progress:
            progress(i, len(points.points), p)
        out.append(run_point(p, catalog))
    return out


@dataclass(frozen=True)
class Summary:
    points: int
    sources: int
    ran: int
    inside: int
    median_abs_error: float  # fraction, over the points that ran
    worst: Result | None

    @property
    def inside_share(self) -> float:
        return self.inside / self.points if self.points else 0.0


def summarize(results: list[Result]) -> Summary:
    ran = [r for r in results if r.error is not None]
    worst = max(ran, key=lambda r: abs(r.error) / r.point.band_pct, default=None)
    med = statistics.median(abs(r.error) for r in ran) if ran else math.nan
    return Summary(len(results), len({r.point.source.name for r in results}), len(ran),
                   sum(r.inside for r in results), med, worst)


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def format_table(results: list[Result]) -> str:
    """The validation table as text: one row per point, then the summary lines."""
    head = ("point", "metric", "published", "simulated", "error", "band", "")
    rows = []
    for r in results:
        p = r.point
        if r.simulated is None:
            rows.append((p.id, p.metric, _fmt(p.value), "-", "-", f"±{p.band_pct:g}%", f"cannot run: {r.reason}"))
            continue
        rows.append((p.id, p.metric, _fmt(p.value), _fmt(r.simulated), f"{r.error * 100:+.0f}%",
                     f"±{p.band_pct:g}%", "inside" if r.inside else "OUTSIDE"))
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head[:-1])]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths)) + "  {}"
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths), "")]
    lines += [fmt.format(*row) for row in rows]
    s = summarize(results)
    lines.append("")
    lines.append(f"{s.points} points from {s.sources} sources; {s.inside} inside their bands "
                 f"({s.inside_share * 100:.0f} %); median absolute error {s.median_abs_error * 100:.1f} %")
    if s.worst is not None:
        w = s.worst
        lines.append(f"worst: {w.point.id} ({w.point.metric}: published {_fmt(w.point.value)}, simulated "
                     f"{_fmt(w.simulated)}, {w.error * 100:+.0f}% against a ±{w.point.band_pct:g}% band)")
    return "\n".join(lines)
