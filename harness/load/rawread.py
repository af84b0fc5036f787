"""Reading one streamed response from FastHttpUser's client: bytes as soon as they arrive,
stamped on arrival, split into SSE events and turned into a RequestRecord.

The Locust bridge's hot path; it imports nothing from gevent or locust itself (the response
object it reads belongs to geventhttpclient).
"""

from __future__ import annotations

import socket
import time

from harness.load.sse import SSEParser
from harness.load.streams import error_message

READ_BLOCK_BYTES = 65536


def read_some(raw) -> bytes:
    """Whatever body bytes have arrived (at least one byte, b'' at end of message).

    geventhttpclient's public `read(n)` blocks until n bytes or the end, which would delay every
    chunk of a stream; this reads one socket block at a time and returns as soon as the parser
    has body bytes, so the timestamp taken after it is when the token arrived.
    """
    buf = getattr(raw, "_body_buffer", None)
    if buf is None:  # unknown geventhttpclient internals: fall back to one SSE event at a time
        return raw.readline(b"\n\n")
    while not buf:
        sock = raw._sock
        if raw.message_complete or sock is None:
            return b""
        data = _recv(sock)
        if not data:
            raise ConnectionResetError("connection closed mid-stream")
        raw.feed(data)
    out = bytes(buf)
    del buf[:]
    return out


def _recv(sock) -> bytes:
    """One block from a gevent socket, waiting for it first.

    gevent's recv tries the OS socket, catches EAGAIN, then waits: while a stream is flowing the
    next chunk is almost never there yet, so that first try is a wasted syscall plus a raised and
    caught exception for every chunk (~1/8 of the client's CPU at 256 streams). Waiting first skips
    it. Other sockets, and gevent versions without these internals, take the plain recv.
    """
    inner, wait, event = getattr(sock, "_sock", None), getattr(sock, "_wait", None), getattr(sock, "_read_event", None)
    if inner is None or wait is None or event is None or sock.gettimeout() is not None:
        return sock.recv(READ_BLOCK_BYTES)
    while True:
        wait(event)
        try:
            return inner.recv(READ_BLOCK_BYTES)
        except BlockingIOError:  # woken without data (another reader, a spurious wake-up): wait again
            continue


def consume(resp, acc):
    """Read one response to its end; every failure becomes data on the record."""
    status = resp.status_code or 0
    acc.rec.status = status
    if status == 0:
        err = getattr(resp, "error", None)
        kind = "timeout" if isinstance(err, (socket.timeout, TimeoutError)) else "connect"
        return acc.finish(time.perf_counter(), 0, (kind, f"{type(err).__name__}: {err}"))
    if status != 200:
        try:
            text = resp.content or b""
        except Exception as exc:  # body unreadable: the status still says what happened
            text = str(exc).encode()
        rec = acc.finish(time.perf_counter(), status)
        rec.error = f"HTTP {status}: {error_message(text)}"
        return rec
    raw = resp._response
    parser = SSEParser()
    # While streaming, the socket needs no per-recv timeout: the caller's gevent.Timeout bounds the
    # whole request, and gevent would otherwise build a Timeout object for every chunk's recv.
    sock = getattr(raw, "_sock", None)
    old_timeout = sock.gettimeout() if sock is not None else None
    if sock is not None:
        sock.settimeout(None)
    feed, clock = acc.feed_block, time.perf_counter
    try:
        while True:
            block = read_some(raw)
            t_s = clock()  # taken when the bytes arrived, before any parsing
            if not block:
                acc.feed(parser.close(), t_s)
                break
            feed(parser, block, t_s)
    finally:
        if sock is not None:  # the socket may already be back in the pool: restore before any switch
            sock.settimeout(old_timeout)
    return acc.finish(time.perf_counter(), status)
