"""scripts/gpu_probe.py without a GPU: a fake device whose clock advances by a fixed amount per copy or
matmul checks the GB/s and TFLOPS arithmetic, the catalog YAML round-trips through load_catalog, and
with no GPU array library the script prints its skip line and exits 0.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from harness.sim.catalog import default_catalog, load_catalog

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu_probe.py"
_spec = importlib.util.spec_from_file_location("gpu_probe", SCRIPT)
gp = importlib.util.module_from_spec(_spec)
sys.modules["gpu_probe"] = gp
_spec.loader.exec_module(gp)

BW_GBPS = 2000.0  # the fake device's copy bandwidth (read + write bytes per second / 1e9)
RATE_TFLOPS = {"bf16": 500.0, "fp8": 900.0}


class FakeDevice:
    """Deterministic device: time only passes inside copy/matmul, by bytes / bandwidth or flops / rate."""

    library = "fake"

    def __init__(self, name="NVIDIA H200", dtypes=("bf16", "fp8"), free_bytes=64 * 2**30, fail_m1_fp8=False):
        self.clock_s = 100.0
        self.gemm_dtypes, self.fp8_note = dtypes, "" if "fp8" in dtypes else "no fp8 here"
        self._name, self._free, self.fail_m1_fp8 = name, free_bytes, fail_m1_fp8
        self.copies = self.matmuls = self.syncs = 0
        self.released = []

    def name(self):
        return self._name

    def uuid(self):
        return None

    def compute_capability(self):
        return 9.0

    def mem_free_total_bytes(self):
        return self._free, 2 * self._free

    def alloc(self, nbytes):
        return ("buf", nbytes)

    def copy(self, dst, src):
        self.copies += 1
        self.clock_s += 2 * src[1] / (BW_GBPS * 1e9)

    def matrices(self, m, k, n, dtype):
        if self.fail_m1_fp8 and dtype == "fp8" and m == 1:
            raise RuntimeError("mat1 rows must be divisible by 16\nmore detail")
        return (dtype, m, k, n)

    def matmul(self, ops):
        dtype, m, k, n = ops
        self.matmuls += 1
        self.clock_s += 2 * m * n * k / (RATE_TFLOPS[dtype] * 1e12)

    def release(self, *objs):
        self.released.extend(objs)

    def synchronize(self):
        self.syncs += 1

    def now(self):
        return self.clock_s


def test_bandwidth_is_read_plus_write_bytes_over_median_time():
    dev = FakeDevice()
    gbps = gp.measure_bandwidth_gbps(dev, 512 * 2**20, reps=7, warmup=2)
    assert gbps == pytest.approx(BW_GBPS, rel=1e-9)
    assert dev.copies == 9 and len(dev.released) == 2  # warm-ups excluded from timing; buffers freed
    assert gp.bandwidth_gbps(4 * 10**9, 2.0) == pytest.approx(2.0)


def test_median_ignores_one_slow_rep():
    assert gp.median_s([1.0, 1.0, 50.0]) == 1.0
    with pytest.raises(ValueError):
        gp.median_s([])


def test_gemm_tflops_formula_and_timed_rate():
    assert gp.gemm_tflops(2048, 4096, 4096, 1.0) == pytest.approx(2 * 2048 * 4096 * 4096 / 1e12)
    dev = FakeDevice()
    shapes = gp.gemm_shapes(default_catalog().model("llama-3-8b"), quick=False)
    res = gp.measure_gemms(dev, shapes, target_s=0.05)
    assert len(res) == 2 * len(shapes) == 18
    for r in res:
        assert r.tflops == pytest.approx(RATE_TFLOPS[r.dtype], rel=1e-6), r


def test_gemm_shapes_follow_the_catalog_model():
    m = default_catalog().model("llama-3-8b")
    shapes = gp.gemm_shapes(m, quick=False)
    assert {s.m for s in shapes} == {1, 256, 2048}
    by = {s.label: s for s in shapes if s.m == 256}
    assert (by["qkv"].k, by["qkv"].n) == (4096, 4096 + 2 * 8 * 128)
    assert (by["gate_up"].k, by["gate_up"].n) == (4096, 2 * 14336)
    assert (by["down"].k, by["down"].n) == (14336, 4096)
    quick = gp.gemm_shapes(m, quick=True)
    assert len(quick) < len(shapes) and {s.m for s in quick} == {1, 2048}


def test_tiny_gemms_are_timed_in_batches():
    dev = FakeDevice()
    per_op = gp.time_gemm_s(dev, ("bf16", 1, 4096, 4096), target_s=0.05, batch_s=0.01)
    assert per_op == pytest.approx(2 * 4096 * 4096 / (RATE_TFLOPS["bf16"] * 1e12))
    assert dev.matmuls > 10 * dev.syncs  # many matmuls per synchronize


def test_a_failing_shape_is_noted_not_fatal():
    dev = FakeDevice(fail_m1_fp8=True)
    res = gp.measure_gemms(dev, gp.gemm_shapes(default_catalog().model("llama-3-8b"), True), 0.01)
    bad = [r for r in res if r.tflops is None]
    assert bad and all(r.dtype == "fp8" and r.shape.m == 1 for r in bad)
    assert bad[0].note == "RuntimeError: mat1 rows must be divisible by 16"


def test_power_summary_and_sampler():
    assert gp.power_summary_w([]) == (None, None)
    assert gp.power_summary_w([100.0, 300.0, 200.0]) == (200.0, 300.0)
    readings = iter([250.0, 410.0, 390.0] + [400.0] * 1000)
    s = gp.PowerSampler(lambda: next(readings), interval_s=60).start()
    samples = s.stop()
    assert samples[:2] == [250.0, 410.0]  # one at start, one at stop (the 60 s wait was cut short)


def test_buffer_size_bounds():
    assert gp.bandwidth_buffer_bytes(140 * 2**30, quick=False) == 2 * 2**30
    assert gp.bandwidth_buffer_bytes(140 * 2**30, quick=True) == 2**30
    assert gp.bandwidth_buffer_bytes(8 * 2**30, quick=False) == 2**30  # 1/8 of free


def _probe(dev):
    return gp.probe(dev, default_catalog().model("llama-3-8b"), quick=True, nvml=None)


def test_yaml_for_a_known_gpu_overrides_measured_fields(tmp_path):
    res = _probe(FakeDevice())
    gid = gp.gpu_catalog_id("NVIDIA H200")
    assert gid == "h200"
    entry = gp.catalog_entry(res, 143771, known=True)
    f = tmp_path / "cat.yaml"
    f.write_text(gp.catalog_yaml(gid, entry, "measured\nby a test"))
    g = load_catalog(f).gpu("h200")
    assert g.bandwidth_gbps == pytest.approx(BW_GBPS, abs=0.1)
    assert g.fp16_tflops == pytest.approx(RATE_TFLOPS["bf16"], abs=0.1)
    assert g.fp8_tflops == pytest.approx(RATE_TFLOPS["fp8"], abs=0.1)
    assert g.tdp_w == default_catalog().gpu("h200").tdp_w  # unmeasured fields keep the datasheet value


def test_yaml_for_an_unknown_gpu_is_complete(tmp_path):
    res = _probe(FakeDevice(name="NVIDIA RTX 6000 Ada Generation", dtypes=("bf16",)))
    res.power_limit_w, res.idle_power_w = 300.0, 20.0
    gid = gp.gpu_catalog_id(res.gpu_name)
    entry = gp.catalog_entry(res, 49140, known=gid in default_catalog().gpus)
    f = tmp_path / "cat.yaml"
    f.write_text(gp.catalog_yaml(gid, entry))
    g = load_catalog(f).gpu(gid)
    assert g.name == "NVIDIA RTX 6000 Ada Generation" and g.mem_mib == 49140
    assert g.fp16_tflops == pytest.approx(500.0) and g.fp8_tflops is None
    assert (g.tdp_w, g.idle_w) == (300.0, 20.0)


def test_table_mentions_results():
    res = _probe(FakeDevice(dtypes=("bf16",)))
    table = gp.format_table(res)
    assert "2000.0 GB/s" in table and "gate_up" in table and "fp8: not measured (no fp8 here)" in table


def test_find_device_takes_first_available():
    def missing():
        raise ImportError("no")

    def broken():
        raise RuntimeError("CUDA driver version is insufficient\nstack")

    fake = FakeDevice()
    dev, notes = gp.find_device([("torch", missing), ("cupy", broken), ("numba", lambda: fake)])
    assert dev is fake
    assert notes == ["torch: not importable", "cupy: RuntimeError: CUDA driver version is insufficient"]
    assert gp.find_device([("torch", missing), ("numba", lambda: None)])[0] is None


def test_main_with_a_fake_device_writes_the_catalog(tmp_path, capsys):
    out = tmp_path / "new-dir" / "probe.yaml"
    class NoNvml:
        def nvmlInit(self):
            raise RuntimeError("NVML Shared Library Not Found")

    rc = gp.main(["--quick", "--out", str(out)], factories=[("fake", FakeDevice)],
                 nvml_factory=lambda uuid: gp.Nvml(uuid, nv=NoNvml()))
    assert rc == 0
    printed = capsys.readouterr().out
    assert "wrote" in printed and "NVML unavailable (RuntimeError: NVML Shared Library Not Found)" in printed
    assert load_catalog(out).gpu("h200").bandwidth_gbps == pytest.approx(BW_GBPS, abs=0.1)


def test_script_skips_without_gpu_libraries(tmp_path):
    code = ("import sys, runpy\n"
            "for m in ('torch', 'cupy', 'numba', 'numba.cuda'): sys.modules[m] = None\n"
            f"sys.argv = ['gpu_probe.py', '--quick', '--out', {str(tmp_path / 'x.yaml')!r}]\n"
            f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == gp.SKIP_LINE
    assert not (tmp_path / "x.yaml").exists()
