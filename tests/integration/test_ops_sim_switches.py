"""Sim gateway switches over real sockets: API key (vLLM and TGI bodies per protocols.md) and the
token-bucket rate limiter (429 + JSON body), each off by default."""

import json
import urllib.error
import urllib.request

import pytest

from harness.sim.server import ServeOptions
from harness.sim.testing import running_server

pytestmark = pytest.mark.integration
CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def http(url, body=None, key=None, auth=None):
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if auth is not None:
        headers["Authorization"] = auth
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def test_vllm_api_key_guards_v1_with_the_vllm_body():
    with running_server(ServeOptions(flavor="vllm", speed=50.0, api_key="k-123")) as s:
        for path in ("/health", "/metrics", "/version"):
            assert http(s.url + path)[0] == 200, path
        status, body, headers = http(s.url + "/v1/models")
        assert status == 401 and json.loads(body) == {"error": "Unauthorized"}
        assert headers["Content-Type"].startswith("application/json")
        assert http(s.url + "/v1/chat/completions", CHAT, key="wrong")[0] == 401
        assert http(s.url + "/v1/chat/completions", CHAT, auth="k-123")[0] == 401  # no scheme
        assert http(s.url + "/v1/models", key="k-123")[0] == 200
        status, body, _ = http(s.url + "/v1/chat/completions", CHAT, key="k-123")
        assert status == 200 and json.loads(body)["object"] == "chat.completion"


def test_tgi_api_key_guards_generation_with_an_empty_401():
    with running_server(ServeOptions(flavor="tgi", speed=50.0, max_total_tokens=2048, max_input_tokens=1024,
                                     api_key="k-9")) as s:
        for path in ("/health", "/info", "/metrics", "/v1/models", "/"):
            assert http(s.url + path)[0] == 200, path
        status, body, _ = http(s.url + "/generate", {"inputs": "hi", "parameters": {"max_new_tokens": 2}})
        assert (status, body) == (401, b"")
        assert http(s.url + "/v1/chat/completions", CHAT)[0] == 401
        assert http(s.url + "/v1/chat/completions", CHAT, auth="BEARER K-9")[0] == 200


def test_rate_limit_answers_429_with_json_and_spares_health():
    with running_server(ServeOptions(flavor="vllm", speed=50.0, rate_limit_rps=0.5, rate_limit_burst=2)) as s:
        codes = [http(s.url + "/v1/chat/completions", CHAT)[0] for _ in range(3)]
        assert codes == [200, 200, 429]
        status, body, headers = http(s.url + "/v1/chat/completions", CHAT)
        assert status == 429
        assert json.loads(body) == {"error": "Rate limit exceeded: 0.5 per 1 second"}
        assert headers["X-RateLimit-Limit"] == "0.5" and int(headers["Retry-After"]) >= 1
        for _ in range(5):
            assert http(s.url + "/health")[0] == 200
            assert http(s.url + "/v1/models")[0] == 200  # GET routes are not limited


def test_switches_off_by_default():
    with running_server(ServeOptions(flavor="vllm", speed=50.0)) as s:
        assert all(http(s.url + "/v1/chat/completions", CHAT)[0] == 200 for _ in range(5))
        assert http(s.url + "/v1/models")[0] == 200
