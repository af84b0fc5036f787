"""The GPU check's logic without a GPU: nvidia-smi comparison, load checks, no-GPU exit path."""

from __future__ import annotations

import json

from harness.records import GpuSample
from harness.telemetry import check

MIB = 2**20


def smi_row(**kw):
    row = {"index": "0", "name": "NVIDIA H100 80GB HBM3", "driver_version": "550.54.15", "utilization.gpu": "0",
           "memory.used": "1024", "memory.total": "81559", "power.draw": "69.4"}
    row.update(kw)
    return row


def idle(mem_mib=1024, power_w=70.0):
    return GpuSample(t_s=0.0, gpu_index=0, name="NVIDIA H100 80GB HBM3", util_gpu_pct=0.0,
                     mem_used_bytes=mem_mib * MIB, mem_total_bytes=81559 * MIB, power_w=power_w)


def test_compare_passes_on_agreement_and_fails_on_memory_or_name_mismatch():
    ok = check.compare([idle()], [smi_row(**{"memory.used": "1100"})], "550.54.15")
    assert [c["ok"] for c in ok] == [True, True, True]
    bad = check.compare([idle(mem_mib=8192)], [smi_row(name="NVIDIA A100")], "550.54.15")
    by = {c["check"]: c["ok"] for c in bad}
    assert by == {"gpu0 name": False, "gpu0 driver": True, "gpu0 memory used": False}


def test_load_checks_see_the_load_and_cross_check_energy_units():
    # 20 s at 600 W sampled every 0.25 s; energy counter consistent with power (J = W * s).
    rows = [GpuSample(t_s=k * 0.25, gpu_index=0, name="x", util_gpu_pct=100.0, mem_used_bytes=3000 * MIB,
                      power_w=600.0, energy_j=1000.0 + 600.0 * k * 0.25) for k in range(81)]
    checks, summary = check.load_checks({"t0_s": 0.0, "t1_s": 20.0, "samples": rows}, [idle()])
    assert all(c["ok"] for c in checks) and len(checks) == 4
    assert summary["gpu0"]["power_w"]["mean"] == 600.0
    # A factor-1000 slip in the energy conversion (mJ reported as J) must fail the cross-check.
    for r in rows:
        r.energy_j *= 1000
    checks, _ = check.load_checks({"t0_s": 0.0, "t1_s": 20.0, "samples": rows}, [idle()])
    assert {c["check"]: c["ok"] for c in checks}["gpu0 energy counter vs integral of power"] is False


def test_idle_gpu_during_load_fails_utilization_check():
    rows = [GpuSample(t_s=k * 0.25, gpu_index=0, name="x", util_gpu_pct=0.0, mem_used_bytes=1024 * MIB,
                      power_w=70.0) for k in range(81)]
    checks, _ = check.load_checks({"t0_s": 0.0, "t1_s": 20.0, "samples": rows}, [idle()])
    by = {c["check"]: c["ok"] for c in checks}
    assert by["gpu0 load visible in utilization"] is False
    assert by["gpu0 load visible in memory used"] is False and by["gpu0 load visible in power"] is False


def test_main_without_gpu_exits_0_and_writes_outputs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(check, "probe", lambda: (False, "NVML: no NVIDIA driver found (x)"))
    monkeypatch.setattr(check, "query_smi", lambda: (None, "nvidia-smi not on PATH"))
    assert check.main(["--out", str(tmp_path), "--load-s", "0"]) == 0
    assert "no NVIDIA GPU found: NVML: no NVIDIA driver found" in capsys.readouterr().out
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["gpu_found"] is False and report["exit_code"] == 0
    assert (tmp_path / "gpu.csv").exists()


def test_main_fails_when_smi_sees_gpus_but_nvml_does_not(tmp_path, monkeypatch):
    monkeypatch.setattr(check, "probe", lambda: (False, "NVML: Python package nvidia-ml-py not installed"))
    monkeypatch.setattr(check, "query_smi", lambda: ([smi_row()], "ok"))
    assert check.main(["--out", str(tmp_path), "--load-s", "0"]) == 1


def test_main_with_fake_nvml_compares_with_smi(tmp_path, monkeypatch, fake_nvml):
    real_sampler = check.NvmlSampler
    monkeypatch.setattr(check, "probe", lambda: (True, "NVML: 2 GPU(s)"))
    monkeypatch.setattr(check, "NvmlSampler", lambda **kw: real_sampler(nvml_module=fake_nvml, **kw))
    smi = [smi_row(**{"memory.used": "1024", "memory.total": "81920"}),
           smi_row(index="1", name="NVIDIA A10G", **{"memory.used": "500", "memory.total": "24576"})]
    monkeypatch.setattr(check, "query_smi", lambda: (smi, "ok"))
    assert check.main(["--out", str(tmp_path), "--load-s", "0"]) == 0
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert len(report["checks"]) == 6 and all(c["ok"] for c in report["checks"])
    assert report["nvml_info"]["driver_version"] == "550.54.15"
