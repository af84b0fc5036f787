"""A sweep against the sim (offline) converges on a capacity that separate fixed-rate runs confirm."""

import json
from pathlib import Path

import pytest
import yaml

from harness.config import ConfigError, load_scenario, resolve_scenario
from harness.decide.offline import write_offline_run
from harness.decide.pareto import decision_verdict
from harness.decide.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = {
    "name": "sweep-t",
    "backend": {"type": "sim", "model": "llama-3-8b", "gpu": "a100-80gb", "quantization": "fp16"},
    "load": {"mode": "open", "arrival": "poisson", "rate_rps": 2, "duration_s": 20, "warmup_s": 2},
    "workload": {"prompt_tokens": {"dist": "uniform", "min": 128, "max": 512},
                 "output_tokens": {"dist": "uniform", "min": 64, "max": 192}, "seed": 3},
    "sla": {"name": "t", "rows": [{"metric": "ttft_s", "stat": "p99", "target": 0.5, "alert": 1.0},
                                  {"metric": "error_rate_pct", "target": 0.1, "alert": 1.0}]},
}


def fixed_rate_passes(tmp_path, rate, name):
    data = json.loads(json.dumps(SCENARIO))
    data["load"]["rate_rps"] = rate
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(data))
    scn = resolve_scenario(load_scenario(p), base_dir=tmp_path)
    s = write_offline_run(scn, tmp_path / name, str(p), full_reports=False)
    return decision_verdict(s) == "PASS"


def test_sweep_converges_and_fixed_rate_runs_confirm(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(SCENARIO))
    lines = []
    res = run_sweep(p, tmp_path / "sweep", precision=0.1, target_rps=100, echo=lines.append)
    assert res.capacity and res.fail_at and res.doc["converged"]
    assert res.fail_at - res.capacity <= 0.1 * res.capacity
    assert res.capacity > 2 * 2  # doubled at least twice before failing
    assert fixed_rate_passes(tmp_path, res.capacity * 0.97, "below")
    assert not fixed_rate_passes(tmp_path, res.fail_at * 1.03, "above")
    assert res.replicas == -(-100 // res.capacity)
    html = (res.out_dir / "sweep.html").read_text()
    assert "per replica meets the SLA" in html and html.count("data:image/png;base64,") == 2
    doc = json.loads((res.out_dir / "sweep.json").read_text())
    assert doc["at_capacity"]["cost"] > 0 and doc["points"]
    assert any("point 2" in line and "to go" in line for line in lines)


def test_sweep_resume_reuses_points(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(SCENARIO))
    first = run_sweep(p, tmp_path / "sw", precision=0.25, echo=lambda s: None)
    lines = []
    again = run_sweep(p, tmp_path / "sw", precision=0.25, resume=True, echo=lines.append)
    assert again.capacity == first.capacity
    assert not any("[point" in line for line in lines)  # nothing measured again


def test_sweep_rejects_closed_loop_and_stages_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="closed loop: set load.mode: open"):
        run_sweep(ROOT / "scenarios" / "demo.yaml", tmp_path / "a", echo=lambda s: None)
    with pytest.raises(ConfigError, match="load.stages"):
        run_sweep(ROOT / "scenarios" / "ramp-spike-soak.yaml", tmp_path / "b", echo=lambda s: None)
    with pytest.raises(ConfigError, match="--precision"):
        run_sweep(ROOT / "scenarios" / "demo.yaml", tmp_path / "c", precision=2, echo=lambda s: None)


def test_live_sweep_of_a_target_reads_the_key_from_the_environment(tmp_path, monkeypatch):
    from harness.sim.server import ServeOptions
    from harness.sim.testing import running_server

    key = "sweep-s3cret-key"
    monkeypatch.setenv("SLABENCH_SWEEP_TEST_KEY", key)
    data = json.loads(json.dumps(SCENARIO))
    data["load"].update(rate_rps=8, duration_s=4, warmup_s=0)
    data["sla"]["rows"][0]["stat"] = "p50"  # no tail row: the point keeps its 4 s
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(data))
    with running_server(ServeOptions(flavor="vllm", fixed_ttft_ms=5.0, fixed_itl_ms=1.0, api_key=key)) as s:
        with pytest.raises(ConfigError, match="sweep point 8 cannot run: .*401"):
            run_sweep(p, tmp_path / "nokey", target=s.url, max_points=1, echo=lambda line: None)
        res = run_sweep(p, tmp_path / "sw", target=s.url, api_key_env="SLABENCH_SWEEP_TEST_KEY", max_points=1,
                        echo=lambda line: None)
    assert res.doc["mode"] == "live" and res.capacity == 8  # one point, run live, authenticated, passing
    point = res.out_dir / res.doc["points"][0]["run_dir"]
    assert yaml.safe_load((point / "scenario.yaml").read_text())["backend"] == {
        "type": "external", "url": s.url, "api_key_env": "SLABENCH_SWEEP_TEST_KEY", "startup_timeout_s": 10.0}
    for f in res.out_dir.rglob("*"):
        assert not f.is_file() or key.encode() not in f.read_bytes(), f  # the key itself is never saved


def test_a_user_count_capacity_sizes_replicas_by_its_request_rate(tmp_path):
    data = json.loads(json.dumps(SCENARIO))
    data["load"] = {"mode": "closed", "users": 16, "duration_s": 60, "warmup_s": 2}
    data["backend"] = {**data["backend"], "gpu": "a10g"}  # a small capacity: few, cheap points
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(data))
    res = run_sweep(p, tmp_path / "swc", precision=0.5, target_rps=50, concurrency=True, echo=lambda s: None)
    rps = res.doc["capacity_rps"]
    assert res.unit != "req/s" and rps and rps != res.capacity  # users, sized by the rate they drove
    assert res.replicas == -(-50 // rps)
    assert "completed" in (res.out_dir / "sweep.html").read_text()
