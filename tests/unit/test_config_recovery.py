"""The scenario's `recovery:` block and the sim backend's overload switches: defaults, the spike it
finds, one-line errors for every bad input, and the flags the launched sim gets."""

import pytest

from harness.backends.sim import sim_argv
from harness.config import ConfigError, SimBackend, parse_scenario
from harness.config.backends import MAX_CIRCUIT_RECOVERY_S
from harness.config.recovery import find_spike, stage_levels
from harness.sim.cli import MAX_FAULT_S

OPEN = {"mode": "open", "stages": [{"duration_s": 10, "rate_rps": 2}, {"duration_s": 5, "rate_rps": 9},
                                   {"duration_s": 10, "rate_rps": 2}]}


def scn(recovery, load=OPEN, **kw):
    return parse_scenario({"name": "x", "load": load, "recovery": recovery, **kw})


def error(recovery, load=OPEN, **kw) -> str:
    with pytest.raises(ConfigError) as exc:
        scn(recovery, load, **kw)
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_defaults_and_absent_block():
    r = scn({}).recovery
    assert (r.spike_stage, r.window_s, r.metrics, r.threshold, r.min_samples) == (None, 10.0, None, "alert", 20)
    assert parse_scenario({"name": "x", "load": OPEN}).recovery is None


def test_default_spike_is_the_highest_stage_a_lower_one_follows():
    assert find_spike([(10, 2, 2), (5, 9, 9), (10, 2, 2)], None) == 1
    # A ramp to the top that ends the run is not a spike; the highest stage followed by a lower one is.
    assert find_spike([(10, 2, 2), (5, 9, 9), (10, 2, 2), (10, 2, 20)], None) == 1
    assert find_spike([(5, 9, 9), (5, 1, 1), (5, 9, 9), (5, 1, 1)], None) == 2  # a tie: the last
    assert find_spike([(10, 1, 12), (10, 4, 4)], None) == 0  # a ramp's level is its highest end
    assert find_spike([(5, 9, 9), (5, 1, 1), (5, 9, 9)], 1) == 0


def test_stage_levels_per_mode():
    assert stage_levels(OPEN) == ("req/s", [(10.0, 2.0, 2.0), (5.0, 9.0, 9.0), (10.0, 2.0, 2.0)])
    closed = {"mode": "closed", "user_stages": [{"duration_s": 5, "users": 4}, {"duration_s": 5, "users": 40}]}
    assert stage_levels(closed) == ("users", [(5.0, 4.0, 4.0), (5.0, 40.0, 40.0)])
    assert stage_levels({"mode": "open", "rate_rps": 3}) == ("", [])


@pytest.mark.parametrize("recovery,load,needle", [
    ({"spike_stage": 3}, OPEN, "spike_stage 3 is the last stage: add a stage after it"),
    ({"spike_stage": 9}, OPEN, "spike_stage 9: the load has only 3 stages"),
    ({"spike_stage": 0}, OPEN, "recovery.spike_stage"),
    ({"window_s": 0}, OPEN, "recovery.window_s"),
    ({"window_s": 1e9}, OPEN, "recovery.window_s"),
    ({"min_samples": 0}, OPEN, "recovery.min_samples"),
    ({"metrics": ["queue_depth"]}, OPEN, "recovery.metrics"),
    ({"metrics": []}, OPEN, "recovery.metrics"),
    ({"threshold": "hard"}, OPEN, "recovery.threshold"),
    ({"windw_s": 5}, OPEN, "unknown key 'recovery.windw_s'"),
    ({}, {"mode": "open", "rate_rps": 5}, "needs a staged load"),
    ({}, {"mode": "closed", "users": 8}, "needs a staged load"),
    ({}, {"mode": "open", "stages": [{"duration_s": 5, "rate_rps": 1}, {"duration_s": 5, "rate_rps": 9}]},
     "no stage is followed by a lower one"),
])
def test_one_line_errors(recovery, load, needle):
    assert needle in error(recovery, load)


def test_bad_load_is_reported_once_not_twice():
    msg = error({}, {"mode": "open", "stages": [{"duration_s": -1, "rate_rps": 1}]})
    assert "duration_s" in msg and "staged load" not in msg


def test_sim_backend_overload_switches():
    b = SimBackend(max_num_queued_reqs=16, circuit_failure_threshold=5, circuit_recovery_s=30)
    argv = sim_argv(b)
    assert argv[argv.index("--max-num-queued-reqs") + 1] == "16"
    assert argv[argv.index("--circuit-failure-threshold") + 1] == "5"
    assert argv[argv.index("--circuit-recovery-s") + 1] == "30.0"
    assert "--max-num-queued-tokens" not in argv and "--circuit-failure-threshold" not in sim_argv(SimBackend())
    tgi = SimBackend(flavor="tgi", circuit_failure_threshold=5)
    assert "--circuit-failure-threshold" in sim_argv(tgi)


@pytest.mark.parametrize("backend,needle", [
    ({"flavor": "tgi", "max_num_queued_reqs": 4}, "vLLM flags"),
    ({"circuit_recovery_s": 5}, "needs circuit_failure_threshold"),
    ({"circuit_failure_threshold": 0}, "backend.circuit_failure_threshold"),
    ({"circuit_failure_threshold": 5, "circuit_recovery_s": 0}, "backend.circuit_recovery_s"),
    ({"max_num_queued_tokens": -1}, "backend.max_num_queued_tokens"),
])
def test_sim_backend_errors(backend, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        parse_scenario({"name": "x", "backend": {"type": "sim", **backend}})


def test_recovery_bound_matches_the_sim_flag():
    assert MAX_CIRCUIT_RECOVERY_S == MAX_FAULT_S


def test_shipped_overload_example():
    """scenarios/overload-recovery.yaml (also validated with every shipped scenario): a 30 s spike to 3x the
    sweep-measured 5 req/s capacity, a recovery block, and no longer than 90 s."""
    from pathlib import Path

    from harness.config import load_scenario

    scn = load_scenario(Path(__file__).resolve().parents[2] / "scenarios" / "overload-recovery.yaml")
    unit, levels = stage_levels(scn.load.model_dump())
    spike = find_spike(levels, scn.recovery.spike_stage)
    assert unit == "req/s" and levels[spike][0] == 30 and levels[spike][1] == 3 * 5
    assert find_spike(levels, None) == spike and scn.load.duration_s <= 90
    assert scn.backend.type == "sim" and scn.backend.max_num_seqs == 8
