"""Wire seam: a streamed response's token events written straight to the socket by the engine.

`TokenWriter` is what an API layer attaches to a `Ticket`: at each release it writes the token's
pre-rendered event as one HTTP chunk (one `transport.write`), feeds the metrics, and resolves a
future after the last token, so the handler wakes once per request instead of once per token.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from aiohttp import hdrs, web

from .common import Tracker


def chunk_frame(data: bytes) -> bytes:
    """One HTTP/1.1 chunk, framed as aiohttp's own writer frames it."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class Wire:
    """Raw body writes on a prepared streamed response, in its framing (chunked or not)."""

    def __init__(self, transport: asyncio.Transport, chunked: bool):
        self.transport, self.chunked = transport, chunked

    def write(self, data: bytes, tail: bytes = b"") -> None:
        """data, then tail as a chunk of its own when there is one (as two resp.write calls)."""
        if self.chunked:
            data = chunk_frame(data) + chunk_frame(tail) if tail else chunk_frame(data)
        elif tail:
            data += tail
        self.transport.write(data)

    @property
    def closed(self) -> bool:
        return self.transport.is_closing()


async def open_wire(request: web.Request, resp: web.StreamResponse, first: bytes = b"") -> Wire | None:
    """After `resp.prepare`: send the headers (and `first`, e.g. a chat role event) now, and return
    the response's `Wire`; None if the connection is already gone."""
    await resp.write(first)  # aiohttp holds the headers back until the first body write
    transport = request.transport
    if transport is None or transport.is_closing():
        return None
    return Wire(transport, resp.headers.get(hdrs.TRANSFER_ENCODING, "").lower() == "chunked")


class TokenWriter:
    """Writes token k's event when the engine releases it; `done` resolves to "ok" or "abort".

    event(k) returns the bytes of token k's event; `tail` follows the last one (usage, [DONE]).
    wire=None writes nothing (non-streamed responses still time their tokens for the metrics).
    """

    def __init__(self, wire: Wire | None, event: Callable[[int], bytes], n: int, tracker: Tracker,
                 tail: bytes = b""):
        self._wire, self._event, self._n, self._tracker, self._tail = wire, event, n, tracker, tail
        self.done: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def __call__(self, k: int, now: float) -> None:
        if self.done.done():
            return
        wire = self._wire
        if wire is not None:
            if wire.closed:
                self.done.set_result("abort")  # the client went away: stop at this token
                return
            wire.write(self._event(k), self._tail if k + 1 >= self._n else b"")
        self._tracker.token_at(now)
        if k + 1 >= self._n:
            self.done.set_result("ok")
