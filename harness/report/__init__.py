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
from harness.scoring.regression import BASELINE_FILE, DEFAULT_TOLERANCE_PCT, compare_to_baseline, load_baseline

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


def attach_baseline(run_dir: Path | str, baseline: Path | str, tolerance_pct: float = DEFAULT_TOLERANCE_PCT) -> None:
    """Copy a baseline summary into the run folder (and its tolerance into meta.json) for write_reports.
    RunFolderError (one line) when the folder is not a run folder or its meta.json cannot take it."""
    from harness.runfolder import RunFolderError, run_folder

    d = run_folder(run_dir)
    base = load_baseline(baseline)
    meta_path = d / "meta.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    except (OSError, ValueError, RecursionError):
        meta = None
    if not isinstance(meta, dict):  # never overwrite a damaged meta.json: it is the run's evidence
        raise RunFolderError(f"{meta_path} is not a readable JSON object, so the baseline cannot be recorded: "
                             "re-render without --baseline, or restore meta.json")
    _write_text(d / BASELINE_FILE, json.dumps(base, indent=1) + "\n")
    meta["baseline"] = {"source": str(baseline), "tolerance_pct": tolerance_pct}
    _write_text(meta_path, json.dumps(meta, indent=1) + "\n")


def write_reports(run_dir: Path | str) -> dict[str, Path]:
    """Score the run in `run_dir` and write every report file into it; returns file name → path
    ("summary.json", "report.html", "junit.xml", "summary.md", "requests.csv"). Damaged files are
    used as far as they can be read (noted, and invalid where nothing is measured); only a path that
    is not a run folder raises, RunFolderError (a ConfigError: one line)."""
    from harness.report.export import RequestsCsv, write_requests_csv_from_jsonl
    from harness.report.html import render_html
    from harness.report.junit import junit_xml
    from harness.report.markdown import summary_markdown
    from harness.runfolder import LineSkips, note_records, read_baseline
    from harness.scoring import json_safe, scoring_window, summarize
    from harness.scoring.jsonl import load_table
    from harness.scoring.metrics import window_needs_records
    from harness.scoring.table import from_records

    run = load_run_parts(run_dir)
    d = run.run_dir
    meta, scenario = run.meta, run.scenario
    jsonl = d / REQUESTS_FILE
    # With load_start_s/load_end_s in meta the window does not depend on the records: the CSV is
    # written while the JSONL is read. Old runs without them need the records first (second pass).
    known = not window_needs_records(meta)
    sink = RequestsCsv(d / CSV_FILE, scoring_window(meta, scenario, [])) if known else None
    skips, error = LineSkips(REQUESTS_FILE), None
    try:
        run.table = load_table(jsonl, [sink] if sink else [], skips)
    except OSError as exc:  # a folder named requests.jsonl, no permission: nothing of it is read
        run.table, error = from_records([]), f"cannot be read ({exc.strerror or type(exc).__name__})"
    finally:
        if sink:
            sink.close()
    note_records(run, skips, run.table.n, error)
    run.records = LazyRecords(jsonl)  # for any caller that wants objects; scoring uses run.table
    if not known:
        window = scoring_window(meta, scenario, run.table)
        if error is None:
            write_requests_csv_from_jsonl(jsonl, d / CSV_FILE, window)
        else:  # requests.jsonl unreadable (already a validity reason): the CSV is its header alone
            RequestsCsv(d / CSV_FILE, window).close()
    base = read_baseline(run)  # before summarize: an unreadable baseline is a validity reason
    summary = summarize(run)
    if base is not None:  # `--baseline` copied it here, so a re-render keeps the section
        tol = (meta.get("baseline") or {}).get("tolerance_pct")
        tol = DEFAULT_TOLERANCE_PCT if tol is None else tol
        summary["regression"] = json_safe(compare_to_baseline(summary, base, tol))
    out = {SUMMARY_FILE: _write_text(d / SUMMARY_FILE, json.dumps(summary, indent=2, allow_nan=False) + "\n")}
    out[JUNIT_FILE] = _write_text(d / JUNIT_FILE, junit_xml(summary))
    out[MARKDOWN_FILE] = _write_text(d / MARKDOWN_FILE, summary_markdown(summary))
    out[CSV_FILE] = d / CSV_FILE
    out[HTML_FILE] = _write_text(d / HTML_FILE, render_html(run, summary))
    return out
