"""`slabench schema` and `slabench init`: the committed schema is current, every shipped scenario (and
the starter) validates against it, a misspelled key does not, and init never overwrites."""

import json
from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.config import ConfigError, load_scenario, parse_scenario, resolve_scenario
from harness.starter import SCHEMA_FILE, init, scenario_schema, schema_text

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_LINE = "# yaml-language-server: $schema=scenario.schema.json"


def _yaml(path: Path) -> dict:
    # Through JSON, as an editor sees the file: YAML dates (cost.price_set_on) become strings.
    return json.loads(json.dumps(yaml.safe_load(path.read_text(encoding="utf-8")), default=str))


# Scenario files vs matrix files (harness.decide.matrixfile: a `scenario` and its `axes`).
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))
SCENARIOS = [p for p in SHIPPED if "axes" not in _yaml(p)]
MATRIX_FILES = [p for p in SHIPPED if p not in SCENARIOS]


@pytest.fixture(scope="module")
def validator():
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed (pip install -e '.[test]')")
    schema = scenario_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_the_committed_schema_is_what_slabench_schema_prints(capsys):
    assert main(["schema"]) == 0
    printed = capsys.readouterr().out
    assert printed == schema_text()
    committed = (ROOT / "scenarios" / SCHEMA_FILE).read_text(encoding="utf-8")
    assert committed == printed, ("scenarios/scenario.schema.json is stale: "
                                  "run `slabench schema > scenarios/scenario.schema.json`")
    schema = json.loads(printed)
    assert schema["$schema"].startswith("https://json-schema.org/") and schema["title"] and schema["description"]


def test_every_example_scenario_names_the_schema_and_matrix_files_do_not():
    assert len(SCENARIOS) >= 5 and MATRIX_FILES
    for p in SCENARIOS:
        assert p.read_text(encoding="utf-8").splitlines()[0] == SCHEMA_LINE, p.name
    for p in MATRIX_FILES:
        assert "$schema=scenario.schema.json" not in p.read_text(encoding="utf-8"), p.name


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_shipped_scenario_validates_against_the_schema(validator, path):
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(_yaml(path))]
    assert not errors, errors


@pytest.mark.parametrize("doc", [
    {"name": "x", "laod": {"users": 2}},  # top level
    {"name": "x", "load": {"duraton_s": 3}},  # nested
    {"name": "x", "backend": {"type": "sim", "modle": "llama-3-8b"}},  # inside a backend variant
    {"name": "x", "workload": {"prompt_tokens": {"dist": "fixed", "vaule": 8}}},  # inside a token distribution
    {"name": "x", "sla": {"name": "p", "rows": [{"metric": "ttft_s", "stat": "p99", "target": 1, "alert": 2,
                                                 "hrad": True}]}},  # inside an inline policy
])
def test_a_misspelled_key_is_refused_by_the_schema(validator, doc):
    assert not validator.is_valid(doc)
    with pytest.raises(ConfigError):  # and by the loader: the schema is not looser than slabench
        parse_scenario(doc)


def test_the_schema_knows_the_shorthands_the_loader_takes(validator):
    assert validator.is_valid({"name": "x", "workload": {"prompt_tokens": 64, "output_tokens": 32}})
    assert validator.is_valid({"name": "x", "backend": {"model": "llama-3-8b"}})  # no type: the sim
    assert not validator.is_valid({"name": "x", "backend": {"url": "http://127.0.0.1:8000"}})  # sim has no url


def test_init_writes_a_starter_that_loads_and_uses_its_own_policy(validator, tmp_path, capsys):
    folder = tmp_path / "my bench"
    assert main(["init", str(folder)]) == 0
    assert str(folder / "scenario.yaml") in capsys.readouterr().out
    assert sorted(p.name for p in folder.iterdir()) == ["scenario.schema.json", "scenario.yaml", "sla.yaml"]
    text = (folder / "scenario.yaml").read_text(encoding="utf-8")
    assert text.splitlines()[0] == SCHEMA_LINE
    assert (folder / SCHEMA_FILE).read_text(encoding="utf-8") == schema_text()
    for block in ("backend:", "#   type: external", "#   type: vllm", "load:", "workload:", "sla: sla.yaml", "cost:"):
        assert block in text, block
    scn = load_scenario(folder / "scenario.yaml")
    assert scn.name == "my-bench" and scn.backend.type == "sim" and scn.sla == "sla.yaml"
    policy = resolve_scenario(scn, base_dir=folder).sla
    assert policy.name == "starter" and [r.metric for r in policy.rows][:3] == ["ttft_s", "request_rate_rps",
                                                                                "error_rate_pct"]
    assert validator.is_valid(_yaml(folder / "scenario.yaml"))


def test_init_never_overwrites(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sla.yaml").write_text("mine\n")
    assert main(["init"]) == 2  # default: the current folder
    assert capsys.readouterr().err == "slabench: error: sla.yaml exists: choose another folder or remove it\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sla.yaml"]  # nothing written
    (tmp_path / "sla.yaml").unlink()
    assert main(["init"]) == 0 and (tmp_path / "scenario.yaml").is_file()
    before = (tmp_path / "scenario.yaml").read_text()
    with pytest.raises(ConfigError, match=r"^.*/scenario\.yaml exists: choose another folder or remove it$"):
        init(tmp_path)
    assert (tmp_path / "scenario.yaml").read_text() == before


def test_init_into_a_file_is_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    assert main(["init", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("slabench: error: ") and err.count("\n") == 1
