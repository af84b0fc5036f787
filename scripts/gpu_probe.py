"""Measure this machine's NVIDIA GPU (memory bandwidth, bf16/fp8 GEMM TFLOPS at catalog model shapes,
NVML power under load) and write a `--catalog FILE` override YAML for the simulator.
Uses torch, else CuPy, else numba.cuda; without any of them (or a CUDA device) it prints a skip line.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: `harness` without install

SKIP_LINE = "gpu_probe: no GPU array library (torch, cupy or numba) with a CUDA device: skipped"
GIB = 1024 ** 3
MIB = 1024 ** 2


# ---------------------------------------------------------------- device interface

class Device(Protocol):
    """What the probe needs from a GPU array library. `now()` is the timer (seconds, monotonic)."""

    library: str
    gemm_dtypes: tuple[str, ...]  # e.g. ("bf16", "fp8"); empty = no GEMM on this library
    fp8_note: str  # why fp8 is not measured ('' when it is)

    def name(self) -> str: ...
    def uuid(self) -> str | None: ...
    def compute_capability(self) -> float | None: ...
    def mem_free_total_bytes(self) -> tuple[int, int]: ...
    def alloc(self, nbytes: int) -> Any: ...
    def copy(self, dst: Any, src: Any) -> None: ...
    def matrices(self, m: int, k: int, n: int, dtype: str) -> Any: ...
    def matmul(self, operands: Any) -> None: ...
    def release(self, *objs: Any) -> None: ...
    def synchronize(self) -> None: ...
    def now(self) -> float: ...


class TorchDevice:
    library = "torch"

    def __init__(self, torch: Any) -> None:
        self.t = torch
        self.dev = torch.device("cuda", torch.cuda.current_device())
        self.props = torch.cuda.get_device_properties(self.dev)
        cc = self.compute_capability() or 0.0
        if not hasattr(torch, "_scaled_mm") or not hasattr(torch, "float8_e4m3fn"):
            self.fp8_note = f"torch {torch.__version__} has no torch._scaled_mm"
        elif cc < 8.9:
            self.fp8_note = f"compute capability {cc:g} < 8.9 has no FP8 tensor cores"
        else:
            self.fp8_note = ""
        self.gemm_dtypes = ("bf16",) if self.fp8_note else ("bf16", "fp8")

    def name(self) -> str:
        return str(self.props.name)

    def uuid(self) -> str | None:
        u = getattr(self.props, "uuid", None)
        return None if u is None else (str(u) if str(u).startswith("GPU-") else f"GPU-{u}")

    def compute_capability(self) -> float | None:
        return float(f"{self.props.major}.{self.props.minor}")

    def mem_free_total_bytes(self) -> tuple[int, int]:
        free, total = self.t.cuda.mem_get_info(self.dev)
        return int(free), int(total)

    def alloc(self, nbytes: int) -> Any:
        return self.t.empty(nbytes, dtype=self.t.uint8, device=self.dev).random_(0, 255)

    def copy(self, dst: Any, src: Any) -> None:
        dst.copy_(src)

    def matrices(self, m: int, k: int, n: int, dtype: str) -> Any:
        t = self.t
        a = t.randn(m, k, device=self.dev, dtype=t.bfloat16)
        w = t.randn(n, k, device=self.dev, dtype=t.bfloat16)  # weights stored (out, in) as in nn.Linear
        if dtype == "bf16":
            return ("bf16", a, w.t(), t.empty(m, n, device=self.dev, dtype=t.bfloat16))
        one = t.ones((), device=self.dev, dtype=t.float32)
        return ("fp8", a.to(t.float8_e4m3fn), w.to(t.float8_e4m3fn).t(), one)

    def matmul(self, operands: Any) -> None:
        kind, a, b, extra = operands
        if kind == "bf16":
            self.t.matmul(a, b, out=extra)
        else:
            self.t._scaled_mm(a, b, scale_a=extra, scale_b=extra, out_dtype=self.t.bfloat16)

    def release(self, *objs: Any) -> None:
        del objs
        self.t.cuda.empty_cache()

    def synchronize(self) -> None:
        self.t.cuda.synchronize(self.dev)

    def now(self) -> float:
        return time.perf_counter()


class CupyDevice:
    library = "cupy"
    gemm_dtypes = ("fp16",)  # CuPy has no bf16 matmul; fp16 runs at the same tensor peak
    fp8_note = "CuPy has no FP8 matmul"

    def __init__(self, cp: Any) -> None:
        self.cp = cp
        self.props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)

    def name(self) -> str:
        n = self.props["name"]
        return n.decode() if isinstance(n, bytes) else str(n)

    def uuid(self) -> str | None:
        return None

    def compute_capability(self) -> float | None:
        return float(f"{self.props['major']}.{self.props['minor']}")

    def mem_free_total_bytes(self) -> tuple[int, int]:
        free, total = self.cp.cuda.runtime.memGetInfo()
        return int(free), int(total)

    def alloc(self, nbytes: int) -> Any:
        return self.cp.ones(nbytes, dtype=self.cp.uint8)

    def copy(self, dst: Any, src: Any) -> None:
        self.cp.copyto(dst, src)

    def matrices(self, m: int, k: int, n: int, dtype: str) -> Any:
        cp = self.cp
        return (cp.ones((m, k), dtype=cp.float16), cp.ones((n, k), dtype=cp.float16).T,
                cp.empty((m, n), dtype=cp.float16))

    def matmul(self, operands: Any) -> None:
        a, b, out = operands
        self.cp.matmul(a, b, out=out)

    def release(self, *objs: Any) -> None:
        del objs
        self.cp.get_default_memory_pool().free_all_blocks()

    def synchronize(self) -> None:
        self.cp.cuda.Device().synchronize()

    def now(self) -> float:
        return time.perf_counter()


class NumbaDevice:
    library = "numba"
    gemm_dtypes: tuple[str, ...] = ()  # numba.cuda has no cuBLAS GEMM: bandwidth only
    fp8_note = "numba.cuda has no FP8 matmul"

    def __init__(self, cuda: Any) -> None:
        self.cuda = cuda
        self.dev = cuda.get_current_device()

    def name(self) -> str:
        n = self.dev.name
        return n.decode() if isinstance(n, bytes) else str(n)

    def uuid(self) -> str | None:
        return None

    def compute_capability(self) -> float | None:
        major, minor = self.dev.compute_capability
        return float(f"{major}.{minor}")

    def mem_free_total_bytes(self) -> tuple[int, int]:
        free, total = self.cuda.current_context().get_memory_info()
        return int(free), int(total)

    def alloc(self, nbytes: int) -> Any:
        import numpy as np
        return self.cuda.to_device(np.ones(nbytes, dtype=np.uint8))

    def copy(self, dst: Any, src: Any) -> None:
        dst.copy_to_device(src)  # device-to-device

    def matrices(self, m: int, k: int, n: int, dtype: str) -> Any:
        raise NotImplementedError("numba.cuda has no GEMM")

    def matmul(self, operands: Any) -> None:
        raise NotImplementedError("numba.cuda has no GEMM")

    def release(self, *objs: Any) -> None:
        del objs

    def synchronize(self) -> None:
        self.cuda.synchronize()

    def now(self) -> float:
        return time.perf_counter()


def _torch_device() -> Device | None:
    import torch
    return TorchDevice(torch) if torch.cuda.is_available() and torch.cuda.device_count() > 0 else None


def _cupy_device() -> Device | None:
    import cupy
    return CupyDevice(cupy) if cupy.cuda.runtime.getDeviceCount() > 0 else None


def _numba_device() -> Device | None:
    from numba import cuda
    return NumbaDevice(cuda) if cuda.is_available() else None


DEFAULT_FACTORIES: tuple[tuple[str, Callable[[], Device | None]], ...] = (
    ("torch", _torch_device), ("cupy", _cupy_device), ("numba", _numba_device))


def find_device(factories: Iterable[tuple[str, Callable[[], Device | None]]] = DEFAULT_FACTORIES
                ) -> tuple[Device | None, list[str]]:
    """The first library that imports and sees a CUDA device, plus one note per library passed over."""
    notes = []
    for lib, factory in factories:
        try:
            dev = factory()
        except ImportError:
            notes.append(f"{lib}: not importable")
            continue
        except Exception as exc:  # a driver/runtime error: try the next library
            notes.append(f"{lib}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        if dev is not None:
            return dev, notes
        notes.append(f"{lib}: no CUDA device")
    return None, notes


# ---------------------------------------------------------------- pure math

def median_s(times_s: list[float]) -> float:
    if not times_s:
        raise ValueError("no timings")
    return float(statistics.median(times_s))


def bandwidth_gbps(bytes_moved: int, seconds: float) -> float:
    return bytes_moved / seconds / 1e9


def gemm_tflops(m: int, n: int, k: int, seconds: float) -> float:
    return 2.0 * m * n * k / seconds / 1e12


def power_summary_w(samples_w: list[float]) -> tuple[float | None, float | None]:
    """(mean W, max W) of the samples; (None, None) when there are none."""
    if not samples_w:
        return None, None
    return sum(samples_w) / len(samples_w), max(samples_w)


def bandwidth_buffer_bytes(free_bytes: int, quick: bool) -> int:
    """One of the two copy buffers: 1/8 of free memory (both together 1/4), capped at 2 GiB (1 GiB quick)."""
    cap = GIB if quick else 2 * GIB
    return max(MIB, min(cap, free_bytes // 8) // MIB * MIB)


@dataclass(frozen=True)
class GemmShape:
    label: str  # which projection: qkv, gate_up, down
    m: int  # tokens per step
    k: int
    n: int


def gemm_shapes(model: Any, quick: bool) -> list[GemmShape]:
    """The decoder layer's matmuls of a catalog ModelSpec at 1 / 256 / 2048 tokens per step."""
    qkv_n = model.hidden + 2 * model.kv_heads * model.head_dim
    projections = [("qkv", model.hidden, qkv_n), ("gate_up", model.hidden, 2 * model.intermediate),
                   ("down", model.intermediate, model.hidden)]
    if quick:
        projections = projections[1:]
    tokens = (1, 2048) if quick else (1, 256, 2048)
    return [GemmShape(label, m, k, n) for m in tokens for label, k, n in projections]


# ---------------------------------------------------------------- measurements

@dataclass
class GemmResult:
    shape: GemmShape
    dtype: str
    tflops: float | None
    note: str = ""


@dataclass
class ProbeResult:
    gpu_name: str
    library: str
    compute_capability: float | None
    mem_total_bytes: int
    bandwidth_gbps: float | None = None
    buffer_bytes: int = 0
    gemms: list[GemmResult] = field(default_factory=list)
    power_mean_w: float | None = None
    power_max_w: float | None = None
    idle_power_w: float | None = None
    power_limit_w: float | None = None
    max_sm_clock_mhz: float | None = None
    nvml_note: str = ""
    fp8_note: str = ""

    def peak_tflops(self, dtype: str) -> float | None:
        vals = [g.tflops for g in self.gemms if g.dtype == dtype and g.tflops]
        return max(vals) if vals else None


def measure_bandwidth_gbps(dev: Device, buffer_bytes: int, reps: int, warmup: int = 2) -> float:
    """Copy one buffer into another `reps` times; each copy reads and writes `buffer_bytes`."""
    src, dst = dev.alloc(buffer_bytes), dev.alloc(buffer_bytes)
    try:
        for _ in range(warmup):
            dev.copy(dst, src)
        dev.synchronize()
        times = []
        for _ in range(reps):
            t0 = dev.now()
            dev.copy(dst, src)
            dev.synchronize()
            times.append(dev.now() - t0)
    finally:
        dev.release(src, dst)
    return bandwidth_gbps(2 * buffer_bytes, median_s(times))


def time_gemm_s(dev: Device, operands: Any, target_s: float, batch_s: float = 0.01,
                max_inner: int = 1000, max_batches: int = 50) -> float:
    """Median seconds of one matmul: batches of `inner` calls between synchronizations (so tiny M=1
    GEMMs are not dominated by the sync), `inner` sized so a batch lasts about `batch_s`."""
    dev.matmul(operands)  # warm-up (cuBLAS heuristics, lazy init)
    dev.synchronize()
    t0 = dev.now()
    dev.matmul(operands)
    dev.synchronize()
    one_s = max(dev.now() - t0, 1e-9)
    inner = int(min(max_inner, max(1, batch_s / one_s)))
    batches = int(min(max_batches, max(3, target_s / (one_s * inner))))
    times = []
    for _ in range(batches):
        t0 = dev.now()
        for _ in range(inner):
            dev.matmul(operands)
        dev.synchronize()
        times.append((dev.now() - t0) / inner)
    return median_s(times)


def measure_gemms(dev: Device, shapes: list[GemmShape], target_s: float) -> list[GemmResult]:
    out = []
    for dtype in dev.gemm_dtypes:
        for s in shapes:
            try:
                ops = dev.matrices(s.m, s.k, s.n, dtype)
            except Exception as exc:
                out.append(GemmResult(s, dtype, None, _one_line(exc)))
                continue
            try:
                out.append(GemmResult(s, dtype, gemm_tflops(s.m, s.n, s.k, time_gemm_s(dev, ops, target_s))))
            except Exception as exc:  # e.g. _scaled_mm rejecting M=1 on some torch versions
                out.append(GemmResult(s, dtype, None, _one_line(exc)))
            finally:
                dev.release(ops)
    return out


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:120] if text else ''}"


class PowerSampler:
    """Calls `read_w()` every `interval_s` in a thread between start() and stop(); read errors are skipped."""

    def __init__(self, read_w: Callable[[], float], interval_s: float = 0.1) -> None:
        self.read_w, self.interval_s = read_w, interval_s
        self.samples_w: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gpu_probe-power", daemon=True)

    def _sample(self) -> None:
        try:
            self.samples_w.append(float(self.read_w()))
        except Exception:
            pass

    def _run(self) -> None:
        while True:
            self._sample()
            if self._stop.wait(self.interval_s):
                return

    def start(self) -> "PowerSampler":
        self._thread.start()
        return self

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()
        return self.samples_w


class Nvml:
    """The few NVML reads the probe needs; every method returns None when NVML cannot answer."""

    def __init__(self, uuid: str | None, nv: Any | None = None) -> None:
        self.note, self.handle, self.nv = "", None, nv
        try:
            if self.nv is None:
                import pynvml
                self.nv = pynvml
            self.nv.nvmlInit()
            try:
                self.handle = self.nv.nvmlDeviceGetHandleByUUID(uuid) if uuid else None
            except Exception:
                self.handle = None
            if self.handle is None:
                self.handle = self.nv.nvmlDeviceGetHandleByIndex(0)
                self.note = "NVML device chosen by index 0 (CUDA device UUID not available)"
        except ImportError:
            self.note = "NVML: nvidia-ml-py not installed (pip install nvidia-ml-py): no power readings"
        except Exception as exc:
            self.note = f"NVML unavailable ({_one_line(exc)}): no power readings"
            self.handle = None

    def _call(self, fn: str, *args: Any) -> Any:
        if self.handle is None:
            return None
        try:
            return getattr(self.nv, fn)(self.handle, *args)
        except Exception:
            return None

    def power_w(self) -> float:
        mw = self._call("nvmlDeviceGetPowerUsage")
        if mw is None:
            raise RuntimeError("no power reading")
        return mw / 1000.0

    def name(self) -> str | None:
        n = self._call("nvmlDeviceGetName")
        return n.decode() if isinstance(n, bytes) else n

    def mem_total_mib(self) -> int | None:
        info = self._call("nvmlDeviceGetMemoryInfo")
        return None if info is None else int(info.total // MIB)

    def power_limit_w(self) -> float | None:
        mw = self._call("nvmlDeviceGetEnforcedPowerLimit")
        return None if mw is None else mw / 1000.0

    def max_sm_clock_mhz(self) -> float | None:
        clk = getattr(self.nv, "NVML_CLOCK_SM", 1) if self.nv is not None else 1
        v = self._call("nvmlDeviceGetMaxClockInfo", clk)
        return None if v is None else float(v)


# ---------------------------------------------------------------- catalog YAML

def gpu_catalog_id(nvml_name: str) -> str:
    """The catalog id for an NVML name, via the cost table's normalize_gpu, made a valid catalog id."""
    import re
    from harness.scoring.cost import normalize_gpu
    gid = re.sub(r"[^a-z0-9._+-]+", "-", (normalize_gpu(nvml_name) or "gpu").lower()).strip("-._+")
    return (gid or "gpu")[:64]


def catalog_entry(res: ProbeResult, mem_mib: int, known: bool) -> dict[str, Any]:
    """Catalog fields for this GPU. A GPU the catalog knows gets only the measured fields (the rest keep
    their datasheet values); an unknown one gets every field, estimating what cannot be measured."""
    fp16 = res.peak_tflops("bf16") or res.peak_tflops("fp16")
    fp8 = res.peak_tflops("fp8")
    entry: dict[str, Any] = {"name": res.gpu_name, "mem_mib": int(mem_mib)}
    if res.bandwidth_gbps:
        entry["bandwidth_gbps"] = round(res.bandwidth_gbps, 1)
    if fp16:
        entry["fp16_tflops"] = round(fp16, 1)
    if fp8:
        entry["fp8_tflops"] = round(fp8, 1)
    if known:
        return entry
    tdp = res.power_limit_w or res.power_max_w or 300.0
    idle = res.idle_power_w if res.idle_power_w is not None else 0.12 * tdp
    fp16 = fp16 or 100.0
    entry.setdefault("bandwidth_gbps", 500.0)
    entry.update({
        "fp16_tflops": round(fp16, 1),
        "int8_tops": round(2 * fp16, 1),  # estimate: INT8 tensor peak is twice FP16 on Turing..Hopper
        "fp8_tflops": round(fp8, 1) if fp8 else None,
        "compute_capability": res.compute_capability or 8.0,
        "tdp_w": round(tdp, 1),
        "idle_w": round(min(idle, tdp), 1),
        "max_sm_clock_mhz": res.max_sm_clock_mhz or 1500.0,
        "interconnect_gbps": 32.0,  # estimate: PCIe Gen4 x16 (NVLink is not probed)
    })
    return entry


def catalog_yaml(gpu_id: str, entry: dict[str, Any], header: str = "") -> str:
    import yaml
    lines = [f"# {h}" for h in header.splitlines()] if header else []
    return "\n".join(lines + [yaml.safe_dump({"gpus": {gpu_id: entry}}, sort_keys=False).rstrip()]) + "\n"


# ---------------------------------------------------------------- run

def format_table(res: ProbeResult) -> str:
    cc = f"cc {res.compute_capability:g}" if res.compute_capability else "cc ?"
    lines = [f"gpu_probe: {res.gpu_name} ({cc}, {res.mem_total_bytes / GIB:.1f} GiB) via {res.library}"]
    if res.bandwidth_gbps:
        lines.append(f"  memory bandwidth      {res.bandwidth_gbps:8.1f} GB/s  "
                     f"(copy of {res.buffer_bytes / GIB:.2f} GiB, read+write counted)")
    lines.append(f"  {'gemm':<8} {'dtype':<5} {'M':>5} {'K':>6} {'N':>6} {'TFLOPS':>8}")
    for g in res.gemms:
        val = f"{g.tflops:8.1f}" if g.tflops else f"{'-':>8}  {g.note}"
        lines.append(f"  {g.shape.label:<8} {g.dtype:<5} {g.shape.m:>5} {g.shape.k:>6} {g.shape.n:>6} {val}")
    if res.fp8_note:
        lines.append(f"  fp8: not measured ({res.fp8_note})")
    if res.power_mean_w is not None:
        lines.append(f"  power under GEMM load  mean {res.power_mean_w:.0f} W, max {res.power_max_w:.0f} W"
                     + (f" (limit {res.power_limit_w:.0f} W)" if res.power_limit_w else ""))
    if res.nvml_note:
        lines.append(f"  {res.nvml_note}")
    return "\n".join(lines)


def probe(dev: Device, model: Any, quick: bool, nvml: Nvml | None) -> ProbeResult:
    free, total = dev.mem_free_total_bytes()
    res = ProbeResult(dev.name(), dev.library, dev.compute_capability(), total, fp8_note=dev.fp8_note)
    if nvml is not None:
        res.nvml_note = nvml.note
        res.power_limit_w, res.max_sm_clock_mhz = nvml.power_limit_w(), nvml.max_sm_clock_mhz()
        try:
            res.idle_power_w = nvml.power_w()
        except Exception:
            pass
    res.buffer_bytes = bandwidth_buffer_bytes(free, quick)
    res.bandwidth_gbps = measure_bandwidth_gbps(dev, res.buffer_bytes, reps=5 if quick else 20)
    sampler = PowerSampler(nvml.power_w).start() if nvml is not None and nvml.handle is not None else None
    try:
        res.gemms = measure_gemms(dev, gemm_shapes(model, quick), target_s=0.1 if quick else 1.0)
    finally:
        if sampler is not None:
            res.power_mean_w, res.power_max_w = power_summary_w(sampler.stop())
    if not dev.gemm_dtypes:
        res.nvml_note = (res.nvml_note + "; " if res.nvml_note else "") + f"{dev.library}: no GEMM, bandwidth only"
    return res


def main(argv: list[str] | None = None,
         factories: Iterable[tuple[str, Callable[[], Device | None]]] = DEFAULT_FACTORIES,
         nvml_factory: Callable[[str | None], Nvml] = Nvml) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="gpu_probe_catalog.yaml", help="catalog override YAML to write")
    ap.add_argument("--model", default="llama-3-8b", help="catalog model whose GEMM shapes to time")
    ap.add_argument("--quick", action="store_true", help="smaller buffer, fewer shapes (~20 s)")
    args = ap.parse_args(argv)

    from harness.sim.catalog import SimConfigError, default_catalog
    cat = default_catalog()
    try:
        model = cat.model(args.model)
    except SimConfigError as exc:
        print(f"gpu_probe: {exc}", file=sys.stderr)
        return 2
    dev, _notes = find_device(factories)
    if dev is None:
        print(SKIP_LINE)
        return 0
    nvml = nvml_factory(dev.uuid())
    try:
        res = probe(dev, model, args.quick, nvml)
    except Exception as exc:
        print(f"gpu_probe: measurement failed on {dev.name()} via {dev.library}: {_one_line(exc)}", file=sys.stderr)
        return 1
    print(format_table(res))
    nvml_name = nvml.name() or res.gpu_name
    gpu_id = gpu_catalog_id(nvml_name)
    mem_mib = nvml.mem_total_mib() or res.mem_total_bytes // MIB
    res.gpu_name = nvml_name
    entry = catalog_entry(res, mem_mib, known=gpu_id in cat.gpus)
    header = (f"gpu_probe: measured {nvml_name} via {res.library} ({'quick' if args.quick else 'full'}, "
              f"shapes of {model.id}).\nbandwidth_gbps is achieved copy bandwidth; fp16/fp8_tflops the best "
              f"measured GEMM.\nUse: --catalog FILE --gpu {gpu_id} (see it: slabench sim list --catalog FILE)")
    try:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(catalog_yaml(gpu_id, entry, header), encoding="utf-8")
    except OSError as exc:
        print(f"gpu_probe: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"gpu_probe: wrote {args.out} (gpus: {gpu_id})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
