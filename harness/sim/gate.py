"""Gate seam: the simulator's optional API-key check and gateway rate limiter, as one aiohttp middleware.

API key (off by default) exactly as protocols.md: vLLM guards paths under /v1, /v2, /inference,
/cohere and answers 401 `{"error": "Unauthorized"}`; TGI guards its generation routes, 401 empty body.
Rate limit (off by default; a simulator extension modelling the gateway limiter of guide section 7):
one token bucket per server over the generation routes; over the limit → 429 with a JSON error body.
"""

from __future__ import annotations

import math
import time
from typing import Awaitable, Callable

from aiohttp import web

VLLM_GUARDED_PREFIXES = ("/v1", "/v2", "/inference", "/cohere")
TGI_GUARDED_PATHS = frozenset({"/", "/generate", "/generate_stream", "/v1/chat/completions", "/v1/completions",
                               "/vertex", "/invocations", "/tokenize"})
GENERATION_PATHS = frozenset({"/generate", "/generate_stream", "/v1/chat/completions", "/v1/completions"})

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


def gate_middleware(flavor: str, api_key: str | None, rate_limit_rps: float | None,
                    burst: float | None = None, clock: Callable[[], float] = time.monotonic):
    """The middleware, or None when both switches are off. Auth runs first (gateway → limiter)."""
    if not api_key and not rate_limit_rps:
        return None
    bucket = TokenBucket(rate_limit_rps, burst or max(1.0, rate_limit_rps), clock) if rate_limit_rps else None

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if api_key and guarded(flavor, request.method, request.path):
            if not authorized(flavor, request.headers.get("Authorization"), api_key):
                return unauthorized(flavor)
        if bucket is not None and request.method == "POST" and (
                request.path in GENERATION_PATHS or (flavor == "tgi" and request.path == "/")):
            allowed, wait_s = bucket.take()
            if not allowed:
                return rate_limited(bucket.rate_per_s, wait_s)
        return await handler(request)

    return gate
