"""Each API's Locust user against the simulated backend (the TGI user against the tgi flavor),
plus error classes arriving through the real client path. Short, bounded runs on 127.0.0.1.
"""

import json
import urllib.request

import pytest

from harness.backends.sim import SimProcessBackend
from harness.config import SimBackend, parse_scenario, resolve_scenario
from harness.load.locust_runner import run_load
from harness.records import iter_records

pytestmark = pytest.mark.integration


def run(tmp_path, api, flavor="vllm", users=4, duration_s=3, out_tokens=24, extra_args=(), load_extra=None,
        workload_extra=None, after=None):
    cfg = SimBackend(flavor=flavor, fixed_ttft_ms=20, fixed_itl_ms=5, extra_args=list(extra_args))
    load = {"api": api, "users": users, "duration_s": duration_s, **(load_extra or {})}
    if "user_stages" in load:
        del load["duration_s"]  # the stages set it
    workload = {"prompt_tokens": 12, "output_tokens": out_tokens, **(workload_extra or {})}
    scn = resolve_scenario(parse_scenario({"name": "u", "backend": cfg.model_dump(), "load": load,
                                           "workload": workload}))
    with SimProcessBackend(cfg, tmp_path / "backend.log") as b:
        outcome = run_load(scn, b.url, b.model, tmp_path, echo=lambda s: None)
        seen = after(b.url) if after else None
    recs = list(iter_records(tmp_path / "requests.jsonl"))
    return (outcome, recs, seen) if after else (outcome, recs)


@pytest.mark.parametrize("api,flavor", [("openai-chat", "vllm"), ("openai-completions", "vllm"),
                                        ("openai-chat", "tgi"), ("tgi-generate-stream", "tgi")])
def test_each_api_user_streams_and_records(tmp_path, api, flavor):
    outcome, recs = run(tmp_path, api, flavor)
    assert outcome.reason == "completed"
    assert len(recs) >= 8
    assert all(r.api == api for r in recs)
    assert all(r.ok for r in recs), [(r.error_type, r.error) for r in recs if not r.ok][:3]
    for r in recs:
        assert 0.020 <= r.ttft_s < 0.25  # never before the server sent it; accuracy is measured in make bench
        assert r.output_tokens <= 24 and r.output_tokens >= 1
        assert len(r.itl_s) == r.output_tokens - 1
        assert r.finish_reason
        assert r.prompt_tokens is not None and r.prompt_tokens >= 12
    if api != "tgi-generate-stream":  # OpenAI bodies force the length (ignore_eos) and usage is exact
        assert all(r.output_tokens == 24 and r.output_tokens_source == "usage" for r in recs)
    # Locust's own report sees the same requests.
    from harness.load.workload import API_PATHS
    assert API_PATHS[api] in (tmp_path / "locust.html").read_text()
    assert json.loads((tmp_path / "locust_meta.json").read_text())["completed"] == len(recs)


def test_server_errors_are_records_not_crashes(tmp_path):
    outcome, recs = run(tmp_path, "openai-chat", extra_args=["--fault-error-rate", "1.0"], duration_s=2)
    assert outcome.reason == "completed" and recs
    assert {r.error_type for r in recs} == {"http_5xx"}
    assert all(r.status >= 500 and not r.ok and r.error.startswith("HTTP 5") for r in recs)


def test_tgi_overload_inside_the_stream_is_overloaded_429(tmp_path):
    _, recs = run(tmp_path, "tgi-generate-stream", flavor="tgi", users=6, duration_s=2,
                  extra_args=["--max-concurrent-requests", "1"])
    kinds = {r.error_type for r in recs}
    assert "overloaded_429" in kinds and None in kinds  # some got through, the rest were refused
    refused = [r for r in recs if r.error_type == "overloaded_429"]
    assert all(r.status == 200 and r.ttft_s is None for r in refused)  # TGI sends it as an SSE event


def test_max_requests_stops_the_run(tmp_path):
    _, recs = run(tmp_path, "openai-chat", users=2, duration_s=30, load_extra={"max_requests": 5})
    assert len(recs) == 5  # issued requests are capped, so none beyond the limit is even sent


def test_open_loop_sends_on_schedule(tmp_path):
    _, recs = run(tmp_path, "openai-chat", duration_s=3,
                  load_extra={"mode": "open", "rate_rps": 20, "arrival": "constant"})
    assert 55 <= len(recs) <= 61
    lags = sorted(r.sent_s - r.scheduled_s for r in recs)
    assert lags[len(lags) // 2] < 0.005
    gaps = [b.scheduled_s - a.scheduled_s for a, b in zip(sorted(recs, key=lambda r: r.scheduled_s),
                                                            sorted(recs, key=lambda r: r.scheduled_s)[1:])]
    assert all(abs(g - 0.05) < 1e-6 for g in gaps)


def test_multi_turn_sessions_grow_their_history(tmp_path):
    _, recs = run(tmp_path, "openai-chat", users=2, duration_s=3, out_tokens=6,
                  load_extra={"think_time_s": 0.01, "think_time_max_s": 0.02})
    assert all(r.turn is None for r in recs)
    cfg = SimBackend(flavor="vllm", fixed_ttft_ms=5, fixed_itl_ms=1)
    scn = resolve_scenario(parse_scenario({
        "name": "mt", "backend": cfg.model_dump(), "load": {"api": "openai-chat", "users": 1, "duration_s": 3},
        "workload": {"prompt_tokens": 10, "output_tokens": 6, "turns": 3}}))
    out = tmp_path / "mt"
    out.mkdir()
    with SimProcessBackend(cfg, out / "backend.log") as b:
        run_load(scn, b.url, b.model, out, echo=lambda s: None)
    recs = list(iter_records(out / "requests.jsonl"))
    assert len(recs) >= 6 and all(r.ok for r in recs)
    assert [r.turn for r in recs[:6]] == [1, 2, 3, 1, 2, 3]
    # Each turn re-sends the conversation so far: prompt tokens grow by the previous turn's
    # prompt + reply (+ the chat template's per-message overhead), then reset with a new session.
    p = [r.prompt_tokens for r in recs[:4]]
    assert p[0] < p[1] < p[2] and p[3] == p[0]
    assert p[1] - p[0] >= 10 + 6


def test_dataset_scenario_runs_from_a_relative_path(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "prompts.jsonl").write_text(
        '{"prompt": "alpha beta gamma", "output_tokens": 5}\n{"prompt": "delta epsilon", "output_tokens": 9}\n')
    (tmp_path / "s.yaml").write_text("""
name: ds
backend: {type: sim, fixed_ttft_ms: 5, fixed_itl_ms: 1}
load: {users: 2, duration_s: 2}
workload: {dataset: {path: data/prompts.jsonl}}
""")
    root = Path(__file__).resolve().parents[2]
    res = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(tmp_path / "s.yaml"), "--out",
                          str(tmp_path / "r")], cwd=root, capture_output=True, text=True, timeout=90)
    assert res.returncode == 0, res.stderr[-1500:]
    recs = list(iter_records(tmp_path / "r" / "requests.jsonl"))
    assert recs and {r.output_tokens for r in recs} <= {5, 9} and len({r.output_tokens for r in recs}) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text((tmp_path / "s.yaml").read_text().replace("prompts.jsonl", "nope.jsonl"))
    res = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(bad), "--out", str(tmp_path / "r2")],
                         cwd=root, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "not found" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_closed_loop_user_stages_step_up(tmp_path):
    _, recs = run(tmp_path, "openai-chat", out_tokens=8,
                  load_extra={"user_stages": [{"duration_s": 2, "users": 1}, {"duration_s": 2, "users": 4}]})
    meta = json.loads((tmp_path / "locust_meta.json").read_text())
    t0 = meta["load_start_s"]
    first = {r.user for r in recs if r.sent_s < t0 + 1.5}
    later = {r.user for r in recs if r.sent_s > t0 + 3.0}
    assert len(first) == 1 and len(later) == 4
    assert meta["load_end_s"] - t0 < 4 + 3  # the shape ended the run after its stages


def test_users_spawned_together_start_evenly_at_the_spawn_rate(tmp_path):
    # Locust starts all 8 users in one batch (spawn rate 8/s); their first requests must still go
    # out 1/8 s apart, or a closed loop runs in lock-step.
    _, recs = run(tmp_path, "openai-completions", users=8, duration_s=3, out_tokens=4,
                  load_extra={"spawn_rate": 8})
    first = sorted(min(r.sent_s for r in recs if r.user == u) for u in {r.user for r in recs})
    assert len(first) == 8
    gaps = [b - a for a, b in zip(first, first[1:])]
    assert all(0.1 <= g <= 0.2 for g in gaps), gaps


def test_usage_in_every_chunk_gives_tokens_per_chunk(tmp_path):
    _, recs = run(tmp_path, "openai-completions", users=2, duration_s=2, out_tokens=6,
                  workload_extra={"usage_every_chunk": True})
    assert recs and all(r.ok for r in recs)
    # The sim (like vLLM without speculative decoding) sends one token per chunk, and says so.
    assert all(r.chunk_tokens == [1] * 6 and len(r.itl_s) == 5 for r in recs)


@pytest.mark.parametrize("api,flavor", [("openai-chat", "vllm"), ("tgi-generate-stream", "tgi")])
def test_request_ids_reach_the_server_and_no_token_is_seen_before_it_was_sent(tmp_path, api, flavor):
    def released(url):
        with urllib.request.urlopen(url + "/sim/first-tokens", timeout=10) as r:
            return json.loads(r.read())["first_token_s"]

    _, recs, server = run(tmp_path, api, flavor, users=3, duration_s=2, out_tokens=4, after=released)
    assert recs and all(r.ok for r in recs)
    for r in recs:  # X-Request-Id carried the record's id; both stamps are perf_counter on this host
        assert r.request_id in server
        assert 0 <= r.first_token_s - server[r.request_id] < 0.25
