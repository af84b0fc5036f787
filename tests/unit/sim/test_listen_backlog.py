"""A burst of connections must not outrun the sim's listen backlog (aiohttp's default is 128)."""

import asyncio
import select
import socket
import time
from pathlib import Path

import pytest

from harness.sim.server import ServeOptions, build_server

BURST = 300


def _handshakes_completed(port: int, deadline_s: float) -> int:
    """Open BURST non-blocking connects at once; count those the kernel completes by the deadline.

    Runs while the server's event loop is blocked (it accepts nothing), so only the listen
    backlog decides how many handshakes complete.
    """
    socks = []
    try:
        for _ in range(BURST):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            socks.append(s)
        pending, done = set(socks), 0
        end = time.monotonic() + deadline_s
        while pending and time.monotonic() < end:
            _, writable, _ = select.select([], list(pending), [], 0.05)
            for s in writable:
                pending.discard(s)
                done += s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        return done
    finally:
        for s in socks:
            s.close()


def test_a_burst_of_300_connections_completes_its_handshakes_before_any_accept():
    somaxconn = Path("/proc/sys/net/core/somaxconn")
    if somaxconn.exists() and int(somaxconn.read_text()) < BURST:
        pytest.skip("the kernel caps every listen backlog below the burst (net.core.somaxconn)")
    async def go() -> int:
        server = build_server(ServeOptions(fixed_ttft_ms=1, fixed_itl_ms=1))
        await server.start()
        try:
            return _handshakes_completed(server.port, deadline_s=0.5)  # blocks the loop on purpose
        finally:
            await server.stop()

    assert asyncio.run(go()) == BURST
