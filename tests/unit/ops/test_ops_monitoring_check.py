"""`check --alert-rules / --dashboard`: only named files are judged (the repo's samples never pass by
being nearby), rules are compared with what `slabench alerts` writes for the policy, dashboards with
the server's series; a broken file is a FAIL line naming it, a missing path a usage error."""

import json
from pathlib import Path

import pytest
import yaml

from harness.config import SlaPolicy, SlaRow, load_sla
from harness.ops.alerts import main_alerts
from harness.ops.dashboard import main_dashboard
from harness.ops.exporter import EXPOSED_SAMPLE_NAMES
from harness.ops.monitoring_files import (
    alerts_line, input_problem, monitoring_line, promql_series, read_dashboard, read_rules,
)
from harness.ops.predeploy import pre_deployment_lines

ROOT = Path(__file__).resolve().parents[3]
GUIDE = load_sla(ROOT / "scenarios" / "sla" / "guide.yaml")
VLLM = {"vllm:num_requests_running", "vllm:e2e_request_latency_seconds_bucket", "vllm:request_success_total",
        "vllm:request_success", "process_cpu_seconds_total"}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def vllm_dashboard(tmp_path: Path) -> Path:
    rows = {"dashboard": {"panels": [
        {"type": "row", "title": "Serving", "panels": [
            {"title": "Running", "targets": [{"expr": 'vllm:num_requests_running{model_name="$model"}'}]}]},
        {"title": "E2E p99", "targets": [{"expr": "histogram_quantile(0.99, sum by (le) "
                                                  "(rate(vllm:e2e_request_latency_seconds_bucket[$__rate_interval])))"}]},
        {"title": "GPU util", "targets": [{"expr": "avg(DCGM_FI_DEV_GPU_UTIL)"}]},
        {"title": "Notes", "type": "text"}]}}
    return write(tmp_path / "dash.json", json.dumps(rows))


@pytest.mark.parametrize("expr,names", [
    ('sum(rate(llm_requests_total{status="ok"}[5m])) / sum(rate(llm_requests_total[5m]))', {"llm_requests_total"}),
    ("histogram_quantile(0.99, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket[$__rate_interval])))",
     {"vllm:e2e_request_latency_seconds_bucket"}),
    ("sum(tgi_queue_size) without (instance) > bool 5 offset 1h", {"tgi_queue_size"}),
    ('up{job="${job}"} and on(instance) node_load1 * 1e3', {"up", "node_load1"}),
])
def test_promql_series_names_only_metrics(expr, names):
    assert promql_series(expr) == names


def test_no_files_named_means_todo_lines_even_inside_the_clone(monkeypatch):
    monkeypatch.chdir(ROOT)  # monitoring/alerts.yaml and grafana-dashboard.json are right here
    lines = {ln["id"]: ln for ln in pre_deployment_lines(None, None, None, "PASS", GUIDE, VLLM)}
    assert lines["alerts"]["verdict"] == "MANUAL" and lines["monitoring"]["verdict"] == "MANUAL"
    assert "--alert-rules FILE" in lines["alerts"]["evidence"]
    assert "`slabench alerts guide > rules.yaml`" in lines["alerts"]["evidence"]
    assert "--dashboard FILE" in lines["monitoring"]["evidence"]
    assert "--run-dir RUN" in lines["load_test"]["evidence"]


def test_generated_rules_cover_the_policy(tmp_path):
    rules = write(tmp_path / "rules.yaml", main_alerts(GUIDE))
    ln = alerts_line(rules, GUIDE, None)
    assert ln["verdict"] == "PASS" and ln["details"]["rules"] == 10 and ln["details"]["missing"] == []
    assert "covering the 10 alerts of SLA policy 'guide'" in ln["evidence"]
    # Served where the llm_* series exist (the exporter / a guide-style server): still a pass.
    assert alerts_line(rules, GUIDE, set(EXPOSED_SAMPLE_NAMES))["verdict"] == "PASS"


def test_rules_over_series_the_server_lacks_warn(tmp_path):
    ln = alerts_line(write(tmp_path / "rules.yaml", main_alerts(GUIDE)), GUIDE, VLLM)
    assert ln["verdict"] == "WARN" and "query llm_* series" in ln["evidence"] and "vllm:*" in ln["evidence"]


def test_missing_and_stale_alerts_are_named(tmp_path):
    data = yaml.safe_load(main_alerts(GUIDE))
    rules = data["groups"][0]["rules"]
    dropped = rules.pop(0)["alert"]
    rules[0]["expr"] = rules[0]["expr"].replace("> 1", "> 9")
    path = write(tmp_path / "rules.yaml", yaml.safe_dump(data))
    ln = alerts_line(path, GUIDE, None, "guide")
    assert ln["verdict"] == "WARN" and ln["details"]["missing"] == [dropped]
    assert ln["details"]["differ"] == [rules[0]["alert"]]
    assert "missing 1 of the 10 alerts" in ln["evidence"] and dropped in ln["evidence"]
    assert "regenerate with `slabench alerts guide > rules.yaml`" in ln["evidence"]
    # The same file checked against another policy: its thresholds are that policy's, not these.
    tight = SlaPolicy(name="tight", rows=[SlaRow(metric="ttft_s", stat="p99", target=0.2, alert=0.4)])
    other = alerts_line(write(tmp_path / "guide.yaml", main_alerts(GUIDE)), tight, None)
    assert other["verdict"] == "WARN" and other["details"]["missing"] == []
    assert other["details"]["differ"] == ["LlmTtftP99AboveTarget", "LlmTtftP99AboveAlert"]


def test_prometheus_operator_rule_resource_is_read(tmp_path):
    crd = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": {"name": "x"},
           "spec": yaml.safe_load(main_alerts(GUIDE))}
    assert len(read_rules(write(tmp_path / "crd.yaml", yaml.safe_dump(crd)))) == 10


@pytest.mark.parametrize("text,problem", [
    ("groups: [\n  oops", "is not valid YAML at line"),
    ("groups: 3\n", "needs a top-level 'groups:' list"),
    ("- a\n- b\n", "needs a top-level 'groups:' list"),
    ("groups:\n- name: g\n", "groups[0] needs a 'rules:' list"),
    ("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n  - alert: B\n", "groups[0].rules[1] has no 'expr'"),
    ("groups:\n- name: g\n  rules:\n  - expr: up\n", "needs an 'alert:' or 'record:' name"),
    ("groups:\n- name: g\n  rules:\n  - record: job:up\n    expr: sum(up)\n", "holds no alerting rules"),
])
def test_broken_rules_file_fails_naming_file_and_problem(tmp_path, text, problem):
    path = write(tmp_path / "rules.yaml", text)
    ln = alerts_line(path, GUIDE, VLLM)
    assert ln["verdict"] == "FAIL" and problem in ln["evidence"] and str(path) in ln["evidence"]
    assert "\n" not in ln["evidence"]


def test_unreadable_bytes_fail(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_bytes(b"\xff\xfe\x00groups")
    assert "is not UTF-8 text" in alerts_line(path, GUIDE)["evidence"]
    assert monitoring_line(path, "PASS", VLLM)["verdict"] == "FAIL"


def test_dashboard_over_the_servers_series_passes(tmp_path):
    path = vllm_dashboard(tmp_path)
    assert [t for t, _ in read_dashboard(path)] == ["E2E p99", "GPU util", "Running"]  # row's panel included
    ln = monitoring_line(path, "PASS", VLLM)
    assert ln["verdict"] == "PASS" and ln["details"]["panels"] == 3 and ln["details"]["panels_on_server"] == 2
    assert ln["details"]["panels_not_on_server"] == ["GPU util"] and "2 of 3 panels" in ln["evidence"]


def test_shipped_dashboard_matches_llm_series_not_vllm(tmp_path):
    path = write(tmp_path / "d.json", main_dashboard())
    assert monitoring_line(path, "PASS", set(EXPOSED_SAMPLE_NAMES))["details"]["panels_on_server"] == 8
    ln = monitoring_line(path, "WARN", VLLM)
    assert ln["verdict"] == "WARN" and "none of its 8 panels" in ln["evidence"] and "llm_*" in ln["evidence"]


@pytest.mark.parametrize("text,problem", [
    ('{"panels": [', "is not valid JSON at line 1"),
    ("[1, 2]", "expected a JSON object"),
    ('{"title": "x"}', "it has no panels"),
    ('{"panels": [{"type": "text"}, {"targets": [{"rawSql": "select 1"}]}]}', "none of its 2 panels has a Prometheus"),
])
def test_broken_dashboard_fails_naming_file_and_problem(tmp_path, text, problem):
    path = write(tmp_path / "dash.json", text)
    for metrics in ("PASS", "SKIP", "FAIL"):  # the file's own problem comes first, whatever the server did
        ln = monitoring_line(path, metrics, VLLM)
        assert ln["verdict"] == "FAIL" and problem in ln["evidence"] and str(path) in ln["evidence"]


def test_dashboard_against_a_server_without_usable_metrics(tmp_path):
    path = vllm_dashboard(tmp_path)
    assert monitoring_line(path, "SKIP", None)["verdict"] == "MANUAL"
    assert "not usable" in monitoring_line(path, "FAIL", None)["evidence"]
    assert "pass --dashboard FILE" in monitoring_line(None, "SKIP", None)["evidence"]


def test_input_problem_for_missing_paths(tmp_path):
    assert "--alert-rules nope.yaml: no such file" in input_problem("--alert-rules", Path("nope.yaml"))
    assert "is a folder" in input_problem("--dashboard", tmp_path)
    assert input_problem("--dashboard", vllm_dashboard(tmp_path)) is None and input_problem("--x", None) is None
