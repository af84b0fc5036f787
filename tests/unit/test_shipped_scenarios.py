"""Every scenario and SLA policy shipped in scenarios/ validates (they are the documentation)."""

from pathlib import Path

import pytest

from harness.config import load_scenario, load_sla, resolve_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted(p for p in (ROOT / "scenarios").glob("*.yaml") if not p.name.startswith("matrix-"))  # matrix files: harness.decide
POLICIES = sorted((ROOT / "scenarios" / "sla").glob("*.yaml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_scenario_validates_and_resolves(path):
    scn = load_scenario(path)
    assert scn.name == path.stem  # the name is the file name, so run folders are easy to trace
    resolved = resolve_scenario(scn, base_dir=path.parent)
    assert resolved.sla.rows


@pytest.mark.parametrize("path", POLICIES, ids=[p.name for p in POLICIES])
def test_policy_validates(path):
    assert load_sla(path).rows


def test_there_are_examples_of_every_load_shape():
    modes = {load_scenario(p).load.mode for p in SCENARIOS}
    assert modes == {"open", "closed"}
    assert any(load_scenario(p).load.stages for p in SCENARIOS)
