"""Report: `write_reports(run_dir)` turns a saved run folder into summary.json, report.html,
junit.xml, summary.md and requests.csv (scoring seam → files); `sla_table_text(summary)` is the
terminal table the CLI prints. requests.jsonl is read once, into columns (RecordTable), and
requests.csv is written during that same read whenever meta.json fixes the scored window.
"""

from __future__ import annotations

import json
from pathlib import Path

# load_run stays importable from here (scripts/bench_scoring.py wraps harness.report.load_run).
from harness.records import REQUESTS_FILE, SUMMARY_FILE, LazyRecords, load_run, load_run_parts  # noqa: F401
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
    from harness.report.export import RequestsCsv, write_requests_csv_from_jsonl
    from harness.report.html import render_html
    from harness.report.junit import junit_xml
    from harness.report.markdown import summary_markdown
    from harness.scoring import scoring_window, summarize
    from harness.scoring.jsonl import load_table
    from harness.scoring.metrics import window_needs_records

    d = Path(run_dir)
    run = load_run_parts(d)
    meta = run.meta if isinstance(run.meta, dict) else {}
    scenario = run.scenario or {}
    jsonl = d / REQUESTS_FILE
    # With load_start_s/load_end_s in meta the window does not depend on the records: the CSV is
    # written while the JSONL is read. Old runs without them need the records first (second pass).
    known = not window_needs_records(meta)
    sink = RequestsCsv(d / CSV_FILE, scoring_window(meta, scenario, [])) if known else None
    try:
        run.table = load_table(jsonl, [sink] if sink else [])
    finally:
        if sink:
            sink.close()
    run.records = LazyRecords(jsonl)  # for any caller that wants objects; scoring uses run.table
    if not known:
        write_requests_csv_from_jsonl(jsonl, d / CSV_FILE, scoring_window(meta, scenario, run.table))
    summary = summarize(run)
    out = {SUMMARY_FILE: _write_text(d / SUMMARY_FILE, json.dumps(summary, indent=2, allow_nan=False) + "\n")}
    out[JUNIT_FILE] = _write_text(d / JUNIT_FILE, junit_xml(summary))
    out[MARKDOWN_FILE] = _write_text(d / MARKDOWN_FILE, summary_markdown(summary))
    out[CSV_FILE] = d / CSV_FILE
    out[HTML_FILE] = _write_text(d / HTML_FILE, render_html(run, summary))
    return out
