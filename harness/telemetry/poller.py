"""PeriodicPoller: the one sampling loop shared by the NVML sampler, the /metrics scraper and the
simulated-GPU poller. Seam: subclasses implement `poll_once(t_s) -> rows`; the base owns the
absolute schedule, the daemon thread, the stop event and error counting. `clock` and `wait` are
injectable so tests drive the schedule with a fake clock instead of sleeping.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable

DEFAULT_HTTP_TIMEOUT_S = 2.0


MAX_SCRAPE_BYTES = 32 << 20  # a vLLM /metrics page is ~100 KB; a body past this is not telemetry


def http_get_text(url: str, timeout_s: float = DEFAULT_HTTP_TIMEOUT_S) -> str:
    """GET `url` and return the body as text; raises OSError on connect errors, timeouts (the whole
    exchange, not each read) and HTTP >= 400. Proxies are ignored (see backends.probe.http_get)."""
    from harness.backends.probe import http_get

    status, body = http_get(url, timeout_s=timeout_s, max_bytes=MAX_SCRAPE_BYTES)
    if status == 0:
        raise OSError(body.decode(errors="replace"))
    if status >= 400:
        raise OSError(f"HTTP {status}")
    return body.decode("utf-8", errors="replace")


class PeriodicPoller:
    """Calls `poll_once` at start + k·interval_s on a daemon thread and collects the rows it returns.

    The schedule is absolute: tick k is due at `start_s + k * interval_s`, so the time a poll takes
    does not push later ticks back (a `sleep(interval)` loop drifts by the poll time every tick).
    If a poll overruns one or more ticks, those ticks are skipped (counted in `missed_ticks`)
    rather than fired back-to-back, so samples never bunch up after a stall.
    """

    thread_name = "slabench-poller"

    def __init__(
        self,
        interval_s: float,
        clock: Callable[[], float] = time.perf_counter,
        wait: Callable[[float], bool] | None = None,
    ):
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
        self.interval_s = float(interval_s)
        self.clock = clock
        self._stop_event = threading.Event()
        # wait(timeout_s) -> True when a stop was requested. Default: block on the stop event, so
        # stop() wakes the thread at once instead of after the rest of the interval.
        self._wait = wait if wait is not None else self._stop_event.wait
        self._thread: threading.Thread | None = None
        self._closed = False
        self.samples: list[Any] = []
        self.errors = 0
        self.last_error: str | None = None
        self.missed_ticks = 0
        self.start_s: float | None = None

    # -- subclass hooks -------------------------------------------------------------------------
    def poll_once(self, t_s: float) -> list[Any]:
        """Take one reading due at tick time `t_s`; return the rows to keep. May raise."""
        raise NotImplementedError

    def _open(self) -> None:
        """Called in start(), in the caller's thread, so setup errors raise to the caller."""

    def _close(self) -> None:
        """Called in stop() after the thread has ended."""

    # -- loop -----------------------------------------------------------------------------------
    @property
    def stop_requested(self) -> bool:
        return self._stop_event.is_set()

    def record_error(self, exc: BaseException) -> None:
        self.errors += 1
        first_line = (str(exc).strip().splitlines() or [""])[0]
        self.last_error = f"{type(exc).__name__}: {first_line}"[:300]

    def run(self, max_ticks: int | None = None) -> None:
        """Run the loop in the calling thread until stop() or `max_ticks` polls. start() uses it."""
        start_s = self.clock()
        self.start_s = start_s
        k = 0
        polls = 0
        while not self._stop_event.is_set():
            due_s = start_s + k * self.interval_s
            delay_s = due_s - self.clock()
            if delay_s > 0 and self._wait(delay_s):
                break
            if self._stop_event.is_set():
                break
            try:
                rows = self.poll_once(due_s)
            except Exception as exc:  # never let one bad reading kill the sampler thread
                rows = []
                self.record_error(exc)
            self.samples.extend(rows)
            polls += 1
            if max_ticks is not None and polls >= max_ticks:
                break
            # Next tick: k+1, unless the poll overran it; then the first tick not yet in the past.
            k += 1
            behind = math.ceil((self.clock() - start_s) / self.interval_s)
            if behind > k:
                self.missed_ticks += behind - k
                k = behind

    def start(self) -> "PeriodicPoller":
        if self._thread is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._open()
        self._stop_event.clear()
        self._thread = threading.Thread(target=self.run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self, join_timeout_s: float = 5.0) -> list[Any]:
        """Stop the thread, wait for it (a poll in flight finishes first), return all rows."""
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=join_timeout_s)
            if not self._thread.is_alive() and not self._closed:
                self._closed = True
                self._close()
        return list(self.samples)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
