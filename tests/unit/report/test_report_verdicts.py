"""INCONCLUSIVE rows and invalid runs in every writer: text table, summary.md, junit.xml, report.html."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from harness.report import sla_table_text, write_reports
from harness.report.junit import junit_xml
from harness.report.markdown import summary_markdown

NOTE = ("inconclusive: p99 from 50 samples, needs at least 100: a run of about 100 requests in the scored window "
        "(50 now)")


def _row(label, verdict, hard=True, note=None):
    return {"metric": "ttft_s", "stat": "p99", "label": label, "value": 4.2, "unit": "s", "better": "lower",
            "target": 0.5, "alert": 1.0, "verdict": verdict, "hard": hard, "n": 50, "note": note,
            "needed_requests": 100 if verdict == "INCONCLUSIVE" else None,
            "margins": {"vs_target": 3.7, "vs_alert": 3.2, "vs_target_pct": 740.0, "vs_alert_pct": 320.0}}


def _summary(validity=None, rows=None, overall="INCONCLUSIVE"):
    rows = rows if rows is not None else [_row("TTFT p99", "INCONCLUSIVE", note=NOTE), _row("E2E", "PASS"),
                                          _row("TPOT p99", "INCONCLUSIVE", hard=False, note=NOTE)]
    s = {"run": {"scenario_name": "demo"}, "window": {"duration_s": 5.0}, "counts": {"total": 50, "scored": 50},
         "sla": {"policy": {"name": "guide", "min_samples": 100}, "overall": overall, "rows": rows,
                 "inconclusive_hard": [r["label"] for r in rows if r["hard"] and r["verdict"] == "INCONCLUSIVE"]},
         "metrics": {}, "rates": {}, "cost": {},
         "notes": ["requests.jsonl: 3 lines skipped (line 17: 'ttft_s' is not a number)"]}
    if validity is not None:
        s["validity"] = validity
    return s


INVALID = {"valid": False, "reasons": ["no request succeeded (5 sent: HTTP 401 x5)", "meta.json is unreadable"]}


def test_text_table_shows_inconclusive_and_its_note():
    text = sla_table_text(_summary())
    assert "SLA 'guide': INCONCLUSIVE" in text
    assert "INCONCLUSIVE (too few samples to judge): TTFT p99" in text and NOTE in text
    assert any(line.startswith("TPOT p99") and "INCONCLUSIVE (advisory)" in line for line in text.splitlines())
    assert not text.startswith("INVALID")


def test_text_table_of_an_invalid_run_says_so_first():
    text = sla_table_text(_summary(INVALID, overall="PASS", rows=[_row("TTFT p99", "PASS")]))
    first = text.splitlines()[0]
    assert first == "INVALID RUN — no request succeeded (5 sent: HTTP 401 x5); meta.json is unreadable"
    assert "SLA 'guide': INVALID (rows as measured: PASS)" in text and "SLA 'guide': PASS\n" not in text


def test_markdown_inconclusive_and_invalid():
    md = summary_markdown(_summary())
    assert md.splitlines()[0].endswith("❔ **INCONCLUSIVE**") and "too few samples to judge TTFT p99" in md
    assert "- note: requests.jsonl: 3 lines skipped (line 17: 'ttft_s' is not a number)" in md
    md = summary_markdown(_summary(INVALID, overall="PASS", rows=[_row("TTFT p99", "PASS")]))
    assert md.splitlines()[0].endswith("⛔ **INVALID**") and "**PASS**" not in md.splitlines()[0]
    assert "> **INVALID RUN — no request succeeded (5 sent: HTTP 401 x5); meta.json is unreadable**" in md


def test_junit_inconclusive_hard_row_fails_advisory_is_skipped():
    suite = ET.fromstring(junit_xml(_summary())).find("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    fail = cases["TTFT p99"].find("failure")
    assert fail is not None and fail.get("type") == "INCONCLUSIVE"
    assert fail.get("message") == "inconclusive: TTFT p99: " + NOTE.removeprefix("inconclusive: ")
    assert cases["TPOT p99"].find("failure") is None and cases["TPOT p99"].find("skipped") is not None
    assert suite.get("failures") == "1" and suite.get("skipped") == "1" and suite.get("tests") == "3"


def test_junit_invalid_run_adds_one_failing_validity_case():
    xml = junit_xml(_summary(INVALID, overall="PASS", rows=[_row("TTFT p99", "PASS")]))
    suite = ET.fromstring(xml).find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["run validity", "TTFT p99"]
    assert cases[0].find("failure").get("message").startswith("invalid run: no request succeeded")
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["overall"] == "INVALID" and props["sla_overall"] == "PASS"


def test_summaries_without_validity_are_valid_everywhere():
    s = _summary(rows=[_row("TTFT p99", "PASS")], overall="PASS")
    assert "INVALID" not in sla_table_text(s) + summary_markdown(s) + junit_xml(s)


def test_html_inconclusive_run_has_its_colour_and_banner(make_run_dir, builders):
    # 40 requests: a p99 TTFT row cannot be judged (min_samples 100): INCONCLUSIVE, never PASS.
    policy = {"name": "p", "rows": [{"metric": "ttft_s", "stat": "p99", "label": "Request latency (p99, TTFT)",
                                     "target": 0.5, "alert": 1.0}, {"metric": "error_rate_pct", "target": 1, "alert": 5}]}
    scenario = {"name": "short", "load": {"warmup_s": 1, "cooldown_s": 1}, "sla": policy}
    d = make_run_dir("short", [builders.ok_rec(i, 1.5 + 0.2 * i) for i in range(40)], scenario=scenario)
    out = write_reports(d)
    s = json.loads(out["summary.json"].read_text())
    row = s["sla"]["rows"][0]
    assert row["verdict"] == "INCONCLUSIVE" and s["sla"]["overall"] == "INCONCLUSIVE"
    assert row["n"] == 40 and row["needed_requests"] == 100 and s["sla"]["inconclusive_hard"] == [row["label"]]
    page = out["report.html"].read_text()
    assert '<span class="badge inc" id="overall">INCONCLUSIVE</span>' in page
    assert 'id="inconclusive">INCONCLUSIVE — too few samples to judge Request latency (p99, TTFT)' in page
    assert '<tr class="inc">' in page and "INVALID RUN" not in page
    assert "inconclusive: " in out["junit.xml"].read_text()
    assert "❔ **INCONCLUSIVE**" in out["summary.md"].read_text()
