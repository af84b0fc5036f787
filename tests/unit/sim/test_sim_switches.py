"""Sim gateway switches (pure parts): token bucket, which paths are guarded, header matching, CLI flags."""

import pytest

from harness.sim.catalog import SimConfigError
from harness.sim.cli import _options, _parser
from harness.sim.gate import TokenBucket, authorized, gate_middleware, guarded
from harness.sim.server import ServeOptions, build_server


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_token_bucket_starts_full_then_refills_at_the_rate():
    c = Clock()
    b = TokenBucket(2.0, 3, c)
    assert [b.take()[0] for _ in range(4)] == [True, True, True, False]
    ok, wait = b.take()
    assert not ok and wait == pytest.approx(0.5)
    c.t += 0.5
    assert b.take() == (True, 0.0)
    assert not b.take()[0]
    c.t += 100  # never more than the capacity
    assert [b.take()[0] for _ in range(4)] == [True, True, True, False]


def test_vllm_guards_v1_prefixes_only():
    assert guarded("vllm", "POST", "/v1/chat/completions") and guarded("vllm", "GET", "/v1/models")
    assert guarded("vllm", "GET", "/v2/x") and guarded("vllm", "POST", "/inference/v1/generate")
    for path in ("/health", "/metrics", "/version", "/ping", "/sim/gpu"):
        assert not guarded("vllm", "GET", path)
    assert not guarded("vllm", "OPTIONS", "/v1/models")


def test_tgi_guards_generation_routes_only():
    for path in ("/generate", "/generate_stream", "/v1/chat/completions", "/v1/completions", "/"):
        assert guarded("tgi", "POST", path)
    for path in ("/health", "/info", "/metrics", "/v1/models", "/"):
        assert not guarded("tgi", "GET", path)


def test_header_matching_per_flavor():
    assert authorized("vllm", "Bearer k1", "k1") and authorized("vllm", "bearer k1", "k1")
    assert not authorized("vllm", "Bearer K1", "k1") and not authorized("vllm", None, "k1")
    assert not authorized("vllm", "Basic k1", "k1") and not authorized("vllm", "k1", "k1")
    assert authorized("tgi", "BEARER K1", "k1")  # TGI compares the whole header case-insensitively
    assert not authorized("tgi", "Bearer k2", "k1")


def test_off_by_default_and_cli_flags():
    assert gate_middleware("vllm", None, None) is None
    opts = _options(_parser().parse_args(["serve"]))
    assert opts.api_key is None and opts.rate_limit_rps is None
    opts = _options(_parser().parse_args(["serve", "--api-key", "s3", "--rate-limit-rps", "2.5",
                                          "--rate-limit-burst", "4"]))
    assert (opts.api_key, opts.rate_limit_rps, opts.rate_limit_burst) == ("s3", 2.5, 4.0)


@pytest.mark.parametrize("kw,msg", [({"rate_limit_rps": 0}, "--rate-limit-rps must be > 0"),
                                    ({"rate_limit_rps": 1, "rate_limit_burst": 0.5}, "--rate-limit-burst")])
def test_bad_rate_limit_values_are_config_errors(kw, msg):
    with pytest.raises(SimConfigError, match=msg):
        build_server(ServeOptions(**kw))


def test_tgi_middle_event_bytes_equal_the_rendered_dict():
    import random

    from harness.sim.common import dumps
    from harness.sim.textgen import TextGen
    from harness.sim.tgi_api import native_middle_event

    text = TextGen(random.Random(9))
    for k in range(2000):
        tid, txt, lp = text.token_details()
        ev = {"index": k + 1, "token": {"id": tid, "text": txt, "logprob": lp, "special": False},
              "generated_text": None, "details": None}
        assert native_middle_event(k, tid, txt, lp) == f"data:{dumps(ev)}\n\n".encode()
    for txt, lp in (('a "quoted" \\ word\n', -0.0), ("é ✓", -1e-05), ("", -2.0)):
        ev = {"index": 1, "token": {"id": 5, "text": txt, "logprob": lp, "special": False},
              "generated_text": None, "details": None}
        assert native_middle_event(0, 5, txt, lp) == f"data:{dumps(ev)}\n\n".encode()
