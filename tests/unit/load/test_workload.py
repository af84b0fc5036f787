import random
import statistics

import pytest

from harness.config import TokenDist, WorkloadConfig
from harness.load.workload import PromptSource, request_body, sample_tokens


def test_same_seed_and_stream_reproduce_prompts():
    cfg = WorkloadConfig(prompt_tokens=TokenDist(dist="uniform", min=5, max=50), seed=3)
    a = [PromptSource(cfg, 2).next() for _ in range(1)] + [PromptSource(cfg, 2).next()]
    assert a[0] == a[1]
    assert PromptSource(cfg, 1).next() != PromptSource(cfg, 2).next()


def test_prompt_has_exactly_the_sampled_number_of_words():
    spec = PromptSource(WorkloadConfig(prompt_tokens=TokenDist(value=37), output_tokens=TokenDist(value=9))).next()
    assert len(spec.prompt.split()) == 37 and spec.prompt_tokens == 37 and spec.output_tokens == 9


@pytest.mark.parametrize("dist", [
    TokenDist(dist="uniform", min=10, max=20),
    TokenDist(dist="normal", mean=100, stddev=30, min=50, max=150),
    TokenDist(dist="lognormal", mean=200, stddev=100, min=20, max=2000),
])
def test_distributions_respect_bounds(dist):
    rng = random.Random(0)
    xs = [sample_tokens(dist, rng) for _ in range(3000)]
    assert min(xs) >= dist.min and max(xs) <= dist.max


def test_lognormal_mean_and_stddev_describe_the_lengths_themselves():
    rng = random.Random(1)
    xs = [sample_tokens(TokenDist(dist="lognormal", mean=200, stddev=100), rng) for _ in range(20000)]
    assert abs(statistics.mean(xs) - 200) < 6
    assert abs(statistics.pstdev(xs) - 100) < 8


def test_request_bodies_force_length_where_the_api_can():
    spec = PromptSource(WorkloadConfig(prompt_tokens=TokenDist(value=3), output_tokens=TokenDist(value=5))).next()
    path, body, forced = request_body("openai-chat", "m", spec)
    assert path == "/v1/chat/completions" and forced
    assert body["max_tokens"] == 5 and body["ignore_eos"] and body["stream_options"] == {"include_usage": True}
    path, body, forced = request_body("tgi-generate-stream", None, spec)
    assert path == "/generate_stream" and not forced and body["parameters"]["max_new_tokens"] == 5
    with pytest.raises(ValueError):
        request_body("grpc", "m", spec)


def test_usage_every_chunk_asks_for_continuous_usage_on_openai_bodies():
    spec = PromptSource(WorkloadConfig(prompt_tokens=TokenDist(value=3), output_tokens=TokenDist(value=5))).next()
    for api in ("openai-chat", "openai-completions"):
        _, body, _ = request_body(api, "m", spec, usage_every_chunk=True)
        assert body["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}


def test_shared_prefix_is_identical_across_users_and_counted():
    cfg = WorkloadConfig(prompt_tokens=TokenDist(value=5), shared_prefix_tokens=20, seed=4)
    a, b = PromptSource(cfg, 0).next(), PromptSource(cfg, 1).next()
    assert a.prompt.split()[:20] == b.prompt.split()[:20]
    assert a.prompt.split()[20:] != b.prompt.split()[20:]
    assert a.prompt_tokens == 25 == len(a.prompt.split())


def test_jsonl_dataset_gives_prompts_and_their_output_lengths(tmp_path):
    from harness.config import DatasetConfig
    from harness.load.workload import load_dataset

    p = tmp_path / "d.jsonl"
    p.write_text('{"prompt": "one two three", "output_tokens": 7}\n\n{"prompt": "four five"}\n')
    items = load_dataset(DatasetConfig(path=str(p)))
    assert [(i.prompt, i.output_tokens) for i in items] == [("one two three", 7), ("four five", None)]
    src = PromptSource(WorkloadConfig(output_tokens=TokenDist(value=3), seed=1), dataset=items)
    specs = [src.next() for _ in range(50)]
    assert {(s.prompt, s.output_tokens) for s in specs} == {("one two three", 7), ("four five", 3)}
    assert all(s.prompt_tokens == len(s.prompt.split()) for s in specs)


def test_sharegpt_dataset_takes_first_human_turn(tmp_path):
    import json

    from harness.config import DatasetConfig
    from harness.load.workload import load_dataset

    p = tmp_path / "sg.json"
    p.write_text(json.dumps([
        {"id": "a", "conversations": [{"from": "human", "value": "hello there"}, {"from": "gpt", "value": "hi a b c"}]},
        {"id": "b", "conversations": [{"from": "human", "value": "lonely"}]},  # no reply: skipped
        {"id": "c", "conversations": [{"from": "gpt", "value": "x"}, {"from": "human", "value": "y"}]},
    ]))
    items = load_dataset(DatasetConfig(path=str(p), format="sharegpt"))
    assert [(i.prompt, i.output_tokens) for i in items] == [("hello there", 4)]


@pytest.mark.parametrize("content,msg", [
    ('{"prompt": "ok"}\nnot json\n', "d.jsonl:2: not valid JSON"),
    ('{"text": "x"}\n', "no 'prompt' text"),
    ("", "no usable prompts"),
])
def test_bad_datasets_are_one_line_errors(tmp_path, content, msg):
    from harness.config import ConfigError, DatasetConfig
    from harness.load.workload import load_dataset

    p = tmp_path / "d.jsonl"
    p.write_text(content)
    with pytest.raises(ConfigError, match=msg):
        load_dataset(DatasetConfig(path=str(p)))
    with pytest.raises(ConfigError, match="not found"):
        load_dataset(DatasetConfig(path=str(tmp_path / "missing.jsonl")))


def test_chat_history_goes_before_the_new_prompt():
    spec = PromptSource(WorkloadConfig(prompt_tokens=TokenDist(value=2))).next()
    hist = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    _, body, _ = request_body("openai-chat", "m", spec, hist)
    assert body["messages"][:2] == hist and body["messages"][2]["content"] == spec.prompt


def test_chat_session_grows_turn_by_turn_and_restarts_after_the_last_or_a_failure():
    from types import SimpleNamespace

    from harness.load.workload import ChatSession

    s = ChatSession(turns=2)
    first = SimpleNamespace(ok=True, turn=None)
    s.record_turn(first, "hi", "hello")
    assert first.turn == 1 and [m["role"] for m in s.history] == ["user", "assistant"]
    assert s.history[1]["content"] == "hello"
    second = SimpleNamespace(ok=True, turn=None)
    s.record_turn(second, "and?", "done")
    assert second.turn == 2 and s.history == [] and s.turn == 0  # two turns: the next request starts anew
    s.record_turn(SimpleNamespace(ok=False, turn=None), "x", "")
    assert s.history == [] and s.turn == 0  # a failed turn ends the session too
