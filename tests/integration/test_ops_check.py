"""`slabench check` against the simulated backend: auth on/off, rate limiting on/off, a server that
is down, a failing server, and the pre-deployment items read from files. Real sockets, 127.0.0.1."""

import json
from pathlib import Path

import pytest

from harness import cli
from harness.config import SlaPolicy, SlaRow
from harness.ops.check import main_check, run_check
from harness.sim.common import FaultConfig
from harness.sim.server import ServeOptions
from harness.sim.testing import running_server

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
MONITORING = {"alerts_file": ROOT / "monitoring" / "alerts.yaml",
              "dashboard_file": ROOT / "monitoring" / "grafana-dashboard.json"}
FAST = {"fixed_ttft_ms": 5.0, "fixed_itl_ms": 1.0}


def sim(**kw):
    return running_server(ServeOptions(**{"flavor": "vllm", **FAST, **kw}))


def by_id(checklist):
    return {ln["id"]: ln for ln in checklist["lines"]}


def test_auth_and_rate_limit_on_all_post_checks_pass(tmp_path):
    with sim(api_key="s3cret", rate_limit_rps=5, rate_limit_burst=30) as s:
        c = run_check(s.url, "s3cret", None, tmp_path, probe_requests=20, burst=50, **MONITORING)
    lines = by_id(c)
    assert lines["auth"]["verdict"] == "PASS", lines["auth"]
    assert lines["auth"]["details"]["no_key_status"] == 401 and lines["auth"]["details"]["wrong_key_status"] == 401
    assert '{"error": "Unauthorized"}' in lines["auth"]["evidence"]
    rl = lines["rate_limit"]
    assert rl["verdict"] == "PASS" and rl["details"]["by_status"].get("429", 0) > 10
    assert 2.5 <= rl["details"]["observed_limit_rps"] <= 9, rl["evidence"]
    assert rl["details"]["limit_header"] == "5" and "observed limit ≈" in rl["evidence"]
    assert lines["health"]["verdict"] == "PASS" and lines["metrics"]["verdict"] == "PASS"
    assert lines["metrics"]["details"]["counter_delta"] >= 20
    assert lines["error_rate"]["verdict"] == "PASS" and lines["error_rate"]["details"]["n"] == 20
    # A p99 from 20 probes is not conclusive (the guide policy needs 100 samples): never PASS, and the
    # checklist overall is not PASS either; exit 0 (no line failed: the tail is `slabench run`'s job).
    lat = lines["latency:ttft_s:p99"]
    assert lat["verdict"] == "INCONCLUSIVE" and "about 100 ok requests; `slabench run` measures it" in lat["evidence"]
    assert lines["cost"]["verdict"] == "PASS" and lines["cost"]["details"]["gpu"] == "a100-80gb"
    assert c["exit_code"] == 0 and c["usage_error"] is None and c["overall"] == "INCONCLUSIVE"
    assert c["counts"]["INCONCLUSIVE"] == 1 and any("INCONCLUSIVE" in n for n in c["notes"])
    saved = json.loads((tmp_path / "checklist.json").read_text())
    assert [ln["verdict"] for ln in saved["lines"]] == [ln["verdict"] for ln in c["lines"]]
    html = (tmp_path / "checklist.html").read_text()
    assert "Rate limiting present" in html and "Content-Security-Policy" in html
    probes = (tmp_path / "probe_requests.jsonl").read_text().splitlines()
    assert len(probes) == 20 and all(json.loads(p)["ok"] for p in probes)


def test_auth_on_but_no_key_given_is_a_usage_error(tmp_path):
    with sim(api_key="s3cret") as s:
        c = run_check(s.url, None, None, tmp_path, probe_requests=4, burst=5, burst_window_s=0.2)
    lines = by_id(c)
    assert lines["auth"]["verdict"] == "WARN" and lines["auth"]["details"]["needs_key"]
    assert lines["error_rate"]["verdict"] == "SKIP" and lines["rate_limit"]["verdict"] == "SKIP"
    assert c["exit_code"] == 2 and "--api-key-env" in c["usage_error"]


def test_key_configured_but_not_enforced_fails(tmp_path):
    with sim() as s:
        c = run_check(s.url, "s3cret", None, tmp_path, probe_requests=4, burst=5, burst_window_s=0.2)
    auth = by_id(c)["auth"]
    assert auth["verdict"] == "FAIL" and auth["details"]["no_key_status"] == 200
    assert c["exit_code"] == 1 and c["overall"] == "FAIL"


def test_tgi_auth_on_empty_401_passes(tmp_path):
    with running_server(ServeOptions(flavor="tgi", max_total_tokens=2048, max_input_tokens=1024, api_key="t0k",
                                     **FAST)) as s:
        c = run_check(s.url, "t0k", None, tmp_path, probe_requests=8, burst=0)
    lines = by_id(c)
    assert lines["auth"]["verdict"] == "PASS" and "HTTP 401 (empty body)" in lines["auth"]["evidence"]
    assert lines["metrics"]["verdict"] == "PASS" and lines["metrics"]["details"]["kind"] == "tgi"
    assert lines["rate_limit"]["verdict"] == "SKIP"
    assert c["exit_code"] == 0


def test_auth_and_rate_limit_off_warn(tmp_path):
    with sim() as s:
        c = run_check(s.url, None, None, tmp_path, probe_requests=8, burst=20, burst_window_s=0.5)
    lines = by_id(c)
    assert lines["auth"]["verdict"] == "WARN" and "not enforced" in lines["auth"]["evidence"]
    assert lines["rate_limit"]["verdict"] == "WARN" and lines["rate_limit"]["details"]["by_status"] == {"200": 20}
    assert c["exit_code"] == 0 and c["overall"] == "INCONCLUSIVE"  # the p99 from 8 probes outranks the WARNs


def test_server_down_exits_2_and_still_writes_the_checklist(tmp_path):
    with sim() as s:
        url = s.url  # a port that was just released: nothing listens there now
    c = run_check(url, None, None, tmp_path)
    lines = by_id(c)
    assert lines["health"]["verdict"] == "FAIL" and lines["health"]["details"]["reachable"] is False
    assert all(lines[i]["verdict"] == "SKIP" for i in ("metrics", "auth", "rate_limit", "error_rate", "cost"))
    assert c["exit_code"] == 2 and "unreachable" in c["usage_error"]
    assert (tmp_path / "checklist.json").is_file() and (tmp_path / "checklist.html").is_file()


def test_failing_server_and_slow_latency_fail(tmp_path):
    policy = SlaPolicy(name="tight", rows=[SlaRow(metric="ttft_s", stat="p50", target=0.001, alert=0.002),
                                           SlaRow(metric="error_rate_pct", target=0.1, alert=1.0)])
    with sim(faults=FaultConfig(error_rate=0.5), seed=4) as s:
        c = run_check(s.url, None, policy, tmp_path, probe_requests=12, burst=0)
    lines = by_id(c)
    assert lines["error_rate"]["verdict"] == "FAIL" and lines["error_rate"]["details"]["errors"] > 0
    assert "http_5xx" in lines["error_rate"]["evidence"]
    assert lines["latency:ttft_s:p50"]["verdict"] == "FAIL"  # 5 ms TTFT vs a 2 ms alert
    assert c["exit_code"] == 1


def test_pre_deployment_from_a_passing_run_folder(tmp_path):
    run = tmp_path / "runs" / "demo-1"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"sla": {"overall": "PASS", "policy": {"name": "guide"}},
                                                  "run": {"scenario_name": "demo"}, "counts": {"ok": 90}}))
    (run / "meta.json").write_text(json.dumps({"backend": {"quantization": "awq", "gpu": "h100"}}))
    (run / "scenario.yaml").write_text("name: demo\nbackend: {type: sim, gpu: h100, quantization: awq}\n")
    with sim() as s:
        c = run_check(s.url, None, None, tmp_path / "out", probe_requests=4, burst=0,
                      run_dir_hint=tmp_path / "runs", **MONITORING)
    lines = by_id(c)
    assert lines["load_test"]["verdict"] == "PASS" and "demo-1" in lines["load_test"]["evidence"]
    assert lines["quantized"]["verdict"] == "PASS" and lines["quantized"]["details"]["quantization"] == "awq"
    # The shipped files chart and alert on the llm_* series (a guide-style server, `slabench run
    # --prometheus-port`); a vLLM server exposes vllm:*, so neither would show or fire anything here.
    assert lines["alerts"]["verdict"] == "WARN" and lines["alerts"]["details"]["rules"] == 10
    assert lines["alerts"]["details"]["missing"] == [] and "vllm:*" in lines["alerts"]["evidence"]
    assert lines["monitoring"]["verdict"] == "WARN" and lines["monitoring"]["details"]["panels_on_server"] == 0
    assert lines["rollback"]["verdict"] == "MANUAL"
    assert lines["cost"]["details"]["gpu"] == "h100"  # the run folder's GPU wins over /sim/gpu


def test_main_check_reads_the_key_from_the_environment(tmp_path, monkeypatch):
    printed, errors = [], []
    assert main_check("http://127.0.0.1:1", api_key_env="SLABENCH_TEST_KEY_UNSET", out_dir=tmp_path,
                      echo=printed.append, err=errors.append) == 2
    assert "SLABENCH_TEST_KEY_UNSET" in errors[0] and not printed
    assert main_check("localhost:8000", err=errors.append) == 2
    monkeypatch.setenv("SLABENCH_TEST_KEY", "env-key")
    with sim(api_key="env-key") as s:
        code = main_check(s.url, api_key_env="SLABENCH_TEST_KEY", out_dir=tmp_path / "c", probe_requests=4,
                          burst=0, echo=printed.append, err=errors.append)
    assert code == 0, printed
    text = "\n".join(printed)
    assert "[PASS] Authentication enforced" in text and "checklist.html:" in text
    assert "[INCONCLUSIVE] Latency within SLA: Request latency (p99, TTFT)" in text
    assert "overall INCONCLUSIVE" in text


def test_enough_probes_make_the_tail_conclusive(tmp_path):
    policy = SlaPolicy(name="small", min_samples=30,
                       rows=[SlaRow(metric="ttft_s", stat="p99", target=0.5, alert=1.0)])
    with sim() as s:
        c = run_check(s.url, None, policy, tmp_path, probe_requests=30, burst=0)
    lat = by_id(c)["latency:ttft_s:p99"]
    assert lat["verdict"] == "PASS" and lat["details"]["n"] == 30 and not lat["details"]["insufficient_samples"]


def test_cli_judges_only_the_files_named(tmp_path, monkeypatch, capsys):
    """Inside the clone (monitoring/ right here) nothing passes unnamed; a vLLM dashboard passes, a
    broken rules file is a FAIL line naming it (exit 1), a path that does not exist is exit 2."""
    monkeypatch.chdir(ROOT)
    dash = tmp_path / "vllm-dashboard.json"
    dash.write_text(json.dumps({"panels": [{"title": "Running", "targets": [{"expr": "vllm:num_requests_running"}]},
                                           {"title": "GPU", "targets": [{"expr": "DCGM_FI_DEV_GPU_UTIL"}]}]}))
    broken = tmp_path / "rules.yaml"
    broken.write_text("groups:\n- name: g\n  rules:\n  - alert: A\n")
    base = ["--probe-requests", "4", "--burst", "0"]
    before = set((ROOT / "reports").glob("check-*"))
    with sim() as s:
        assert cli.main(["check", s.url, "--out", str(tmp_path / "a"), *base]) == 0
        plain = capsys.readouterr().out
        code = cli.main(["check", s.url + "/v1", "--out", str(tmp_path / "b"), "--dashboard", str(dash),
                         "--alert-rules", str(broken), *base])
        named = capsys.readouterr().out
        assert cli.main(["check", s.url, "--alert-rules", str(tmp_path / "absent.yaml"), *base]) == 2
    assert "[todo] Alerts set up — no --alert-rules FILE given" in plain
    assert "[todo] Monitoring configured — server /metrics answers; no --dashboard FILE" in plain
    assert code == 1, named
    assert f"[PASS] Monitoring configured — {dash}: 1 of 2 panels chart series this server exposes" in named
    assert f"[FAIL] Alerts set up — {broken}: groups[0].rules[0] has no 'expr'" in named
    assert "note: the URL ends in /v1" in named
    err = capsys.readouterr().err
    assert err.strip().endswith("absent.yaml: no such file (give the path of your Prometheus rules file, e.g. "
                                "from `slabench alerts POLICY > rules.yaml`)")
    assert set((ROOT / "reports").glob("check-*")) == before  # the usage error wrote no folder
