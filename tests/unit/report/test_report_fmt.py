"""fmt: metric labels, singular/plural counts and regression cells with units, as every report shows them."""

from harness.report import fmt
from harness.report.markdown import summary_markdown
from harness.report.text import regression_lines, sla_table_text


def test_plural_takes_the_singular_for_exactly_one():
    assert fmt.plural(1, "requests") == "1 request"
    assert fmt.plural(0, "requests") == "0 requests"
    assert fmt.plural(2, "errors") == "2 errors"
    assert fmt.plural(12410, "gaps") == "12,410 gaps"
    assert fmt.plural(1.5, "requests") == "1.5 requests"  # a mean is not one of anything
    assert fmt.plural(1, "variants") == "1 variant" and fmt.plural(1, "repeats") == "1 repeat"


def test_count_units_are_singular_for_one_in_values():
    assert fmt.value(1, "requests") == "1 request"
    assert fmt.value(1.0, "requests") == "1 request"
    assert fmt.value(0, "requests") == "0 requests"
    assert fmt.value(3, "requests") == "3 requests"
    assert fmt.threshold({"better": "lower", "target": 1, "unit": "requests"}, "target") == "< 1 request"


def test_metric_labels_are_human_names():
    assert fmt.metric_label("ttft_s") == "TTFT"
    assert fmt.metric_label("ttft_s", "p99") == "TTFT p99"
    assert fmt.metric_label("error_rate_pct", "value") == "Error rate"
    assert fmt.metric_label("e2e_s") == "E2E latency"
    assert fmt.axis_label("tpot_s", "ms") == "TPOT (ms)" and fmt.axis_label("itl_s", "ms") == "ITL (ms)"
    assert fmt.metric_label("not_a_metric") == "not_a_metric"


def _reg_row(metric, key, base, cur, verdict="regressed"):
    change = None if base in (None, 0) or cur is None else (cur - base) / base * 100
    return {"metric": metric, "key": key, "baseline": base, "current": cur, "change_pct": change, "verdict": verdict}


def test_regression_cells_carry_units():
    assert fmt.regression_cells(_reg_row("TTFT p99", "metrics.ttft_s.p99", 0.0124, 0.015)) == (
        "12.4 ms", "15 ms", "+21.0 %")
    assert fmt.regression_cells(_reg_row("request rate", "rates.request_rate_rps", 8.0, 6.0)) == (
        "8 req/s", "6 req/s", "-25.0 %")
    assert fmt.regression_cells(_reg_row("error rate %", "rates.error_rate_pct", 0.0, 2.0)) == (
        "0 %", "2 %", "new (baseline 0)")
    assert fmt.regression_cells(_reg_row("cost", "cost.usd_per_1k_output_tokens", 0.002, 0.001))[0] == "$0.002"
    assert fmt.regression_cells(_reg_row("TPOT p50", "metrics.tpot_s.p50", None, 0.01))[0] == fmt.DASH


def test_text_and_markdown_show_regression_with_units():
    reg = {"tolerance_pct": 10.0, "verdict": "REGRESSED",
           "rows": [_reg_row("TTFT p99", "metrics.ttft_s.p99", 0.0124, 0.015),
                    _reg_row("output tokens/s", "rates.output_token_rate_tps", 1000.0, 1200.0, "improved")]}
    lines = regression_lines(reg)
    assert "  regressed: TTFT p99 +21.0 % (12.4 ms -> 15 ms)" in lines
    assert "  improved: output tokens/s +20.0 % (1,000 tok/s -> 1,200 tok/s)" in lines
    md = summary_markdown({"regression": reg, "counts": {"total": 1, "scored": 1, "scored_errors": 1}})
    assert "| TTFT p99 | 12.4 ms | 15 ms | +21.0 % | regressed |" in md
    assert "1 request in all" in md and "1 error ·" in md and "1 requests" not in md


def test_sla_text_says_one_request_not_one_requests():
    row = {"label": "Queue depth", "metric": "queue_depth", "stat": "max", "value": 1.0, "unit": "requests",
           "target": 100.0, "alert": 500.0, "better": "lower", "verdict": "PASS", "hard": True}
    text = sla_table_text({"sla": {"rows": [row], "overall": "PASS", "policy": {"name": "p"}}})
    assert "1 request " in text and "1 requests" not in text
