import pytest

from harness.load.rawread import read_some


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
