"""`slabench k8s-load`: the master Job, workers, headless Service, ConfigMap, PVC and reader pod validate
against the Kubernetes schemas; the commands in them parse with the real CLI and agree with each other."""

from __future__ import annotations

import pytest
import yaml

from harness.cli import _parser, main
from harness.config import parse_scenario
from harness.deploy.k8sload import FILES, run_k8s_load

from tests.unit.deploy.checks import load_validated, slabench_commands
from tests.unit.deploy.conftest import SCENARIO

TARGET = "http://llm-tiny.llm.svc:8000"


@pytest.fixture
def scenario_file(tmp_path):
    """The tiny scenario as a closed loop: workers scale out users (an open-loop schedule is refused)."""
    p = tmp_path / "tiny.yaml"
    p.write_text(SCENARIO.replace("mode: open, arrival: poisson, rate_rps: 4", "mode: closed, users: 4"),
                 encoding="utf-8")
    return p


def manifests(out) -> dict:
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    return {p.stem: load_validated(p) for p in out.glob("*.yaml")}


def command(doc: dict) -> list[str]:
    spec = doc["spec"]["template"]["spec"] if doc["kind"] != "Pod" else doc["spec"]
    return spec["containers"][0]["command"]


def test_master_workers_and_service_agree(scenario_file, tmp_path):
    out = run_k8s_load(scenario_file, 5, target=TARGET, namespace="loadtest", api_key_secret="llm-tiny-api-key",
                       image="registry.example.com/slabench:9", out_dir=tmp_path / "l", echo=lambda s: None)
    m = manifests(out.out_dir)
    master, worker = command(m["master-job"]), command(m["workers"])
    assert master[0] == worker[0] == "slabench"
    margs, wargs = _parser().parse_args(master[1:]), _parser().parse_args(worker[1:])
    assert margs.command == "run" and margs.expect_workers == 5 == m["workers"]["spec"]["replicas"]
    assert margs.target == TARGET and margs.api_key_env == "SLABENCH_API_KEY"
    assert wargs.command == "worker" and wargs.api == "openai-chat"
    # the workers find the master through the headless Service, on the port it binds
    svc = m["master-service"]
    assert svc["spec"]["clusterIP"] == "None" and wargs.master_host == svc["metadata"]["name"]
    assert wargs.master_port == margs.master_bind_port == svc["spec"]["ports"][0]["port"]
    assert svc["spec"]["selector"] == m["master-job"]["spec"]["template"]["metadata"]["labels"]
    assert m["master-job"]["spec"]["backoffLimit"] == 0
    # both read the key from the Secret, by the variable name the master passes on
    for doc in (m["master-job"], m["workers"]):
        env = doc["spec"]["template"]["spec"]["containers"][0]["env"]
        assert env == [{"name": "SLABENCH_API_KEY", "valueFrom": {"secretKeyRef": {"name": "llm-tiny-api-key",
                                                                                   "key": "api-key"}}}]
        assert doc["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example.com/slabench:9"
    # the scenario the master runs is the ConfigMap's, a valid scenario with its SLA inlined
    assert margs.scenario.as_posix() == "/scenario/scenario.yaml"
    scn = parse_scenario(yaml.safe_load(m["configmap"]["data"]["scenario.yaml"]))
    assert scn.name == "tiny" and not isinstance(scn.sla, str) and scn.sla.min_samples == 20
    # the run folder lands on the PVC, which the reader pod mounts to copy it out
    claim = m["results-pvc"]["metadata"]["name"]
    job_vols = m["master-job"]["spec"]["template"]["spec"]["volumes"]
    assert {"name": "results", "persistentVolumeClaim": {"claimName": claim}} in job_vols
    assert m["results-reader"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim
    assert {d["metadata"]["namespace"] for d in m.values()} == {"loadtest"}
    readme = (out.out_dir / "README.md").read_text(encoding="utf-8")
    assert "kubectl cp -n loadtest" in readme
    cmds = slabench_commands(readme)
    assert [c[0] for c in cmds] == ["report"]
    for argv in cmds:
        _parser().parse_args(argv)


def test_dataset_travels_in_the_configmap(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "p.jsonl").write_text('{"prompt": "hello there"}\n{"prompt": "hi"}\n', encoding="utf-8")
    scn = tmp_path / "d.yaml"
    scn.write_text("name: ds\nbackend: {type: external, url: 'http://10.0.0.9:8000', model: m}\n"
                   "load: {users: 2, duration_s: 10}\nworkload: {dataset: {path: data/p.jsonl}}\n", encoding="utf-8")
    out = run_k8s_load(scn, 2, out_dir=tmp_path / "l", echo=lambda s: None)
    m = manifests(out.out_dir)
    data = m["configmap"]["data"]
    assert data["dataset.jsonl"].startswith('{"prompt": "hello there"}')
    assert parse_scenario(yaml.safe_load(data["scenario.yaml"])).workload.dataset.path == "dataset.jsonl"
    items = m["workers"]["spec"]["template"]["spec"]["volumes"][0]["configMap"]["items"]
    assert {"key": "dataset.jsonl", "path": "dataset.jsonl"} in items
    assert "--target" not in command(m["master-job"])  # the scenario's external server is the target


def error(capsys, *argv) -> str:
    assert main(["k8s-load", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def test_bad_inputs(scenario_file, tmp_path, capsys):
    assert "worker pods cannot reach" in error(capsys, str(scenario_file), "--workers", "2")
    for n in ("0", "1001"):
        assert "--workers" in error(capsys, str(scenario_file), "--workers", n, "--target", TARGET)
    assert "--target" in error(capsys, str(scenario_file), "--workers", "2", "--target", "ftp://x")
    ext = tmp_path / "e.yaml"
    ext.write_text("name: e\nbackend: {type: external, url: 'http://10.0.0.9:8000', api_key_env: K}\n",
                   encoding="utf-8")
    assert "--api-key-secret" in error(capsys, str(ext), "--workers", "2")
    assert "--image" in error(capsys, str(scenario_file), "--workers", "2", "--target", TARGET, "--image", "a b")
    assert "missing.yaml" in error(capsys, str(tmp_path / "missing.yaml"), "--workers", "2")


def test_an_open_loop_or_replay_scenario_is_refused_in_one_line(tmp_path, capsys):
    # One dispatcher process sends an open-loop or replayed schedule: workers would each send it again.
    (tmp_path / "t.jsonl").write_text('{"timestamp": 0, "input_length": 10, "output_length": 2}\n')
    for mode, extra in (("open", "rate_rps: 5"), ("replay", "")):
        p = tmp_path / f"{mode}.yaml"
        trace = "workload: {trace: {path: t.jsonl, format: mooncake}}" if mode == "replay" else ""
        p.write_text(f"name: x\nbackend: {{type: sim}}\nload: {{mode: {mode}{', ' + extra if extra else ''}}}\n{trace}\n")
        assert main(["k8s-load", str(p), "--workers", "2", "--target", TARGET, "--out", str(tmp_path / mode)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"load.mode: {mode}" in err[0] and "one dispatcher" in err[0]
        assert main(["run", str(p), "--expect-workers", "2"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--expect-workers" in err[0] and mode in err[0]
