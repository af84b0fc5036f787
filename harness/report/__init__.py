"""Report: `write_reports(run_dir)` turns a saved run folder into summary.json, report.html,
junit.xml, summary.md and requests.csv (scoring seam → files); `sla_table_text(summary)` is the
terminal table the CLI prints.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.records import SUMMARY_FILE, load_run
from harness.report.text import sla_table_text

# The files write_reports writes; its result is keyed by these file names.
HTML_FILE, JUNIT_FILE, MARKDOWN_FILE, CSV_FILE = "report.html", "junit.xml", "summary.md", "requests.csv"
REPORT_FILES = (SUMMARY_FILE, HTML_FILE, JUNIT_FILE, MARKDOWN_FILE, CSV_FILE)

__all__ = ["write_reports", "sla_table_text", "REPORT_FILES"]


def _write_text(path: Path, text: str) -> Path:
    """Write via a temporary file and rename, so a reader never sees half a report."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def write_reports(run_dir: Path | str) -> dict[str, Path]:
    """Score the run in `run_dir` and write every report file into it; returns file name → path
    ("summary.json", "report.html", "junit.xml", "summary.md", "requests.csv")."""
    from harness.report.export import write_requests_csv
    from harness.report.html import render_html
    from harness.report.junit import junit_xml
    from harness.report.markdown import summary_markdown
    from harness.scoring import scoring_window, summarize

    d = Path(run_dir)
    run = load_run(d)
    summary = summarize(run)
    out = {SUMMARY_FILE: _write_text(d / SUMMARY_FILE, json.dumps(summary, indent=2, allow_nan=False) + "\n")}
    out[JUNIT_FILE] = _write_text(d / JUNIT_FILE, junit_xml(summary))
    out[MARKDOWN_FILE] = _write_text(d / MARKDOWN_FILE, summary_markdown(summary))
    write_requests_csv(d / CSV_FILE, run.records, scoring_window(run.meta or {}, run.scenario or {}, run.records))
    out[CSV_FILE] = d / CSV_FILE
    out[HTML_FILE] = _write_text(d / HTML_FILE, render_html(run, summary))
    return out
