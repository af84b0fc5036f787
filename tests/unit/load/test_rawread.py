import tracemalloc

import pytest

from harness.load.rawread import ERROR_BODY_KEEP_BYTES, consume, read_some, transport_error
from harness.load.sse import MAX_EVENT_BYTES
from harness.load.streams import OpenAIChatStream


class FakeSock:
    def __init__(self, chunks):
        self.chunks = list(chunks)
        self.calls = 0

    def recv(self, n):
        self.calls += 1
        return self.chunks.pop(0) if self.chunks else b""


class FakeRaw:
    """Shaped like geventhttpclient's HTTPSocketResponse: a parser fed from the socket."""

    def __init__(self, chunks, end_after):
        self._body_buffer = bytearray()
        self._sock = FakeSock(chunks)
        self.message_complete = False
        self._fed = 0
        self._end_after = end_after

    def feed(self, data):
        self._body_buffer += data
        self._fed += 1
        if self._fed >= self._end_after:
            self.message_complete = True


def test_returns_each_block_as_it_arrives_not_after_64k():
    raw = FakeRaw([b"data: a\n\n", b"data: b\n\n"], end_after=2)
    assert read_some(raw) == b"data: a\n\n"
    assert raw._sock.calls == 1  # one recv, not a loop until 64 KiB
    assert read_some(raw) == b"data: b\n\n"
    assert read_some(raw) == b""


def test_already_buffered_bytes_come_first_without_a_recv():
    raw = FakeRaw([], end_after=99)
    raw._body_buffer += b"early"
    assert read_some(raw) == b"early" and raw._sock.calls == 0


def test_peer_closing_mid_stream_is_an_error():
    raw = FakeRaw([b""], end_after=99)
    with pytest.raises(ConnectionResetError):
        read_some(raw)


def test_fallback_reads_one_event_when_internals_differ():
    class Other:
        def readline(self, sep):
            assert sep == b"\n\n"
            return b"data: x\n\n"

    assert read_some(Other()) == b"data: x\n\n"


class FakeGeventSock:
    """Shaped like gevent's socket: an OS socket inside, a read watcher and `_wait`."""

    def __init__(self, results, timeout=None):
        self.calls = []
        self._read_event = object()
        self.timeout = timeout
        outer = self

        class Inner:
            def recv(self, n):
                outer.calls.append("recv")
                r = results.pop(0)
                if isinstance(r, Exception):
                    raise r
                return r

        self._sock = Inner()

    def _wait(self, event):
        assert event is self._read_event
        self.calls.append("wait")

    def gettimeout(self):
        return self.timeout

    def recv(self, n):
        self.calls.append("plain")
        return b"p"


def test_gevent_socket_waits_before_each_recv_and_again_after_a_spurious_wake():
    from harness.load.rawread import _recv

    s = FakeGeventSock([BlockingIOError(), b"data: x\n\n"])
    assert _recv(s) == b"data: x\n\n"
    assert s.calls == ["wait", "recv", "wait", "recv"]  # never a recv that is expected to fail first


def test_a_socket_with_a_timeout_or_other_internals_takes_the_plain_recv():
    from harness.load.rawread import _recv

    timed = FakeGeventSock([], timeout=5.0)
    assert _recv(timed) == b"p" and timed.calls == ["plain"]  # gevent's own recv enforces the timeout
    raw = FakeRaw([b"data: a\n\n"], end_after=1)  # FakeSock: no gevent internals
    assert read_some(raw) == b"data: a\n\n" and raw._sock.calls == 1


# -- hostile responses: bounded reads, the connection dropped, the right error class

BLOCK = b"x" * 65536
HUNDRED_MB_BLOCKS = 1600


class LazySock:
    """`first`, then `n` copies of one block, made on demand (the test never holds the whole body)."""

    def __init__(self, first, block, n):
        self.first, self.block, self.left, self.calls, self.timeout = first, block, n, 0, 5.0

    def recv(self, n):
        self.calls += 1
        if self.first:
            out, self.first = self.first, b""
            return out
        if self.left <= 0:
            return b""
        self.left -= 1
        return self.block

    def gettimeout(self):
        return self.timeout

    def settimeout(self, t):
        self.timeout = t


class LazyRaw:
    """A geventhttpclient-shaped response over LazySock; `release` drops the connection."""

    def __init__(self, first, block=BLOCK, n=HUNDRED_MB_BLOCKS, ends=True):
        self._body_buffer = bytearray()
        self._sock = LazySock(first, block, n)
        self.message_complete = False
        self.released = False
        self._ends = ends

    def feed(self, data):
        self._body_buffer += data
        if self._ends and not self._sock.first and self._sock.left <= 0:
            self.message_complete = True

    def release(self):
        self.released, self._sock = True, None


class Resp:
    def __init__(self, raw, status, content_type="text/event-stream", error=None):
        self._response, self.status_code, self.error = raw, status, error
        self.headers = {"content-type": content_type} if content_type else {}


def _consume_measured(resp):
    acc = OpenAIChatStream("r", 0.0, 4, forced_length=False)
    tracemalloc.start()
    try:
        rec = consume(resp, acc)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return rec, peak


def test_a_100mb_error_body_is_read_to_the_cap_then_the_connection_is_dropped():
    raw = LazyRaw(b'{"error": {"message": "boom ')
    sock = raw._sock
    rec, peak = _consume_measured(Resp(raw, 500, "application/json"))
    assert (rec.status, rec.error_type, rec.ok) == (500, "http_5xx", False)
    assert rec.error.startswith("HTTP 500: ") and "boom" in rec.error and len(rec.error) <= 300
    assert raw.released and sock.calls <= 3  # the rest of the body is never read
    assert peak < 1024 * 1024  # a few copies of the 64 KiB cap, not the 100 MB the server offered


def test_a_non_utf8_error_body_keeps_its_status_and_a_readable_message():
    body = b'\xff\xfe{"error": "bad \xff request"}'
    raw = LazyRaw(body, n=0)
    rec, _ = _consume_measured(Resp(raw, 400, "application/json"))
    assert (rec.status, rec.error_type) == (400, "http_4xx")
    assert rec.error.startswith("HTTP 400: ") and "bad \ufffd request" in rec.error
    assert not raw.released  # read to its end: the connection stays usable


def test_a_huge_200_that_is_not_an_event_stream_is_malformed_and_bounded():
    raw = LazyRaw(b'{"choices": [{"text": "')
    rec, peak = _consume_measured(Resp(raw, 200, "application/json"))
    assert (rec.status, rec.error_type) == (200, "malformed_stream")
    assert "application/json" in rec.error and "not text/event-stream" in rec.error
    assert raw.released and peak < 16 * ERROR_BODY_KEEP_BYTES


def test_one_event_over_the_cap_is_malformed_stream_and_reading_stops():
    raw = LazyRaw(b'data: {"choices": [{"delta": {"content": "')
    sock = raw._sock
    rec, peak = _consume_measured(Resp(raw, 200, "text/event-stream; charset=utf-8"))
    assert (rec.status, rec.error_type) == (200, "malformed_stream") and "8 MiB" in rec.error
    assert raw.released and sock.calls <= MAX_EVENT_BYTES // len(BLOCK) + 3  # stopped at the cap
    assert sock.timeout == 5.0  # restored before the socket was dropped
    assert peak < 3 * MAX_EVENT_BYTES


def test_an_ordinary_stream_still_completes():
    body = b'data: {"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}\n\ndata: [DONE]\n\n'
    raw = LazyRaw(body, n=0)
    rec, _ = _consume_measured(Resp(raw, 200))
    assert rec.ok and rec.output_tokens == 1 and not raw.released
    assert raw._sock.timeout == 5.0  # the socket's own timeout is back for its next request


class RetriesExceeded(Exception):  # named like geventhttpclient's: classified by name
    def __init__(self, original):
        super().__init__("URL http://x: 0")
        self.original = original


class HTTPParseError(Exception):
    pass


class HTTPConnectionClosed(HTTPParseError):
    pass


def _raised_in(name, exc):
    """exc with a frame called `name` in its traceback, as geventhttpclient's connect raises it."""
    def raiser():
        raise exc
    raiser.__code__ = raiser.__code__.replace(co_name=name)
    try:
        raiser()
    except BaseException as e:  # noqa: BLE001
        return e


@pytest.mark.parametrize("exc,status,kind,words", [
    (RetriesExceeded(TimeoutError("no complete response in 2 s")), 0, "timeout", "no response headers"),
    (TimeoutError("no complete response in 2 s"), 200, "timeout", "did not end"),
    (RetriesExceeded(_raised_in("_create_socket", TimeoutError("timed out"))), 0, "connect", "connecting"),
    (HTTPParseError("Expected HTTP/", 8), 0, "protocol_error", "not valid HTTP"),
    (HTTPParseError("invalid chunk size"), 200, "protocol_error", "chunk"),
    (HTTPConnectionClosed("connection closed."), 0, "connect", "closed"),
    (ConnectionRefusedError(111, "Connection refused"), 0, "connect", "refused"),
    (ConnectionResetError("connection closed mid-stream"), 200, "stream_error", "mid-stream"),
    (ValueError("odd\nmulti-line\nthing"), 200, "stream_error", "odd multi-line thing"),
    (ValueError("not a network failure"), 0, "stream_error", "not a network"),
    (None, 0, "connect", "no response"),
])
def test_transport_errors_get_their_class_and_a_one_line_message(exc, status, kind, words):
    got_kind, msg = transport_error(exc, status)
    assert got_kind == kind and words in msg and "\n" not in msg and len(msg) <= 300, msg


def test_no_headers_before_the_timeout_is_a_timeout_record():
    err = RetriesExceeded(TimeoutError("no complete response in 2 s"))
    rec, _ = _consume_measured(Resp(None, 0, None, error=err))
    assert (rec.status, rec.error_type) == (0, "timeout") and "no complete response in 2 s" in rec.error
