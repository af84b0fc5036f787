"""Telemetry seam: simulated NVML-like readings for `GET /sim/gpu`.

`BusyTracker` keeps the wall intervals in which the simulated GPU was busy (engine steps, or any
request active in calibration mode); `gpu_snapshot` turns the last second of them into one reading
per tensor-parallel rank: utilization, memory, power, temperature and SM clock.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable

from .catalog import GpuSpec

WINDOW_S = 1.0  # NVML's utilization sample period is 1/6 s to 1 s depending on the product
AMBIENT_TEMP_C = 32.0
TEMP_RISE_AT_FULL_BUSY_C = 40.0
IDLE_SM_CLOCK_MHZ = 210.0  # what an idle data-center GPU in P0 with no work typically shows


class BusyTracker:
    """Busy wall intervals (start, end, memory-bound share), trimmed to the last few seconds."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self.clock = clock
        self._spans: deque[tuple[float, float, float]] = deque()
        self.active = 0
        self._active_since: float | None = None

    def add(self, start_s: float, end_s: float, mem_share: float = 1.0) -> None:
        self._spans.append((start_s, end_s, mem_share))
        horizon = self.clock() - 5 * WINDOW_S
        while self._spans and self._spans[0][1] < horizon:
            self._spans.popleft()

    # Calibration mode: busy while at least one request is active.
    def begin(self) -> None:
        if self.active == 0:
            self._active_since = self.clock()
        self.active += 1

    def end(self) -> None:
        self.active = max(self.active - 1, 0)
        if self.active == 0 and self._active_since is not None:
            self.add(self._active_since, self.clock(), 0.5)
            self._active_since = None

    def fractions(self, window_s: float = WINDOW_S) -> tuple[float, float]:
        """(busy fraction, memory-busy fraction) of the last `window_s` seconds."""
        now = self.clock()
        lo = now - window_s
        busy = mem = 0.0
        spans = list(self._spans)
        if self._active_since is not None:
            spans.append((self._active_since, now, 0.5))
        for s, e, share in spans:
            overlap = min(e, now) - max(s, lo)
            if overlap > 0:
                busy += overlap
                mem += overlap * share
        return min(busy / window_s, 1.0), min(mem / window_s, 1.0)


def gpu_snapshot(gpu: GpuSpec, tp: int, busy: BusyTracker, used_bytes_per_gpu: float) -> dict:
    """The `/sim/gpu` JSON body: one entry per TP rank (ranks are symmetric in this model)."""
    util, mem_util = busy.fractions()
    power_w = gpu.idle_w + (gpu.tdp_w - gpu.idle_w) * util
    entry = {
        "util_gpu_pct": round(util * 100.0, 2),
        "util_mem_pct": round(mem_util * 100.0, 2),
        "mem_used_bytes": int(min(used_bytes_per_gpu, gpu.mem_bytes)),
        "mem_total_bytes": int(gpu.mem_bytes),
        "power_w": round(power_w, 2),
        # Instant temperature model (no thermal lag): ambient + rise proportional to busy share.
        "temp_c": round(AMBIENT_TEMP_C + TEMP_RISE_AT_FULL_BUSY_C * util, 2),
        "sm_clock_mhz": float(gpu.max_sm_clock_mhz if util > 0 else IDLE_SM_CLOCK_MHZ),
    }
    return {"simulated": True,
            "gpus": [{"index": i, "name": f"{gpu.name} (simulated)", **entry} for i in range(tp)]}
