"""NVML GPU sampling: `NvmlSampler` reads every GPU through `pynvml` (package nvidia-ml-py) on an
absolute schedule into GpuSample rows; `probe()` says in one line whether NVML is usable. Seam:
`nvml_module` (default: `import pynvml`, done lazily) so tests pass a fake module with no driver.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from harness.records import GpuSample
from harness.telemetry.poller import PeriodicPoller

NO_DRIVER_MESSAGE = (
    "NVML: no NVIDIA driver found (libnvidia-ml.so.1 missing); GPU metrics will be 'not measured'"
)
NO_PACKAGE_MESSAGE = (
    "NVML: Python package nvidia-ml-py not installed (import pynvml failed); "
    "GPU metrics will be 'not measured'"
)
NO_DEVICES_MESSAGE = (
    "NVML: driver loaded but no NVIDIA GPU visible (device count 0); GPU metrics will be 'not measured'"
)


class NvmlUnavailable(RuntimeError):
    """NVML cannot be used here (no package, no driver, no GPU). The message is one line."""


def _load(nvml_module: Any | None) -> Any:
    if nvml_module is not None:
        return nvml_module
    try:
        import pynvml  # lazy: importing slabench must not need (or touch) the NVIDIA driver
    except ImportError as exc:
        raise NvmlUnavailable(NO_PACKAGE_MESSAGE) from exc
    return pynvml


def _err(nv: Any, name: str) -> type:
    """The pynvml error class `name`, or a class nothing raises when this pynvml lacks it."""
    cls = getattr(nv, name, None)
    return cls if isinstance(cls, type) else _NeverRaised


class _NeverRaised(Exception):
    pass


def _text(value: Any) -> str:
    """NVML strings: str in current nvidia-ml-py, bytes in old releases."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace").rstrip("\x00")
    return str(value)


def _init(nv: Any) -> None:
    """nvmlInit() with the failure turned into NvmlUnavailable carrying a one-line message."""
    try:
        nv.nvmlInit()
    except _err(nv, "NVMLError_LibraryNotFound") as exc:
        raise NvmlUnavailable(NO_DRIVER_MESSAGE) from exc
    except _err(nv, "NVMLError_DriverNotLoaded") as exc:
        raise NvmlUnavailable(
            "NVML: NVIDIA driver library present but the kernel driver is not loaded; "
            "GPU metrics will be 'not measured'"
        ) from exc
    except Exception as exc:  # any other NVMLError (or OSError from a broken install)
        raise NvmlUnavailable(
            f"NVML: nvmlInit failed ({type(exc).__name__}: {exc}); GPU metrics will be 'not measured'"
        ) from exc


def _shutdown(nv: Any) -> None:
    try:
        nv.nvmlShutdown()
    except Exception:
        pass


def probe(nvml_module: Any | None = None) -> tuple[bool, str]:
    """(True, "NVML: 2 GPU(s): 0 NVIDIA H100 …; driver 550.54.15") or (False, one-line reason).

    Never raises: callers use it to decide between measuring GPUs and writing 'not measured'.
    """
    try:
        nv = _load(nvml_module)
        _init(nv)
    except NvmlUnavailable as exc:
        return False, str(exc)
    except Exception as exc:  # defensive: a fake/broken module must not crash the caller
        return False, f"NVML: unusable ({type(exc).__name__}: {exc}); GPU metrics will be 'not measured'"
    try:
        count = int(nv.nvmlDeviceGetCount())
        if count <= 0:
            return False, NO_DEVICES_MESSAGE
        names = []
        for i in range(count):
            try:
                names.append(f"{i} {_text(nv.nvmlDeviceGetName(nv.nvmlDeviceGetHandleByIndex(i)))}")
            except Exception:
                names.append(f"{i} ?")
        try:
            driver = _text(nv.nvmlSystemGetDriverVersion())
        except Exception:
            driver = "unknown"
        return True, f"NVML: {count} GPU(s): {', '.join(names)}; driver {driver}"
    except Exception as exc:
        return False, f"NVML: device query failed ({type(exc).__name__}: {exc}); GPU metrics will be 'not measured'"
    finally:
        _shutdown(nv)


class _GpuReader:
    """Reads one GPU. Remembers which readings the device does not support (NotSupported is a
    property of the device, so it is not asked again every tick) and which API variant works."""

    def __init__(self, nv: Any, index: int, on_error: Callable[[BaseException], None]):
        self.nv = nv
        self.index = index
        self.handle = nv.nvmlDeviceGetHandleByIndex(index)
        self.name = _text(nv.nvmlDeviceGetName(self.handle))
        self._on_error = on_error
        self._not_supported = _err(nv, "NVMLError_NotSupported")
        self.unsupported: set[str] = set()
        # None = not tried yet; True/False = the newer API worked / did not work on this driver.
        self._mem_v2: bool | None = None if hasattr(nv, "nvmlMemory_v2") else False
        self._temp_v: bool | None = None if hasattr(nv, "nvmlDeviceGetTemperatureV") else False
        self._temp_sensor = getattr(nv, "NVML_TEMPERATURE_GPU", 0)
        self._clock_sm = getattr(nv, "NVML_CLOCK_SM", 1)

    def _read(self, key: str, fn: Callable[[], Any]) -> Any:
        """fn() or None: None for NotSupported (remembered) and for other NVML errors (counted)."""
        if key in self.unsupported:
            return None
        try:
            return fn()
        except self._not_supported:
            self.unsupported.add(key)
            return None
        except Exception as exc:
            self._on_error(exc)
            return None

    def _memory(self) -> Any:
        # v2 reports `used` without the driver-reserved memory, which is what nvidia-smi shows;
        # v1 `used` includes reserved memory (hundreds of MB on an idle A100). Prefer v2, fall back
        # to v1 for good when this driver lacks nvmlDeviceGetMemoryInfo_v2.
        nv = self.nv
        if self._mem_v2 is not False:
            try:
                info = nv.nvmlDeviceGetMemoryInfo(self.handle, version=nv.nvmlMemory_v2)
                self._mem_v2 = True
                return info
            except Exception:
                if self._mem_v2:  # v2 worked before: a real error, not a missing API
                    raise
                self._mem_v2 = False
        return nv.nvmlDeviceGetMemoryInfo(self.handle)

    def _temperature(self) -> Any:
        # nvmlDeviceGetTemperature is deprecated in NVML 13 ("removed in CUDA 14"); the V variant
        # exists only on newer drivers, so try it once and remember what worked.
        nv = self.nv
        if self._temp_v is not False:
            try:
                value = nv.nvmlDeviceGetTemperatureV(self.handle, self._temp_sensor)
                self._temp_v = True
                return value
            except Exception:
                if self._temp_v:
                    raise
                self._temp_v = False
        return nv.nvmlDeviceGetTemperature(self.handle, self._temp_sensor)

    def sample(self, t_s: float) -> GpuSample:
        nv, h = self.nv, self.handle
        # Utilization: `.gpu` = % of the last sample period (1/6 s to 1 s, product-dependent) in
        # which at least one kernel was running — time busy, NOT SM occupancy; a single tiny
        # kernel kept in flight shows 100 %. `.memory` = % of that period the memory controller
        # was reading/writing device memory — bandwidth busy, NOT memory used.
        util = self._read("util", lambda: nv.nvmlDeviceGetUtilizationRates(h))
        mem = self._read("memory", self._memory)
        # Power in mW. On Ampere (except GA100) and newer this is a 1 s average, on GA100 and
        # older an instantaneous reading; either way sampled power is not an energy integral.
        power_mw = self._read("power", lambda: nv.nvmlDeviceGetPowerUsage(h))
        # Energy in mJ since the driver was loaded (Volta+). Differences of this counter give the
        # energy of a run exactly, without integrating sampled power. None where unsupported.
        energy_mj = self._read("energy", lambda: nv.nvmlDeviceGetTotalEnergyConsumption(h))
        temp_c = self._read("temp", self._temperature)
        sm_mhz = self._read("sm_clock", lambda: nv.nvmlDeviceGetClockInfo(h, self._clock_sm))
        return GpuSample(
            t_s=t_s,
            gpu_index=self.index,
            name=self.name,
            util_gpu_pct=None if util is None else float(util.gpu),
            util_mem_pct=None if util is None else float(util.memory),
            mem_used_bytes=None if mem is None else int(mem.used),
            mem_total_bytes=None if mem is None else int(mem.total),
            power_w=None if power_mw is None else power_mw / 1000.0,
            energy_j=None if energy_mj is None else energy_mj / 1000.0,
            temp_c=None if temp_c is None else float(temp_c),
            sm_clock_mhz=None if sm_mhz is None else float(sm_mhz),
            simulated=False,
        )


class NvmlSampler(PeriodicPoller):
    """Samples every GPU (or `gpu_indices`) every `interval_s` into `samples` (GpuSample rows).

    start() initialises NVML in the caller's thread and raises NvmlUnavailable (one-line message)
    when it cannot; call probe() first to decide without exceptions. stop() joins and shuts NVML.
    `t_s` of a row is the time the reading was taken on `clock` (same clock as request records).
    """

    thread_name = "slabench-nvml"

    def __init__(
        self,
        interval_s: float = 0.25,
        clock: Callable[[], float] = time.perf_counter,
        nvml_module: Any | None = None,
        gpu_indices: list[int] | None = None,
        wait: Callable[[float], bool] | None = None,
    ):
        super().__init__(interval_s=interval_s, clock=clock, wait=wait)
        self._nvml_module = nvml_module
        self._gpu_indices = None if gpu_indices is None else list(gpu_indices)
        self._nv: Any = None
        self._readers: list[_GpuReader] = []

    def _open(self) -> None:
        nv = _load(self._nvml_module)
        _init(nv)
        try:
            count = int(nv.nvmlDeviceGetCount())
            if count <= 0:
                raise NvmlUnavailable(NO_DEVICES_MESSAGE)
            indices = list(range(count)) if self._gpu_indices is None else self._gpu_indices
            bad = [i for i in indices if not 0 <= i < count]
            if bad:
                raise NvmlUnavailable(f"NVML: GPU index {bad} out of range (this machine has {count} GPU(s))")
            self._readers = [_GpuReader(nv, i, self.record_error) for i in indices]
        except Exception:
            _shutdown(nv)
            raise
        self._nv = nv

    def _close(self) -> None:
        if self._nv is not None:
            _shutdown(self._nv)
            self._nv = None

    def poll_once(self, t_s: float) -> list[GpuSample]:
        rows = []
        for reader in self._readers:
            # Stamp each GPU with the time its reading was actually taken, not the tick time:
            # with many GPUs the reads of one tick are spread over a few milliseconds.
            rows.append(reader.sample(self.clock()))
        return rows

    def read(self) -> list[GpuSample]:
        """One reading of every sampled GPU now, outside the schedule (not added to `samples`).
        Opens NVML for the call when the sampler is not running."""
        opened_here = self._nv is None
        if opened_here:
            self._open()
        try:
            return self.poll_once(self.clock())
        finally:
            if opened_here:
                self._close()

    def info(self) -> dict[str, Any]:
        """Driver and NVML versions and the sampled GPUs. Uses its own (ref-counted) nvmlInit."""
        nv = _load(self._nvml_module)
        _init(nv)
        try:
            out: dict[str, Any] = {"driver_version": None, "nvml_version": None, "gpus": []}
            for key, fn in (("driver_version", "nvmlSystemGetDriverVersion"),
                            ("nvml_version", "nvmlSystemGetNVMLVersion")):
                try:
                    out[key] = _text(getattr(nv, fn)())
                except Exception:
                    pass
            count = int(nv.nvmlDeviceGetCount())
            indices = list(range(count)) if self._gpu_indices is None else self._gpu_indices
            for i in indices:
                h = nv.nvmlDeviceGetHandleByIndex(i)
                gpu: dict[str, Any] = {"index": i, "name": _text(nv.nvmlDeviceGetName(h))}
                try:
                    gpu["mem_total_bytes"] = int(nv.nvmlDeviceGetMemoryInfo(h).total)
                except Exception:
                    gpu["mem_total_bytes"] = None
                out["gpus"].append(gpu)
            return out
        finally:
            _shutdown(nv)
