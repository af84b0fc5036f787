"""Nothing is dropped at stop: requests in flight when the load ends get load.drain_timeout_s, then are
recorded as cancelled_at_stop (also from Locust workers); an open loop accounts for every scheduled
request and ends on time. Real processes on 127.0.0.1 (the sim, Locust), short bounded runs.
"""

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from harness.backends.sim import SimProcessBackend
from harness.config import SimBackend, parse_scenario, resolve_scenario
from harness.load.locust_runner import run_load
from harness.records import iter_records
from tests.procs import wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def slabench_run(tmp_path, scenario: str, *args, timeout=120):
    path = tmp_path / "s.yaml"
    path.write_text(scenario)
    out = tmp_path / "run"
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(path), "--out", str(out), *args],
                         cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in res.stderr, res.stderr[-2000:]
    return res, out, time.monotonic() - t0


def folder(out: Path):
    recs = list(iter_records(out / "requests.jsonl"))
    return recs, json.loads((out / "locust_meta.json").read_text())


STALL = """
name: stall
backend: {type: sim, fixed_ttft_ms: 20, fixed_itl_ms: 5, extra_args: ["--fault-stall-s", "60"]}
load: {api: openai-chat, users: 2, duration_s: 2, drain_timeout_s: 1}
workload: {prompt_tokens: 8, output_tokens: 16}
"""


def check_cancelled(recs, meta, n):
    assert len(recs) == n and len({r.request_id for r in recs}) == n
    for r in recs:  # the server stalls mid-stream (after 8 of 16 tokens): TTFT and tokens so far are kept
        assert (r.ok, r.error_type, r.status) == (False, "cancelled_at_stop", 200)
        assert r.ttft_s is not None and 0.02 <= r.ttft_s < 1.0 and 1 <= r.output_tokens < 16
        assert "drain_timeout_s (1 s)" in r.error
    assert meta["cancelled_at_stop"] == n
    # The load stopped at the end of its duration; the drain took its 1 s and no more (a few s of slack
    # for Locust's once-a-second shape tick and a loaded machine).
    assert meta["load_end_s"] - meta["load_start_s"] < 2 + 1.5
    assert 1.0 <= meta["drain_end_s"] - meta["load_end_s"] < 1 + 2.0


def test_requests_in_flight_at_stop_are_recorded_as_cancelled_not_dropped(tmp_path):
    res, out, wall_s = slabench_run(tmp_path, STALL)
    recs, meta = folder(out)
    check_cancelled(recs, meta, 2)
    summary = json.loads((out / "summary.json").read_text())
    c = summary["counts"]
    assert (c["cancelled_at_stop"], c["errors"], c["ok"]) == (2, 0, 0)
    assert summary["rates"]["error_rate_pct"] is None  # nothing finished: no error rate, not 100 %
    assert summary["metrics"]["ttft_s"]["n"] == 2  # the first tokens came: their TTFT is measured
    # Nothing succeeded, so the run measured nothing of the server: never exit 0.
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert wall_s < 60


def test_cancelled_records_from_workers_reach_the_master(tmp_path):
    res, out, _ = slabench_run(tmp_path, STALL, "--processes", "2")
    recs, meta = folder(out)
    assert meta["role"] == "master" and len(meta["workers"]) == 2
    check_cancelled(recs, meta, 2)
    assert len({r.user.rsplit("-", 2)[1] for r in recs}) == 2  # one from each worker process


def test_requests_that_finish_within_the_drain_are_ordinary_records(tmp_path):
    # Each request takes ~1.2 s; the drain (5 s) lets the ones in flight at stop finish normally.
    cfg = SimBackend(fixed_ttft_ms=20, fixed_itl_ms=40)
    scn = resolve_scenario(parse_scenario({"name": "d", "backend": cfg.model_dump(),
                                           "load": {"users": 2, "duration_s": 2, "drain_timeout_s": 5},
                                           "workload": {"prompt_tokens": 8, "output_tokens": 30}}))
    with SimProcessBackend(cfg, tmp_path / "backend.log") as b:
        outcome = run_load(scn, b.url, b.model, tmp_path, echo=lambda s: None)
    recs, meta = folder(tmp_path)
    assert outcome.reason == "completed" and recs and all(r.ok for r in recs), [r.error for r in recs][:2]
    assert meta["cancelled_at_stop"] == 0 and meta["completed"] == len(recs)
    assert any(r.end_s > meta["load_end_s"] for r in recs)  # some finished during the drain: still recorded


OPEN = """
name: open
backend: {type: sim, fixed_ttft_ms: 100, fixed_itl_ms: 20}
load: {api: openai-chat, mode: open, rate_rps: 500, arrival: constant, duration_s: 2, max_in_flight: 20,
       drain_timeout_s: 0.5}
workload: {prompt_tokens: 8, output_tokens: 32}
"""


def test_open_loop_past_capacity_accounts_for_every_request_and_ends_on_time(tmp_path):
    # 1,000 requests due in 2 s; each takes ~0.7 s and at most 20 run at once: ~60 can be sent.
    res, out, wall_s = slabench_run(tmp_path, OPEN)
    recs, meta = folder(out)
    ol = meta["open_loop"]
    assert ol["scheduled"] == 1000 and ol["counted_exactly"]
    assert ol["sent"] + ol["not_sent"] == ol["scheduled"]
    assert 20 <= ol["sent"] <= 200 and ol["not_sent"] >= 800 and ol["delayed_by_cap"] >= 1
    assert len(recs) == ol["sent"] == meta["issued"]  # every request sent has a record, none dropped
    assert sum(r.error_type == "cancelled_at_stop" for r in recs) == meta["cancelled_at_stop"]
    assert all(r.scheduled_s is not None and r.sent_s < meta["load_start_s"] + 2 + 0.05 for r in recs)
    assert meta["load_end_s"] - meta["load_start_s"] < 2 + 0.5  # dispatch stopped at duration_s
    assert meta["drain_end_s"] - meta["load_end_s"] < 0.5 + 1.0
    # From locust_meta to meta.json and the summary.
    assert json.loads((out / "meta.json").read_text())["open_loop"] == ol
    summary = json.loads((out / "summary.json").read_text())
    lg = summary["load_generator"]
    assert (lg["scheduled"], lg["sent"], lg["not_sent"]) == (1000, ol["sent"], ol["not_sent"])
    assert any("scheduled requests were never sent" in n for n in summary["notes"])
    assert f"{ol['not_sent']} never sent" in (out / "report.html").read_text()
    # The load asked for was not delivered: an invalid run, never a verdict.
    assert res.returncode == 2 and "offered load was not delivered" in res.stderr, res.stderr[-2000:]
    assert summary["validity"]["valid"] is False
    assert wall_s < 60


def first_tokens_seen(out: Path) -> int:
    """How many requests the sim has sent a first token for (0 until meta.json names its URL)."""
    try:
        url = json.loads((out / "meta.json").read_text())["backend"]["url"]
        with urllib.request.urlopen(url + "/sim/first-tokens", timeout=5) as r:
            return len(json.loads(r.read())["first_token_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


@pytest.mark.parametrize("processes", [1, 2])
def test_an_interrupted_run_keeps_the_requests_in_flight(tmp_path, processes):
    # SIGTERM mid-run (what Ctrl-C, a crash or a deadline does to Locust) once both streams have
    # started: Locust used to die on it outright (its handler comes only after a shape run) and
    # --processes workers quit before forwarding; now both records are kept, cancelled at stop.
    (tmp_path / "s.yaml").write_text(STALL.replace("duration_s: 2", "duration_s: 60"))
    out = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(tmp_path / "s.yaml"), "--out", str(out),
                          "--processes", str(processes)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        assert wait_until(lambda: first_tokens_seen(out) >= 2, timeout_s=60)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert time.monotonic() - t0 < 1 + 20  # the drain, then the reports; not the 60 s of the run
    recs, meta = folder(out)
    assert [r.error_type for r in recs] == ["cancelled_at_stop"] * 2 and meta["cancelled_at_stop"] == 2
    assert all(r.ttft_s is not None for r in recs)
