"""Test-support seam: run a simulated server in-process on a background event-loop thread.

`running_server(opts)` yields the started `Server` (real port on 127.0.0.1) and stops it on exit;
tests then talk to it over real sockets with any client.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Iterator

from .server import Server, ServeOptions, build_server


@contextlib.contextmanager
def running_server(opts: ServeOptions, start_timeout_s: float = 10.0) -> Iterator[Server]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict = {}

    async def main() -> None:
        try:
            server = build_server(opts)
            await server.start()
            box["server"] = server
        except BaseException as exc:  # surface build/bind errors to the test thread
            box["error"] = exc
            ready.set()
            return
        box["stop"] = asyncio.Event()
        ready.set()
        await box["stop"].wait()
        await server.stop()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    if not ready.wait(start_timeout_s):
        raise TimeoutError("simulated server did not start")
    if "error" in box:
        thread.join(5)
        raise box["error"]
    try:
        yield box["server"]
    finally:
        loop.call_soon_threadsafe(box["stop"].set)
        thread.join(10)
        loop.close()
