"""The "Overload and recovery" section: report.html (table, status badge, plot), summary.md and the CLI
text show the summary's recovery figures; runs without a recovery block show no section."""

import base64
import html
import json
import re

from harness.records import SERVER_FILE, ServerSample, write_csv
from harness.report import write_reports
from harness.report.recovery import recovery_figure, recovery_lines, recovery_rows
from harness.report.text import sla_table_text

POLICY = {"name": "p", "min_samples": 5, "rows": [
    {"metric": "ttft_s", "stat": "p99", "target": 0.5, "alert": 1.0, "label": "TTFT p99"},
    {"metric": "error_rate_pct", "target": 0.1, "alert": 1.0}]}
SCENARIO = {"name": "spike", "sla": POLICY,
            "load": {"mode": "open", "stages": [{"duration_s": 10, "rate_rps": 10}, {"duration_s": 5, "rate_rps": 40},
                                                {"duration_s": 15, "rate_rps": 10}]},
            "recovery": {"window_s": 4, "min_samples": 5}}
META = {"schema_version": 1, "slabench_version": "0.1.0", "scenario_name": "spike", "load_start_s": 0.0,
        "load_end_s": 30.0, "interrupted": False, "backend": {"type": "sim", "simulated": True}}


def spike_run(make_run_dir, builders, recover_at: float):
    recs = [builders.ok_rec(i, 0.1 * i, ttft_s=2.0 if 10 <= 0.1 * i < recover_at else 0.1) for i in range(300)]
    recs += [builders.err_rec(900 + i, 11.0 + i * 0.01, message="overloaded") for i in range(3)]
    d = make_run_dir("spike", recs, scenario=SCENARIO, meta=META)
    write_csv(d / SERVER_FILE, [ServerSample(t_s=float(t), queue_depth=q, simulated=True)
                                for t, q in enumerate([0] * 10 + [5, 10, 20, 30, 40, 30, 20, 10, 5, 0] + [0] * 10)],
              ServerSample)
    return d


def test_section_in_every_report(make_run_dir, builders):
    d = spike_run(make_run_dir, builders, recover_at=20.0)
    paths = write_reports(d)
    summary = json.loads(paths["summary.json"].read_text())
    rec = summary["recovery"]
    assert rec["status"] == "recovered" and rec["time_to_recover_s"] == 9.0  # first clean window [20, 24)
    assert rec["peak_queue_depth"] == 40 and rec["drain_time_s"] == 4.0
    page = html.unescape(paths["report.html"].read_text())
    section = page[page.index('id="recovery"'):]
    assert "Overload and recovery" in page and 'id="recovery-status">recovered<' in section
    cells = dict(re.findall(r"<tr><th>([^<]+)</th><td class=\"n\">([^<]*)</td>", section))
    assert cells["time to recover"] == "9 s" and cells["peak queue depth"] == "40"
    assert cells["queue drain"] == "4 s" and cells["capacity crossed at"] == "40 req/s"
    png = re.search(r'alt="rolling SLA window[^"]*" src="data:image/png;base64,([^"]+)"', section).group(1)
    assert base64.b64decode(png)[:8] == b"\x89PNG\r\n\x1a\n"
    md = paths["summary.md"].read_text()
    assert "| time to recover | 9 s |" in md and "| queue drain | 4 s |" in md
    text = sla_table_text(summary)
    assert "overload and recovery (spike: stage 2, 40 req/s for 5 s; rolling 4 s window):" in text
    assert "time to recover: 9 s" in text


def test_not_recovered_is_said_plainly(make_run_dir, builders):
    d = spike_run(make_run_dir, builders, recover_at=99.0)
    paths = write_reports(d)
    rec = json.loads(paths["summary.json"].read_text())["recovery"]
    assert rec["recovered"] is False
    page = html.unescape(paths["report.html"].read_text())
    assert 'id="recovery-status">not recovered<' in page
    assert "did not recover within the run" in page
    rows = dict((name, value) for name, value, _ in recovery_rows(rec))
    assert rows["time to recover"] == "not recovered"


def test_no_section_without_a_recovery_block(demo_reports):
    page = demo_reports["report.html"].read_text()
    summary = json.loads(demo_reports["summary.json"].read_text())
    assert summary["recovery"] is None and 'id="recovery"' not in page
    assert "overload and recovery" not in demo_reports["summary.md"].read_text()
    assert recovery_lines(None) == [] and recovery_rows(None) == [] and recovery_figure(None, None) is None


def test_unusable_block_is_explained():
    rec = {"status": "unusable", "reason": "recovery block unusable: recovery: window_s: must be > 0, got 0"}
    assert recovery_rows(rec) == []
    assert recovery_lines(rec) == [f"overload and recovery: {rec['reason']}"]
