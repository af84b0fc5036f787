"""GPU check (`python -m harness.telemetry.check`, run by scripts/gpu_check.sh): compares our NVML
readings with nvidia-smi, then loads the GPU(s) with a PyTorch matmul loop while NvmlSampler runs
and checks the load is visible (utilization, memory, power; energy counter vs ∫power).
Seam: writes gpu.csv + gpu_check.json to --out. Exit 0 = pass or no GPU here, 1 = a check failed.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness.records import GPU_FILE, GpuSample, write_csv
from harness.telemetry.nvml import NvmlSampler, probe

MIB = 1024 * 1024
SMI_FIELDS = ["index", "name", "driver_version", "utilization.gpu", "memory.used", "memory.total", "power.draw"]
MEM_TOLERANCE_FRAC = 0.03  # of total memory: the two reads are a moment apart and other processes run
RAMP_S = 2.0  # ignore the first seconds of the load: utilization is averaged over up to 1 s, power too


def query_smi() -> tuple[list[dict[str, Any]] | None, str]:
    """nvidia-smi's view, one dict per GPU, or (None, why not)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None, "nvidia-smi not on PATH"
    cmd = [exe, f"--query-gpu={','.join(SMI_FIELDS)}", "--format=csv,noheader,nounits"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"nvidia-smi failed: {exc}"
    if out.returncode != 0:
        return None, f"nvidia-smi exit {out.returncode}: {(out.stdout + out.stderr).strip()[:200]}"
    rows = []
    for rec in csv.reader(io.StringIO(out.stdout), skipinitialspace=True):
        if len(rec) != len(SMI_FIELDS):
            continue
        rows.append(dict(zip(SMI_FIELDS, (v.strip() for v in rec))))
    return rows, "ok"


def _float(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None  # "[N/A]", "[Not Supported]"


def _stats(values: list[float | None]) -> dict[str, float] | None:
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return None
    return {"min": min(xs), "mean": sum(xs) / len(xs), "max": max(xs), "n": len(xs)}


def _fmt(st: dict[str, float] | None, scale: float = 1.0, unit: str = "") -> str:
    if st is None:
        return "not measured"
    return f"min {st['min'] / scale:.1f}  mean {st['mean'] / scale:.1f}  max {st['max'] / scale:.1f} {unit}".rstrip()


def read_once() -> list[GpuSample]:
    """One NVML reading of every GPU."""
    return NvmlSampler().read()


def compare(nvml_rows: list[GpuSample], smi_rows: list[dict[str, Any]], driver: str | None) -> list[dict]:
    checks = []
    by_index = {int(r["index"]): r for r in smi_rows if str(r.get("index", "")).isdigit()}
    for g in nvml_rows:
        s = by_index.get(g.gpu_index)
        if s is None:
            checks.append({"check": f"gpu{g.gpu_index} present in nvidia-smi", "ok": False, "detail": "missing"})
            continue
        checks.append({"check": f"gpu{g.gpu_index} name", "ok": s["name"] == g.name,
                       "detail": f"nvml {g.name!r} vs smi {s['name']!r}"})
        checks.append({"check": f"gpu{g.gpu_index} driver", "ok": driver is None or s["driver_version"] == driver,
                       "detail": f"nvml {driver} vs smi {s['driver_version']}"})
        smi_used = _float(s["memory.used"])
        smi_total = _float(s["memory.total"])
        if g.mem_used_bytes is None or smi_used is None or smi_total is None:
            checks.append({"check": f"gpu{g.gpu_index} memory used", "ok": False, "detail": "not measured"})
        else:
            diff_mib = abs(g.mem_used_bytes / MIB - smi_used)
            tol_mib = MEM_TOLERANCE_FRAC * smi_total
            checks.append({"check": f"gpu{g.gpu_index} memory used", "ok": diff_mib <= tol_mib,
                           "detail": f"nvml {g.mem_used_bytes / MIB:.0f} MiB vs smi {smi_used:.0f} MiB "
                                     f"(|diff| {diff_mib:.0f} <= {tol_mib:.0f} MiB)"})
    return checks


def run_load(load_s: float, interval_s: float, gpu_count: int) -> dict[str, Any]:
    """Matmul loop on every visible CUDA device for `load_s` while NvmlSampler samples."""
    # Make CUDA number devices like NVML/nvidia-smi (PCI bus order) so index i is the same GPU.
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    try:
        import torch
    except Exception as exc:
        return {"skipped": f"PyTorch not importable ({type(exc).__name__}: {exc})"}
    if not torch.cuda.is_available():
        return {"skipped": "PyTorch imported but torch.cuda.is_available() is False"}
    n = 8192  # fp16 8192³ matmul: ~1.1 TFLOP per call, milliseconds each on a datacenter GPU
    devices = [torch.device("cuda", i) for i in range(min(torch.cuda.device_count(), gpu_count))]
    mats = [(torch.randn(n, n, device=d, dtype=torch.float16),
             torch.randn(n, n, device=d, dtype=torch.float16)) for d in devices]
    for d in devices:
        torch.cuda.synchronize(d)
    sampler = NvmlSampler(interval_s=interval_s)
    sampler.start()
    t0 = time.perf_counter()
    calls = 0
    while time.perf_counter() - t0 < load_s:
        for a, b in mats:
            torch.matmul(a, b)
        calls += 1
        if calls % 20 == 0:  # bound the queue of launched kernels, so "stop" means stop
            for d in devices:
                torch.cuda.synchronize(d)
    for d in devices:
        torch.cuda.synchronize(d)
    t1 = time.perf_counter()
    time.sleep(1.0)  # one more second of samples after the load (shows the drop)
    rows = sampler.stop()
    tflops = 2 * n**3 * calls / (t1 - t0) / 1e12  # per GPU
    del mats
    return {"t0_s": t0, "t1_s": t1, "calls_per_gpu": calls, "tflops_per_gpu": tflops, "samples": rows,
            "sampler_errors": sampler.errors, "sampler_last_error": sampler.last_error,
            "missed_ticks": sampler.missed_ticks}


def load_checks(load: dict[str, Any], idle: list[GpuSample]) -> tuple[list[dict], dict[str, Any]]:
    checks, summary = [], {}
    rows: list[GpuSample] = load["samples"]
    for base in idle:
        i = base.gpu_index
        during = [r for r in rows if r.gpu_index == i and load["t0_s"] + RAMP_S <= r.t_s <= load["t1_s"]]
        st = {k: _stats([getattr(r, k) for r in during])
              for k in ("util_gpu_pct", "util_mem_pct", "power_w", "mem_used_bytes", "sm_clock_mhz", "temp_c")}
        summary[f"gpu{i}"] = st
        util = st["util_gpu_pct"]
        checks.append({"check": f"gpu{i} load visible in utilization", "ok": bool(util and util["mean"] >= 50.0),
                       "detail": f"mean util.gpu {util['mean']:.0f}% (want >= 50%)" if util else "not measured"})
        mem = st["mem_used_bytes"]
        if mem and base.mem_used_bytes is not None:
            grew = (mem["max"] - base.mem_used_bytes) / MIB
            checks.append({"check": f"gpu{i} load visible in memory used", "ok": grew >= 256,
                           "detail": f"+{grew:.0f} MiB over idle (want >= 256; 2 x 128 MiB tensors + workspace)"})
        pw = st["power_w"]
        if pw and base.power_w:
            checks.append({"check": f"gpu{i} load visible in power", "ok": pw["max"] >= 1.2 * base.power_w,
                           "detail": f"max {pw['max']:.0f} W vs idle {base.power_w:.0f} W (want >= 1.2x)"})
        # Unit cross-check: energy counter delta (mJ→J) vs trapezoid ∫power dt (mW→W) over the
        # whole sampled window. A factor-1000 slip in either conversion fails this by far.
        mine = sorted((r for r in rows if r.gpu_index == i), key=lambda r: r.t_s)
        e = [r for r in mine if r.energy_j is not None]
        p = [r for r in mine if r.power_w is not None]
        if len(e) >= 2 and len(p) >= 2:
            e_counter = e[-1].energy_j - e[0].energy_j
            e_integral = sum((b.t_s - a.t_s) * (a.power_w + b.power_w) / 2 for a, b in zip(p, p[1:]))
            ratio = e_counter / e_integral if e_integral > 0 else float("nan")
            checks.append({"check": f"gpu{i} energy counter vs integral of power", "ok": 0.8 <= ratio <= 1.25,
                           "detail": f"counter {e_counter:.0f} J vs ∫P dt {e_integral:.0f} J (ratio {ratio:.2f})"})
    return checks, summary


def default_out_dir(root: Path = Path("reports"), now: dt.datetime | None = None) -> Path:
    """$OUT/gpu_check on a device machine; else a fresh reports/gpu_check-<UTC>[-N] (never shared)."""
    if os.environ.get("OUT"):
        return Path(os.environ["OUT"]) / "gpu_check"
    from harness.outdirs import new_out_dir

    return new_out_dir(root, "gpu_check", now)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.telemetry.check", description=__doc__)
    ap.add_argument("--out", type=Path, default=None, help="output folder (default $OUT/gpu_check or reports/gpu_check-<UTC>)")
    ap.add_argument("--load-s", type=float, default=20.0, help="seconds of matmul load (0 = skip)")
    ap.add_argument("--interval-s", type=float, default=0.25, help="NVML sampling interval during the load")
    args = ap.parse_args(argv)
    out = args.out or default_out_dir()
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                              "host": os.uname().nodename, "python": sys.version.split()[0]}

    def finish(code: int, rows: list[GpuSample]) -> int:
        report["exit_code"] = code
        write_csv(out / GPU_FILE, rows, GpuSample)
        (out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"wrote {out / GPU_FILE} and {out / 'gpu_check.json'}")
        return code

    ok, msg = probe()
    smi_rows, smi_msg = query_smi()
    report.update(nvml_probe=msg, nvml_ok=ok, nvidia_smi=smi_rows, nvidia_smi_status=smi_msg)
    if not ok:
        report["gpu_found"] = False
        if smi_rows:  # nvidia-smi sees GPUs but our Python NVML path does not: that is our bug
            print(f"FAIL: nvidia-smi lists {len(smi_rows)} GPU(s) but {msg}")
            return finish(1, [])
        print(f"no NVIDIA GPU found: {msg} ({smi_msg})")
        return finish(0, [])
    report["gpu_found"] = True
    print(msg)
    info = NvmlSampler().info()
    report["nvml_info"] = info
    idle = read_once()
    print("\n== idle reading via NvmlSampler ==")
    for g in idle:
        mem = "n/a" if g.mem_used_bytes is None else f"{g.mem_used_bytes / MIB:.0f} / {(g.mem_total_bytes or 0) / MIB:.0f} MiB"
        print(f"  gpu{g.gpu_index} {g.name}: util {g.util_gpu_pct}%  mem {mem}  power {g.power_w} W  "
              f"energy {g.energy_j} J  temp {g.temp_c} C  sm {g.sm_clock_mhz} MHz")
    checks = compare(idle, smi_rows, info.get("driver_version")) if smi_rows else []
    if not smi_rows:
        print(f"  (no nvidia-smi comparison: {smi_msg})")
    rows = list(idle)
    if args.load_s > 0:
        print(f"\n== {args.load_s:.0f} s matmul load, NVML sampled every {args.interval_s * 1000:.0f} ms ==")
        load = run_load(args.load_s, args.interval_s, len(idle))
        if "skipped" in load:
            print(f"  load skipped: {load['skipped']}")
            report["load"] = {"skipped": load["skipped"]}
        else:
            rows = load["samples"]
            lchecks, summary = load_checks(load, idle)
            checks += lchecks
            report["load"] = {k: v for k, v in load.items() if k != "samples"} | {"n_samples": len(rows), "stats": summary}
            print(f"  {load['calls_per_gpu']} matmuls per GPU, {load['tflops_per_gpu']:.0f} TFLOP/s per GPU, "
                  f"{len(rows)} samples, {load['sampler_errors']} sampler errors, {load['missed_ticks']} missed ticks")
            for gpu, st in summary.items():
                print(f"  {gpu} util.gpu %   : {_fmt(st['util_gpu_pct'])}")
                print(f"  {gpu} util.mem %   : {_fmt(st['util_mem_pct'])}")
                print(f"  {gpu} power W      : {_fmt(st['power_w'])}")
                print(f"  {gpu} memory MiB   : {_fmt(st['mem_used_bytes'], MIB)}")
                print(f"  {gpu} SM clock MHz : {_fmt(st['sm_clock_mhz'])}")
    report["checks"] = checks
    print("\n== checks ==")
    for c in checks:
        print(f"  [{'ok' if c['ok'] else 'FAIL'}] {c['check']}: {c['detail']}")
    failed = [c for c in checks if not c["ok"]]
    print(f"{len(checks) - len(failed)}/{len(checks)} checks passed")
    return finish(1 if failed else 0, rows)


if __name__ == "__main__":
    sys.exit(main())
