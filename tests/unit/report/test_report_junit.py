import xml.etree.ElementTree as ET

from harness.report.junit import junit_xml


def _summary(rows):
    return {"run": {"scenario_name": "demo"}, "window": {"duration_s": 5.0},
            "sla": {"policy": {"name": "guide"}, "overall": "FAIL", "rows": rows}}


def _row(label, verdict, note=None, value=1.0):
    return {"metric": "ttft_s", "stat": "p99", "label": label, "value": value, "unit": "s", "better": "lower",
            "target": 0.5, "alert": 1.0, "verdict": verdict, "hard": True, "n": 200, "note": note,
            "margins": {"vs_target": 0.5, "vs_alert": 0.0, "vs_target_pct": 100.0, "vs_alert_pct": 0.0}}


def test_junit_counts_and_elements():
    rows = [_row("a", "PASS"), _row("b", "WARN"), _row("c", "FAIL"), _row("d", "FAIL"),
            _row("e", "NOT MEASURED", note="no server metrics scraped", value=None)]
    root = ET.fromstring(junit_xml(_summary(rows)))
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    assert suite.get("tests") == "5" and suite.get("failures") == "2" and suite.get("skipped") == "1"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert len(suite.findall("testcase/failure")) == 2
    assert cases["c"].find("failure") is not None and "verdict FAIL" in cases["c"].find("failure").get("message")
    assert cases["b"].find("failure") is None and cases["b"].find("system-out").text.startswith("WARN")
    skipped = cases["e"].find("skipped")
    assert skipped is not None and "no server metrics scraped" in skipped.get("message")
    assert cases["a"].find("failure") is None and cases["a"].find("skipped") is None


def test_junit_survives_hostile_strings():
    rows = [_row('<x>&"\x00\x1b]', "FAIL", note="<script>alert(1)</script>")]
    text = junit_xml(_summary(rows))
    root = ET.fromstring(text)  # still well-formed XML
    case = root.find("testsuite/testcase")
    assert case.get("name").startswith('<x>&"') and "<script>" in case.find("failure").text


def test_junit_empty_policy():
    root = ET.fromstring(junit_xml({"sla": {"rows": []}}))
    assert root.find("testsuite").get("tests") == "0"
