from harness.report import sla_table_text
from harness.report.markdown import summary_markdown


def _summary():
    rows = [
        {"metric": "ttft_s", "stat": "p99", "label": "Request latency (p99, TTFT)", "value": 0.42, "unit": "s",
         "better": "lower", "target": 0.5, "alert": 1.0, "verdict": "PASS", "hard": True, "note": None,
         "margins": {"vs_target_pct": -16.0}},
        {"metric": "request_rate_rps", "stat": "value", "label": "Through|put", "value": 12.0, "unit": "req/s",
         "better": "higher", "target": 100.0, "alert": 50.0, "verdict": "FAIL", "hard": True,
         "note": "closed loop with 4 users", "margins": {"vs_target_pct": -88.0}},
        {"metric": "queue_depth", "stat": "max", "label": "Queue depth", "value": None, "unit": "requests",
         "better": "lower", "target": 100.0, "alert": 500.0, "verdict": "NOT MEASURED", "hard": True,
         "note": "no server metrics scraped", "margins": {}},
    ]
    return {"run": {"scenario_name": "demo"}, "counts": {"total": 10, "scored": 8},
            "sla": {"policy": {"name": "guide"}, "overall": "FAIL", "rows": rows},
            "metrics": {"ttft_s": {"n": 8, "p50": 0.2, "p90": 0.3, "p99": 0.42, "max": 0.5}},
            "rates": {"request_rate_rps": 12.0}, "cost": {"cost_usd": None, "reason": "GPU unknown"}}


def test_sla_table_text_columns_and_verdicts():
    text = sla_table_text(_summary())
    lines = text.splitlines()
    assert lines[0].split() == ["metric", "value", "target", "alert", "verdict"]
    assert "420 ms" in text and "< 500 ms" in text and "> 1,000 ms" in text
    assert "> 100 req/s" in text and "< 50 req/s" in text
    assert any(l.startswith("Queue depth") and l.rstrip().endswith("NOT MEASURED") for l in lines)
    assert "SLA 'guide': FAIL" in text and "no server metrics scraped" in text


def test_sla_table_text_empty_summary():
    assert "no SLA rows" in sla_table_text({})


def test_markdown_table_is_escaped():
    md = summary_markdown(_summary())
    assert "**FAIL**" in md and "Through\\|put" in md
    rows = [l for l in md.splitlines() if l.startswith("| ")]
    assert all(l.count(" | ") == rows[0].count(" | ") for l in rows[:4])  # SLA rows keep 6 columns
    assert "| TTFT | 8 | 200 ms | 300 ms | 420 ms | 500 ms |" in md  # labels, not keys
    assert "Cost: not computed (GPU unknown)" in md
