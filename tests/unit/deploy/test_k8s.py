"""`slabench k8s`: manifests from a matrix folder, a sweep folder and a scenario validate against the
Kubernetes schemas, and their numbers follow from the measured capacity; bad SOURCEs are one line."""

from __future__ import annotations

import json
import math
import shlex
import shutil

import pytest
import yaml

from harness.cli import _parser, main
from harness.deploy.k8s import FILES, run_k8s
from harness.deploy.sizing import parse_quantity

from tests.unit.deploy.checks import load_validated, slabench_commands, validate


def quiet(_line: str) -> None:
    pass


def read_folder(out) -> dict:
    """Every manifest validated, parsed back; plus k8s.json and the README."""
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == sorted(FILES)
    docs = {n: load_validated(out / f"{n}.yaml") for n in ("deployment", "service", "hpa")}
    docs["adapter"] = yaml.safe_load((out / "prometheus-adapter-rules.yaml").read_text(encoding="utf-8"))
    docs["numbers"] = json.loads((out / "k8s.json").read_text(encoding="utf-8"))
    docs["readme"] = (out / "README.md").read_text(encoding="utf-8")
    docs["hpa_text"] = (out / "hpa.yaml").read_text(encoding="utf-8")
    return docs


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def check_consistent(d: dict, target_rps: float, headroom: float) -> None:
    """The numbers in the manifests are the ones derived from the capacity, and agree with each other."""
    n = d["numbers"]
    cap = n["capacity"]["rps_per_replica"]
    assert cap > 0
    dep, hpa = d["deployment"], d["hpa"]
    lo = math.ceil(target_rps / cap - 1e-9)
    spare = math.ceil(target_rps / (cap * (1 - headroom)) - 1e-9)
    assert hpa["spec"]["minReplicas"] == lo == n["replicas"]["min"]
    assert dep["spec"]["replicas"] == spare == n["replicas"]["deployment"]
    assert hpa["spec"]["maxReplicas"] == max(spare, lo + 1)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": dep["metadata"]["name"]}
    # HPA targets: the gauge at capacity less the headroom, never below the floor of 1 per pod.
    metrics = hpa["spec"]["metrics"]
    assert [m["pods"]["metric"]["name"] for m in metrics] == [h["metric"] for h in n["hpa"]]
    for m, h in zip(metrics, n["hpa"]):
        assert m["type"] == "Pods" and m["pods"]["target"]["type"] == "AverageValue"
        value = parse_quantity(m["pods"]["target"]["averageValue"])
        expect = max((h["at_capacity"] or 0) * (1 - headroom), 1.0)
        assert value == pytest.approx(expect, rel=0.01, abs=0.001)
    # the adapter exposes exactly the metrics the HPA asks for
    assert [r["name"]["as"] for r in d["adapter"]["rules"]["custom"]] == [h["metric"] for h in n["hpa"]]
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    gpus = c["resources"]["limits"]["nvidia.com/gpu"]
    assert gpus == n["engine"]["gpus_per_pod"]
    if c["name"] == "vllm":
        assert flag(c["command"], "--tensor-parallel-size") == str(gpus)
        assert flag(c["command"], "--host") == "0.0.0.0"
    else:
        assert flag(c["command"], "--num-shard") == str(gpus)
        assert flag(c["command"], "--hostname") == "0.0.0.0"
    assert flag(c["command"], "--port") == "8000" == str(c["ports"][0]["containerPort"])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": "http"}
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= n["engine"]["startup_s"]
    key = next(e for e in c["env"] if e["name"] in ("VLLM_API_KEY", "API_KEY"))
    assert key["valueFrom"]["secretKeyRef"]["key"] == "api-key" and "optional" not in key["valueFrom"]["secretKeyRef"]
    ann = dep["spec"]["template"]["metadata"]["annotations"]
    assert ann == {"prometheus.io/scrape": "true", "prometheus.io/path": "/metrics", "prometheus.io/port": "8000"}
    assert d["service"]["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    # the guide's CPU autoscaler is there, commented, and would be a valid object too
    tail = d["hpa_text"].split("The guide's autoscaler, for comparison", 1)[1]
    block = [ln[4:] for ln in tail.splitlines() if ln.startswith("#   ")]
    cpu = yaml.safe_load("\n".join(block))
    validate(cpu)
    assert cpu["spec"]["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert "FailedGetResourceMetric" in d["hpa_text"]
    # every slabench command the README gives parses with the real CLI parser
    cmds = slabench_commands(d["readme"])
    assert {c[0] for c in cmds} >= {"check", "k8s-load"}
    for argv in cmds:
        _parser().parse_args(argv)


def test_matrix_recommendation_gives_valid_manifests_sized_from_capacity(matrix_dir, tmp_path):
    out = run_k8s(matrix_dir, 50, headroom=0.3, out_dir=tmp_path / "k", echo=quiet)
    d = read_folder(out.out_dir)
    check_consistent(d, 50, 0.3)
    n = d["numbers"]
    rec = json.loads((matrix_dir / "comparison.json").read_text(encoding="utf-8"))["recommendation"]["variant"]
    assert n["source"]["variant"] == rec == "a10g-fp16" and n["capacity"]["unit"] == "req/s"
    # The matrix ran without --capacity: the same offline search ran into the out folder.
    assert (out.out_dir / "capacity" / "points").is_dir() and n["capacity"]["value"] > 0
    c = d["deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "vllm/vllm-openai:v0.33.0"
    assert c["command"][:3] == ["vllm", "serve", "meta-llama/Meta-Llama-3-8B"]
    assert flag(c["command"], "--max-num-seqs") == "256" and flag(c["command"], "--max-model-len") == "8192"
    assert flag(c["command"], "--gpu-memory-utilization") == "0.92" and flag(c["command"], "--dtype") == "float16"
    pod = d["deployment"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A10G"}
    # cost: pods x GPUs x the guide's A10G price, and per 1k output tokens at the target rate
    assert n["cost"]["usd_per_hour"] == pytest.approx(n["replicas"]["deployment"] * 1.00)
    per_1k = n["cost"]["usd_per_hour"] / (50 * n["cost"]["output_tokens_per_request"] * 3600) * 1000
    assert n["cost"]["usd_per_1k_output_tokens"] == pytest.approx(per_1k)
    assert f"ceil(50 / {n['capacity']['rps_per_replica']:.4g})" in d["readme"]


def test_awq_variant_needs_a_prequantized_checkpoint(matrix_dir, tmp_path):
    from harness.config import ConfigError

    with pytest.raises(ConfigError, match="pre-quantized awq checkpoint .* --model"):
        run_k8s(matrix_dir, 10, variant="a10g-awq", out_dir=tmp_path / "k", echo=quiet)
    assert not (tmp_path / "k").exists()  # refused before any folder was made
    out = run_k8s(matrix_dir, 10, variant="a10g-awq", model="org/llama-3-8b-awq", image_tag="v0.34.0",
                  namespace="llm", out_dir=tmp_path / "k2", echo=quiet)
    d = read_folder(out.out_dir)
    c = d["deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "vllm/vllm-openai:v0.34.0" and c["command"][2] == "org/llama-3-8b-awq"
    assert flag(c["command"], "--quantization") == "awq"
    assert {d[k]["metadata"]["namespace"] for k in ("deployment", "service", "hpa")} == {"llm"}


def test_sweep_folder(sweep_dir, tmp_path):
    out = run_k8s(sweep_dir, 12, headroom=0.25, out_dir=tmp_path / "k", echo=quiet)
    d = read_folder(out.out_dir)
    check_consistent(d, 12, 0.25)
    sweep = json.loads((sweep_dir / "sweep.json").read_text(encoding="utf-8"))
    assert d["numbers"]["capacity"]["rps_per_replica"] == sweep["capacity"]
    assert not (out.out_dir / "capacity").exists()  # nothing searched again


def test_scenario_with_capacity_rps_and_tensor_parallel(tmp_path):
    scn = tmp_path / "v.yaml"
    scn.write_text("name: big\nbackend: {type: vllm, model: meta-llama/Meta-Llama-3-70B, tensor_parallel_size: 4, "
                   "gpu: h100-sxm, max_num_seqs: 128, quantization: fp8}\n", encoding="utf-8")
    out = run_k8s(scn, 30, capacity_rps=7.5, out_dir=tmp_path / "k", echo=quiet)
    d = read_folder(out.out_dir)
    check_consistent(d, 30, 0.3)
    c = d["deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 4 == int(flag(c["command"], "--tensor-parallel-size"))
    assert flag(c["command"], "--max-num-seqs") == "128" and flag(c["command"], "--quantization") == "fp8"
    # no run at capacity: the waiting queue's floor, and no running-requests metric to invent
    assert [h["metric"] for h in d["numbers"]["hpa"]] == ["vllm_num_requests_waiting"]
    assert d["numbers"]["cost"]["usd_per_hour"] == pytest.approx(d["numbers"]["replicas"]["deployment"] * 4 * 5.0)


def test_tgi_scenario_searched_offline(tmp_path, scenario_file):
    scn = tmp_path / "t.yaml"
    scn.write_text(scenario_file.read_text(encoding="utf-8").replace("flavor: vllm", "flavor: tgi")
                   .replace("name: tiny\n", "name: tiny-tgi\n", 1), encoding="utf-8")
    out = run_k8s(scn, 20, out_dir=tmp_path / "k", echo=quiet)
    d = read_folder(out.out_dir)
    check_consistent(d, 20, 0.3)
    c = d["deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert c["image"].startswith("ghcr.io/huggingface/text-generation-inference:")
    assert c["command"][0] == "text-generation-launcher" and flag(c["command"], "--model-id") == "meta-llama/Meta-Llama-3-8B"
    assert [h["series"] for h in d["numbers"]["hpa"]][0] == "tgi_queue_size"
    assert any(e["name"] == "API_KEY" for e in c["env"])


def test_default_out_folder_is_new_under_reports(tmp_path, sweep_dir):
    a = run_k8s(sweep_dir, 5, echo=quiet, root=tmp_path)
    b = run_k8s(sweep_dir, 5, echo=quiet, root=tmp_path)
    assert a.out_dir != b.out_dir and a.out_dir.parent == b.out_dir.parent == tmp_path
    assert a.out_dir.name.startswith("k8s-llm-tiny-") and (a.out_dir / "hpa.yaml").is_file()


def cli_error(capsys, *argv) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def test_bad_inputs_are_one_line_errors(tmp_path, capsys, matrix_dir, sweep_dir, scenario_file):
    assert "does not exist" in cli_error(capsys, "k8s", str(tmp_path / "nope"), "--target-rps", "5")
    (tmp_path / "empty").mkdir()
    assert "holds no comparison.json or sweep.json" in cli_error(capsys, "k8s", str(tmp_path / "empty"),
                                                                 "--target-rps", "5")
    run = sweep_dir / "points" / sorted(p.name for p in (sweep_dir / "points").iterdir())[0]
    assert "is a run folder" in cli_error(capsys, "k8s", str(run), "--target-rps", "5")
    for bad in ("0", "-3", "nan", "inf"):
        assert "--target-rps" in cli_error(capsys, "k8s", str(sweep_dir), "--target-rps", bad)
    assert "--headroom" in cli_error(capsys, "k8s", str(sweep_dir), "--target-rps", "5", "--headroom", "1")
    err = cli_error(capsys, "k8s", str(matrix_dir), "--target-rps", "5", "--variant", "h200-fp4")
    assert "unknown --variant 'h200-fp4'" in err and "a10g-fp16" in err
    assert "not a matrix folder" in cli_error(capsys, "k8s", str(sweep_dir), "--target-rps", "5", "--variant", "x")
    assert "--capacity-rps is for a scenario" in cli_error(capsys, "k8s", str(sweep_dir), "--target-rps", "5",
                                                           "--capacity-rps", "3")
    assert "--image-tag" in cli_error(capsys, "k8s", str(sweep_dir), "--target-rps", "5", "--image-tag", "a b")
    assert "--name" in cli_error(capsys, "k8s", str(sweep_dir), "--target-rps", "5", "--name", "Bad_Name")
    ext = tmp_path / "ext.yaml"
    ext.write_text("name: ext\nbackend: {type: external, url: 'http://10.0.0.1:8000'}\n", encoding="utf-8")
    assert "give --capacity-rps" in cli_error(capsys, "k8s", str(ext), "--target-rps", "5")
    assert "whose engine and flags slabench does not know" in cli_error(capsys, "k8s", str(ext), "--target-rps", "5",
                                                                        "--capacity-rps", "3")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "comparison.json").write_text("{not json", encoding="utf-8")
    assert "not valid JSON" in cli_error(capsys, "k8s", str(tmp_path / "bad"), "--target-rps", "5")
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    assert "already holds files" in cli_error(capsys, "k8s", str(sweep_dir), "--target-rps", "5", "--out", str(full))


def test_readme_commands_quote_cleanly(sweep_dir, tmp_path):
    out = run_k8s(sweep_dir, 5, namespace="llm", out_dir=tmp_path / "k", echo=quiet)
    readme = (out.out_dir / "README.md").read_text(encoding="utf-8")
    for line in readme.splitlines():
        if line.startswith(("kubectl ", "helm ", "slabench ")):
            shlex.split(line.split("#", 1)[0].rstrip(" \\"))  # no unbalanced quotes
    assert "kubectl apply -n llm -f deployment.yaml" in readme and "http://llm-tiny.llm.svc:8000" in readme


def copy_matrix(matrix_dir, dest, edit) -> None:
    """A copy of the matrix folder's comparison.json and scenarios, with `edit(doc)` applied."""
    dest.mkdir()
    shutil.copytree(matrix_dir / "scenarios", dest / "scenarios")
    doc = json.loads((matrix_dir / "comparison.json").read_text(encoding="utf-8"))
    edit(doc)
    (dest / "comparison.json").write_text(json.dumps(doc), encoding="utf-8")


def test_matrix_capacity_is_reused_and_bad_variants_refused(matrix_dir, tmp_path, capsys):
    first = run_k8s(matrix_dir, 20, variant="a10g-fp16", out_dir=tmp_path / "k1", echo=quiet)
    cap = first.numbers["capacity"]

    def with_capacity(doc):  # what `slabench matrix --capacity` leaves in the row
        row = next(r for r in doc["variants"] if r["id"] == "a10g-fp16")
        row.update(capacity=cap["value"], capacity_unit="req/s", capacity_fail_at=cap["fail_at"])
    copy_matrix(matrix_dir, tmp_path / "m1", with_capacity)
    shutil.copytree(first.out_dir / "capacity" / "points", tmp_path / "m1" / "capacity" / "a10g-fp16" / "points")
    again = run_k8s(tmp_path / "m1", 20, variant="a10g-fp16", out_dir=tmp_path / "k2", echo=quiet)
    assert not (again.out_dir / "capacity").exists()
    assert again.numbers["replicas"] == first.numbers["replicas"] and again.numbers["hpa"] == first.numbers["hpa"]

    def failing(doc):
        row = next(r for r in doc["variants"] if r["id"] == "h100-sxm-awq")
        row.update(meets_sla=False, verdict="FAIL")
        doc["recommendation"]["variant"] = None
    copy_matrix(matrix_dir, tmp_path / "m2", failing)
    err = cli_error(capsys, "k8s", str(tmp_path / "m2"), "--target-rps", "5", "--variant", "h100-sxm-awq")
    assert "did not meet the SLA" in err and "a10g-fp16" in err
    assert "recommends no variant" in cli_error(capsys, "k8s", str(tmp_path / "m2"), "--target-rps", "5")
