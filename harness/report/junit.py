"""JUnit: one <testsuite>, one <testcase> per SLA row (summary dict → junit.xml via xml.etree).

FAIL and a hard INCONCLUSIVE → <failure>; WARN → passed with a <system-out> note; NOT MEASURED and an
advisory INCONCLUSIVE → <skipped>. An invalid run adds one failing testcase, "run validity", first.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from harness.report import fmt

# Characters XML 1.0 cannot carry at all (ElementTree would write them and produce invalid XML).
_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(s: object) -> str:
    return _BAD_XML.sub("?", "" if s is None else str(s))


def _row_text(r: dict) -> str:
    m = r.get("margins") or {}
    parts = [f"{r.get('label') or r.get('metric')}: {fmt.value(r.get('value'), r.get('unit'))}",
             f"target {fmt.threshold(r, 'target')}", f"alert {fmt.threshold(r, 'alert')}",
             f"verdict {r.get('verdict')}",
             f"margin vs target {fmt.signed(m.get('vs_target'), r.get('unit'))} ({fmt.pct(m.get('vs_target_pct'))})"]
    if r.get("n") is not None:
        parts.append(f"n={r['n']}")
    if r.get("note"):
        parts.append(r["note"])
    return "; ".join(parts)


def _failing(r: dict) -> bool:
    return r.get("verdict") == "FAIL" or (r.get("verdict") == "INCONCLUSIVE" and r.get("hard", True))


def _inconclusive_message(r: dict) -> str:
    note = str(r.get("note") or "too few samples to judge").removeprefix("inconclusive: ")
    return f"inconclusive: {r.get('label') or r.get('metric')}: {note}"


def junit_tree(summary: dict) -> ET.ElementTree:
    """The JUnit XML tree: <testsuites><testsuite name=...><testcase .../>…</testsuite></testsuites>."""
    sla = summary.get("sla") or {}
    rows = sla.get("rows") or []
    scen = (summary.get("run") or {}).get("scenario_name") or "run"
    policy = (sla.get("policy") or {}).get("name") or "sla"
    reasons = fmt.invalid_reasons(summary)
    extra = 0 if reasons is None else 1
    tests, failures = len(rows) + extra, sum(1 for r in rows if _failing(r)) + extra
    skipped = sum(1 for r in rows if not _failing(r) and r.get("verdict") not in ("PASS", "WARN"))
    dur = (summary.get("window") or {}).get("duration_s") or 0.0
    root = ET.Element("testsuites", tests=str(tests), failures=str(failures), errors="0", skipped=str(skipped))
    suite = ET.SubElement(root, "testsuite", name=_clean(f"slabench.{scen}.{policy}"), tests=str(tests),
                          failures=str(failures), errors="0", skipped=str(skipped), time=f"{float(dur):.3f}")
    props = ET.SubElement(suite, "properties")
    for k, v in (("overall", fmt.shown_overall(summary)), ("sla_overall", sla.get("overall")), ("policy", policy),
                 ("scenario", scen), ("started_utc", (summary.get("run") or {}).get("started_utc"))):
        ET.SubElement(props, "property", name=k, value=_clean(v))
    if reasons is not None:
        case = ET.SubElement(suite, "testcase", classname=_clean(f"slabench.run.{scen}"), name="run validity", time="0")
        text = _clean("invalid run: " + "; ".join(reasons))
        ET.SubElement(case, "failure", message=text, type="INVALID").text = text
    for r in rows:
        case = ET.SubElement(suite, "testcase", classname=_clean(f"slabench.sla.{scen}"),
                             name=_clean(r.get("label") or r.get("metric")), time="0")
        text = _clean(_row_text(r))
        verdict = r.get("verdict")
        if verdict == "FAIL":
            f = ET.SubElement(case, "failure", message=text, type="SLA")
            f.text = text
        elif verdict == "INCONCLUSIVE" and r.get("hard", True):
            f = ET.SubElement(case, "failure", message=_clean(_inconclusive_message(r)), type="INCONCLUSIVE")
            f.text = text
        elif verdict == "INCONCLUSIVE":
            ET.SubElement(case, "skipped", message=_clean(_inconclusive_message(r) + " (advisory row)"))
        elif verdict == "WARN":
            ET.SubElement(case, "system-out").text = "WARN: " + text
        elif verdict != "PASS":
            ET.SubElement(case, "skipped", message=_clean(f"NOT MEASURED: {r.get('note') or 'not measured'}"))
        else:
            ET.SubElement(case, "system-out").text = "PASS: " + text
    return ET.ElementTree(root)


def junit_xml(summary: dict) -> str:
    """junit.xml content as a string (with XML declaration)."""
    tree = junit_tree(summary)
    ET.indent(tree)
    return ET.tostring(tree.getroot(), encoding="unicode", xml_declaration=True) + "\n"
