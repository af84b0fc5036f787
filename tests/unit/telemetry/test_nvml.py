"""NvmlSampler and probe() against a fake pynvml: units, NotSupported, API fallbacks, schedule."""

from __future__ import annotations

import sys

import pytest

from harness.telemetry import NO_DRIVER_MESSAGE, NvmlSampler, NvmlUnavailable, probe


def by_gpu(rows, i):
    return [r for r in rows if r.gpu_index == i]


def test_read_converts_units_and_decodes_names(fake_nvml):
    rows = NvmlSampler(nvml_module=fake_nvml).read()
    assert [r.gpu_index for r in rows] == [0, 1]
    g0, g1 = rows
    assert g0.name == "NVIDIA H100 80GB HBM3"  # bytes decoded
    assert g1.name == "NVIDIA A10G"
    assert g0.power_w == pytest.approx(350.123)  # 350123 mW
    assert g0.energy_j == pytest.approx(123456.789)  # 123456789 mJ
    assert (g0.util_gpu_pct, g0.util_mem_pct) == (87.0, 41.0)
    assert g0.mem_total_bytes == 80 * 2**30
    assert (g0.temp_c, g0.sm_clock_mhz) == (61.0, 1980.0)
    assert g1.power_w == pytest.approx(61.0)
    assert g0.simulated is False
    assert fake_nvml.refcount == 0  # read() opened and shut NVML down again


def test_energy_not_supported_is_none_and_not_asked_every_tick(fake_nvml, fake_clock):
    s = NvmlSampler(nvml_module=fake_nvml, clock=fake_clock, wait=fake_clock.wait)
    s._open()
    try:
        s.run(max_ticks=5)
    finally:
        s._close()
    g1 = by_gpu(s.samples, 1)
    assert len(g1) == 5
    assert all(r.energy_j is None for r in g1)
    assert all(r.power_w == pytest.approx(61.0) for r in g1)  # other readings unaffected
    assert s.errors == 0  # NotSupported is a fact about the GPU, not an error
    # gpu0 asked 5 times, gpu1 once (then remembered as unsupported)
    assert fake_nvml.calls["energy"] == 6


def test_other_nvml_error_gives_none_for_that_reading_and_is_counted(fake_nvml):
    s = NvmlSampler(nvml_module=fake_nvml)
    fake_nvml.fail_next["power"] = fake_nvml.NVMLError_Unknown("Unknown Error")
    first = s.read()
    assert first[0].power_w is None
    assert first[0].util_gpu_pct == 87.0
    assert s.errors == 1 and s.last_error == "NVMLError_Unknown: Unknown Error"
    second = s.read()  # transient: asked again next time
    assert second[0].power_w == pytest.approx(350.123)


def test_prefers_v2_memory_and_temperature_v(fake_nvml):
    g0 = NvmlSampler(nvml_module=fake_nvml).read()[0]
    assert g0.mem_used_bytes == 1024 * 2**20  # v2 (excludes reserved), not v1's 1536 MiB
    assert "memory_v1" not in fake_nvml.calls
    assert fake_nvml.calls["temp_v"] == 2 and "temp_v1" not in fake_nvml.calls


def test_old_driver_falls_back_to_v1_calls_once_and_for_all(make_nvml, fake_clock):
    nv = make_nvml(old_driver=True)
    s = NvmlSampler(nvml_module=nv, clock=fake_clock, wait=fake_clock.wait)
    s._open()
    s.run(max_ticks=3)
    s._close()
    g0 = by_gpu(s.samples, 0)
    assert [r.mem_used_bytes for r in g0] == [1536 * 2**20] * 3
    assert [r.temp_c for r in g0] == [61.0] * 3
    assert nv.calls["memory_v2"] == 2 and nv.calls["temp_v"] == 2  # tried once per GPU only
    assert s.errors == 0


def test_pynvml_without_temperature_v_uses_old_call(make_nvml):
    class OldBinding(make_nvml):
        nvmlDeviceGetTemperatureV = property()  # attribute access raises → hasattr False

    nv = OldBinding()
    assert not hasattr(nv, "nvmlDeviceGetTemperatureV")
    rows = NvmlSampler(nvml_module=nv).read()
    assert rows[1].temp_c == 38.0 and nv.calls["temp_v1"] == 2


def test_sampler_thread_schedule_with_slow_nvml(make_nvml, fake_clock, wait_until):
    # Each utilization read costs 0.05 s of fake time; gpu0's read still starts exactly on
    # start + k*interval, gpu1's 0.05 s later (rows carry the time their read began).
    nv = make_nvml(clock=fake_clock, read_cost_s=0.05)
    s = NvmlSampler(interval_s=0.25, nvml_module=nv, clock=fake_clock, wait=fake_clock.wait)
    fake_clock.stopped = lambda: s.stop_requested
    with s:
        assert wait_until(lambda: len(s.samples) >= 8)
    t0 = s.start_s
    g0 = by_gpu(s.samples, 0)[:4]
    g1 = by_gpu(s.samples, 1)[:4]
    assert [r.t_s - t0 for r in g0] == pytest.approx([0.0, 0.25, 0.5, 0.75])
    assert [r.t_s - t0 for r in g1] == pytest.approx([0.05, 0.30, 0.55, 0.80])
    assert not s.running and nv.refcount == 0  # joined and nvmlShutdown called


def test_gpu_indices_selects_and_validates(fake_nvml):
    rows = NvmlSampler(nvml_module=fake_nvml, gpu_indices=[1]).read()
    assert [r.gpu_index for r in rows] == [1]
    with pytest.raises(NvmlUnavailable, match="out of range"):
        NvmlSampler(nvml_module=fake_nvml, gpu_indices=[2]).start()
    assert fake_nvml.refcount == 0  # failed start does not leak an nvmlInit


def test_start_without_driver_raises_one_line(make_nvml):
    s = NvmlSampler(nvml_module=make_nvml(driver_missing=True))
    with pytest.raises(NvmlUnavailable) as ei:
        s.start()
    assert str(ei.value) == NO_DRIVER_MESSAGE
    assert "\n" not in NO_DRIVER_MESSAGE and "libnvidia-ml.so.1" in NO_DRIVER_MESSAGE


def test_probe_variants(make_nvml, fake_nvml):
    ok, msg = probe(fake_nvml)
    assert ok and msg == "NVML: 2 GPU(s): 0 NVIDIA H100 80GB HBM3, 1 NVIDIA A10G; driver 550.54.15"
    assert fake_nvml.refcount == 0
    assert probe(make_nvml(driver_missing=True)) == (False, NO_DRIVER_MESSAGE)
    ok, msg = probe(make_nvml(device_count=0))
    assert not ok and "no NVIDIA GPU visible" in msg


def test_probe_without_pynvml_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    ok, msg = probe()
    assert not ok and "nvidia-ml-py" in msg and "\n" not in msg


def test_probe_with_the_real_pynvml_never_raises():
    ok, msg = probe()  # no driver on CI machines: the one-line message; on a GPU box: the GPUs
    assert msg.startswith("NVML: ") and "\n" not in msg
    if not ok:
        assert "not measured" in msg


def test_info_reports_driver_and_gpus(fake_nvml):
    info = NvmlSampler(nvml_module=fake_nvml).info()
    assert info["driver_version"] == "550.54.15"
    assert [g["name"] for g in info["gpus"]] == ["NVIDIA H100 80GB HBM3", "NVIDIA A10G"]
    assert info["gpus"][1]["mem_total_bytes"] == 24 * 2**30
    assert fake_nvml.refcount == 0


def test_importing_telemetry_does_not_import_pynvml():
    import subprocess

    code = "import sys, harness.telemetry; print('pynvml' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
