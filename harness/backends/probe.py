"""Readiness probes over plain HTTP (urllib, synchronous): health, model list, TGI info.

Used by every backend's wait_ready; polls with a deadline and an injected clock/sleep.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Callable

from harness.backends.base import BackendError


def http_get(url: str, timeout_s: float = 2.0, headers: dict | None = None) -> tuple[int, bytes]:
    """(status, body); status 0 with the reason as body when nothing answered."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read() if exc.fp else b""
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return 0, str(reason).encode()


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
        status, body = http_get(f"{base_url}/health", timeout_s=2.0, headers=headers)
        if status == 200:
            return
        last = f"HTTP {status}" if status else body.decode(errors="replace")
        if clock() >= deadline:
            raise HealthTimeout(f"{base_url} not ready after {timeout_s:g} s (last /health: {last}): "
                                "check the server is running and the URL/port are right", last)
        sleep(0.1)
