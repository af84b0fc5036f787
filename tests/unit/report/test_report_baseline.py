"""--baseline: the regression section is kept in the run folder, rendered everywhere, and gates."""

import json

from harness.cli import main


def test_regression_section_survives_a_rerender_and_gates(make_run_dir, builders, capsys):
    fast = make_run_dir("fast", [builders.ok_rec(i, 0.05 * i, ttft_s=0.10) for i in range(200)])
    slow = make_run_dir("slow", [builders.ok_rec(i, 0.05 * i, ttft_s=0.15) for i in range(200)])
    assert main(["report", str(fast)]) == 0
    capsys.readouterr()

    # The slow run against the fast one: TTFT +50 % is beyond the 10 % tolerance.
    assert main(["report", str(slow), "--baseline", str(fast), "--gate"]) == 1
    out = capsys.readouterr().out
    assert "vs baseline (tolerance 10 %): REGRESSED" in out and "regressed: TTFT p50" in out
    summary = json.loads((slow / "summary.json").read_text())
    assert summary["regression"]["verdict"] == "REGRESSED" and "TTFT p99" in summary["regression"]["regressed"]
    assert "Regression vs baseline" in (slow / "report.html").read_text()
    assert "**vs baseline**" in (slow / "summary.md").read_text()

    # Re-rendering from the folder alone keeps the comparison (the baseline was copied in) ...
    assert main(["report", str(slow), "--gate"]) == 1
    # ... and a looser tolerance turns the same change into a pass (the SLA table alone decides then:
    # the guide's 100 req/s throughput row FAILs this small run, so --gate would still exit 1).
    assert main(["report", str(slow), "--baseline", str(fast / "summary.json"), "--tolerance-pct", "60"]) == 0
    assert json.loads((slow / "summary.json").read_text())["regression"]["verdict"] == "OK"


def test_bad_baseline_is_a_one_line_error(make_run_dir, builders, capsys, tmp_path):
    run = make_run_dir("r", [builders.ok_rec(i, 0.05 * i) for i in range(10)])
    assert main(["report", str(run), "--baseline", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no summary.json there" in err[0]
