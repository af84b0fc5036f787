"""Telemetry for one run: picks the GPU source (simulated, NVML, or none) and the /metrics scraper.

Started once the backend is ready, stopped after the load; writes gpu.csv and
server_metrics.csv and returns what it did for the run metadata. Never fails the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from harness.telemetry import MetricsScraper, NvmlSampler, SimGpuPoller, probe, write_samples
from harness.telemetry.nvml import NvmlUnavailable


class TelemetrySession:
    def __init__(self, backend: dict, url: str | None, echo: Callable[[str], None] = print,
                 gpu_interval_s: float = 0.25, scrape_interval_s: float = 1.0):
        self.backend = backend
        self.url = url
        self.echo = echo
        self.gpu = None
        self.scraper = None
        self.info: dict = {"gpu_source": None, "gpu_message": None}
        self.gpu_interval_s = gpu_interval_s
        self.scrape_interval_s = scrape_interval_s

    def start(self) -> None:
        if self.backend.get("simulated") and self.url:
            self.gpu = SimGpuPoller(self.url, interval_s=self.gpu_interval_s)
            self.info["gpu_source"] = "simulated"
        else:
            ok, message = probe()
            if ok:
                self.gpu = NvmlSampler(interval_s=self.gpu_interval_s)
                self.info["gpu_source"] = "nvml"
            else:
                self.echo(message)
            self.info["gpu_message"] = message
        if self.url:
            self.scraper = MetricsScraper(self.url, interval_s=self.scrape_interval_s,
                                          simulated=bool(self.backend.get("simulated")))
        for p in (self.gpu, self.scraper):
            if p is None:
                continue
            try:
                p.start()
            except NvmlUnavailable as exc:  # the GPU went away between probe and start
                self.echo(str(exc))
                self.info["gpu_message"] = str(exc)
                self.info["gpu_source"] = None
                self.gpu = None

    def stop(self, run_dir: Path) -> dict:
        gpu_samples = self.gpu.stop() if self.gpu is not None else []
        server_samples = self.scraper.stop() if self.scraper is not None else []
        write_samples(run_dir, gpu_samples, server_samples)
        self.info["gpu_samples"] = len(gpu_samples)
        self.info["server_samples"] = len(server_samples)
        for name, p in (("gpu", self.gpu), ("scrape", self.scraper)):
            if p is not None and getattr(p, "errors", 0):
                self.info[f"{name}_errors"] = p.errors
                self.info[f"{name}_last_error"] = getattr(p, "last_error", None)
        return self.info
