"""Probe seam: the bounded HTTP traffic `slabench check` sends (asyncio + aiohttp, never Locust).

`get` / `post` return an HttpResult (status 0 = no answer); `probe_load` streams a few chat
requests through the same SSE parser and accumulator as a run (so TTFT/E2E mean the same);
`burst` fires at most N quick requests paced over a short window and records who got 429.
`base_url` turns what a user typed (`localhost:8000`, `http://h:8000/v1`) into the server base URL.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from harness.load.sse import SSEParser
from harness.load.failures import error_message
from harness.load.streams import OpenAIChatStream
from harness.records import RequestRecord

CHAT_PATH = "/v1/chat/completions"
PROBE_PROMPT = "Reply with a short greeting. " * 4  # ~24 tokens: the probe measures serving, not prefill


# Endpoints people paste instead of the base URL (OpenAI clients' base_url ends in /v1): trimmed.
ENDPOINT_SUFFIXES = ("/v1/chat/completions", "/v1/completions", "/v1/models", "/generate_stream", "/generate",
                     "/health", "/metrics", "/v1")


def base_url(url: str) -> tuple[str, str | None]:
    """(server base URL, a note when an endpoint path was trimmed off); ValueError says what is wrong."""
    raw = url.strip()
    if "://" not in raw:
        raise ValueError(f"URL '{url}' has no scheme: did you mean http://{raw.lstrip('/')} ?")
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"URL '{url}' must start with http:// or https://")
    try:
        parts.port  # raises on a port that is not a number in 0..65535
    except ValueError:
        raise ValueError(f"URL '{url}' has an invalid port: e.g. http://127.0.0.1:8000") from None
    if not parts.hostname:
        raise ValueError(f"URL '{url}' has no host: e.g. http://127.0.0.1:8000")
    if parts.username is not None or parts.password is not None:
        raise ValueError("URL has user:password@ in it (it would be written into the checklist): drop it and "
                         "pass the key with --api-key-env VAR")
    if parts.query or parts.fragment:
        raise ValueError(f"URL '{url}' has a ?query or #fragment: give the server base URL, e.g. "
                         f"{parts.scheme}://{parts.netloc}")
    path, note = parts.path.rstrip("/"), None
    for suffix in ENDPOINT_SUFFIXES:
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            note = f"the URL ends in {suffix}: checking the server base URL {parts.scheme}://{parts.netloc}{path}"
            break
    return urlunsplit((parts.scheme, parts.netloc, path, "", "")), note


@dataclass
class HttpResult:
    status: int  # 0 when nothing answered
    body: bytes = b""
    headers: dict = field(default_factory=dict)
    elapsed_s: float = 0.0
    error: str | None = None  # transport error (connect refused, timeout)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def describe(self, limit: int = 120) -> str:
        """`HTTP 401 {"error": "Unauthorized"}`, `HTTP 200 (empty body)` or `no answer: reason`."""
        if self.status == 0:
            return f"no answer: {self.error}"
        body = " ".join(self.text.split())
        body = body if len(body) <= limit else body[:limit] + "…"
        return f"HTTP {self.status} " + (body if body else "(empty body)")


def auth_headers(api_key: str | None) -> dict:
    """vLLM/TGI read `Authorization: Bearer`; guide-style gateways read `X-API-Key`: send both."""
    return {"Authorization": f"Bearer {api_key}", "X-API-Key": api_key} if api_key else {}


async def _call(session: aiohttp.ClientSession, method: str, url: str, headers: dict | None,
                body: dict | None, timeout_s: float) -> HttpResult:
    t0 = time.perf_counter()
    try:
        async with session.request(method, url, headers=headers or {}, json=body,
                                   timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            data = await resp.read()
            return HttpResult(resp.status, data, dict(resp.headers), time.perf_counter() - t0)
    except asyncio.TimeoutError:
        return HttpResult(0, elapsed_s=time.perf_counter() - t0, error=f"timed out after {timeout_s:g} s")
    except (aiohttp.ClientError, OSError) as exc:
        return HttpResult(0, elapsed_s=time.perf_counter() - t0, error=f"{type(exc).__name__}: {exc}")


async def get(session: aiohttp.ClientSession, url: str, headers: dict | None = None,
              timeout_s: float = 5.0) -> HttpResult:
    return await _call(session, "GET", url, headers, None, timeout_s)


async def post(session: aiohttp.ClientSession, url: str, body: dict, headers: dict | None = None,
               timeout_s: float = 10.0) -> HttpResult:
    return await _call(session, "POST", url, headers, body, timeout_s)


def chat_body(model: str | None, max_tokens: int, stream: bool) -> dict:
    body: dict = {"messages": [{"role": "user", "content": PROBE_PROMPT}], "max_tokens": max_tokens,
                  "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    if model:
        body["model"] = model
    return body


async def stream_chat(session: aiohttp.ClientSession, base_url: str, headers: dict, model: str | None,
                      max_tokens: int, timeout_s: float) -> RequestRecord:
    """One streamed chat request, accounted exactly as a run's Locust bridge accounts it."""
    acc = OpenAIChatStream(f"check-{uuid.uuid4().hex[:12]}", time.perf_counter(), max_tokens, False,
                           sent_unix_s=time.time(), user="check")
    acc.rec.sent_s = time.perf_counter()
    status = 0
    try:
        async with session.post(base_url + CHAT_PATH, json=chat_body(model, max_tokens, True), headers=headers,
                                timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            status = resp.status
            if status != 200:
                body = await resp.read()
                rec = acc.finish(time.perf_counter(), status)
                rec.error = error_message(body) or rec.error
                return rec
            parser = SSEParser()
            async for block in resp.content.iter_any():
                acc.feed(parser.feed(block), time.perf_counter())
            acc.feed(parser.close(), time.perf_counter())
            return acc.finish(time.perf_counter(), status)
    except asyncio.TimeoutError:
        return acc.finish(time.perf_counter(), status, ("timeout", f"no complete answer within {timeout_s:g} s"))
    except (aiohttp.ClientError, OSError) as exc:
        return acc.finish(time.perf_counter(), status, ("connect", f"{type(exc).__name__}: {exc}"))


async def probe_load(session: aiohttp.ClientSession, base_url: str, headers: dict, model: str | None,
                     requests: int, concurrency: int = 4, max_tokens: int = 16,
                     timeout_s: float = 30.0) -> list[RequestRecord]:
    """`requests` streamed chat requests, at most `concurrency` in flight (closed loop, no think time)."""
    sem = asyncio.Semaphore(max(1, concurrency))

    async def one() -> RequestRecord:
        async with sem:
            return await stream_chat(session, base_url, headers, model, max_tokens, timeout_s)

    return list(await asyncio.gather(*(one() for _ in range(max(0, requests)))))


async def burst(session: aiohttp.ClientSession, base_url: str, headers: dict, model: str | None,
                requests: int, window_s: float = 2.0, timeout_s: float = 10.0) -> list[dict]:
    """`requests` one-token chat requests sent at even offsets over `window_s`; one row per request:
    offset_s (when sent, from the burst start), status, retry_after / limit headers of a 429."""
    t0 = time.perf_counter()
    step = window_s / max(requests, 1)

    async def one(i: int) -> dict:
        delay = t0 + i * step - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent = time.perf_counter() - t0
        r = await post(session, base_url + CHAT_PATH, chat_body(model, 1, False), headers, timeout_s)
        row = {"i": i, "offset_s": sent, "status": r.status, "elapsed_s": r.elapsed_s}
        if r.status == 429:
            row.update(retry_after=r.headers.get("Retry-After"), limit_header=r.headers.get("X-RateLimit-Limit"),
                       message=error_message(r.body))
        elif r.status == 0:
            row["message"] = r.error
        return row

    return list(await asyncio.gather(*(one(i) for i in range(max(0, requests)))))
