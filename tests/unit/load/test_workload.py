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
