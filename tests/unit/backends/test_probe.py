"""Readiness probes: a wall-clock deadline and a body cap, whatever the server does."""

import socket
import threading
import time

import pytest

from harness.backends.probe import MAX_PROBE_BODY_BYTES, http_get, wait_healthy
from harness.backends.external import GONE_AFTER_FAILURES, ExternalServer
from harness.config import ExternalBackend


class RawServer:
    """A one-behaviour HTTP server on 127.0.0.1 (raw sockets, so it can misbehave)."""

    def __init__(self, handler):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        self.handler = handler
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        try:
            conn.recv(65536)
            self.handler(conn, self.stop)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.stop.set()
        self.sock.close()


def trickle(conn, stop):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
    while not stop.is_set():
        conn.sendall(b"x")
        time.sleep(0.05)


def flood(conn, stop):
    conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\n\r\n")
    block = b"y" * 65536
    for _ in range(200):  # 13 MB, far past the cap
        if stop.is_set():
            break
        conn.sendall(block)


@pytest.fixture
def server():
    made = []

    def make(handler):
        made.append(RawServer(handler))
        return made[-1]

    yield make
    for s in made:
        s.close()


def test_trickling_body_ends_at_the_deadline(server):
    srv = server(trickle)
    t0 = time.monotonic()
    status, body = http_get(f"{srv.url}/health", timeout_s=0.5)
    assert status == 0 and b"deadline" in body
    assert time.monotonic() - t0 < 5  # bounded by the deadline, not by the server


def test_wait_healthy_gives_up_on_a_trickling_health(server):
    srv = server(trickle)
    with pytest.raises(Exception, match="not ready after 0.8 s"):
        wait_healthy(srv.url, timeout_s=0.8)


def test_huge_error_body_is_capped(server):
    srv = server(flood)
    status, body = http_get(f"{srv.url}/v1/models", timeout_s=10)
    assert status == 500 and len(body) == MAX_PROBE_BODY_BYTES


def test_external_target_gone_after_consecutive_failed_probes():
    t = [0.0]
    ext = ExternalServer(ExternalBackend(url="http://127.0.0.1:9"), clock=lambda: t[0])  # discard port: refused
    msgs = []
    for _ in range(GONE_AFTER_FAILURES + 1):
        t[0] += 10
        msgs.append(ext.poll_crash())
    assert msgs[:GONE_AFTER_FAILURES - 1] == [None] * (GONE_AFTER_FAILURES - 1)
    assert "stopped answering" in msgs[GONE_AFTER_FAILURES - 1]
    assert ext.poll_crash() is None  # not probed again before the next interval (clock did not move)
