"""Shared fixtures for harness/deploy: a scenario, a small matrix folder and a small sweep folder made by
the real offline commands (seconds each)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

SLA = """\
  name: tiny
  min_samples: 20
  rows:
    - {metric: ttft_s, stat: p99, target: 0.5, alert: 1.0}
    - {metric: tpot_s, stat: p99, target: 0.05, alert: 0.1}
    - {metric: error_rate_pct, target: 0.1, alert: 1.0}
"""
WORKLOAD = """\
  prompt_tokens: {dist: uniform, min: 64, max: 256}
  output_tokens: {dist: uniform, min: 32, max: 96}
  seed: 3
"""
SCENARIO = f"""\
name: tiny
backend: {{type: sim, flavor: vllm, model: llama-3-8b, gpu: a10g, quantization: fp16}}
load: {{api: openai-chat, mode: open, arrival: poisson, rate_rps: 4, duration_s: 20, warmup_s: 2}}
workload:
{WORKLOAD}sla:
{SLA}"""
MATRIX = f"""\
name: tiny
scenario:
  name: tiny
  backend: {{type: sim, flavor: vllm, model: llama-3-8b, gpu: a10g, quantization: fp16}}
  load: {{api: openai-chat, mode: open, arrival: poisson, rate_rps: 2, duration_s: 20, warmup_s: 2}}
  workload:
{"".join("  " + ln + chr(10) for ln in WORKLOAD.splitlines())}  sla:
{"".join("  " + ln + chr(10) for ln in SLA.splitlines())}axes:
  gpu: [a10g, h100-sxm]
  quantization: [fp16, awq]
"""


@pytest.fixture(scope="session")
def scenario_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("scn") / "tiny.yaml"
    p.write_text(SCENARIO, encoding="utf-8")
    return p


@pytest.fixture(scope="session")
def matrix_dir(tmp_path_factory) -> Path:
    """`slabench matrix` on two GPUs x fp16/AWQ, offline; per-variant HTML reports skipped (speed only)."""
    import harness.decide.matrix as mx
    from harness.decide.runs import run_one

    d = tmp_path_factory.mktemp("matrix")
    (d / "m.yaml").write_text(MATRIX, encoding="utf-8")
    mp = pytest.MonkeyPatch()
    mp.setattr(mx, "run_one", functools.partial(run_one, full_reports=False))
    try:
        out = mx.run_matrix(d / "m.yaml", out_dir=d / "out", echo=lambda s: None)
    finally:
        mp.undo()
    assert out.recommendation["variant"], out.recommendation
    return d / "out"


@pytest.fixture(scope="session")
def sweep_dir(tmp_path_factory, scenario_file) -> Path:
    from harness.decide import run_sweep

    out = tmp_path_factory.mktemp("sweep") / "out"
    res = run_sweep(scenario_file, out_dir=out, precision=0.25, echo=lambda s: None)
    assert res.capacity, res.doc.get("note")
    return out
