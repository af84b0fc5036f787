"""Readiness probes over plain HTTP (urllib, synchronous): health, model list, TGI info.

Used by every backend's wait_ready; polls with a deadline and an injected clock/sleep.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from typing import Callable

from harness.backends.base import BackendError


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
MAX_PROBE_BODY_BYTES = 1 << 20  # a health or model-list body is tiny; more is not read
READ_BLOCK_BYTES = 16384


def _read_capped(resp, deadline_s: float, clock, max_bytes: int = MAX_PROBE_BODY_BYTES) -> bytes:
    """The body up to MAX_PROBE_BODY_BYTES, read by blocks until the wall-clock deadline.

    urllib's timeout is per socket operation: a server trickling a byte a second would keep one
    read alive forever, so the deadline is checked between blocks.
    """
    parts, size = [], 0
    while size < max_bytes:
        if clock() >= deadline_s:
            raise TimeoutError("body still arriving at the probe deadline")
        block = resp.read1(READ_BLOCK_BYTES) if hasattr(resp, "read1") else resp.read(READ_BLOCK_BYTES)
        if not block:
            break
        parts.append(block)
        size += len(block)
    return b"".join(parts)[:max_bytes]


def http_get(url: str, timeout_s: float = 2.0, headers: dict | None = None, clock=time.monotonic,
             max_bytes: int = MAX_PROBE_BODY_BYTES, json_body: dict | None = None) -> tuple[int, bytes]:
    """(status, body) within `timeout_s` of wall-clock time in all; status 0 with the reason as body
    when nothing (or nothing complete) answered. The body is capped at `max_bytes`. With
    `json_body` the request is a POST of that JSON.

    Proxies from the environment are ignored on purpose: probes talk to the server under test
    directly, and an http_proxy meant for the internet would otherwise swallow 127.0.0.1.
    """
    deadline_s = clock() + timeout_s
    try:
        data = None if json_body is None else json.dumps(json_body).encode()
        hdrs = {**(headers or {}), **({"Content-Type": "application/json"} if data is not None else {})}
        req = urllib.request.Request(url, data=data, headers=hdrs)
        with _OPENER.open(req, timeout=timeout_s) as resp:
            return resp.status, _read_capped(resp, deadline_s, clock, max_bytes)
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, _read_capped(exc, deadline_s, clock, max_bytes) if exc.fp else b""
        except (OSError, ValueError):
            return exc.code, b""
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc or type(exc).__name__
        return 0, str(reason).encode(errors="replace")


def served_model(base_url: str, headers: dict | None = None) -> str | None:
    """The first model id from /v1/models (vLLM, TGI, OpenAI-compatible), else TGI's /info."""
    status, body = http_get(f"{base_url}/v1/models", headers=headers)
    if status == 200:
        try:
            data = json.loads(body).get("data") or []
            if data and data[0].get("id"):
                return str(data[0]["id"])
        except (ValueError, AttributeError):
            pass
    status, body = http_get(f"{base_url}/info", headers=headers)
    if status == 200:
        try:
            return json.loads(body).get("model_id")
        except (ValueError, AttributeError):
            pass
    return None


class HealthTimeout(BackendError):
    """/health never answered 200 in time; `last` says what it answered last."""

    def __init__(self, message: str, last: str):
        super().__init__(message)
        self.last = last


def wait_healthy(base_url: str, timeout_s: float, alive: Callable[[], str | None] = lambda: None,
                 headers: dict | None = None, clock=time.monotonic, sleep=time.sleep) -> None:
    """Poll GET /health until 200. `alive()` returns an error message if the server process died."""
    deadline = clock() + timeout_s
    last = "no answer yet"
    while True:
        dead = alive()
        if dead:
            raise BackendError(dead)
        # Each probe ends by the overall deadline too (a /health that trickles forever must not hang us).
        status, body = http_get(f"{base_url}/health", timeout_s=max(0.1, min(2.0, deadline - clock())),
                                headers=headers)
        if status == 200:
            return
        last = f"HTTP {status}" if status else body.decode(errors="replace")
        if clock() >= deadline:
            raise HealthTimeout(f"{base_url} not ready after {timeout_s:g} s (last /health: {last}): "
                                "check the server is running and the URL/port are right", last)
        sleep(0.1)
