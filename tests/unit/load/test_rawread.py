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
