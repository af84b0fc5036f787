import pytest

from harness.config import (ConfigError, SlaRow, load_scenario, load_sla, parse_scenario, resolve_scenario,
                            scenario_to_yaml)


def err(data):
    with pytest.raises(ConfigError) as ei:
        parse_scenario(data, "s.yaml")
    msg = str(ei.value)
    assert "\n" not in msg
    return msg


def test_misspelled_key_names_the_path_and_the_fix():
    assert err({"name": "x", "load": {"userz": 3}}) == "s.yaml: unknown key 'load.userz' (did you mean 'users'?)"
    assert "did you mean 'gpu'" in err({"name": "x", "backend": {"type": "sim", "gpuu": "a10g"}})


def test_unknown_backend_type_lists_the_choices():
    assert "unknown backend type 'vllmx'" in err({"name": "x", "backend": {"type": "vllmx"}})


def test_value_errors_are_one_line_with_the_key():
    assert "must be shorter than duration_s" in err({"name": "x", "load": {"duration_s": 10, "warmup_s": 8, "cooldown_s": 5}})
    assert "needs mean, stddev" in err({"name": "x", "workload": {"prompt_tokens": {"dist": "normal"}}})
    assert "did you mean 'ttft_s'" in err({"name": "x", "sla": {"name": "p", "rows": [{"metric": "ttft", "stat": "p99", "target": 1, "alert": 2}]}})
    assert "set both fixed_ttft_ms and fixed_itl_ms" in err({"name": "x", "backend": {"fixed_ttft_ms": 5}})
    assert "a scenario must be a YAML mapping" in err(["not", "a", "mapping"])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_scenario(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nload: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_scenario(bad)


def test_token_shorthand_and_defaults():
    s = parse_scenario({"name": "x", "workload": {"prompt_tokens": 64}})
    assert s.workload.prompt_tokens.dist == "fixed" and s.workload.prompt_tokens.value == 64
    assert s.backend.type == "sim" and s.sla == "guide"


def test_guide_policy_encodes_the_guide_table():
    p = load_sla("guide")
    rows = {r.metric: r for r in p.rows}
    assert (rows["ttft_s"].stat, rows["ttft_s"].target, rows["ttft_s"].alert) == ("p99", 0.5, 1.0)
    assert (rows["request_rate_rps"].target, rows["request_rate_rps"].alert) == (100, 50)
    assert (rows["error_rate_pct"].target, rows["error_rate_pct"].alert) == (0.1, 1.0)
    assert (rows["gpu_utilization_pct"].target, rows["gpu_utilization_pct"].alert) == (80, 50)
    assert (rows["queue_depth"].target, rows["queue_depth"].alert) == (100, 500)


def test_row_direction_checks():
    with pytest.raises(ValueError, match="lower is better"):
        SlaRow(metric="e2e_s", stat="p99", target=2, alert=1)
    with pytest.raises(ValueError, match="higher is better"):
        SlaRow(metric="request_rate_rps", target=10, alert=20)
    with pytest.raises(ValueError, match="is a distribution"):
        SlaRow(metric="ttft_s", target=1, alert=2)


def test_resolved_scenario_is_self_contained_and_reloads(tmp_path):
    s = resolve_scenario(parse_scenario({"name": "x"}), sla_override="guide")
    text = scenario_to_yaml(s)
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    again = load_scenario(path)
    assert again.sla.name == "guide" and len(again.sla.rows) == 5


def test_unknown_sla_name():
    with pytest.raises(ConfigError, match="SLA policy 'nope' not found"):
        load_sla("nope")


def test_multi_turn_needs_closed_loop_chat_and_think_time_bounds():
    assert "multi-turn chat" in err({"name": "x", "workload": {"turns": 3}, "load": {"api": "openai-completions"}})
    assert "think_time_max_s" in err({"name": "x", "load": {"think_time_s": 2, "think_time_max_s": 1}})
    assert parse_scenario({"name": "x", "workload": {"turns": 3}}).workload.turns == 3


def test_usage_every_chunk_is_for_the_openai_apis():
    msg = err({"name": "x", "workload": {"usage_every_chunk": True}, "load": {"api": "tgi-generate-stream"}})
    assert "usage_every_chunk applies to the OpenAI APIs" in msg and "\n" not in msg
    assert parse_scenario({"name": "x", "workload": {"usage_every_chunk": True}}).workload.usage_every_chunk
