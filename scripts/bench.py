"""slabench speed and capacity figures (`make bench`): prints numbers, never passes or fails.

Sections (all by default; `--only NAME[,NAME]` runs some):

  sim-offline      simulated seconds per wall second of the offline `simulate()` on one core
                   (100 req/s Poisson trace, 10 minutes, llama-3-8b fp16 on a100-80gb)
  sim-capacity     streamed tokens/s the simulated server serves in calibration mode with zero
                   delays (sim on one core, a lean asyncio raw-socket client on the other)
  client-capacity  slabench's own Locust client against that sim: requests/s, tokens/s and
                   client CPU per 128-token request
  timing-accuracy  TTFT inflation (client-reported TTFT minus the sim's fixed 50 ms) at 16, 64
                   and 256 streams (median of 3 runs each), next to how late the sim itself released tokens
  scoring          write_reports() on a synthetic run folder of 1,000,000 records: time and peak RSS
  sim-validation   the simulator against published measurements (harness/sim/validation/points.yaml):
                   the `slabench sim validate` table, median absolute error and share inside bands

Everything talks only to 127.0.0.1, runs for a bounded time, and every child process (sim,
Locust, scoring child) is torn down on exit, on error and on Ctrl-C. The figures depend on the
machine; docs/bench.md explains each one and lists the figures of a reference run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: `harness` without install
sys.path.insert(1, str(Path(__file__).resolve().parent))  # the bench_* helpers next to this file

import bench_proc  # noqa: E402
import bench_replay  # noqa: E402
import bench_scoring  # noqa: E402

SECTIONS = ("sim-offline", "sim-capacity", "client-capacity", "timing-accuracy", "scoring", "sim-validation",
            "matrix", "replay")

# Reference client costs per 128-token streamed request (CPU ms), for scale next to ours.
CLIENT_REFERENCES = (("bare asyncio (raw sockets)", "~0.1 ms"),
                     ("plain Locust FastHttpUser, json.loads of every chunk", "~2.2 ms"),
                     ("vLLM benchmark client (benchmark_serving)", "~4.5 ms"),
                     ("guidellm / aiperf", "28-45 ms"))


@dataclass
class Figure:
    """One row of the final table."""

    section: str
    name: str
    value: str
    target: str = "-"
    met: bool | None = None  # None: no target, or not measurable

    @property
    def verdict(self) -> str:
        return {True: "target met", False: "target missed", None: ""}[self.met]


def say(text: str = "") -> None:
    print(text, flush=True)


def pct(values: list[float], p: float) -> float:
    """Linear-interpolation percentile (numpy's default), without importing numpy here."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


@contextlib.contextmanager
def pinned_self(core: int | None):
    """Pin this process to one core for the duration (the client side of a two-core measurement)."""
    before = os.sched_getaffinity(0)
    if core is not None:
        os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def self_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# ------------------------------------------------------------------------------------ 1. sim-offline

def sim_offline(args: argparse.Namespace, tmp: Path) -> list[Figure]:
    """Offline simulate() speed: simulated seconds per wall second on one core."""
    from harness.sim.catalog import default_catalog
    from harness.sim.perfmodel import Deployment, default_max_num_seqs
    from harness.sim.scheduler import SchedulerConfig, TraceRequest, simulate

    # The deployment exactly as `python -m harness.sim serve --flavor vllm` builds it by default
    # (vLLM 0.33 defaults for an 80 GB A100: max_num_seqs 256, 2048 batched tokens, 0.92 memory).
    cat = default_catalog()
    gpu = cat.gpu("a100-80gb")
    max_seqs, batched = default_max_num_seqs(gpu)
    dep = Deployment(gpu, cat.model("llama-3-8b"), cat.quant("fp16"), 1, 0.92, batched)
    dep.check()
    cfg = SchedulerConfig(max_seqs, batched, dep.kv_blocks)

    rate, duration_s = 100.0, args.sim_minutes * 60.0
    rng = random.Random(1)
    trace, t = [], 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= duration_s:
            break
        trace.append(TraceRequest(t, rng.randint(64, 512), rng.randint(64, 256)))
    offered_tps = sum(r.output_tokens for r in trace) / duration_s
    say(f"  trace: {len(trace)} requests over {duration_s:.0f} s (Poisson {rate:g} req/s, prompt U(64,512), "
        f"output U(64,256)); deployment: max_num_seqs {max_seqs}, {batched} batched tokens, "
        f"KV {dep.kv_capacity_tokens} tokens")

    client_core, server_core = bench_proc.cores()
    # One core: the simulator is single-threaded Python; pinning keeps the figure comparable on
    # a busy machine. Trace generation is input preparation and is not timed.
    with pinned_self(server_core):
        t0 = time.perf_counter()
        res = simulate(trace, dep, cfg)
        wall = time.perf_counter() - t0
    speed = res.makespan_s / wall
    say(f"  wall {wall:.2f} s for a simulated makespan of {res.makespan_s:.0f} s "
        f"(the trace's {duration_s:.0f} s of arrivals plus the backlog drain)")
    say(f"  simulated output {res.output_tokens_per_s:,.0f} tok/s vs offered {offered_tps:,.0f} tok/s "
        f"({'overloaded: the queue grows all run' if offered_tps > 1.1 * res.output_tokens_per_s else 'keeps up'}); "
        f"preemptions {res.num_preemptions}")
    say(f"  trace seconds per wall second: {duration_s / wall:,.0f}x")
    label = "" if args.sim_minutes == 10 else f" ({args.sim_minutes:g}-minute trace, not the 10-minute one)"
    say(f"  => {speed:,.0f} simulated seconds per wall second{label}")
    return [Figure("sim-offline", f"simulated s per wall s{label}", f"{speed:,.0f}x", ">= 1000x", speed >= 1000)]


# ----------------------------------------------------------------------------------- 2. sim-capacity

async def _raw_stream_client(host: str, port: int, streams: int, warmup_s: float, measure_s: float,
                             sim: bench_proc.Child) -> dict:
    """N keep-alive connections, each sending the next streamed request as soon as the last ended.

    As lean as a client gets in Python: one pre-built request, one `readuntil` of the chunked
    terminator per response, tokens counted with bytes.count (no SSE or JSON parsing). Counters
    and CPU are snapshotted after a warm-up, and again at the end of the measured window.
    """
    prompt = " ".join(["hello"] * 128)
    body = json.dumps({"model": "llama-3-8b", "prompt": prompt, "max_tokens": 128, "ignore_eos": True,
                       "stream": True}).encode()
    req = (f"POST /v1/completions HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
           f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    counts = {"requests": 0, "tokens": 0, "bad": 0}
    stop = asyncio.Event()

    async def one_stream() -> None:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
        try:
            while not stop.is_set():
                writer.write(req)
                data = await reader.readuntil(b"\r\n0\r\n\r\n")  # end of the chunked body
                if not data.startswith(b"HTTP/1.1 200"):
                    counts["bad"] += 1
                counts["requests"] += 1
                counts["tokens"] += data.count(b"data: {")
        finally:
            writer.close()

    tasks = [asyncio.create_task(one_stream()) for _ in range(streams)]
    await asyncio.sleep(warmup_s)
    a = (time.perf_counter(), dict(counts), self_cpu_s(), sim.cpu_s())
    await asyncio.sleep(measure_s)
    b = (time.perf_counter(), dict(counts), self_cpu_s(), sim.cpu_s())
    stop.set()
    done, pending = await asyncio.wait(tasks, timeout=5.0)
    for t in pending:
        t.cancel()
    errors = [t.exception() for t in done if not t.cancelled() and t.exception()]
    wall = b[0] - a[0]
    return {"streams": streams, "wall_s": wall,
            "requests": b[1]["requests"] - a[1]["requests"], "tokens": b[1]["tokens"] - a[1]["tokens"],
            "bad": b[1]["bad"] - a[1]["bad"], "errors": len(errors),
            "client_cpu_s": b[2] - a[2], "sim_cpu_s": (b[3] or 0.0) - (a[3] or 0.0)}


async def _raw_ttft_client(host: str, port: int, streams: int, output_tokens: int, run_s: float,
                           warmup_s: float) -> list[float]:
    """Closed-loop TTFT (s) as a bare asyncio client sees it: the reference for Locust's figures.

    Same shape of load as the Locust run (streams started evenly over 1 s, each sending its next
    request when the last ended); the clock is read as soon as the first `data: ` bytes arrive.
    Requests sent during the first warmup_s are not kept.
    """
    body = json.dumps({"model": "llama-3-8b", "prompt": " ".join(["hello"] * 128), "max_tokens": output_tokens,
                       "ignore_eos": True, "stream": True}).encode()
    req = (f"POST /v1/completions HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    term = b"\r\n0\r\n\r\n"
    t0 = time.perf_counter()
    ttfts: list[float] = []

    async def one_stream(delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
        try:
            while time.perf_counter() < t0 + run_s:
                sent = time.perf_counter()
                writer.write(req)
                await reader.readuntil(b"\r\n\r\n")  # status line and headers
                buf = b""
                while b"data: " not in buf:
                    chunk = await reader.read(1 << 16)
                    if not chunk:
                        raise ConnectionError("connection closed mid-stream")
                    buf += chunk
                first = time.perf_counter()
                if sent >= t0 + warmup_s:
                    ttfts.append(first - sent)
                while not buf.endswith(term):  # the rest of the stream, unparsed
                    chunk = await reader.read(1 << 16)
                    if not chunk:
                        raise ConnectionError("connection closed mid-stream")
                    buf += chunk
        finally:
            writer.close()

    await asyncio.gather(*(one_stream(i / streams) for i in range(streams)))
    return ttfts


def sim_capacity(args: argparse.Namespace, tmp: Path) -> list[Figure]:
    """Streamed tokens/s of the sim at zero delays, sim pinned to one core, client to the other."""
    client_core, server_core = bench_proc.cores()
    results = []
    sim, url = bench_proc.start_sim(tmp, server_core, 0, 0)
    with sim:
        host, port = url.removeprefix("http://").split(":")
        with pinned_self(client_core):
            for n in (16, 64, 256):
                r = asyncio.run(_raw_stream_client(host, int(port), n, warmup_s=1.0, measure_s=4.0, sim=sim))
                results.append(r)
                say(f"  {n:>3} streams: {r['tokens'] / r['wall_s']:>9,.0f} tok/s, {r['requests'] / r['wall_s']:>6,.0f} req/s; "
                    f"CPU busy: sim {100 * r['sim_cpu_s'] / r['wall_s']:3.0f} %, client {100 * r['client_cpu_s'] / r['wall_s']:3.0f} % "
                    f"({1000 * r['client_cpu_s'] / max(r['requests'], 1):.2f} ms client CPU/request)"
                    + (f"; {r['bad']} non-200, {r['errors']} stream errors" if r["bad"] or r["errors"] else ""))
    best = max(results, key=lambda r: r["tokens"] / r["wall_s"])
    tps = best["tokens"] / best["wall_s"]
    sim_busy, client_busy = best["sim_cpu_s"] / best["wall_s"], best["client_cpu_s"] / best["wall_s"]
    bottleneck = ("the sim (its core is saturated)" if sim_busy > 0.9 else
                  "the client (its core is saturated)" if client_busy > 0.9 else "neither core saturated")
    say(f"  => best {tps:,.0f} streamed tokens/s at {best['streams']} streams; bottleneck: {bottleneck}")
    say(f"     sim CPU per 128-token request: {1000 * best['sim_cpu_s'] / max(best['requests'], 1):.2f} ms "
        f"(= {1e6 * best['sim_cpu_s'] / max(best['tokens'], 1):.1f} us per token)")
    return [Figure("sim-capacity", f"streamed tok/s, 1 core ({best['streams']} streams)", f"{tps:,.0f}",
                   ">= 250,000", tps >= 250_000),
            Figure("sim-capacity", "  sim / client core busy", f"{100 * sim_busy:.0f} % / {100 * client_busy:.0f} %")]


# -------------------------------------------------------------------------------- 3. client-capacity

def _locust_against_sim(tmp: Path, name: str, users: int, duration_s: float, output_tokens: int,
                        ttft_ms: float, itl_ms: float, warmup_s: float, after=None) -> dict:
    """One pinned Locust run (the harness's argv and load.json) against a fresh pinned sim.

    Returns the records sent in the steady window [load start + warmup_s, load end - 1 s], the
    Locust and sim CPU spent in the window between the nearest /proc samples, and the sim's stats
    (read right after Locust ends). `after(host, port)`, if given, then runs on the same sim.
    """
    from harness.records import iter_records

    client_core, server_core = bench_proc.cores()
    sim, url = bench_proc.start_sim(tmp, server_core, ttft_ms, itl_ms)
    with sim:
        run_dir, argv = bench_proc.locust_run_dir(tmp, users, duration_s, 128, output_tokens,
                                                  "openai-completions", url, name)
        run = bench_proc.run_locust(argv, run_dir, client_core, limit_s=duration_s + 60, watch=[sim.pid])
        stats = bench_proc.get_json(url + "/sim/stats")
        released = bench_proc.get_json(url + "/sim/first-tokens").get("first_token_s") or {}
        host, port = url.removeprefix("http://").split(":")
        extra = after(host, int(port)) if after else None
    meta = run["meta"]
    if not meta.get("load_start_s") or not meta.get("load_end_s"):
        raise RuntimeError(f"Locust wrote no load window (exit {run['rc']}); see {run_dir / 'locust.log'}")
    t_a, t_b = meta["load_start_s"] + warmup_s, meta["load_end_s"] - 1.0
    win = bench_proc.cpu_between(run["samples"], t_a, t_b)
    if win is None:
        raise RuntimeError(f"no CPU samples inside the load window; see {run_dir / 'locust.log'}")
    (cpu_locust, cpu_sim), ta, tb = win
    records = list(iter_records(run_dir / "requests.jsonl"))
    return {"records": records, "in_window_end": [r for r in records if ta <= r.end_s <= tb],
            "sent_in_window": [r for r in records if t_a <= r.sent_s <= t_b],
            "window_s": tb - ta, "locust_cpu_s": cpu_locust, "sim_cpu_s": cpu_sim,
            "locust_cpu_total_s": run["cpu_total_s"], "sim_stats": stats, "released": released, "rc": run["rc"],
            "run_dir": run_dir,
            "after": extra}


def client_capacity(args: argparse.Namespace, tmp: Path) -> list[Figure]:
    """Locust (slabench's load path) at 64 users, 128-token outputs, sim at zero delays."""
    users, duration_s = 64, 15.0
    r = _locust_against_sim(tmp, "client-capacity", users, duration_s, 128, 0, 0, warmup_s=3.0)
    done = r["in_window_end"]  # requests that completed inside the CPU window: the work that CPU paid for
    ok = [x for x in done if x.ok]
    w = r["window_s"]
    cpu_ms = 1000 * r["locust_cpu_s"] / max(len(done), 1)
    tokens = sum(x.output_tokens for x in ok)
    say(f"  window {w:.1f} s (after a 3 s warm-up): {len(done)} requests completed ({len(done) - len(ok)} failed), "
        f"{len(done) / w:,.0f} req/s, {tokens / w:,.0f} streamed tok/s")
    say(f"  CPU busy: locust {100 * r['locust_cpu_s'] / w:.0f} %, sim {100 * r['sim_cpu_s'] / w:.0f} %"
        f"  -> {'client' if r['locust_cpu_s'] / w > 0.9 else 'sim' if r['sim_cpu_s'] / w > 0.9 else 'neither'} "
        "core is the bottleneck")
    total = r["locust_cpu_total_s"]
    if total:
        say(f"  locust CPU over its whole life (imports, spawn, report included): {total:.1f} s for "
            f"{len(r['records'])} requests = {1000 * total / max(len(r['records']), 1):.2f} ms/request")
    say(f"  => client CPU per 128-token request: {cpu_ms:.2f} ms (steady state)")
    say("  for scale, client CPU per 128-token request of other clients:")
    for who, cost in CLIENT_REFERENCES:
        say(f"     {cost:>10}  {who}")
    if args.profile:
        _profile_client(tmp)
    return [Figure("client-capacity", "requests/s at 64 users", f"{len(done) / w:,.0f}"),
            Figure("client-capacity", "streamed tok/s at 64 users", f"{tokens / w:,.0f}"),
            Figure("client-capacity", "client CPU per 128-token request", f"{cpu_ms:.2f} ms", "<= 1.0 ms",
                   cpu_ms <= 1.0)]


def _area(filename: str, name: str) -> str:
    if filename.endswith("rawread.py") and name == "_recv":  # its own time is the wait in gevent's hub
        return "gevent and socket calls (one wake-up per chunk)"
    if "harness/" in filename:
        return "slabench (harness/: reading, SSE, accounting, records)"
    if "geventhttpclient" in filename:
        return "geventhttpclient (HTTP parsing, request building)"
    if "gevent" in filename or "greenlet" in name or "socket" in name or "select" in name:
        return "gevent and socket calls (one wake-up per chunk)"
    if "locust" in filename:
        return "locust (users, stats, events)"
    if "json" in filename or "json" in name:
        return "json (request bodies, records)"
    return "built-ins and the rest" if filename == "~" else "other"


def _profile_client(tmp: Path, users: int = 256) -> None:
    """--profile: the client-capacity Locust command under cProfile, at 256 streams of the 50 ms /
    10 ms calibration sim (the timing-accuracy load), 6 s after a 3 s warm-up. Own time by area,
    then the top functions. cProfile slows small functions more than big ones: read shares, not ms."""
    import pstats

    client_core, server_core = bench_proc.cores()
    out = tmp / "locust.prof"
    sim, url = bench_proc.start_sim(tmp, server_core, 50.0, 10.0)
    with sim:
        run_dir, argv = bench_proc.locust_run_dir(tmp, users, 12.0, 128, 64, "openai-completions", url, "profile")
        argv = bench_proc.profiled_argv(argv, tmp, "OpenAICompletionsUser", 3.0, 6.0, out)
        bench_proc.run_locust(argv, run_dir, client_core, limit_s=80)
    if not out.is_file():
        say(f"  profile: no profile written; see {run_dir / 'locust.log'}")
        return
    stats = pstats.Stats(str(out))
    total = sum(v[2] for v in stats.stats.values()) or 1.0
    areas: dict[str, float] = {}
    for (filename, _line, name), v in stats.stats.items():
        areas[_area(filename, name)] = areas.get(_area(filename, name), 0.0) + v[2]
    say(f"  profile of Locust at {users} streams (50 ms / 10 ms sim), own time by area:")
    for area, t in sorted(areas.items(), key=lambda kv: -kv[1]):
        say(f"    {100 * t / total:5.1f} %  {area}")
    say("  top functions by own time:")
    top = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:15]
    for (filename, line, name), v in top:
        where = f"{Path(filename).name}:{line}" if filename != "~" else "(built-in)"
        say(f"    {100 * v[2] / total:5.1f} %  {v[1]:>8} calls  {name}  {where}")


# -------------------------------------------------------------------------------- 4. timing-accuracy

def timing_accuracy(args: argparse.Namespace, tmp: Path) -> list[Figure]:
    """Client-side TTFT inflation over a sim that releases the first token at exactly 50 ms.

    Three views of the same sim, so server jitter and client inflation can be told apart:
    Locust's reported TTFT, a bare asyncio client's TTFT on the same sim right after (same load
    shape), and the sim's own release lateness from GET /sim/stats.
    """
    ttft_ms, itl_ms = 50.0, 10.0
    targets = {64: 5.0, 256: 25.0}  # p99 inflation targets (ms)
    client_core, _ = bench_proc.cores()
    figures = []
    say(f"  sim in calibration mode: TTFT {ttft_ms:g} ms, ITL {itl_ms:g} ms; closed loop, 64-token outputs, "
        f"users started over 1 s, first 3 s of sends not scored; {args.timing_repeats} run(s) per row")
    say("  all figures in ms over the fixed value; 'raw' = bare asyncio client on the same sim after Locust")
    say(f"  {'streams':>7} | {'reqs':>5} | {'Locust TTFT p50':>15} {'p99':>7} | {'client share p50':>16} {'p99':>6} | "
        f"{'ITL p99':>7} | {'raw TTFT p50':>12} {'p99':>6} | {'sim lateness p50':>16} {'p99':>6} {'max':>6} | "
        "CPU locust/sim")

    def raw_client(host: str, port: int) -> list[float]:
        with pinned_self(client_core):
            return asyncio.run(_raw_ttft_client(host, port, users, 64, run_s=args.timing_s * 2 / 3, warmup_s=2.0))

    for users in (16, 64, 256):
        p99s, shares = [], []
        for k in range(max(args.timing_repeats, 1)):  # the raw client runs after the first only
            r = _locust_against_sim(tmp, f"timing-{users}-{k}", users, args.timing_s, 64, ttft_ms, itl_ms,
                                    warmup_s=3.0, after=raw_client if k == 0 else None)
            ok = [x for x in r["sent_in_window"] if x.ok and x.ttft_s is not None]
            ttfts = [1000 * x.ttft_s - ttft_ms for x in ok]
            itls = [1000 * g for x in ok for g in x.itl_s]
            p50, p99 = pct(ttfts, 50), pct(ttfts, 99)
            p99s.append(p99)
            # The client's own share: its first-token stamp minus when the sim released that token.
            own = [1000 * (x.first_token_s - r["released"][x.request_id]) for x in ok if x.request_id in r["released"]]
            shares.append(pct(own, 99))
            late = r["sim_stats"].get("token_lateness_ms") or {}
            nan = float("nan")
            if k == 0:
                raw = [1000 * t - ttft_ms for t in r["after"]]
                raw_txt = f"{pct(raw, 50):>12.2f} {pct(raw, 99):>6.2f}"
                first = f"{p50:.1f} / {pct(raw, 99):.1f} / {late.get('p99', nan):.1f} ms"
            else:
                raw_txt = f"{'':>12} {'':>6}"
            w = r["window_s"]
            say(f"  {users:>7} | {len(ok):>5} | {p50:>15.2f} {p99:>7.2f} | {pct(own, 50):>16.2f} {pct(own, 99):>6.2f} | "
                f"{pct(itls, 99) - itl_ms:>7.2f} | "
                f"{raw_txt} | {late.get('p50', nan):>16.2f} {late.get('p99', nan):>6.2f} "
                f"{late.get('max', nan):>6.2f} | {100 * r['locust_cpu_s'] / w:3.0f} % / {100 * r['sim_cpu_s'] / w:3.0f} %")
            bad = len(r["sent_in_window"]) - len(ok)
            if bad:
                say(f"          ({bad} failed requests in the window; see {r['run_dir'] / 'requests.jsonl'})")
        tgt = targets.get(users)
        med = pct(p99s, 50)
        runs = " / ".join(f"{x:.1f}" for x in p99s)
        figures.append(Figure("timing-accuracy", f"TTFT p99 inflation @ {users} streams (median of {len(p99s)})",
                              f"{med:.2f} ms ({runs})", f"<= {tgt:g} ms" if tgt else "-",
                              (med <= tgt) if tgt else None))
        figures.append(Figure("timing-accuracy", f"  p50 / raw-client p99 / sim p99 late @ {users}", first))
        figures.append(Figure("timing-accuracy", f"  client's own share of p99 @ {users} (median)",
                              f"{pct(shares, 50):.2f} ms ({' / '.join(f'{x:.1f}' for x in shares)})"))
    say("  client share = the client's first-token time minus when the sim released that token (X-Request-Id")
    say("  matched, one clock): the inflation the client adds, without the sim's own lateness.")
    say("  sim lateness = how late the sim released each token (all tokens, whole Locust run) against its")
    say("  absolute schedule; it starts at the handler's arrival stamp, so time a request waits in the sim's")
    say("  socket buffer is not in it. Locust inflation far above both the raw client and the sim is the client's.")
    return figures


# ---------------------------------------------------------------------------------------- 5. scoring

def scoring(args: argparse.Namespace, tmp: Path) -> list[Figure]:
    """write_reports() on a synthetic 1M-record run folder, in a child (time and its own peak RSS)."""
    n = args.scoring_records
    run_dir = tmp / "scoring-run"
    built = bench_scoring.build_run_folder(run_dir, n)
    say(f"  run folder: {n:,} records, requests.jsonl {built['jsonl_bytes'] / 1e6:,.0f} MB "
        f"(built in {built['build_s']:.1f} s, not timed)")
    out = _scoring_child(run_dir, tmp, args.scoring_limit_s, profile_top=0)
    if out is None:
        return [Figure("scoring", f"write_reports, {n:,} records", f"> {args.scoring_limit_s:g} s (stopped)",
                       "< 30 s", False)]
    total, rss_mb = out["total_s"], out["maxrss_kib"] / 1024
    for stage, secs in out["split_s"].items():
        say(f"     {secs:7.2f} s  {stage}")
    say(f"  => write_reports: {total:.1f} s, peak RSS {rss_mb:,.0f} MB")
    if args.profile:
        say("  profiling a second run under cProfile (slower; its time is not a figure):")
        prof = _scoring_child(run_dir, tmp, args.scoring_limit_s * 2, profile_top=15)
        for h in (prof or {}).get("hotspots", []):
            say(f"     own {h['own_s']:7.2f} s  cum {h['cum_s']:7.2f} s  {h['calls']:>10} calls  {h['function']}")
    return [Figure("scoring", f"write_reports time, {n:,} records", f"{total:.1f} s", "< 30 s", total < 30),
            Figure("scoring", f"write_reports peak RSS, {n:,} records", f"{rss_mb:,.0f} MB", "< 1 GB (1024 MB)",
                   rss_mb < 1024)]


def _scoring_child(run_dir: Path, tmp: Path, limit_s: float, profile_top: int) -> dict | None:
    argv = [sys.executable, str(Path(__file__).resolve().parent / "bench_scoring.py"), str(run_dir)]
    if profile_top:
        argv += ["--profile", str(profile_top)]
    # Not pinned: write_reports is what `slabench report` runs, on whatever cores are free.
    with bench_proc.Child(argv, tmp / f"scoring-{profile_top}.log", None, stdout_pipe=True) as child:
        rc = child.wait(limit_s)
        if rc is None:
            say(f"  write_reports did not finish within {limit_s:g} s: stopped")
            return None
        text = child.proc.stdout.read().decode()
        rss_kib = child.rusage.ru_maxrss if child.rusage else None
    if rc != 0:
        raise RuntimeError(f"the scoring child exited with {rc}; see {tmp / f'scoring-{profile_top}.log'}")
    out = json.loads(text.strip().splitlines()[-1])
    if rss_kib:
        out["maxrss_kib"] = rss_kib  # wait4's figure for exactly this child
    return out


# ---------------------------------------------------------------------------------- 6. sim-validation

def sim_validation(args: argparse.Namespace, tmp: Path) -> list[Figure]:
    """Every published point through the offline sim: the validation table and its two figures."""
    from harness.sim.validation import format_table, load_points, run_points, summarize

    points = load_points()
    say(f"  {len(points.points)} published points from {len(points.sources)} sources (docs/sim-validation.md)")
    results = run_points(points)
    for line in format_table(results).splitlines():
        say(f"  {line}" if line else "")
    s = summarize(results)
    figures = [Figure("sim-validation", "median absolute error", f"{s.median_abs_error * 100:.1f} %", "< 15 %",
                      s.median_abs_error < 0.15),
               Figure("sim-validation", "points inside their bands", f"{s.inside}/{s.points} "
                      f"({s.inside_share * 100:.0f} %)", ">= 90 %", s.inside_share >= 0.9)]
    if s.worst is not None:
        figures.append(Figure("sim-validation", "worst point", f"{s.worst.point.id} ({s.worst.error * 100:+.0f} %)"))
    return figures


# -------------------------------------------------------------------------------------------- 7. matrix

def matrix(args: argparse.Namespace, tmp: Path) -> list[Figure]:
    """The shipped GPU matrix end to end offline (what `make demo-matrix` runs): wall seconds."""
    from harness.decide.matrix import run_matrix

    root = Path(__file__).resolve().parents[1]
    t0 = time.perf_counter()
    res = run_matrix(root / "scenarios" / "matrix-gpus.yaml", tmp / "matrix-gpus", echo=lambda s: None)
    wall = time.perf_counter() - t0
    rec = (res.recommendation or {}).get("variant")
    say(f"  {len(res.rows)} variants in {wall:.1f} s; recommendation: {rec}")
    return [Figure("matrix", "matrix-gpus.yaml offline, 15 variants", f"{wall:.1f} s", "< 60 s", wall < 60)]


# -------------------------------------------------------------------------------------------- 8. replay

def replay(args: argparse.Namespace, tmp: Path) -> list[Figure]:
    """A 100,000-row trace: streamed reading, time to first send, send lag at 200 req/s (bench_replay.py)."""
    rows = bench_replay.replay(tmp)
    for name, value, _, _ in rows:
        say(f"  {name}: {value}")
    return [Figure("replay", n, v, t, m) for n, v, t, m in rows]


# -------------------------------------------------------------------------------------------- main

def print_table(figures: list[Figure]) -> None:
    cols = ("section", "figure", "value", "target", "met?")
    rows = [(f.section, f.name, f.value, f.target, f.verdict) for f in figures]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]
    line = "  ".join("{:<%d}" % w for w in widths)
    say(line.format(*cols))
    say(line.format(*("-" * w for w in widths)))
    for r in rows:
        say(line.format(*r))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"comma-separated sections to run (default: all): {', '.join(SECTIONS)}")
    p.add_argument("--sim-minutes", type=float, default=10.0, help="sim-offline trace length (default 10)")
    p.add_argument("--timing-s", type=float, default=12.0, help="timing-accuracy load per concurrency (default 12)")
    p.add_argument("--timing-repeats", type=int, default=3,
                   help="timing-accuracy runs per concurrency; the figure is their median (default 3)")
    p.add_argument("--scoring-records", type=int, default=1_000_000, help="scoring: records (default 1,000,000)")
    p.add_argument("--scoring-limit-s", type=float, default=300.0,
                   help="scoring: stop write_reports after this long (default 300)")
    p.add_argument("--profile", action="store_true",
                   help="scoring and client-capacity: also a profiled run, listing the top hotspots (cProfile)")
    a = p.parse_args(argv)
    a.sections = [s.strip() for s in a.only.split(",") if s.strip()]
    unknown = [s for s in a.sections if s not in SECTIONS]
    if unknown:
        p.error(f"unknown section {unknown[0]!r}: use one of {', '.join(SECTIONS)}")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (e.g. `timeout`) unwinds like Ctrl-C, so every child is torn down by its `with`.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background
    run = {"sim-offline": sim_offline, "sim-capacity": sim_capacity, "client-capacity": client_capacity,
           "timing-accuracy": timing_accuracy, "scoring": scoring, "sim-validation": sim_validation,
           "matrix": matrix, "replay": replay}
    client_core, server_core = bench_proc.cores()
    say(f"slabench bench on {os.cpu_count()} CPUs ({'client core %s, server core %s' % (client_core, server_core) if client_core is not None else 'no pinning: one CPU'}); "
        f"python {sys.version.split()[0]}")
    figures: list[Figure] = []
    t_all = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="slabench-bench-") as tmp:
            for name in args.sections:
                say(f"\n== {name}")
                t0 = time.perf_counter()
                try:
                    figures += run[name](args, Path(tmp))
                except (RuntimeError, OSError) as exc:  # one broken section must not hide the others
                    say(f"  section failed: {exc}")
                    figures.append(Figure(name, "(section failed)", str(exc)[:60]))
                say(f"  ({time.perf_counter() - t0:.0f} s)")
    except KeyboardInterrupt:
        say("\ninterrupted: children stopped; figures so far:")
        print_table(figures)
        return 130
    say(f"\n== summary ({time.perf_counter() - t_all:.0f} s; figures from this machine, see docs/bench.md)")
    print_table(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
