"""The server's own timings on a record: llama.cpp's last chunk (`timings`, usage with cached tokens), read
the same by the fast and the full path; absent for vLLM-shaped streams; bad values left out, never an error."""

import json

import pytest

from harness.load.sse import SSEParser
from harness.load.streams import OpenAIChatStream, OpenAICompletionsStream

TIMINGS = {"cache_n": 3, "prompt_n": 21, "prompt_ms": 41.5, "prompt_per_token_ms": 1.98, "prompt_per_second": 506.0,
           "predicted_n": 4, "predicted_ms": 30.25, "predicted_per_token_ms": 7.56, "predicted_per_second": 132.2}
BASE = {"created": 1, "id": "chatcmpl-x", "model": "smollm2", "system_fingerprint": "b1", "object": "chat.completion.chunk"}


def chunk(obj) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def llama_chat_stream(include_usage=True, timings=TIMINGS, n=4) -> bytes:
    """Bytes as llama-server streams a chat completion (role chunk, text, finish, usage + timings, [DONE])."""
    out = [chunk({**BASE, "choices": [{"finish_reason": None, "index": 0, "delta": {"role": "assistant", "content": None}}]})]
    out += [chunk({**BASE, "choices": [{"finish_reason": None, "index": 0, "delta": {"content": f" w{i}"}}]})
            for i in range(n)]
    last = {"finish_reason": "length", "index": 0, "delta": {}}
    usage = {"completion_tokens": n, "prompt_tokens": 24, "total_tokens": n + 24, "prompt_tokens_details": {"cached_tokens": 3}}
    if include_usage:
        out += [chunk({**BASE, "choices": [last]}), chunk({**BASE, "choices": [], "usage": usage, "timings": timings})]
    else:
        out += [chunk({**BASE, "choices": [last], "timings": timings})]
    return b"".join(out) + b"data: [DONE]\n\n"


def read(raw: bytes, fast: bool, cls=OpenAIChatStream, requested_prompt_tokens=None):
    acc = cls("r", 0.0, 4, True, requested_prompt_tokens=requested_prompt_tokens)
    acc.fast = fast
    parser = SSEParser()
    for k, event in enumerate(raw.split(b"\n\n")[:-1]):  # one read per event, as a server flushing each
        acc.feed_block(parser, event + b"\n\n", 0.01 * (k + 1))
    return acc.finish(0.2, 200)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("include_usage", [True, False])
def test_llama_cpp_timings_become_seconds_on_the_record(fast, include_usage):
    rec = read(llama_chat_stream(include_usage), fast, requested_prompt_tokens=20)
    assert rec.ok and rec.output_tokens == 4
    assert rec.server_prompt_s == pytest.approx(0.0415) and rec.server_decode_s == pytest.approx(0.03025)
    assert (rec.server_prompt_tokens, rec.server_output_tokens, rec.server_cached_tokens) == (21, 4, 3)
    assert rec.requested_prompt_tokens == 20
    if include_usage:
        assert rec.prompt_tokens == 24 and rec.output_tokens_source == "usage"


def test_cached_tokens_come_from_usage_first_then_timings():
    rec = read(llama_chat_stream(include_usage=False, timings={**TIMINGS, "cache_n": 7}), True)
    assert rec.server_cached_tokens == 7  # no usage: the timings' cache_n
    rec = read(llama_chat_stream(timings={**TIMINGS, "cache_n": 7}), True)
    assert rec.server_cached_tokens == 3  # usage.prompt_tokens_details.cached_tokens says it first


def test_a_vllm_shaped_stream_leaves_the_server_fields_none():
    raw = llama_chat_stream().replace(b', "timings": ' + json.dumps(TIMINGS).encode(), b"")
    raw = raw.replace(b', "prompt_tokens_details": {"cached_tokens": 3}', b"")
    rec = read(raw, True)
    assert rec.ok and rec.prompt_tokens == 24
    assert [rec.server_prompt_s, rec.server_decode_s, rec.server_prompt_tokens, rec.server_cached_tokens,
            rec.server_output_tokens, rec.requested_prompt_tokens] == [None] * 6


@pytest.mark.parametrize("bad", [-5, "41.5", None, True, float("inf"), [1]])
def test_a_timing_that_is_no_duration_is_left_out_and_the_request_stays_ok(bad):
    t = {**TIMINGS, "prompt_ms": bad, "prompt_n": 2.5}
    raw = llama_chat_stream(timings=t).replace(b"Infinity", b"1e999")  # JSON has no inf: a number too big
    rec = read(raw, True)
    assert rec.ok and rec.server_prompt_s is None and rec.server_prompt_tokens is None
    assert rec.server_decode_s == pytest.approx(0.03025)  # the good ones are kept


def test_timings_that_are_no_object_are_ignored():
    rec = read(llama_chat_stream(timings="fast"), False)
    assert rec.ok and rec.server_prompt_s is None


def test_completions_stream_reads_timings_too():
    base = {**BASE, "object": "text_completion"}
    body = [chunk({**base, "choices": [{"text": f" w{i}", "index": 0, "logprobs": None, "finish_reason": None}]})
            for i in range(4)]
    body += [chunk({**base, "choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": "length"}]}),
             chunk({**base, "choices": [], "usage": {"completion_tokens": 4, "prompt_tokens": 9, "total_tokens": 13},
                    "timings": TIMINGS})]
    rec = read(b"".join(body) + b"data: [DONE]\n\n", True, cls=OpenAICompletionsStream)
    assert rec.ok and rec.prompt_tokens == 9 and rec.server_decode_s == pytest.approx(0.03025)


def test_the_last_timings_win_with_timings_per_token():
    # llama.cpp's timings_per_token: every chunk carries timings; the final one is the whole request's.
    early = {**TIMINGS, "predicted_ms": 1.0, "predicted_n": 1}
    raw = llama_chat_stream(n=1).replace(b'"delta": {"content": " w0"}}]', b'"delta": {"content": " w0"}}], "timings": '
                                         + json.dumps(early).encode())
    for fast in (True, False):
        rec = read(raw, fast)
        assert rec.server_decode_s == pytest.approx(0.03025) and rec.server_output_tokens == 4
