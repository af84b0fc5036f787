"""The client-overhead and requested-vs-actual sections: in report.html, summary.md and the CLI text when the
run has the numbers (server timings, requested lengths, a prompt calibration), absent when it has not."""

import html
import json

import pytest

from harness.report import write_reports
from harness.report.text import sla_table_text
from tests.unit.report.conftest import ok_rec, write_run_dir

CAL = {"status": "measured", "mode": "auto", "api": "openai-chat", "tokens_per_word": 1.0647, "template_tokens": 9,
       "probes": [{"words": 139, "prompt_tokens": 157}, {"words": 278, "prompt_tokens": 305}], "probe_output_tokens": 2}


def timed_rec(i: int):
    rec = ok_rec(i, 0.1 * i)
    rec.requested_prompt_tokens, rec.requested_output_tokens = 50, 10
    rec.server_prompt_s = rec.ttft_s - 0.002
    rec.server_decode_s = (rec.e2e_s - rec.ttft_s) - (0.03 if i % 20 == 0 else 0.0005)  # 5 % read 30 ms late
    return rec


def _run(tmp_path_factory, name, recs, meta_extra=None):
    d = write_run_dir(tmp_path_factory.mktemp(name) / "run", recs)
    if meta_extra:
        meta = json.loads((d / "meta.json").read_text())
        (d / "meta.json").write_text(json.dumps({**meta, **meta_extra}))
    write_reports(d)
    return {k: (d / k).read_text() for k in ("report.html", "summary.md", "summary.json")}


@pytest.fixture(scope="module")
def with_timings(tmp_path_factory):
    return _run(tmp_path_factory, "timed", [timed_rec(i) for i in range(100)], {"prompt_calibration": CAL})


@pytest.fixture(scope="module")
def without(tmp_path_factory):
    return _run(tmp_path_factory, "plain", [ok_rec(i, 0.1 * i) for i in range(100)])


def test_html_has_both_sections_with_figures(with_timings):
    page = html.unescape(with_timings["report.html"])
    sec = page[page.index('id="client-overhead"'):page.index('id="token-lengths"')]
    assert "TTFT − server prompt time" in sec and "2 ms" in sec  # every TTFT is 2 ms over the server's
    assert "30 ms" in sec and "the client, not the server, set part of the TPOT and E2E figures" in sec
    assert "(impossible for a correct measurement): 0 requests" in sec
    lengths = page[page.index('id="token-lengths"'):page.index("<h2>Time series")]
    assert "the chat template adds 9 tokens" in lengths and "1.06 server tokens per word" in lengths


def test_markdown_and_text_show_them_too(with_timings):
    md = with_timings["summary.md"]
    assert "| TTFT − server prompt time | 90 | 2 ms |" in md  # the scored ok requests (no warm-up, cool-down)
    assert "| prompt | 90 | 50 | 50 | 1 / 1 |" in md and "the chat template adds 9 tokens" in md
    text = sla_table_text(json.loads(with_timings["summary.json"]))
    assert "client overhead vs server timings (90 requests): decode p99 30 ms" in text
    assert "Prompt calibration (measured): 1.06 server tokens per word; the chat template adds 9 tokens; prompt tokens actual/requested 1" in text


def test_runs_without_the_numbers_show_neither(without):
    s = json.loads(without["summary.json"])
    assert s["metrics"]["client_overhead"] is None and s["metrics"]["token_lengths"] is None
    assert 'id="client-overhead"' not in without["report.html"] and 'id="token-lengths"' not in without["report.html"]
    assert "client overhead" not in without["summary.md"] and "| tokens |" not in without["summary.md"]
    assert "client overhead" not in sla_table_text(s) and "Prompt calibration" not in sla_table_text(s)
