"""Telemetry stage: GPU samples (NVML or the simulated backend's /sim/gpu) and server samples
(vLLM/TGI Prometheus /metrics), each collected by a PeriodicPoller thread on an absolute schedule,
written to a run folder as gpu.csv and server_metrics.csv (names from harness.records).
Importing this package does not import pynvml or touch the driver.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from harness.records import GPU_FILE, SERVER_FILE, GpuSample, ServerSample, write_csv
from harness.telemetry.nvml import NO_DRIVER_MESSAGE, NvmlSampler, NvmlUnavailable, probe
from harness.telemetry.poller import PeriodicPoller, http_get_text
from harness.telemetry.scrape import MetricsScraper, ScrapeError, detect_server, parse_server_metrics
from harness.telemetry.simgpu import SimGpuPoller, parse_sim_gpu


def write_samples(
    run_dir: Path | str,
    gpu_samples: Iterable[GpuSample],
    server_samples: Iterable[ServerSample],
) -> dict[str, int]:
    """Write gpu.csv and server_metrics.csv into `run_dir` (created if missing); header-only files
    when a list is empty, so readers can tell "measured nothing" from "file missing".
    Returns rows written per file name."""
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    return {
        GPU_FILE: write_csv(d / GPU_FILE, gpu_samples, GpuSample),
        SERVER_FILE: write_csv(d / SERVER_FILE, server_samples, ServerSample),
    }


__all__ = [
    "NO_DRIVER_MESSAGE",
    "MetricsScraper",
    "NvmlSampler",
    "NvmlUnavailable",
    "PeriodicPoller",
    "ScrapeError",
    "SimGpuPoller",
    "detect_server",
    "http_get_text",
    "parse_server_metrics",
    "parse_sim_gpu",
    "probe",
    "write_samples",
]
