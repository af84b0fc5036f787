"""What `slabench compare` prints: a warning per way the runs were not set up alike, and the table
(baseline and each run's value with units, change in %, verdict)."""

import copy

from harness.decide.compare import compare_summaries
from harness.decide.comparetable import compare_table, differences, invalid_lines, run_facts

SCENARIO = {"backend": {"type": "sim", "model": "llama-3-8b", "gpu": "a100-80gb", "quantization": "fp16"},
            "load": {"api": "openai-chat", "mode": "open", "arrival": "poisson", "rate_rps": 8.0},
            "workload": {"prompt_tokens": {"dist": "uniform", "min": 128, "max": 512},
                         "output_tokens": {"dist": "fixed", "value": 64}, "seed": 1}}
META = {"backend": {"type": "sim", "model": "llama-3-8b", "gpu": "a100-80gb", "gpu_count": 1}}


def summary(ttft_p99=0.1, verdict="PASS", target=0.5, policy="chat"):
    return {"sla": {"policy": {"name": policy, "min_samples": 100}, "overall": verdict,
                    "rows": [{"metric": "ttft_s", "stat": "p99", "label": "ttft_s p99", "value": ttft_p99, "unit": "s",
                              "better": "lower", "target": target, "alert": 1.0, "hard": True, "verdict": verdict}]},
            "counts": {"scored": 200}, "rates": {"request_rate_rps": 8.0, "output_token_rate_tps": 500.0,
                                                  "error_rate_pct": 0.0},
            "cost": {"usd_per_1k_output_tokens": 0.002}, "validity": {"valid": True}}


def facts(scenario=SCENARIO, meta=META, s=None):
    return run_facts(scenario, meta, s or summary())


def test_runs_set_up_alike_give_no_warning():
    other = copy.deepcopy(SCENARIO)
    other["workload"]["seed"] = 2  # another draw of the same workload: what a noise check compares
    assert differences(["a", "b"], [facts(), facts(other, META, summary(0.2, "FAIL"))]) == []


def test_each_difference_is_one_warning_line_naming_the_runs():
    other = copy.deepcopy(SCENARIO)
    other["backend"].update(gpu="h100-sxm", model="llama-3-70b")
    other["load"].update(rate_rps=4.0, api="openai-completions")
    other["workload"]["output_tokens"] = {"dist": "fixed", "value": 256}
    meta = {"backend": {"gpu": "h100-sxm", "gpu_count": 2, "model": "llama-3-70b"}}
    lines = differences(["a", "b", "c"], [facts(), facts(), facts(other, meta, summary(policy="batch"))])
    assert [ln.split(" (")[0] for ln in lines] == [f"warning: the runs differ in {x}" for x in
                                                   ("SLA policy", "GPU", "model", "workload", "API", "load")]
    assert all(ln.endswith("differences below include it") and "\n" not in ln for ln in lines)
    assert "a, b: a100-80gb; c: 2x h100-sxm" in lines[1]
    assert "a, b: 'chat'; c: 'batch'" in lines[0]
    assert "fixed(value=256)" in lines[3] and "4 req/s" in lines[5]


def test_one_policy_name_with_other_targets_shows_the_targets():
    lines = differences(["a", "b"], [facts(), facts(s=summary(target=0.3))])
    assert len(lines) == 1 and "'chat' (ttft_s p99 < 500 ms" in lines[0] and "< 300 ms" in lines[0]


def test_what_a_run_folder_does_not_say_is_not_a_difference():
    assert differences(["a", "b"], [facts(), run_facts({}, {}, {})]) == []


def test_an_invalid_run_is_one_warning_line():
    bad = {**summary(), "validity": {"valid": False, "reasons": ["no request was recorded"]}}
    assert invalid_lines(["a", "b"], [summary(), bad]) == [
        "warning: b is an invalid run (no request was recorded): its numbers are not comparable"]


def test_table_shows_values_with_units_changes_and_verdicts():
    base = [0.1 + 0.001 * i for i in range(200)]
    doc = compare_summaries(["a100", "h100"], [summary(0.2), summary(0.8, "WARN")],
                            [{m: base for m in ("ttft_s", "tpot_s", "e2e_s")},
                             {m: [2 * x for x in base] for m in ("ttft_s", "tpot_s", "e2e_s")}], ["x", "y"])
    text = compare_table(doc)
    lines = text.splitlines()
    assert lines[0].split() == ["a100", "(baseline)", "h100"]
    row = next(ln for ln in lines if ln.startswith("SLA ttft_s p99"))
    assert "200 ms  PASS" in row and "800 ms  +300 %  WARN" in row
    p50 = next(ln for ln in lines if ln.startswith("TTFT p50"))
    assert "200 ms" in p50 and "+100 %  worse, beyond noise" in p50
    assert next(ln for ln in lines if ln.startswith("SLA overall")).split()[2:] == ["PASS", "WARN"]
    assert "$0.002" in next(ln for ln in lines if ln.startswith("$ per 1k"))
    assert lines[-1].startswith("changes are vs the baseline")
