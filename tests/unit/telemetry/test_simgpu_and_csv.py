"""SimGpuPoller with an injected fetch, and the gpu.csv / server_metrics.csv round trip."""

from __future__ import annotations

import json

import pytest

from harness.records import GPU_FILE, SERVER_FILE, GpuSample, ServerSample, read_csv
from harness.telemetry import SimGpuPoller, parse_server_metrics, parse_sim_gpu, write_samples

SIM_DOC = {
    "simulated": True,
    "gpus": [
        {"index": 0, "name": "NVIDIA A100-SXM4-80GB (simulated)", "util_gpu_pct": 93.5, "util_mem_pct": 61.0,
         "mem_used_bytes": 71 * 2**30, "mem_total_bytes": 80 * 2**30, "power_w": 312.4, "temp_c": 58.0,
         "sm_clock_mhz": 1410.0},
        {"index": 1, "name": "NVIDIA A100-SXM4-80GB (simulated)", "util_gpu_pct": 0.0, "util_mem_pct": 0.0,
         "mem_used_bytes": 0, "mem_total_bytes": 80 * 2**30, "power_w": 55.0, "temp_c": 31.0,
         "sm_clock_mhz": 210.0},
    ],
}


def test_parse_sim_gpu_rows_are_marked_simulated():
    rows = parse_sim_gpu(SIM_DOC, t_s=5.0)
    assert [r.gpu_index for r in rows] == [0, 1]
    r = rows[0]
    assert (r.t_s, r.util_gpu_pct, r.power_w, r.mem_used_bytes) == (5.0, 93.5, 312.4, 71 * 2**30)
    assert isinstance(r.mem_used_bytes, int)
    assert r.energy_j is None and r.simulated is True
    with pytest.raises(ValueError, match="gpus"):
        parse_sim_gpu({"simulated": True}, t_s=0.0)


def test_sim_poller_with_flaky_fetch(fake_clock, wait_until):
    calls = []

    def fetch(url):
        calls.append(url)
        n = len(calls)
        if n == 2:
            raise TimeoutError("timed out")
        if n == 3:
            return json.dumps({"detail": "Not Found"})  # a server without the sim endpoint
        return json.dumps(SIM_DOC)

    p = SimGpuPoller("http://127.0.0.1:9000", interval_s=0.25, clock=fake_clock, fetch=fetch,
                     wait=fake_clock.wait)
    fake_clock.stopped = lambda: p.stop_requested
    with p:
        assert wait_until(lambda: len(p.samples) >= 6)
    assert calls[0] == "http://127.0.0.1:9000/sim/gpu"
    assert p.errors == 2 and "gpus" in p.last_error
    t0 = p.start_s
    assert [r.t_s - t0 for r in p.samples[:4]] == pytest.approx([0.0, 0.0, 0.75, 0.75])
    assert all(r.simulated for r in p.samples)


def test_write_samples_round_trip(tmp_path):
    gpu = parse_sim_gpu(SIM_DOC, t_s=1.25) + [
        GpuSample(t_s=1.5, gpu_index=0, name="NVIDIA H100 80GB HBM3", util_gpu_pct=87.0, power_w=350.123,
                  energy_j=123456.789, mem_used_bytes=2**30, mem_total_bytes=80 * 2**30)  # temp etc. None
    ]
    server = [parse_server_metrics('# TYPE tgi_queue_size gauge\ntgi_queue_size 4\n', t_s=2.0),
              ServerSample(t_s=3.0, queue_depth=1.0, running=2.0, kv_usage_frac=0.5, preemptions_total=0.0,
                           simulated=True)]
    counts = write_samples(tmp_path / "run", gpu, server)
    assert counts == {GPU_FILE: 3, SERVER_FILE: 2}
    assert read_csv(tmp_path / "run" / GPU_FILE, GpuSample) == gpu
    assert read_csv(tmp_path / "run" / SERVER_FILE, ServerSample) == server


def test_write_samples_empty_gives_header_only(tmp_path):
    write_samples(tmp_path, [], [])
    assert (tmp_path / GPU_FILE).read_text().startswith("t_s,gpu_index,name,")
    assert read_csv(tmp_path / GPU_FILE, GpuSample) == []
    assert read_csv(tmp_path / SERVER_FILE, ServerSample) == []
