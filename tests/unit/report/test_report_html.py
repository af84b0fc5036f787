"""report.html content: the scenario shows only its load mode's fields, slabench's version appears once,
zero ITL gaps are explained, counts are singular for one, SLA and regression cells are labelled with units."""

import html
import re

import numpy as np
import pytest
import yaml

from harness.config import parse_scenario, resolve_scenario, scenario_to_yaml
from harness.records import RequestRecord
from harness.report import write_reports
from harness.report.html import shown_scenario, zero_gaps

META = {"schema_version": 1, "slabench_version": "9.8.7", "scenario_name": "demo",
        "started_utc": "2026-01-01T00:00:00Z", "load_start_s": 0.0, "load_end_s": 12.0, "interrupted": False,
        "backend": {"type": "sim", "model": "m", "gpu": "a100-80gb", "gpu_count": 1, "simulated": True},
        "host": {"python": "3.12", "platform": "linux", "slabench": "9.8.7"}}


def resolved(load: dict) -> dict:
    """A scenario as `slabench run` saves it: every field resolved, the other mode's defaults included."""
    return yaml.safe_load(scenario_to_yaml(resolve_scenario(parse_scenario({"name": "demo", "load": load}))))


def zero_gap_rec(i: int, sent_s: float) -> RequestRecord:
    itl = [0.02, 0.0, 0.02, 0.0, 0.02]  # two chunks of five arrived together with the one before
    return RequestRecord(request_id=f"r{i}", api="openai-chat", sent_s=sent_s, end_s=sent_s + 0.3, status=200, ok=True,
                         ttft_s=0.2, e2e_s=0.3, itl_s=itl, prompt_tokens=50, output_tokens=6)


def scenario_pre(page: str) -> str:
    return html.unescape(re.search(r'<pre id="scenario">(.*?)</pre>', page, re.S).group(1))


@pytest.fixture(scope="module")
def closed_page(tmp_path_factory):
    from tests.unit.report.conftest import write_run_dir
    d = write_run_dir(tmp_path_factory.mktemp("closed") / "run", [zero_gap_rec(i, 0.1 * i) for i in range(100)],
                      meta=META, scenario=resolved({"users": 4, "duration_s": 12, "warmup_s": 1}))
    return d, write_reports(d)["report.html"].read_text()


def test_closed_loop_scenario_hides_open_loop_fields(closed_page):
    d, page = closed_page
    shown = yaml.safe_load(scenario_pre(page))["load"]
    assert shown["mode"] == "closed" and shown["users"] == 4
    assert not {"rate_rps", "arrival", "burstiness", "max_in_flight", "stages"} & set(shown)
    assert "arrival, burstiness, max_in_flight left out" in html.unescape(page)
    assert "arrival" in yaml.safe_load((d / "scenario.yaml").read_text())["load"]  # the saved file stays complete


def test_open_loop_scenario_hides_closed_loop_fields():
    load = resolved({"mode": "open", "rate_rps": 5, "duration_s": 10})["load"]
    assert "users" in load and "burstiness" in load  # the resolved file has them ...
    shown, hidden = shown_scenario({"load": load})
    assert "users" not in shown["load"] and "think_time_s" not in shown["load"]  # ... the page does not
    assert "burstiness" not in shown["load"] and shown["load"]["rate_rps"] == 5  # burstiness: gamma arrivals only
    assert set(hidden) == {"users", "think_time_s", "burstiness"}
    gamma = shown_scenario({"load": {**load, "arrival": "gamma"}})[0]["load"]
    assert "burstiness" in gamma


def test_version_is_shown_once(closed_page):
    _, page = closed_page
    assert page.count("<dt>slabench</dt>") == 1 and "<dd>9.8.7</dd>" in page


def test_zero_itl_gaps_are_explained(closed_page):
    _, page = closed_page
    note = re.search(r'id="itl-zero">(.*?)</td>', page, re.S).group(1)
    # 100 requests in [0, 12 s) with 1 s warm-up: the scored ones' gaps, two of five of each are 0.
    n = int(re.search(r"of ([\d,]+) gaps", note).group(1).replace(",", ""))
    assert n % 5 == 0 and f"{2 * n // 5:,} of {n:,} gaps (40 %) are 0 ms" in note
    assert "one network read" in note


def test_zero_gaps_counts_exact_zeros_only():
    assert zero_gaps(np.array([0.01, 0.02])) is None
    assert zero_gaps(np.array([0.0, 0.0, 1e-9, 0.5])) == {"n": 2, "of": 4, "pct": 50.0}


def test_page_labels_metrics_and_says_one_request(make_run_dir, builders, monkeypatch):
    no_plots = {"distributions": {}, "timeseries": None}
    monkeypatch.setattr("harness.report.html.build_plots", lambda run, summary: no_plots)
    d = make_run_dir("one", [builders.ok_rec(0, 2.0)])
    page = write_reports(d)["report.html"].read_text()
    assert "(1 of 1 request;" in page and "1 requests" not in page
    assert "<td>TTFT p99</td>" in page and "ttft_s p99" not in page  # the SLA table's metric column


def test_regression_table_shows_units(make_run_dir, builders):
    from harness.cli import main
    fast = make_run_dir("fast", [builders.ok_rec(i, 0.05 * i, ttft_s=0.10) for i in range(150)])
    slow = make_run_dir("slow", [builders.ok_rec(i, 0.05 * i, ttft_s=0.15) for i in range(150)])
    main(["report", str(fast)])
    main(["report", str(slow), "--baseline", str(fast)])
    page = (slow / "report.html").read_text()
    row = re.search(r"<td>TTFT p50</td>(.*?)</tr>", page, re.S).group(1)
    assert re.findall(r'<td class="n">(.*?)</td>', row) == ["100 ms", "150 ms", "+50.0 %"]
    assert "req/s</td>" in page.split("Regression vs baseline")[1].split("</table>")[0]
