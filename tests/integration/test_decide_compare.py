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
    lines = []
    res = compare_runs([base, same, other], tmp_path / "cmp", echo=lines.append)
    html = res.html
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
    # Terminal: one warning (the GPU; the seed is what a noise check varies), then the table.
    assert lines[0].startswith("warning: the runs differ in GPU (a100-s1, a100-s2: a100-80gb; h100-s1: h100-sxm)")
    assert not any(ln.startswith("warning") for ln in lines[1:]) and res.warnings == lines[:1] == doc["warnings"]
    table = lines[1].splitlines()
    assert table[0].split() == ["a100-s1", "(baseline)", "a100-s2", "h100-s1"]
    p50 = next(ln for ln in table if ln.startswith("TTFT p50"))
    assert " ms" in p50 and "(noise)" not in p50 and "better, beyond noise" in p50 and "%  noise" in p50
    assert next(ln for ln in table if ln.startswith("SLA ttft_s p99")).count("PASS") == 3
    assert lines[-1] == f"comparison: {html}"


def test_compare_command_prints_the_table_and_folders_never_clash(tmp_path, capsys, monkeypatch):
    from harness.cli import main

    a = run(tmp_path, "a", "a100-80gb", 1)
    b = run(tmp_path, "b", "a100-80gb", 2)
    monkeypatch.chdir(tmp_path)
    assert main(["compare", str(a), str(b)]) == 0
    assert main(["compare", str(a), str(b)]) == 0  # the same second: a second folder, not an error
    out = capsys.readouterr().out
    assert "warning" not in out and "a (baseline)" in out and "SLA overall" in out
    assert len(list((tmp_path / "reports").glob("compare-*/comparison.html"))) == 2


def test_compare_needs_two_run_folders(tmp_path):
    with pytest.raises(ConfigError, match="at least two"):
        compare_runs([tmp_path], tmp_path / "o")
    with pytest.raises(ConfigError, match="not a run folder"):
        compare_runs([tmp_path, tmp_path], tmp_path / "o")


def test_a_damaged_run_folder_is_compared_with_a_warning(tmp_path):
    base = run(tmp_path, "ok", "a100-80gb", 1)
    bad = run(tmp_path, "torn", "a100-80gb", 1)
    (bad / "requests.jsonl").write_text("{not json\n")
    (bad / "meta.json").write_text("[")
    lines = []
    res = compare_runs([base, bad], tmp_path / "o", echo=lines.append)
    assert res.warnings == [ln for ln in lines if ln.startswith("warning")]
    assert len(res.warnings) == 1 and res.warnings[0].startswith("warning: torn is an invalid run (")
    overall = next(ln for ln in lines[1].splitlines() if ln.startswith("SLA overall"))
    assert overall.split()[2:] == ["PASS", "INVALID"]
