"""Reading one response from FastHttpUser's client: stream bytes stamped as they arrive, split
into SSE events and turned into a RequestRecord; every failure becomes data on it, with bounded
reads. The Locust bridge's hot path; it imports nothing from gevent or locust (the response object
belongs to geventhttpclient, whose exceptions are recognised by name).
"""

from __future__ import annotations

import time

from harness.load.sse import EventTooLarge, SSEParser
from harness.load.failures import MAX_ERROR_CHARS, error_message

READ_BLOCK_BYTES = 65536
# An error body (or a 200 that is not an event stream) is read up to this much, for its message;
# the rest is never read: the connection is closed instead, so the client's memory does not follow
# what a broken server sends (a 100 MB 500 body took Locust to 2 GB).
ERROR_BODY_KEEP_BYTES = 65536
# Statuses the HTTP client hands back as responses (all of them): an error status is data to read
# here, with a bound, not an exception inside geventhttpclient, which reads the whole body first.
ANY_STATUS = frozenset(range(100, 1000))
_CONNECT_FRAMES = frozenset({"_create_socket", "_connect_socket", "create_connection", "connect"})


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


def read_capped(raw, cap_bytes: int = ERROR_BODY_KEEP_BYTES) -> bytes:
    """At most `cap_bytes` of a body that is not timed (an error's message): to its end, to the
    cap, or to a transport failure, whichever comes first; what arrived is returned either way."""
    parts: list[bytes] = []
    n = 0
    has_buffer = getattr(raw, "_body_buffer", None) is not None
    try:
        while n < cap_bytes:
            # read(k) stops at k bytes; read_some at one socket block: never the whole body.
            block = read_some(raw) if has_buffer else raw.read(min(READ_BLOCK_BYTES, cap_bytes - n))
            if not block:
                break
            parts.append(block)
            n += len(block)
    except Exception:  # noqa: BLE001 - the status says what happened; the body is only its message
        pass
    return b"".join(parts)[:cap_bytes]


def close_unfinished(raw) -> None:
    """Drop the connection of a response not read to its end (geventhttpclient closes a socket
    released mid-message instead of pooling it), so nothing more of it is ever buffered."""
    if raw is not None and not getattr(raw, "message_complete", True):
        release = getattr(raw, "release", None)
        if release is not None:
            try:
                release()
            except Exception:  # noqa: BLE001 - closing a broken socket must not hide the record
                pass


def _chain(exc: BaseException | None):
    """exc and what it wraps: geventhttpclient's RetriesExceeded(original=...), then cause/context."""
    seen = 0
    while exc is not None and seen < 6:
        yield exc
        seen += 1
        exc = getattr(exc, "original", None) or exc.__cause__ or exc.__context__


def _is(exc: BaseException, name: str) -> bool:
    return any(c.__name__ == name for c in type(exc).__mro__)


def _while_connecting(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name in _CONNECT_FRAMES:
            return True
        tb = tb.tb_next
    return False


def transport_error(exc: BaseException | None, status: int) -> tuple[str, str]:
    """(error class, one-line message) for an exception that ended a request.

    timeout: no (complete) answer in time; connect: no connection, or it closed before any
    answer; protocol_error: the answer is not HTTP (or its framing is broken); stream_error:
    the connection failed after the status arrived (or anything unforeseen).
    """
    if exc is None:
        return ("connect", "no response") if status == 0 else ("stream_error", "response ended unexpectedly")
    chain = list(_chain(exc))
    # RetriesExceeded says only "URL ...: 0"; what it wraps says what went wrong.
    root = chain[1] if len(chain) > 1 and _is(chain[0], "RetriesExceeded") else chain[0]
    msg = " ".join(f"{type(root).__name__}: {root}".split())
    if any(isinstance(e, TimeoutError) or _is(e, "Timeout") for e in chain):
        if status == 0 and any(_while_connecting(e) for e in chain):
            return "connect", f"timed out connecting: {msg}"[:MAX_ERROR_CHARS]
        where = "no response headers arrived" if status == 0 else "the response did not end"
        return "timeout", f"{msg}: {where}"[:MAX_ERROR_CHARS]
    if any(_is(e, "HTTPParseError") and not _is(e, "HTTPConnectionClosed") for e in chain):
        return "protocol_error", f"the server's answer is not valid HTTP: {msg}"[:MAX_ERROR_CHARS]
    if status == 0 and any(isinstance(e, OSError) or _is(e, "ConnectionError") or _is(e, "HTTPConnectionClosed")
                           for e in chain):
        return "connect", msg[:MAX_ERROR_CHARS]
    return "stream_error", msg[:MAX_ERROR_CHARS]  # anything else: still one failed request


def _content_type(resp) -> str:
    headers = getattr(resp, "headers", None)
    value = headers.get("content-type") if headers is not None else None
    if isinstance(value, list):  # a repeated header
        value = value[0] if value else None
    return value.lower() if isinstance(value, str) else ""


def consume(resp, acc):
    """Read one response to its end; every failure becomes data on the record.

    Exceptions from reading the stream (a reset, a timeout, broken chunked framing) reach the
    caller, which records them with `transport_error`; the connection is closed either way.
    """
    status = resp.status_code or 0
    acc.rec.status = status
    if status == 0:
        return acc.finish(time.perf_counter(), 0, transport_error(getattr(resp, "error", None), 0))
    raw = resp._response
    try:
        if status != 200:
            body = read_capped(raw)
            rec = acc.finish(time.perf_counter(), status)
            rec.error = f"HTTP {status}: {error_message(body) or '(empty body)'}"[:MAX_ERROR_CHARS]
            return rec
        ctype = _content_type(resp)
        if ctype and "event-stream" not in ctype:  # e.g. a JSON body: the server ignored stream: true
            body = read_capped(raw)
            acc.fail("malformed_stream", f"HTTP 200 with Content-Type {ctype}, not text/event-stream "
                                         f"(the server did not stream): {error_message(body)}")
            return acc.finish(time.perf_counter(), status)
        return _stream(raw, acc, status)
    finally:
        close_unfinished(raw)


def _stream(raw, acc, status: int):
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
    except EventTooLarge:
        pass  # the record says malformed_stream; the caller's finally closes the connection
    finally:
        if sock is not None:  # the socket may already be back in the pool: restore before any switch
            sock.settimeout(old_timeout)
    return acc.finish(time.perf_counter(), status)
