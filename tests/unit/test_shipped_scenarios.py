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
    assert modes == {"open", "closed", "replay"}
    assert any(load_scenario(p).load.stages for p in SCENARIOS)


def test_mlperf_presets_carry_the_published_server_limits():
    limits = {"llama2-70b": (2.0, 0.2), "llama2-70b-interactive": (0.45, 0.04), "llama3.1-8b": (2.0, 0.1),
              "llama3.1-8b-interactive": (0.5, 0.03), "llama3.1-405b": (6.0, 0.175),
              "llama3.1-405b-interactive": (4.5, 0.08), "mixtral-8x7b": (2.0, 0.2)}
    for key, (ttft, tpot) in limits.items():
        rows = {r.metric: r for r in load_sla(ROOT / "scenarios" / "sla" / f"mlperf-{key}.yaml").rows}
        assert (rows["ttft_s"].stat, rows["ttft_s"].target, rows["ttft_s"].alert) == ("p99", ttft, ttft)
        assert (rows["tpot_s"].stat, rows["tpot_s"].target, rows["tpot_s"].alert) == ("p99", tpot, tpot)
