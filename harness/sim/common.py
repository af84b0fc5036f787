"""Shared request plumbing for both API flavors: server context, per-request tracking, faults.

`ServerContext` is everything a route handler needs (engine, metrics, limits, seeded RNGs);
`Tracker` times one request's tokens and feeds the metrics hooks; `Faults` decides injected
failures (all off by default).
"""

from __future__ import annotations

import json
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from aiohttp import web

FIRST_TOKEN_LOG = 200_000  # requests whose first-token release time GET /sim/first-tokens keeps


def dumps(obj: Any) -> str:
    """Compact JSON like pydantic's model_dump_json / serde_json (no spaces, UTF-8 kept)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


@dataclass
class FaultConfig:
    error_rate: float = 0.0  # share of requests answered with a server error before any token
    abort_rate: float = 0.0  # share of streams whose connection is cut mid-way
    stall_s: float = 0.0  # one pause of this length in the middle of every stream
    malformed_rate: float = 0.0  # share of streams with one corrupted (non-JSON) event
    crash_after_s: float = 0.0  # the process exits abruptly this long after start (0 = never)


@dataclass
class RequestFaults:
    error: bool = False
    abort_at: int | None = None  # token index after which the connection is closed
    stall_at: int | None = None
    malformed_at: int | None = None


class Faults:
    def __init__(self, cfg: FaultConfig, rng: random.Random):
        self.cfg = cfg
        self._rng = rng

    def draw(self, output_tokens: int) -> RequestFaults:
        c, r = self.cfg, self._rng
        mid = max(output_tokens // 2, 0)
        return RequestFaults(
            error=c.error_rate > 0 and r.random() < c.error_rate,
            abort_at=mid if c.abort_rate > 0 and r.random() < c.abort_rate else None,
            stall_at=mid if c.stall_s > 0 else None,
            malformed_at=mid if c.malformed_rate > 0 and r.random() < c.malformed_rate else None,
        )


@dataclass
class ServerContext:
    flavor: str
    served_model_name: str
    model_id: str
    hf_name: str
    engine: Any
    metrics: Any
    seed: int
    faults: Faults
    gpu_snapshot: Callable[[], dict]
    max_model_len: int = 0  # vLLM
    max_input_tokens: int = 0  # TGI
    max_total_tokens: int = 0  # TGI
    max_concurrent_requests: int = 0  # TGI
    fingerprint: str = ""
    clock: Callable[[], float] = time.perf_counter
    in_flight: int = 0
    _counter: int = 0
    extra: dict = field(default_factory=dict)
    # (X-Request-Id, perf_counter time its first token was released) of the latest requests that
    # sent the header: a client on this machine can subtract the server's own lateness per request.
    first_tokens: deque = field(default_factory=lambda: deque(maxlen=FIRST_TOKEN_LOG))

    def request_rng(self) -> random.Random:
        """A fresh RNG per request, seeded from (server seed, arrival order): reproducible runs."""
        self._counter += 1
        return random.Random(f"{self.seed}:{self._counter}")


class Tracker:
    """Timing of one request's tokens as written, feeding the metrics hooks once each."""

    def __init__(self, ctx: ServerContext, arrival_s: float, prompt_tokens: int, max_new_tokens: int,
                 ticket=None, request_id: str | None = None):
        self.ctx = ctx
        self.request_id = request_id  # the client's X-Request-Id, if it sent one
        self.ticket = ticket  # the engine's Ticket: when the request was first scheduled
        self.arrival_s = arrival_s
        self.prompt_tokens = prompt_tokens
        self.max_new_tokens = max_new_tokens
        self.first_s: float | None = None
        self.last_s: float | None = None
        self.generated = 0
        self.finished = False

    def token(self) -> None:
        self.token_at(self.ctx.clock())

    def token_at(self, now: float) -> None:
        """One token written at `now` (the engine's release reads the clock, not this method)."""
        if self.first_s is None:
            self.first_s = now
            self.ctx.metrics.on_first_token(now - self.arrival_s, self.prompt_tokens)
            if self.request_id is not None:
                self.ctx.first_tokens.append((self.request_id, now))
        else:
            self.ctx.metrics.on_token(now - self.last_s)
        self.last_s = now
        self.generated += 1

    def tokens_at_once(self, n: int, now: float) -> None:
        """n tokens written together at `now` (calibration mode with zero delays): ITL 0 each."""
        if n <= 0:
            return
        self.token_at(now)
        self.ctx.metrics.on_tokens(0.0, n - 1)
        self.generated += n - 1

    def finish(self, reason: str) -> None:
        if self.finished:
            return
        self.finished = True
        now = self.ctx.clock()
        ttft = None if self.first_s is None else self.first_s - self.arrival_s
        self.ctx.metrics.on_finish(reason, self.prompt_tokens, self.generated, now - self.arrival_s, ttft,
                                   self.max_new_tokens)
        # Drop the ticket: it holds the writer, which holds this tracker, and that cycle would keep
        # the whole request (closures, buffers) alive until a garbage collection pass.
        ticket, self.ticket = self.ticket, None
        sched = getattr(ticket, "scheduled_s", None)
        if sched is not None and self.first_s is not None and reason not in ("abort", "error"):
            # The request's phases: queued → first scheduled → first token → last token.
            self.ctx.metrics.on_phases(max(sched - self.arrival_s, 0.0), max(self.first_s - sched, 0.0),
                                       self.last_s - self.first_s, max(self.last_s - sched, 0.0), self.generated)


async def json_body(request: web.Request) -> tuple[Any, str | None]:
    """(parsed body, None) or (None, error text) for a body that is not JSON."""
    raw = await request.read()
    try:
        return json.loads(raw), None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, str(exc)


def abort_connection(request: web.Request) -> None:
    """Cut the TCP connection without finishing the HTTP response (fault injection)."""
    transport = request.transport
    if transport is not None:
        transport.abort()


def sim_stats(ctx: ServerContext, reset: bool = False) -> dict:
    """`GET /sim/stats`: calibration-mode release lateness (ms) versus the absolute schedule.

    Covers the tokens released since the server started or since the last `?reset=1` read (which
    clears the window after reporting it), so a bench can read one run's lateness."""
    engine = ctx.engine
    window = getattr(engine, "lateness_s", None)
    late = sorted(window or ())
    if reset and window is not None:
        window.clear()
    out: dict = {"mode": "fixed" if window is not None else "gpu", "tokens": len(late)}
    if late:
        def q(p: float) -> float:
            return round(late[min(int(p * len(late)), len(late) - 1)] * 1000, 3)
        out["token_lateness_ms"] = {"p50": q(0.5), "p99": q(0.99), "max": round(late[-1] * 1000, 3)}
    return out


def first_tokens(ctx: ServerContext) -> dict:
    """`GET /sim/first-tokens`: when the first token of each recent request that sent an
    X-Request-Id was released (perf_counter seconds: comparable with any process on this host)."""
    return {"clock": "perf_counter", "first_token_s": dict(ctx.first_tokens)}


def stats_reset(request: web.Request) -> bool:
    return request.query.get("reset", "") not in ("", "0", "false")


class ApiBase:
    """Routes both flavors serve the same way: health, /metrics, and the sim's own /sim/* routes."""

    def __init__(self, ctx: ServerContext):
        self.ctx = ctx

    def common_routes(self, app: web.Application, health_paths: tuple[str, ...]) -> None:
        for path in health_paths:
            app.router.add_get(path, self.health)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/sim/gpu", self.sim_gpu)
        app.router.add_get("/sim/stats", self.sim_stats)
        app.router.add_get("/sim/first-tokens", self.sim_first_tokens)

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(status=200)  # both servers: 200 with an empty body when healthy

    async def metrics(self, request: web.Request) -> web.Response:
        body, ctype = self.ctx.metrics.render()
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = ctype
        return resp

    async def sim_gpu(self, request: web.Request) -> web.Response:
        return web.json_response(self.ctx.gpu_snapshot(), dumps=dumps)

    async def sim_stats(self, request: web.Request) -> web.Response:
        return web.json_response(sim_stats(self.ctx, stats_reset(request)), dumps=dumps)

    async def sim_first_tokens(self, request: web.Request) -> web.Response:
        return web.json_response(first_tokens(self.ctx), dumps=dumps)

