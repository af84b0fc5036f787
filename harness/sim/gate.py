"""Gate seam: the simulator's gateway in front of the engine (API key, rate limiter, circuit breaker),
one aiohttp middleware.

API key (off by default) exactly as protocols.md: vLLM guards paths under /v1, /v2, /inference,
/cohere and answers 401 `{"error": "Unauthorized"}`; TGI guards its generation routes, 401 empty body.
Rate limit and circuit breaker (off by default; simulator extensions modelling the guide's gateway
limiter, section 7, and its `@circuit(failure_threshold=5, recovery_timeout=30)`, section 6) act on
the generation routes; over the limit → 429, circuit open → 503, each with a JSON error body.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Awaitable, Callable

from aiohttp import web

VLLM_GUARDED_PREFIXES = ("/v1", "/v2", "/inference", "/cohere")
TGI_GUARDED_PATHS = frozenset({"/", "/generate", "/generate_stream", "/v1/chat/completions", "/v1/completions",
                               "/vertex", "/invocations", "/tokenize"})
GENERATION_PATHS = frozenset({"/generate", "/generate_stream", "/v1/chat/completions", "/v1/completions"})
DEFAULT_RECOVERY_S = 30.0  # the guide's recovery_timeout
# Request key of the breaker's view of one response's body (a typed key where aiohttp has them, 3.11+).
_WATCH = web.RequestKey("slabench_gate_watch", object) if hasattr(web, "RequestKey") else "slabench_gate_watch"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TokenBucket:
    """`rate_per_s` tokens per second, holding at most `capacity`; starts full. Not thread-safe (one loop)."""

    def __init__(self, rate_per_s: float, capacity: float, clock: Callable[[], float] = time.monotonic):
        if rate_per_s <= 0 or capacity < 1:
            raise ValueError("rate_per_s must be > 0 and capacity >= 1")
        self.rate_per_s, self.capacity, self.clock = rate_per_s, capacity, clock
        self.tokens = capacity
        self._last = clock()

    def take(self) -> tuple[bool, float]:
        """(allowed, seconds until the next token) — consumes one token when allowed."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate_per_s)
        self._last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True, 0.0
        return False, (1 - self.tokens) / self.rate_per_s


class CircuitBreaker:
    """The guide's breaker: closed → open after `failure_threshold` consecutive failures; open refuses
    every request for `recovery_s`; then half-open lets one probe through: its success closes the
    circuit, its failure opens it for another `recovery_s`. Requests arriving while the probe is out
    are refused. Results of requests admitted before a trip are ignored (they say nothing new).
    A failure is whatever the guarded call raised in the guide; here, the engine's answer: a 5xx or
    429 status, an error event inside a streamed 200, or the handler raising. A client that went away
    gives no verdict. Slow answers are not failures (the guide's breaker has no timeout)."""

    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"

    def __init__(self, failure_threshold: int, recovery_s: float = DEFAULT_RECOVERY_S,
                 clock: Callable[[], float] = time.monotonic, on_change: Callable[[str], None] | None = None):
        if failure_threshold < 1 or not (recovery_s > 0 and math.isfinite(recovery_s)):
            raise ValueError("failure_threshold must be >= 1 and recovery_s a finite number > 0")
        self.failure_threshold, self.recovery_s, self.clock = failure_threshold, recovery_s, clock
        self.on_change = on_change
        self.state = self.CLOSED
        self.failures = 0  # consecutive, while closed
        self.opened_s: float | None = None
        self.probe_out = False
        self.trips = 0  # closed/half-open → open transitions
        self.refused = 0

    def _set(self, state: str) -> None:
        self.state = state
        if self.on_change is not None:
            self.on_change(state)

    def _open(self) -> None:
        self.opened_s = self.clock()
        self.trips += 1
        self._set(self.OPEN)

    def admit(self) -> tuple[bool, bool]:
        """(allowed, is_probe) for a request arriving now."""
        if self.state == self.OPEN:
            if self.clock() - self.opened_s < self.recovery_s:
                self.refused += 1
                return False, False
            self._set(self.HALF_OPEN)
        if self.state == self.HALF_OPEN:
            if self.probe_out:
                self.refused += 1
                return False, False
            self.probe_out = True
            return True, True
        return True, False

    def record(self, failed: bool | None, probe: bool) -> None:
        """The outcome of an admitted request: True failed, False succeeded, None no verdict."""
        if probe:
            self.probe_out = False
            if failed:
                self._open()
            elif failed is False:
                self.failures = 0
                self._set(self.CLOSED)
            return  # None: the probe's client left; the next request probes instead
        if self.state != self.CLOSED or failed is None:
            return
        if not failed:
            self.failures = 0
            return
        self.failures += 1
        if self.failures >= self.failure_threshold:
            self._open()

    def retry_after_s(self) -> float:
        """Seconds until a refused request could be admitted (0 while closed or half-open)."""
        if self.state != self.OPEN or self.opened_s is None:
            return 0.0
        return max(0.0, self.recovery_s - (self.clock() - self.opened_s))


def authorized(flavor: str, header: str | None, api_key: str) -> bool:
    """vLLM: scheme `Bearer` (any case) + exact key; TGI: the whole header compared case-insensitively."""
    if header is None:
        return False
    if flavor == "tgi":
        return header.lower() == f"bearer {api_key}".lower()
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and token == api_key


def guarded(flavor: str, method: str, path: str) -> bool:
    if method == "OPTIONS":
        return False
    if flavor == "tgi":
        return method == "POST" and path in TGI_GUARDED_PATHS
    return path.startswith(VLLM_GUARDED_PREFIXES)


def unauthorized(flavor: str) -> web.Response:
    if flavor == "tgi":
        return web.Response(status=401)
    return web.json_response({"error": "Unauthorized"}, status=401)


def rate_limited(rate_per_s: float, retry_after_s: float) -> web.Response:
    limit = f"{rate_per_s:g} per 1 second"
    return web.json_response(
        {"error": f"Rate limit exceeded: {limit}"}, status=429,
        headers={"Retry-After": str(max(1, math.ceil(retry_after_s))), "X-RateLimit-Limit": f"{rate_per_s:g}"})


def circuit_open(breaker: CircuitBreaker) -> web.Response:
    """503 from the gateway while the circuit is open (or a probe is out): the engine is not called."""
    wait_s = breaker.retry_after_s()
    if breaker.state == breaker.OPEN:
        msg = (f"Circuit breaker open: the engine failed {breaker.failure_threshold} requests in a row; "
               f"requests are refused for {breaker.recovery_s:g} s, retry in {math.ceil(wait_s)} s")
    else:
        msg = "Circuit breaker half-open: one probe request is testing the engine; retry shortly"
    return web.json_response({"error": msg, "error_type": "circuit_open"}, status=503,
                             headers={"Retry-After": str(max(1, math.ceil(wait_s)))})


def error_event(data: bytes) -> bool:
    """Whether a streamed body write carries an SSE error event (`data:{"error"...` or `data: {"error"...`)."""
    if b'{"error"' not in data:  # the cheap test first: token events never start an object with it
        return False
    for ev in data.split(b"\n\n"):
        ev = ev.lstrip(b"\r\n")
        if ev.startswith(b"data:") and ev[5:].lstrip(b" ").startswith(b'{"error"'):
            return True
    return False


class _Watch:
    """One guarded response: whether an error event went out in its body."""
    __slots__ = ("error",)

    def __init__(self):
        self.error = False


async def watch_stream(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare hook: wrap the response's write so the breaker sees in-stream errors
    (TGI answers overload inside a 200 stream). Token events the engine writes to the socket
    directly bypass it; error events always go through `write`."""
    watch = request.get(_WATCH)
    if watch is None:
        return
    write = response.write

    async def watched(data: bytes) -> None:
        if not watch.error and error_event(bytes(data)):
            watch.error = True
        await write(data)

    response.write = watched  # type: ignore[method-assign]


def _is_generation(flavor: str, request: web.Request) -> bool:
    return request.method == "POST" and (request.path in GENERATION_PATHS or (flavor == "tgi" and request.path == "/"))


async def _through_breaker(breaker: CircuitBreaker, request: web.Request, handler: Handler) -> web.StreamResponse:
    allowed, probe = breaker.admit()
    if not allowed:
        return circuit_open(breaker)
    watch = request[_WATCH] = _Watch()
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        breaker.record(exc.status >= 500 or exc.status == 429, probe)
        raise
    except (asyncio.CancelledError, ConnectionResetError):
        breaker.record(None, probe)  # the client went away: no verdict on the engine
        raise
    except Exception:
        breaker.record(True, probe)
        raise
    breaker.record(resp.status >= 500 or resp.status == 429 or watch.error, probe)
    return resp


def gate_middleware(flavor: str, api_key: str | None, rate_limit_rps: float | None,
                    burst: float | None = None, clock: Callable[[], float] = time.monotonic,
                    breaker: CircuitBreaker | None = None):
    """The middleware, or None when every switch is off. Order: auth → limiter → breaker → engine.
    With a breaker, also register `watch_stream` on the app's on_response_prepare."""
    if not api_key and not rate_limit_rps and breaker is None:
        return None
    bucket = TokenBucket(rate_limit_rps, burst or max(1.0, rate_limit_rps), clock) if rate_limit_rps else None

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if api_key and guarded(flavor, request.method, request.path):
            if not authorized(flavor, request.headers.get("Authorization"), api_key):
                return unauthorized(flavor)
        if (bucket is None and breaker is None) or not _is_generation(flavor, request):
            return await handler(request)
        if bucket is not None:
            allowed, wait_s = bucket.take()
            if not allowed:
                return rate_limited(bucket.rate_per_s, wait_s)
        if breaker is not None:
            return await _through_breaker(breaker, request, handler)
        return await handler(request)

    return gate
