"""Damaged run folders: `write_reports` uses what it can read, notes the rest, and says INVALID when
nothing was measured; only a path that is no run folder raises RunFolderError (one line)."""

from __future__ import annotations

import json
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.config import ConfigError
from harness.records import load_run
from harness.report import REPORT_FILES, write_reports
from harness.runfolder import RUN_FILES, RunFolderError
from harness.scoring import summarize
from tests.fuzzing.run_folders import run_folders


def _no_constants(c: str):
    raise ValueError(f"summary.json holds {c}")


def _summary(out: dict) -> dict:
    return json.loads(out["summary.json"].read_text(encoding="utf-8"), parse_constant=_no_constants)


def _no_plots(run, summary) -> dict:
    return {"distributions": {}, "timeseries": None}


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_write_reports_writes_every_report_or_raises_one_line(data):
    # Plots are stubbed here to keep the property quick (they are drawn in the cases below and in
    # tests/fuzzing/test_cli_fuzz.py, which runs `slabench report` whole).
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        mp.setattr("harness.report.html.build_plots", _no_plots)
        spec = data.draw(run_folders(Path(tmp) / "run"))
        try:
            out = write_reports(spec.path)
        except RunFolderError as exc:
            assert "\n" not in str(exc) and str(exc)
            assert not spec.is_run_folder or not any((spec.path / f).exists() for f in RUN_FILES), spec
            return
        assert spec.is_run_folder, spec
        assert set(out) == set(REPORT_FILES) and all(p.is_file() for p in out.values())
        s = _summary(out)
        assert all("\n" not in n for n in s["notes"]), s["notes"]
        valid = s["validity"]["valid"]
        assert valid or s["validity"]["reasons"]
        if spec.damage.get("scenario.yaml") == "missing" or s["counts"]["total"] == 0:
            assert not valid  # no policy or no record: never a verdict
        page = out["report.html"].read_text(encoding="utf-8")
        assert ("INVALID RUN" in page) == (not valid)
        assert ("INVALID RUN" in out["summary.md"].read_text(encoding="utf-8")) == (not valid)
        suite = ET.fromstring(out["junit.xml"].read_text(encoding="utf-8")).find("testsuite")
        names = [c.get("name") for c in suite.findall("testcase")]
        assert ("run validity" in names) == (not valid)
        if s["sla"]["overall"] == "INCONCLUSIVE" or not valid:
            assert int(suite.get("failures")) >= 1  # a CI gate reading junit.xml never sees all green
        # The object path (compare, offline decisions) reads the same folder to the same summary.
        again = json.loads(json.dumps(summarize(load_run(spec.path))))
        assert again["counts"] == s["counts"]
        assert again["validity"]["reasons"] == [r for r in s["validity"]["reasons"] if "baseline" not in r]


@pytest.fixture
def folder(make_run_dir, builders):
    recs = [builders.ok_rec(i, 0.05 * i, ttft_s=0.1) for i in range(200)] + [builders.err_rec(0, 5.0)]
    return make_run_dir("run", recs)


def _lines(d: Path) -> list[bytes]:
    return (d / "requests.jsonl").read_bytes().split(b"\n")


def _write_lines(d: Path, lines: list[bytes]) -> None:
    (d / "requests.jsonl").write_bytes(b"\n".join(lines))


@pytest.mark.parametrize("edit,note,total", [
    (lambda ls: [l.replace(b'"ttft_s":0.1', b'"ttft_s":"0.1"', 1) if i == 16 else l for i, l in enumerate(ls)],
     "requests.jsonl: 1 line skipped (line 17: 'ttft_s' is not a number)", 200),
    (lambda ls: ls[:-1] + [ls[-2][:40]],
     "requests.jsonl: 1 line skipped (line 202: not valid JSON (a torn or corrupt line))", 201),
    (lambda ls: [b"[1,2]", b"42"] + ls, "requests.jsonl: 2 lines skipped (line 1: not a JSON object)", 201),
    (lambda ls: [l.replace(b'"r5"', b'"r\xff5"') for l in ls],
     "requests.jsonl: 1 line skipped (line 6: not UTF-8 text)", 200),
    (lambda ls: [l.replace(b'"sent_s":0.5,', b'"sent_s":1e400,') for l in ls],
     "requests.jsonl: 1 line skipped (line 11: 'sent_s' is out of range)", 200),
    (lambda ls: [l.replace(b'"ttft_s":0.1', b'"ttft_s":-0.1') if i < 3 else l for i, l in enumerate(ls)],
     "requests.jsonl: 3 lines skipped (line 1: 'ttft_s' is negative)", 198),
    (lambda ls: [l.replace(b'"status":200', b'"status":1' + b"0" * 20) if i == 4 else l for i, l in enumerate(ls)],
     "requests.jsonl: 1 line skipped (line 5: 'status' is out of range)", 200),
])
def test_bad_request_lines_are_skipped_counted_and_noted(folder, edit, note, total):
    _write_lines(folder, edit(_lines(folder)))
    s = _summary(write_reports(folder))
    assert note in s["notes"] and s["validity"]["valid"] is True
    assert s["counts"]["total"] == total  # everything else was read
    assert note in summarize(load_run(folder))["notes"]  # the object path reads it the same way


def test_no_readable_record_makes_the_run_invalid(folder):
    _write_lines(folder, [b"garbage"] * 5)
    out = write_reports(folder)
    s = _summary(out)
    assert s["validity"]["valid"] is False
    assert s["validity"]["reasons"][0] == ("requests.jsonl: none of its lines is a readable record "
                                           "(5 skipped; line 1: not valid JSON (a torn or corrupt line))")
    page = out["report.html"].read_text(encoding="utf-8")
    assert '<p class="banner" id="invalid">INVALID RUN — requests.jsonl: none of its lines' in page
    assert page.index('id="invalid"') < page.index("<h1>")  # the first thing on the page
    assert '<span class="badge invalid" id="overall">INVALID</span>' in page


@pytest.mark.parametrize("name,content,note,invalid", [
    ("meta.json", b"{not json", "meta.json: not valid JSON: ignored", True),
    ("meta.json", b"[1, 2]", "meta.json: holds a JSON list, not an object: ignored", True),
    ("meta.json", json.dumps({"load_start_s": "x", "interrupted": False, "backend": {"gpu_count": "two"}}).encode(),
     "meta.json: 'load_start_s', 'backend.gpu_count' have the wrong type: ignored", False),
    ("meta.json", json.dumps({"load_start_s": 0.0, "load_end_s": 12.0, "interrupted": "no"}).encode(),
     "meta.json: 'interrupted' has the wrong type: ignored", True),
    ("scenario.yaml", b"name: [unclosed\n  load: {", "scenario.yaml: line 2: not valid YAML (while parsing", True),
    ("scenario.yaml", b"- 1\n- 2\n", "scenario.yaml: holds a YAML list, not a scenario mapping: ignored", True),
    ("scenario.yaml", b"name: \xff\n", "scenario.yaml: not UTF-8 text (byte 6): ignored", True),
    ("scenario.yaml", b"name: x\nload: {warmup_s: soon}\ncost: {gpu_price_usd_per_hour: cheap}\nsla: guide\n",
     "scenario.yaml: 'load.warmup_s', 'cost.gpu_price_usd_per_hour' have the wrong type: ignored", True),
    ("gpu.csv", b"t_s,gpu_index,name,util_gpu_pct\n1,0,A,50\nnan,0,A,50\n2,x,A,50\n3,0,A,abc\n4,0,A,nan\n",
     "gpu.csv: 3 rows skipped (line 3: 't_s' is not a finite number)", False),
    ("gpu.csv", b"a,b,c\n1,2,3\n", "gpu.csv: no 't_s' column in its header: file ignored", False),
    ("server_metrics.csv", b"t_s,queue_depth\n1,2\n\x00\x00,3\n",
     "server_metrics.csv: 1 row skipped (line 3: 't_s' is not a number)", False),
    ("baseline_summary.json", b"{bad", "baseline_summary.json: not valid JSON: no regression section", True),
])
def test_each_damaged_file_is_one_note(folder, name, content, note, invalid):
    (folder / name).write_bytes(content)
    s = _summary(write_reports(folder))
    assert [n for n in s["notes"] if n.startswith(note)], s["notes"]  # one line each, the whole note shown
    assert s["validity"]["valid"] is not invalid, s["validity"]


def test_unusable_policy_is_invalid_and_never_passes(folder):
    (folder / "scenario.yaml").write_text("name: x\nsla: {name: p, rows: []}\n", encoding="utf-8")
    s = _summary(write_reports(folder))
    assert s["sla"]["overall"] == "INCONCLUSIVE" and s["validity"]["valid"] is False
    assert any("SLA policy unusable" in r for r in s["validity"]["reasons"])


@pytest.mark.parametrize("make,message", [
    (lambda d: d / "nope", "does not exist"),
    (lambda d: (d / "f").write_text("x") and d / "f", "is a file, not a run folder"),
    (lambda d: d, "is not a slabench run folder (no scenario.yaml, meta.json, requests.jsonl)"),
])
def test_not_a_run_folder_is_one_config_error(tmp_path, make, message):
    with pytest.raises(ConfigError, match="give the folder `slabench run` wrote") as exc:
        write_reports(make(tmp_path))
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert isinstance(exc.value, RunFolderError)


def test_requests_jsonl_that_is_a_folder_is_invalid_not_a_crash(folder):
    (folder / "requests.jsonl").unlink()
    (folder / "requests.jsonl").mkdir()
    s = _summary(write_reports(folder))
    assert s["validity"]["valid"] is False and s["validity"]["reasons"][0].startswith("requests.jsonl cannot be read")


def test_attach_baseline_never_overwrites_a_damaged_meta(folder, tmp_path):
    from harness.report import attach_baseline

    base = tmp_path / "base.json"
    base.write_text(json.dumps({"metrics": {}}), encoding="utf-8")
    (folder / "meta.json").write_text("[broken", encoding="utf-8")
    with pytest.raises(RunFolderError, match="meta.json is not a readable JSON object"):
        attach_baseline(folder, base)
    assert (folder / "meta.json").read_text(encoding="utf-8") == "[broken"
