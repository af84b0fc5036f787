"""Live progress: tails requests.jsonl as Locust appends it and summarises the run so far.

Reads only the bytes added since the last poll (never the whole file again), so a long run's
progress line costs the same every 2 s. `write_status` is the Locust side's counters file it reads.
"""

from __future__ import annotations

import json
import os
from collections import deque
from pathlib import Path

import numpy as np

from harness.records import JsonlTail


class ProgressTail:
    def __init__(self, path: Path, window: int = 2000, status_path: Path | None = None,
                 offered_rps: float | None = None):
        self.path = Path(path)
        self._tail = JsonlTail(self.path)
        self.status_path = Path(status_path) if status_path else None
        self.offered_rps = offered_rps
        self.completed = 0
        self.errors = 0
        self.cancelled = 0  # cancelled_at_stop: cut off by the end of the load, not server errors
        self.ttft_s: deque[float] = deque(maxlen=window)  # recent TTFTs: percentiles "so far" stay cheap
        self._history: deque[tuple[float, int]] = deque(maxlen=8)  # achieved rate over the last ~15 s

    def poll(self) -> int:
        """Read new complete lines; returns how many records arrived."""
        recs = self._tail.read()
        for rec in recs:
            self.completed += 1
            if rec.get("error_type") == "cancelled_at_stop":
                self.cancelled += 1
            elif not rec.get("ok"):
                self.errors += 1
            elif rec.get("ttft_s") is not None:
                self.ttft_s.append(rec["ttft_s"])
        return len(recs)

    def line(self, elapsed_s: float, total_s: float) -> str:
        """One status line: elapsed/total, completions and their rate, errors, TTFT p50/p99."""
        self._history.append((elapsed_s, self.completed))
        t_old, n_old = self._history[0] if len(self._history) > 1 else (0.0, 0)
        rate = (self.completed - n_old) / (elapsed_s - t_old) if elapsed_s > t_old else 0.0
        if self.ttft_s:
            p50, p99 = np.percentile(np.fromiter(self.ttft_s, float), [50, 99]) * 1000
            ttft = f"TTFT p50 {p50:.0f} ms p99 {p99:.0f} ms"
        else:
            ttft = "TTFT -"
        offered = f"offered {self.offered_rps:.1f} req/s, " if self.offered_rps is not None else ""
        in_flight = self._in_flight()
        flight = f" in flight {in_flight}" if in_flight is not None else ""
        cancelled = f" cancelled at stop {self.cancelled}" if self.cancelled else ""
        # Past the planned duration the load is stopping (drain of in-flight requests): the clock
        # stays at the duration and says so, instead of counting on past it ("[54/15 s]").
        clock = (f"[{elapsed_s:5.0f}/{total_s:.0f} s]" if elapsed_s <= total_s
                 else f"[{total_s:5.0f}/{total_s:.0f} s, stopping +{elapsed_s - total_s:.0f} s]")
        return (f"{clock} {offered}achieved {rate:.1f} req/s, done {self.completed}"
                f"{flight} errors {self.errors}{cancelled} {ttft}")

    def _in_flight(self) -> int | None:
        if self.status_path is None:
            return None
        try:
            return int(json.loads(self.status_path.read_text(encoding="utf-8"))["in_flight"])
        except (OSError, ValueError, KeyError):
            return None


def write_status(path: str, issued: int, completed: int) -> None:
    """The counters file the progress line reads (issued, completed, in flight), replaced whole."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"issued": issued, "completed": completed, "in_flight": max(issued - completed, 0)}, fh)
    os.replace(tmp, path)
