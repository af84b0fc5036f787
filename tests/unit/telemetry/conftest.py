"""Test doubles for the telemetry stage: a fake `pynvml` module (shaped like nvidia-ml-py 13.x:
NVMLError subclasses, v1/v2 memory structs, mW/mJ units) and a fake clock whose `wait` advances
time instead of sleeping, so schedule tests are exact and instant."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest


class FakeClock:
    """Monotonic fake time. `wait(dt)` advances by dt and returns whether `stopped()` says stop."""

    def __init__(self, start_s: float = 1000.0):
        self.now_s = start_s
        self._lock = threading.Lock()
        self.stopped = lambda: False

    def __call__(self) -> float:
        with self._lock:
            return self.now_s

    def advance(self, dt_s: float) -> None:
        with self._lock:
            self.now_s += dt_s

    def wait(self, dt_s: float) -> bool:
        self.advance(dt_s)
        return self.stopped()


class FakeNvml:
    """Two GPUs by default: gpu0 (bytes name, every reading supported) and gpu1 (str name, no
    energy counter → NVMLError_NotSupported). `driver_missing` makes nvmlInit raise like a host
    without libnvidia-ml.so.1; `old_driver` makes the v2 memory / TemperatureV entry points raise
    NVMLError_FunctionNotFound, as nvidia-ml-py 13 does on a driver that lacks them."""

    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_SM = 1
    nvmlMemory_v2 = 0x02000028  # sizeof | 2<<24, as in pynvml

    class NVMLError(Exception):
        pass

    class NVMLError_NotSupported(NVMLError):
        pass

    class NVMLError_LibraryNotFound(NVMLError):
        pass

    class NVMLError_FunctionNotFound(NVMLError):
        pass

    class NVMLError_Unknown(NVMLError):
        pass

    def __init__(self, driver_missing=False, device_count=2, old_driver=False, clock=None, read_cost_s=0.0):
        self.driver_missing = driver_missing
        self.device_count = device_count
        self.old_driver = old_driver
        self.refcount = 0
        self.calls: dict[str, int] = {}
        self.fail_next: dict[str, Exception] = {}  # reading name → error raised once
        self._clock = clock
        self._read_cost_s = read_cost_s  # each utilization read advances the fake clock (slow NVML)
        self.gpus = [
            dict(name=b"NVIDIA H100 80GB HBM3", util=(87, 41), used_v1=1536 * 2**20, used_v2=1024 * 2**20,
                 total=80 * 2**30, power_mw=350123, energy_mj=123456789, temp_c=61, sm_mhz=1980),
            dict(name="NVIDIA A10G", util=(5, 1), used_v1=700 * 2**20, used_v2=500 * 2**20,
                 total=24 * 2**30, power_mw=61000, energy_mj=None, temp_c=38, sm_mhz=210),
        ]

    def _count(self, fn: str) -> None:
        self.calls[fn] = self.calls.get(fn, 0) + 1
        if fn in self.fail_next:
            raise self.fail_next.pop(fn)

    def _check(self) -> None:
        if self.refcount <= 0:
            raise FakeNvml.NVMLError("Uninitialized")

    def nvmlInit(self):
        if self.driver_missing:
            raise FakeNvml.NVMLError_LibraryNotFound("NVML Shared Library Not Found")
        self.refcount += 1

    def nvmlShutdown(self):
        self._check()
        self.refcount -= 1

    def nvmlSystemGetDriverVersion(self):
        self._check()
        return b"550.54.15"

    def nvmlDeviceGetCount(self):
        self._check()
        return self.device_count

    def nvmlDeviceGetHandleByIndex(self, i):
        self._check()
        if not 0 <= i < self.device_count:
            raise FakeNvml.NVMLError("Invalid Argument")
        return SimpleNamespace(i=i)

    def nvmlDeviceGetName(self, h):
        return self.gpus[h.i]["name"]

    def nvmlDeviceGetUtilizationRates(self, h):
        self._count("util")
        if self._clock is not None and self._read_cost_s:
            self._clock.advance(self._read_cost_s)
        g, m = self.gpus[h.i]["util"]
        return SimpleNamespace(gpu=g, memory=m)

    def nvmlDeviceGetMemoryInfo(self, h, version=None):
        g = self.gpus[h.i]
        if version:
            self._count("memory_v2")
            if self.old_driver:
                raise FakeNvml.NVMLError_FunctionNotFound("Function Not Found")
            return SimpleNamespace(version=version, total=g["total"], reserved=512 * 2**20,
                                   free=g["total"] - g["used_v2"], used=g["used_v2"])
        self._count("memory_v1")
        return SimpleNamespace(total=g["total"], free=g["total"] - g["used_v1"], used=g["used_v1"])

    def nvmlDeviceGetPowerUsage(self, h):
        self._count("power")
        return self.gpus[h.i]["power_mw"]

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        self._count("energy")
        e = self.gpus[h.i]["energy_mj"]
        if e is None:
            raise FakeNvml.NVMLError_NotSupported("Not Supported")
        return e

    def nvmlDeviceGetTemperatureV(self, h, sensor):
        self._count("temp_v")
        if self.old_driver:
            raise FakeNvml.NVMLError_FunctionNotFound("Function Not Found")
        return self.gpus[h.i]["temp_c"]

    def nvmlDeviceGetTemperature(self, h, sensor):
        self._count("temp_v1")
        return self.gpus[h.i]["temp_c"]

    def nvmlDeviceGetClockInfo(self, h, clock_type):
        self._count("sm_clock")
        assert clock_type == FakeNvml.NVML_CLOCK_SM
        return self.gpus[h.i]["sm_mhz"]


def _wait_until(pred, timeout_s: float = 5.0) -> bool:
    """Poll `pred` until true or the deadline (for real threads; never a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.002)
    return bool(pred())


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake_nvml() -> FakeNvml:
    return FakeNvml()


@pytest.fixture
def make_nvml():
    """Factory for FakeNvml variants (driver_missing=, device_count=, old_driver=, clock=, …)."""
    return FakeNvml


@pytest.fixture
def wait_until():
    return _wait_until
