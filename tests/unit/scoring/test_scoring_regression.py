import json

import pytest

from harness.config import ConfigError
from harness.scoring.regression import compare_to_baseline, load_baseline


def summary(ttft_p99=0.5, rps=10.0, err=0.0, cost=0.002):
    return {"metrics": {"ttft_s": {"p50": 0.1, "p99": ttft_p99}}, "rates": {"request_rate_rps": rps, "error_rate_pct": err},
            "cost": {"usd_per_1k_output_tokens": cost}, "run": {"run_dir": "r"}}


def verdicts(reg):
    return {r["metric"]: r["verdict"] for r in reg["rows"]}


def test_changes_within_tolerance_are_ok_both_ways():
    reg = compare_to_baseline(summary(ttft_p99=0.54, rps=9.2), summary())
    v = verdicts(reg)
    assert reg["verdict"] == "OK" and v["TTFT p99"] == "within tolerance" and v["request rate"] == "within tolerance"


def test_worse_beyond_tolerance_regresses_in_the_metric_bad_direction():
    reg = compare_to_baseline(summary(ttft_p99=0.56, rps=8.9, cost=0.0015), summary())
    v = verdicts(reg)
    assert v["TTFT p99"] == "regressed" and v["request rate"] == "regressed"
    assert v["cost per 1k output tokens"] == "improved"
    assert reg["verdict"] == "REGRESSED" and set(reg["regressed"]) == {"TTFT p99", "request rate"}
    row = next(r for r in reg["rows"] if r["metric"] == "TTFT p99")
    assert abs(row["change_pct"] - 12.0) < 1e-9


def test_tolerance_is_configurable_and_missing_metrics_are_not_compared():
    assert compare_to_baseline(summary(ttft_p99=0.56), summary(), tolerance_pct=20)["verdict"] == "OK"
    assert verdicts(compare_to_baseline(summary(), summary()))["TPOT p99"] == "not comparable"


def test_errors_appearing_from_zero_are_a_regression():
    reg = compare_to_baseline(summary(err=0.5), summary(err=0.0))
    row = next(r for r in reg["rows"] if r["metric"] == "error rate %")
    assert row["verdict"] == "regressed" and row["change_pct"] is None


def test_load_baseline_from_folder_or_file_and_errors(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps(summary()))
    assert load_baseline(tmp_path)["rates"]["request_rate_rps"] == 10.0
    assert load_baseline(tmp_path / "summary.json")["metrics"]
    with pytest.raises(ConfigError, match="no summary.json there"):
        load_baseline(tmp_path / "nope")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigError, match="not a slabench summary.json"):
        load_baseline(tmp_path / "bad.json")
