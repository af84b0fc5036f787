"""Fixtures for report tests: a run folder written to tmp_path with the records module's own writers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from harness.config import load_sla
from harness.records import (
    GPU_FILE, META_FILE, REQUESTS_FILE, SCENARIO_FILE, GpuSample, RecordWriter, RequestRecord, write_csv,
)

XSS = "<script>alert(1)</script>"


def ok_rec(i: int, sent_s: float, ttft_s: float = 0.2, gaps: int = 9) -> RequestRecord:
    itl = [0.02] * gaps
    return RequestRecord(request_id=f"r{i}", api="openai-chat", sent_s=sent_s, end_s=sent_s + ttft_s + sum(itl),
                         status=200, ok=True, ttft_s=ttft_s, e2e_s=ttft_s + sum(itl), itl_s=itl,
                         prompt_tokens=50, output_tokens=gaps + 1, finish_reason="length")


def err_rec(i: int, sent_s: float, message: str = XSS) -> RequestRecord:
    return RequestRecord(request_id=f"e{i}", api="openai-chat", sent_s=sent_s, end_s=sent_s + 0.01, status=500,
                         ok=False, error_type="http_5xx", error=message)


def write_run_dir(d: Path, records: list[RequestRecord], meta: dict | None = None, gpu: list[GpuSample] = (),
                  scenario: dict | None = None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    scen = scenario or {"name": "demo", "load": {"warmup_s": 1, "cooldown_s": 1, "users": 4},
                        "backend": {"type": "sim", "gpu": "a100-80gb", "model": XSS},
                        "sla": load_sla("guide").model_dump(mode="json")}
    (d / SCENARIO_FILE).write_text(yaml.safe_dump(scen, sort_keys=False), encoding="utf-8")
    with RecordWriter(d / REQUESTS_FILE) as w:
        for r in records:
            w.write(r)
    if gpu:
        write_csv(d / GPU_FILE, gpu, GpuSample)
    m = meta if meta is not None else {
        "schema_version": 1, "slabench_version": "0.1.0", "scenario_name": "demo", "started_utc": "2026-01-01T00:00:00Z",
        "load_start_s": 0.0, "load_end_s": 12.0, "planned_duration_s": 12.0, "interrupted": False,
        "backend": {"type": "sim", "command": ["slabench", "sim", "serve", "--model", XSS], "url": "http://127.0.0.1:8000",
                    "model": XSS, "gpu": "a100-80gb", "gpu_count": 1, "simulated": True, "flavor": "vllm"},
        "load": {"mode": "closed", "users": 4, "api": "openai-chat"},
        "host": {"python": "3.12", "platform": "linux", "locust": "2.x"}, "notes": [XSS]}
    (d / META_FILE).write_text(json.dumps(m), encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    """120 ok requests over 12 s (1 s warm-up, 1 s cool-down), 3 errors carrying a <script> message, GPU samples."""
    recs = [ok_rec(i, 0.1 * i, ttft_s=0.1 + 0.001 * i) for i in range(120)] + [err_rec(i, 5.0 + i) for i in range(3)]
    gpu = [GpuSample(t_s=0.5 * k, gpu_index=0, name="NVIDIA A100-SXM4-80GB", util_gpu_pct=70.0, power_w=250.0,
                     mem_used_bytes=2**35, simulated=True) for k in range(24)]
    return write_run_dir(tmp_path_factory.mktemp("demo") / "run", recs, gpu=gpu)


@pytest.fixture(scope="module")
def demo_reports(demo_run) -> dict:
    """write_reports(demo_run) once per module: name -> path."""
    from harness.report import write_reports
    return write_reports(demo_run)


@pytest.fixture
def make_run_dir(tmp_path):
    def make(name: str, records, **kw) -> Path:
        return write_run_dir(tmp_path / name, records, **kw)
    return make


@pytest.fixture
def builders():
    """ok_rec / err_rec builders and the XSS string, for tests that write their own run folders."""
    from types import SimpleNamespace
    return SimpleNamespace(ok_rec=ok_rec, err_rec=err_rec, XSS=XSS)
