import html
import json
import re

import pandas as pd

from harness.records import REQUESTS_FILE, load_run
from harness.report import REPORT_FILES, write_reports
from harness.scoring import summarize

XSS = "<script>alert(1)</script>"


def test_write_reports_writes_every_file_and_summary_round_trips(demo_run):
    out = write_reports(demo_run)
    assert set(out) == set(REPORT_FILES) == {"summary.json", "report.html", "junit.xml", "summary.md", "requests.csv"}
    for name, path in out.items():
        assert path.parent == demo_run and path.name == name and path.stat().st_size > 0
    assert not list(demo_run.glob("*.tmp"))
    saved = json.loads(out["summary.json"].read_text())
    assert saved["schema_version"] == 1
    assert saved == json.loads(json.dumps(summarize(load_run(demo_run))))  # file == what summarize returns
    assert saved["counts"] == {**saved["counts"], "total": 123, "errors": 3}
    assert saved["cost"]["gpu"] == "a100-80gb" and saved["cost"]["price_usd_per_gpu_hour"] == 4.0


def test_requests_csv_matches_jsonl(demo_run, demo_reports):
    out = demo_reports
    csv = pd.read_csv(out["requests.csv"])
    jl = pd.read_json(demo_run / REQUESTS_FILE, lines=True)
    assert len(csv) == len(jl) == 123
    assert list(csv["request_id"]) == list(jl["request_id"])
    assert {"ttft_s", "itl_s", "tpot_s", "phase", "error"} <= set(csv.columns)
    assert set(csv["phase"]) == {"warmup", "scored", "cooldown"}
    assert json.loads(csv["itl_s"][0]) == jl["itl_s"][0]


def test_html_is_self_contained_and_escapes_server_strings(demo_run, demo_reports):
    page = demo_reports["report.html"].read_text()
    assert "<script" not in page.lower()  # error message, model name, command line, notes: all inert
    assert html.escape(XSS) in page or "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("&lt;script&gt;") >= 3
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched from the network
    assert "<link" not in page and "@import" not in page
    assert page.count("data:image/png;base64,") >= 4  # TTFT/TPOT/ITL/E2E plots + time series
    assert 'id="overall"' in page and "simulated" in page


def test_html_sla_table_colours_and_margins(demo_run, demo_reports):
    page = demo_reports["report.html"].read_text()
    table = page[page.index('<table id="sla">'):]
    table = table[:table.index("</table>")]
    assert 'class="fail"' in table
    assert 'class="nm"' in table  # queue depth: no server metrics; throughput: offered-limited
    assert "no server metrics scraped" in table and "offered-limited: 4 closed-loop users" in table
    assert "%)" in table  # margins as %


def test_zero_records_renders(make_run_dir):
    d = make_run_dir("empty", [])
    out = write_reports(d)
    page = out["report.html"].read_text()
    assert "no request records" in page
    s = json.loads(out["summary.json"].read_text())
    assert s["counts"]["total"] == 0
    assert pd.read_csv(out["requests.csv"]).empty


def test_all_errors_renders(make_run_dir, builders):
    d = make_run_dir("errs", [builders.err_rec(i, 2.0 + i) for i in range(4)])
    page = write_reports(d)["report.html"].read_text()
    assert "Every request failed" in page and "No successful requests" in page
    assert "<script" not in page.lower()


def test_minimal_old_run_without_meta(make_run_dir, builders):
    recs = [builders.ok_rec(i, 100.0 + i) for i in range(5)]
    d = make_run_dir("old", recs, meta={}, scenario={"name": "old"})
    (d / "meta.json").unlink()
    out = write_reports(d)
    s = json.loads(out["summary.json"].read_text())
    assert s["counts"]["scored"] == 5 and s["sla"]["policy"]["name"] == "guide"
    assert "slabench report" in out["report.html"].read_text()


def test_plots_do_not_touch_pyplot_state(demo_run):
    import matplotlib.pyplot as plt
    before = plt.get_fignums()
    write_reports(demo_run)
    assert plt.get_fignums() == before
