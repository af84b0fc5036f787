"""Offline sim runs: a sim scenario simulated in-process, in seconds, into an ordinary run folder.

Seam: `Scenario` (backend.type sim) → `sim_plan` (the sim server's own sizing, via its CLI parser
and `build_server`) → `simulate_load` (the client: open- or closed-loop, max_in_flight, timeouts,
driven on the scheduler's step API) → records, simulated gpu.csv / server_metrics.csv, meta.json.
"""

from __future__ import annotations

import heapq
import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import harness
from harness.config import OPEN_LOOP_MODES, ConfigError, Scenario, SimBackend, scenario_to_yaml
from harness.load.arrivals import arrival_times, rate_profile
from harness.load.replay import replay_feed
from harness.load.workload import PromptSource, RequestSpec
from harness.records import (GPU_FILE, META_FILE, REQUESTS_FILE, SCENARIO_FILE, SERVER_FILE, GpuSample, RecordWriter,
                             RequestRecord, ServerSample, write_csv)
from harness.sim.catalog import SimConfigError
from harness.sim.perfmodel import BLOCK_SIZE_TOKENS
from harness.sim.prefixcache import shared_prefix_hashes, synthetic_block_hashes, trace_block_hashes
from harness.sim.scheduler import Scheduler, SimRequest
from harness.sim.telemetry import BusyTracker, gpu_snapshot
from harness.telemetry.simgpu import parse_sim_gpu

T0 = 1000.0  # origin of the offline "monotonic" clock (records are only compared with each other)
GPU_SAMPLE_S = 0.25  # the live NVML / sim poller period
SERVER_SAMPLE_S = 1.0  # the live /metrics scrape period


@dataclass
class SimPlan:
    """What the sim server would run: deployment, scheduler config and the API's limits."""

    backend: SimBackend
    dep: object = None  # harness.sim.perfmodel.Deployment (None in calibration mode)
    cfg: object = None  # harness.sim.scheduler.SchedulerConfig
    fixed: tuple[float, float] | None = None  # calibration mode (ttft_s, itl_s)
    max_model_len: int = 0
    max_input_tokens: int = 0
    max_total_tokens: int = 0
    max_concurrent_requests: int = 0


def _parse_sim_args(backend: SimBackend):
    from harness.backends.sim import sim_argv
    from harness.sim.cli import parse_serve_options  # the sim's own flag parsing (one definition)

    try:
        return parse_serve_options(sim_argv(backend)[3:])  # drop "python -m harness.sim"
    except SimConfigError as exc:
        raise ConfigError(f"backend.extra_args: {exc}") from None


def offline_reason(scn: Scenario) -> str | None:
    """Why this scenario cannot run offline (None: it can)."""
    if not isinstance(scn.backend, SimBackend):
        return f"backend type {scn.backend.type} is a real server"
    opts = _parse_sim_args(scn.backend)
    f = opts.faults
    if any((f.error_rate, f.abort_rate, f.stall_s, f.malformed_rate, f.crash_after_s)):
        return "fault injection flags need the live sim server"
    if opts.api_key or opts.rate_limit_rps or opts.circuit_failure_threshold:
        return "gateway flags (--api-key, --rate-limit-rps, --circuit-failure-threshold) need the live sim server"
    if opts.max_num_queued_reqs is not None or opts.max_num_queued_tokens is not None:
        return "queue caps (--max-num-queued-reqs/-tokens) need the live sim server"
    if scn.load.processes > 1:
        return "load.processes > 1 measures the load generator: run it live"
    return None


def sim_plan(backend: SimBackend) -> SimPlan:
    """The sim server's sizing for this backend; raises SimConfigError when it cannot start
    (weights do not fit, quantization unsupported on the GPU: the message has the arithmetic)."""
    from harness.sim.engine import GpuEngine
    from harness.sim.server import build_server

    opts = _parse_sim_args(backend)
    server = build_server(opts)
    ctx, engine = server.ctx, server.ctx.engine
    plan = SimPlan(backend, max_model_len=ctx.max_model_len, max_input_tokens=ctx.max_input_tokens,
                   max_total_tokens=ctx.max_total_tokens, max_concurrent_requests=ctx.max_concurrent_requests)
    if isinstance(engine, GpuEngine):
        plan.dep, plan.cfg = server.dep, engine.sched.cfg
    else:
        plan.fixed = (engine.ttft_s, engine.itl_s)
        plan.dep = server.dep
    return plan


# ---------------------------------------------------------------- the client, in simulated time

@dataclass(eq=False)  # identity: requests are compared by object, never by fields
class _Req:
    k: int
    spec: RequestSpec
    user: int | None
    due_s: float | None  # open loop: scheduled time
    sent_s: float = 0.0
    sim: SimRequest | None = None
    record: RequestRecord | None = None
    block_hashes: tuple[int, ...] | None = None  # replay: from the trace's hash ids (trace_block_hashes)


@dataclass
class OfflineLoad:
    records: list[RequestRecord]
    gpu_samples: list[GpuSample]
    server_samples: list[ServerSample]
    end_s: float  # simulated time the last request ended
    delayed_by_cap: int = 0
    scheduled: int = 0
    notes: list[str] = field(default_factory=list)
    replay: dict | None = None  # mode replay: the feed's meta (what of the trace was sent)
    load_end_s: float | None = None  # mode replay: when the last entry was due (the trace may end early)


def _rejection(plan: SimPlan, spec: RequestSpec, in_flight: int) -> tuple[int, str, str] | None:
    """(status, error_type, message) when the sim API would refuse this request up front."""
    n_in, n_out = spec.prompt_tokens, spec.output_tokens
    if plan.backend.flavor == "vllm":
        if n_in + n_out > plan.max_model_len:
            return 400, "http_4xx", (f"HTTP 400: prompt {n_in} + max_tokens {n_out} exceeds max_model_len "
                                     f"{plan.max_model_len}")
        return None
    if n_in > plan.max_input_tokens or n_in + n_out > plan.max_total_tokens:
        return 422, "http_4xx", f"HTTP 422: input validation error (max_total_tokens {plan.max_total_tokens})"
    if in_flight >= plan.max_concurrent_requests:
        return 200, "overloaded_429", "Model is overloaded"
    return None


def simulate_load(scn: Scenario, plan: SimPlan) -> OfflineLoad:
    """Drive the scenario's traffic through the sim's scheduler (pure: no sockets, no wall clock)."""
    load, wl = scn.load, scn.workload
    sends: list[tuple[float, int, _Req]] = []  # heap of (time, order, request)
    order = 0
    reqs: list[_Req] = []
    feed = None
    if load.mode == "replay":
        feed = replay_feed(scn)
        sources = []
        for k, t in enumerate(feed):
            e = feed.take()
            r = _Req(k, RequestSpec("", e.input_tokens, e.output_tokens, synthetic=False), None, t,
                     block_hashes=trace_block_hashes(e.hash_ids, wl.trace.tokens_per_block, e.input_tokens, e.row))
            reqs.append(r)
            heapq.heappush(sends, (t, k, r))
        order = len(reqs)
    elif load.mode == "open":
        due = arrival_times(rate_profile(load), load.arrival, random.Random(f"{wl.seed}:arrivals"),
                            load.burstiness, max_count=load.max_requests)
        src = PromptSource(wl, stream=0)
        for k, t in enumerate(due):
            r = _Req(k, src.next(), None, t)
            reqs.append(r)
            heapq.heappush(sends, (t, k, r))
        order = len(due)
        sources: list[PromptSource] = []
    else:
        sources = [PromptSource(wl, stream=u) for u in range(load.users)]
        spawn = load.spawn_rate
        for u in range(load.users):
            t = u / spawn if spawn else 0.0
            if t < load.duration_s:
                r = _Req(order, sources[u].next(), u, None)
                heapq.heappush(sends, (t, order, r))
                order += 1
    cap = load.max_in_flight if load.mode in OPEN_LOOP_MODES else None
    limit = load.max_requests
    sched = Scheduler(plan.dep, plan.cfg) if plan.fixed is None else None
    # Prefix caching (on unless the backend turns it off): every prompt's leading
    # workload.shared_prefix_tokens are the same blocks, the rest are its own.
    caching = sched is not None and sched.cache is not None
    shared = shared_prefix_hashes(wl.shared_prefix_tokens // BLOCK_SIZE_TOKENS, wl.seed) if caching else ()
    in_flight: dict[int, _Req] = {}  # by SimRequest rid / k
    held: list[_Req] = []  # open loop: waiting for an in-flight slot
    deadlines: list[tuple[float, int]] = []
    done: list[RequestRecord] = []
    steps: list[tuple[float, float, float, int, int, int]] = []  # start, end, mem share, waiting, running, used blocks
    fixed_ends: list[tuple[float, int]] = []  # calibration mode: (end time, k)
    issued = 0
    delayed = 0

    def finish(r: _Req, end_s: float, ok: bool, status: int = 200, err: tuple[str, str] | None = None) -> None:
        nonlocal order
        tokens = r.sim.token_times_s if r.sim else []
        rec = RequestRecord(request_id=f"offline-{r.k}", api=load.api, sent_s=T0 + r.sent_s, end_s=T0 + end_s,
                            status=status, ok=ok, scheduled_s=None if r.due_s is None else T0 + r.due_s,
                            prompt_tokens=r.spec.prompt_tokens, output_tokens=len(tokens),
                            output_tokens_source="usage", requested_output_tokens=r.spec.output_tokens,
                            user=None if r.user is None else f"user-{r.user}")
        if tokens:
            rec.first_token_s = T0 + tokens[0]
            rec.ttft_s = tokens[0] - r.sent_s
            rec.itl_s = [b - a for a, b in zip(tokens, tokens[1:])]
        if ok:
            rec.e2e_s = end_s - r.sent_s
            rec.finish_reason = "length"
        else:
            rec.error_type, rec.error = err
        r.record = rec
        done.append(rec)
        in_flight.pop(r.k, None)
        # the client reacts: a closed-loop user sends again; a held open-loop request takes the slot
        if r.user is not None:
            t = end_s + load.think_time_s
            if t < load.duration_s and (limit is None or issued < limit):
                heapq.heappush(sends, (t, order, _Req(order, sources[r.user].next(), r.user, None)))
                order += 1
        elif held:
            nxt = held.pop(0)
            heapq.heappush(sends, (end_s, -1 - r.k, nxt))  # sent now, ahead of due times at the same instant

    def send(r: _Req, t: float) -> None:
        nonlocal issued, delayed
        if cap is not None and len(in_flight) >= cap:
            delayed += 1
            held.append(r)
            return
        issued += 1
        r.sent_s = t
        rej = _rejection(plan, r.spec, len(in_flight))
        in_flight[r.k] = r
        if rej:
            finish(r, t, False, rej[0], (rej[1], rej[2]))
            return
        heapq.heappush(deadlines, (t + load.timeout_s, r.k))
        if sched is None:
            ttft, itl = plan.fixed
            r.sim = SimRequest(r.k, t, r.spec.prompt_tokens, max(r.spec.output_tokens, 1))
            r.sim.token_times_s = [t + ttft + i * itl for i in range(r.sim.output_tokens)]
            heapq.heappush(fixed_ends, (r.sim.token_times_s[-1], r.k))
        else:
            hashes = None
            if caching:
                hashes = r.block_hashes if r.block_hashes is not None else \
                    synthetic_block_hashes(r.spec.prompt_tokens // BLOCK_SIZE_TOKENS, shared, r.k)
            r.sim = SimRequest(r.k, t, r.spec.prompt_tokens, max(r.spec.output_tokens, 1), block_hashes=hashes)
            sched.add(r.sim)

    inf = float("inf")
    while True:
        while deadlines and (deadlines[0][1] not in in_flight):
            heapq.heappop(deadlines)
        t_send = sends[0][0] if sends else inf
        if sched is not None:
            ready = sched.next_ready_s()
            t_step = inf if ready is None else ready
        else:
            t_step = fixed_ends[0][0] if fixed_ends else inf
        t_dead = deadlines[0][0] if deadlines else inf
        t = min(t_send, t_step, t_dead)
        if t == inf:
            break
        if t_send == t:
            _, _, r = heapq.heappop(sends)
            if limit is not None and issued >= limit:
                continue
            send(r, t)
        elif t_dead == t:
            _, k = heapq.heappop(deadlines)
            r = in_flight[k]
            if sched is not None:
                sched.cancel(r.sim)
            else:
                fixed_ends[:] = [e for e in fixed_ends if e[1] != k]
                heapq.heapify(fixed_ends)
            r.sim.token_times_s = [x for x in r.sim.token_times_s if x <= t]
            finish(r, t, False, 200 if r.sim.token_times_s else 0,
                   ("timeout", f"no complete response in {load.timeout_s:g} s"))
        elif sched is None:
            _, k = heapq.heappop(fixed_ends)
            finish(in_flight[k], t, True)
        else:
            step = sched.step()
            if step is None:
                break
            c = sched.cache
            q, h = (c.queries_tokens, c.hits_tokens) if c is not None else (0, 0)
            steps.append((step.start_s, step.end_s, step.cost.memory_bound_share, len(sched.waiting),
                          len(sched.running), sched.used_blocks, q, h))
            for sr in step.finished:
                finish(in_flight[sr.rid], sr.finished_s, True)
    end_s = max([load.duration_s] + [rec.end_s - T0 for rec in done])
    gpu, server = _telemetry(plan, steps, end_s)
    done.sort(key=lambda x: (x.sent_s, x.request_id))
    out = OfflineLoad(done, gpu, server, end_s, delayed, issued)
    if feed is not None:
        out.replay = feed.meta(wl.trace)
        out.load_end_s = max((r.due_s for r in reqs), default=0.0)
    return out


def _telemetry(plan: SimPlan, steps: list, end_s: float) -> tuple[list[GpuSample], list[ServerSample]]:
    """Simulated NVML readings every 250 ms (busy share of the last second, as the live sim reports)
    and /metrics scrapes every second, from the engine's step log. Calibration mode: none."""
    if plan.fixed is not None or plan.dep is None:
        return [], []
    dep = plan.dep
    now = [0.0]
    tracker = BusyTracker(clock=lambda: now[0])
    gpu: list[GpuSample] = []
    server: list[ServerSample] = []
    kv_per_block = BLOCK_SIZE_TOKENS * dep.kv_bytes_per_token / dep.tp
    i = j = 0
    n = len(steps)
    t = GPU_SAMPLE_S
    next_scrape = SERVER_SAMPLE_S
    last = (0, 0, 0, 0, 0)  # waiting, running, used blocks, prefix cache queries, hits after the latest step
    counters = plan.backend.flavor == "vllm"  # vLLM exposes its prefix cache counters (0 with caching off)
    while t <= end_s + 1e-9:
        now[0] = t
        while i < n and steps[i][0] <= t:
            tracker.add(steps[i][0], steps[i][1], steps[i][2])
            i += 1
        while j < n and steps[j][1] <= t:
            last = steps[j][3:]
            j += 1
        used = dep.weight_bytes_per_gpu + dep.workspace_bytes_per_gpu + last[2] * kv_per_block
        gpu += parse_sim_gpu(gpu_snapshot(dep.gpu, dep.tp, tracker, used), T0 + t)
        if t + 1e-9 >= next_scrape:
            kv = last[2] / plan.cfg.kv_blocks if plan.cfg.kv_blocks else 0.0
            server.append(ServerSample(T0 + t, float(last[0]), float(last[1]), kv, None, simulated=True,
                                       prefix_cache_queries_total=float(last[3]) if counters else None,
                                       prefix_cache_hits_total=float(last[4]) if counters else None))
            next_scrape += SERVER_SAMPLE_S
        t += GPU_SAMPLE_S
    return gpu, server


# ---------------------------------------------------------------- the run folder

def write_offline_run(scn: Scenario, run_dir: Path, scenario_path: str = "",
                      plan: SimPlan | None = None, full_reports: bool = True) -> dict:
    """Simulate `scn` (resolved: sla inline) into `run_dir` and write its reports; returns summary.json.

    Raises SimConfigError when the deployment cannot start (nothing is written then but scenario.yaml).
    """
    from harness.report import write_reports
    from harness.runner import SCHEMA_VERSION, load_meta

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / SCENARIO_FILE).write_text(scenario_to_yaml(scn), encoding="utf-8")
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    plan = plan or sim_plan(scn.backend)
    res = simulate_load(scn, plan)
    with RecordWriter(run_dir / REQUESTS_FILE) as w:
        for rec in res.records:
            w.write(rec)
    write_csv(run_dir / GPU_FILE, res.gpu_samples, GpuSample)
    write_csv(run_dir / SERVER_FILE, res.server_samples, ServerSample)
    b = scn.backend
    meta = {"schema_version": SCHEMA_VERSION, "slabench_version": harness.__version__,
            "scenario_name": scn.name, "scenario_path": scenario_path, "started_utc": started,
            "planned_duration_s": scn.load.duration_s, "interrupted": False, "load": load_meta(scn),
            "backend": {"type": "sim", "flavor": b.flavor, "model": b.model, "gpu": b.gpu,
                        "gpu_count": b.tensor_parallel_size, "quantization": b.quantization, "simulated": True,
                        "offline": True, "calibration_mode": b.fixed_ttft_ms is not None,
                        "command": "offline simulation (harness.decide.offline): the sim's scheduler and "
                                   "performance model without sockets"},
            "telemetry": {"gpu_source": "simulated (offline step log)", "gpu_samples": len(res.gpu_samples),
                          "server_samples": len(res.server_samples)},
            "load_start_s": T0, "load_end_s": T0 + scn.load.duration_s, "load_outcome": "completed",
            "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "notes": ["offline simulation: simulated time, no HTTP; latencies are the sim's model"]}
    if scn.load.mode in OPEN_LOOP_MODES:
        meta["open_loop"] = {"scheduled": res.scheduled, "launched": res.scheduled,
                             "delayed_by_cap": res.delayed_by_cap}
    if res.replay is not None:
        meta["replay"] = res.replay
        meta["load_end_s"] = T0 + (res.load_end_s or 0.0)
    (run_dir / META_FILE).write_text(json.dumps(meta, indent=1, default=str), encoding="utf-8")
    if not full_reports:  # summary.json only (sweep points): `slabench report DIR` renders the rest later
        from harness.records import SUMMARY_FILE, load_run
        from harness.scoring import summarize

        summary = summarize(load_run(run_dir))
        (run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        return summary
    paths = write_reports(run_dir)
    return json.loads(Path(paths["summary.json"]).read_text(encoding="utf-8"))
