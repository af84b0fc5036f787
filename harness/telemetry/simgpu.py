"""Simulated-GPU telemetry: poll the simulated backend's `GET /sim/gpu` JSON into GpuSample rows
marked `simulated=True`, so runs against the sim produce the same gpu.csv as runs on real GPUs.
Seams: `parse_sim_gpu(obj, t_s)` (pure) and `SimGpuPoller(fetch=...)` (HTTP GET injectable).
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

from harness.records import GpuSample
from harness.telemetry.poller import DEFAULT_HTTP_TIMEOUT_S, PeriodicPoller, http_get_text


def _num(d: dict[str, Any], key: str, cast: type = float) -> Any:
    v = d.get(key)
    return None if v is None else cast(v)


def parse_sim_gpu(obj: Any, t_s: float) -> list[GpuSample]:
    """`{"simulated": true, "gpus": [{...}]}` → one GpuSample per GPU. Raises ValueError if the
    document has no `gpus` list (a wrong endpoint or a non-sim server)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("gpus"), list):
        raise ValueError("/sim/gpu: expected a JSON object with a 'gpus' list")
    rows = []
    for g in obj["gpus"]:
        if not isinstance(g, dict) or "index" not in g:
            raise ValueError(f"/sim/gpu: GPU entry without 'index': {str(g)[:80]}")
        rows.append(
            GpuSample(
                t_s=t_s,
                gpu_index=int(g["index"]),
                name=str(g.get("name", "simulated GPU")),
                util_gpu_pct=_num(g, "util_gpu_pct"),
                util_mem_pct=_num(g, "util_mem_pct"),
                mem_used_bytes=_num(g, "mem_used_bytes", int),
                mem_total_bytes=_num(g, "mem_total_bytes", int),
                power_w=_num(g, "power_w"),
                energy_j=_num(g, "energy_j"),  # optional: the sim may model an energy counter
                temp_c=_num(g, "temp_c"),
                sm_clock_mhz=_num(g, "sm_clock_mhz"),
                simulated=True,  # always: these numbers come from a model, never from hardware
            )
        )
    return rows


def sim_gpu_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base if base.endswith("/sim/gpu") else base + "/sim/gpu"


class SimGpuPoller(PeriodicPoller):
    """Polls `url + "/sim/gpu"` every `interval_s` into `samples`; errors counted, never raised."""

    thread_name = "slabench-simgpu"

    def __init__(
        self,
        url: str,
        interval_s: float = 0.25,
        clock: Callable[[], float] = time.perf_counter,
        fetch: Callable[[str], str] | None = None,
        timeout_s: float = DEFAULT_HTTP_TIMEOUT_S,
        wait: Callable[[float], bool] | None = None,
    ):
        super().__init__(interval_s=interval_s, clock=clock, wait=wait)
        self.url = sim_gpu_url(url)
        self.timeout_s = timeout_s
        self._fetch = fetch if fetch is not None else (lambda u: http_get_text(u, self.timeout_s))

    def poll_once(self, t_s: float) -> list[GpuSample]:
        sent_s = self.clock()
        text = self._fetch(self.url)
        got_s = self.clock()
        return parse_sim_gpu(json.loads(text), (sent_s + got_s) / 2.0)
