"""compare renders saved runs side by side and tells a real difference (two GPUs) from noise
(the same configuration with two workload seeds)."""

import json


import pytest
import yaml

from harness.config import ConfigError, load_scenario, resolve_scenario
from harness.decide.compare import compare_runs
from harness.decide.offline import write_offline_run


def run(tmp_path, name, gpu, seed):
    data = {"name": name, "backend": {"type": "sim", "model": "llama-3-8b", "gpu": gpu},
            "load": {"mode": "open", "rate_rps": 8, "duration_s": 40, "warmup_s": 2},
            "workload": {"prompt_tokens": {"dist": "uniform", "min": 128, "max": 512},
                         "output_tokens": {"dist": "uniform", "min": 32, "max": 128}, "seed": seed},
            "sla": {"name": "t", "rows": [{"metric": "ttft_s", "stat": "p99", "target": 0.5, "alert": 1.0}]}}
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(data))
    write_offline_run(resolve_scenario(load_scenario(p), base_dir=tmp_path), tmp_path / name, str(p),
                      full_reports=False)
    return tmp_path / name


def test_compare_flags_real_differences_not_noise(tmp_path):
    base = run(tmp_path, "a100-s1", "a100-80gb", 1)
    same = run(tmp_path, "a100-s2", "a100-80gb", 2)
    other = run(tmp_path, "h100-s1", "h100-sxm", 1)
    html = compare_runs([base, same, other], tmp_path / "cmp")
    doc = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    cells = {m["label"]: m["cells"] for m in doc["metrics"]}
    for label in ("TTFT p50", "E2E p50"):
        assert cells[label][1]["judged"] and not cells[label][1]["beyond_noise"], (label, cells[label][1])
    assert not cells["TTFT p99"][1]["judged"]  # ~300 requests: 3 beyond p99, too few to call a difference
    for label in ("TTFT p50", "E2E p50", "TPOT p50"):
        c = cells[label][2]
        assert c["beyond_noise"] and not c["worse"] and c["diff"] < 0, (label, c)
    text = html.read_text()
    assert "a100-s1" in text and "h100-s1" in text and "beyond noise" in text
    assert text.count("data:image/png;base64,") == 3  # overlaid TTFT, TPOT, E2E CDFs


def test_compare_needs_two_run_folders(tmp_path):
    with pytest.raises(ConfigError, match="at least two"):
        compare_runs([tmp_path], tmp_path / "o")
    with pytest.raises(ConfigError, match="not a run folder"):
        compare_runs([tmp_path, tmp_path], tmp_path / "o")
