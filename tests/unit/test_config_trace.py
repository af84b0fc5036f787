"""`load.mode: replay` and `workload.trace`: what a replay scenario needs, and one-line errors for what it
cannot have."""

import pytest

from harness.config import ConfigError, Scenario, TraceConfig, parse_scenario, scenario_to_yaml

TRACE = {"path": "traces/t.jsonl", "format": "mooncake"}


def replay(load=None, trace=None, **workload):
    return {"name": "r", "load": {"mode": "replay", **(load or {})},
            "workload": {"trace": {**TRACE, **(trace or {})}, **workload}}


def err(data):
    with pytest.raises(ConfigError) as ei:
        parse_scenario(data, "s.yaml")
    msg = str(ei.value)
    assert "\n" not in msg and msg.startswith("s.yaml: ")
    return msg


def test_a_replay_scenario_and_its_defaults():
    s = parse_scenario(replay(trace={"time_scale": 0.5, "sample_sessions": 0.25}))
    t = s.workload.trace
    assert s.load.mode == "replay" and isinstance(t, TraceConfig)
    assert (t.time_scale, t.start_s, t.max_requests, t.sample_sessions) == (0.5, 0.0, None, 0.25)
    assert t.block_tokens is None and t.tokens_per_block == 512  # Mooncake's release
    assert parse_scenario(replay(trace={"block_tokens": 16})).workload.trace.tokens_per_block == 16  # Alibaba's
    for fmt in ("azure-csv", "burstgpt-csv", "slabench"):
        assert TraceConfig(path="x", format=fmt).tokens_per_block is None
    again = parse_scenario(__import__("yaml").safe_load(scenario_to_yaml(s)))
    assert again == s  # the saved scenario.yaml reads back the same


@pytest.mark.parametrize("data,expected", [
    ({"name": "r", "load": {"mode": "replay"}}, "load.mode: replay needs workload.trace"),
    ({"name": "r", "workload": {"trace": TRACE}},
     "workload.trace is replayed by load.mode: replay (this load is mode: closed)"),
    ({"name": "r", "load": {"mode": "open", "rate_rps": 5}, "workload": {"trace": TRACE}}, "(this load is mode: open)"),
    (replay({"processes": 2}), "load: mode: replay runs one dispatcher process"),
    (replay({"rate_rps": 5}), "load: rate_rps do not apply to mode: replay"),
    (replay({"users": 4, "spawn_rate": 2}), "spawn_rate, users do not apply to mode: replay"),
    (replay({"stages": [{"duration_s": 5, "rate_rps": 1}]}), "stages do not apply to mode: replay"),
    (replay(dataset={"path": "d.jsonl"}), "workload.trace and workload.dataset both supply the requests"),
    (replay(turns=2), "workload.turns > 1"),
    (replay(trace={"format": "azure"}), "workload.trace.format: Input should be 'mooncake', 'azure-csv'"),
    (replay(trace={"format": "azure-csv", "block_tokens": 16}), "block_tokens applies to traces with hash_ids"),
    (replay(trace={"time_scale": 0}), "workload.trace.time_scale: must be >="),
    (replay(trace={"sample_sessions": 0}), "workload.trace.sample_sessions: must be > 0"),
    (replay(trace={"sample_sessions": 1.5}), "workload.trace.sample_sessions: 1.5 is over the limit"),
    (replay(trace={"start_s": -1}), "workload.trace.start_s: must be >= 0"),
    (replay(trace={"max_requests": 0}), "workload.trace.max_requests: must be >= 1"),
    (replay(trace={"path": ""}), "workload.trace.path"),
    (replay(trace={"speed": 2}), "unknown key 'workload.trace.speed'"),
    ({"name": "r", "load": {"mode": "replay"}, "workload": {"trace": {"path": "t.jsonl"}}}, "workload.trace.format"),
])
def test_replay_config_problems_are_one_line(data, expected):
    assert expected in err(data)


def test_open_and_closed_scenarios_are_unchanged():
    assert parse_scenario({"name": "o", "load": {"mode": "open", "rate_rps": 3}}).workload.trace is None
    assert Scenario(name="c").load.mode == "closed"
