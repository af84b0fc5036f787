"""The byte-level fast path must give exactly the records a full JSON parse gives."""

import json
import random

import pytest
from hypothesis import given, settings, strategies as st

from harness.load.sse import SSEParser
from harness.load.streams import ACCUMULATORS
from harness.records import ERROR_TYPES

VLLM_CHAT = [
    b'{"id":"chatcmpl-9f1c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":null}',
    b'{"id":"chatcmpl-9f1c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null,"token_ids":null}],"kv_transfer_params":null}',
    b'{"id":"chatcmpl-9f1c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"\\""},"logprobs":null,"finish_reason":null}]}',
    b'{"id":"chatcmpl-9f1c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":null}]}',
    b'{"id":"chatcmpl-9f1c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"!"},"logprobs":null,"finish_reason":"stop","stop_reason":null}]}',
    b'{"id":"chatcmpl-9f1c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":12,"total_tokens":14,"completion_tokens":2}}',
    b"[DONE]",
]
TGI_CHAT = [
    b'{"object":"chat.completion.chunk","id":"","created":1,"model":"m","system_fingerprint":"3.1.2-dev0-native","choices":[{"index":0,"delta":{"role":"assistant","content":"Deep"},"logprobs":null,"finish_reason":null}],"usage":null}',
    b'{"object":"chat.completion.chunk","id":"","created":1,"model":"m","system_fingerprint":"x","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}',
    b'{"object":"chat.completion.chunk","id":"","created":1,"model":"m","system_fingerprint":"x","choices":[{"index":0,"delta":{"role":"assistant","content":"\\n\\n"},"logprobs":null,"finish_reason":"length"}],"usage":null}',
    b'{"object":"chat.completion.chunk","id":"","created":1,"model":"m","system_fingerprint":"x","choices":[],"usage":{"prompt_tokens":40,"completion_tokens":10,"total_tokens":50}}',
    b"[DONE]",
]
COMPLETIONS = [
    b'{"id":"cmpl-4b","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":" Paris","logprobs":null,"finish_reason":null,"stop_reason":null}]}',
    b'{"object":"text_completion","id":"","created":1,"choices":[{"index":0,"text":" a","logprobs":null,"finish_reason":""}],"model":"m"}',
    b'{"id":"cmpl-4b","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":".","logprobs":null,"finish_reason":"length","stop_reason":null}]}',
    b'{"id":"cmpl-4b","object":"text_completion","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":7,"total_tokens":9,"completion_tokens":2}}',
    b"[DONE]",
]
TGI_NATIVE = [
    b'{"index":1,"token":{"id":415,"text":" This","logprob":-0.21,"special":false},"generated_text":null,"details":null}',
    b'{"index":2,"token":{"id":2,"text":"","logprob":-0.05,"special":true},"generated_text":null,"details":null}',
    b'{"index":3,"token":{"id":28723,"text":".","logprob":-0.6,"special":false},"generated_text":"This.","details":{"finish_reason":"length","generated_tokens":3,"seed":null,"input_length":7}}',
]
ERRORS = [b'{"error":{"message":"boom","type":"InternalServerError","code":500}}', b'{"bad json', b"[1,2]"]


def run(api, payloads, fast):
    acc = ACCUMULATORS[api]("r", 0.0, 3, forced_length=False)
    acc.fast = fast
    for i, p in enumerate(payloads):
        acc.feed([p], 0.01 * (i + 1))
    return acc.finish(1.0, 200)


@pytest.mark.parametrize("api,stream", [("openai-chat", VLLM_CHAT), ("openai-chat", TGI_CHAT),
                                        ("openai-completions", COMPLETIONS), ("tgi-generate-stream", TGI_NATIVE)])
def test_fast_path_equals_full_parse(api, stream):
    for payloads in (stream, stream[:2] + ERRORS[:1] + stream[2:], stream[:1] + ERRORS[1:2] + stream[1:]):
        assert run(api, payloads, True) == run(api, payloads, False)


def test_randomised_chat_chunks_agree():
    rng = random.Random(5)
    alphabet = ['a', ' ', '"', '\\', '\n', 'é', '{', '}', ':', ',', '"content":"x"', 'null', '']
    for _ in range(300):
        payloads = []
        for k in range(rng.randint(1, 8)):
            content = rng.choice([None, ""] + ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))])
            finish = rng.choice([None, None, None, "stop", "length"])
            delta = {} if content is None else {"content": content}
            if rng.random() < 0.2:
                delta["role"] = "assistant"
            obj = {"id": "x", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            if rng.random() < 0.1:
                obj["usage"] = None
            sep = (", ", ": ") if rng.random() < 0.3 else (",", ":")
            payloads.append(json.dumps(obj, separators=sep, ensure_ascii=rng.random() < 0.5).encode())
        payloads.append(b"[DONE]")
        assert run("openai-chat", payloads, True) == run("openai-chat", payloads, False), payloads


def _random_chunks(rng, api, n):
    """A stream of n chunks sharing one id (as servers send them), texts drawn to hit every edge."""
    alphabet = ['a', ' ', '"', '\\', '\n', '\\"', 'é', '{', '}', ':', ',', '"text":"x"', 'null', '']
    key = "content" if api == "openai-chat" else "text"
    out = []
    for _ in range(n):
        text = rng.choice([None, "", "hello", " a"] + ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))])
        finish = rng.choice([None] * 6 + ["stop", "length", ""])
        choice = {"index": 0, "delta": {} if text is None else {key: text}} if key == "content" else {"index": 0, key: text}
        choice.update({"logprobs": None, "finish_reason": finish})
        obj = {"id": "cmpl-1", "object": "x", "created": 1, "model": "m", "choices": [choice]}
        if rng.random() < 0.05:
            obj["usage"] = {"prompt_tokens": 3, "completion_tokens": 9}
        raw = json.dumps(obj, separators=(",", ":"), ensure_ascii=rng.random() < 0.5).encode()
        if text == "hello" and rng.random() < 0.3:
            # Bytes shaped like a learnt chunk whose text ends early, followed by another key.
            raw = raw.replace(b'"hello"', rng.choice([b'"","x":""', b'"","y":"z"', b'"a","x":"b"']))
        out.append(raw)
    return out + [b"[DONE]"]


@pytest.mark.parametrize("api", ["openai-chat", "openai-completions"])
def test_learnt_chunk_shape_gives_the_full_parse_records(api):
    # Long streams: after the first plain chunk, later ones are matched against its bytes.
    rng = random.Random(11)
    for _ in range(200):
        payloads = _random_chunks(rng, api, rng.randint(1, 40))
        assert run(api, payloads, True) == run(api, payloads, False), payloads


def _frame(rng, payloads, space):
    events = []
    for p in payloads:
        events.append((b"data: " if space else b"data:") + p + b"\n\n")
        if rng.random() < 0.05:
            events.append(b": keep-alive\n\n")
    data = b"".join(events)
    if rng.random() < 0.1:
        data = data.replace(b"\n", b"\r\n")
    blocks, i = [], 0
    while i < len(data):  # reads that end on event boundaries, or anywhere
        if rng.random() < 0.7:
            j = data.find(b"\n\n", i + rng.randint(0, 300))
            j = len(data) if j < 0 else j + 2
        else:
            j = i + rng.randint(1, 200)
        blocks.append(data[i:j])
        i = j
    return blocks


def _by_blocks(api, blocks, fast):
    acc = ACCUMULATORS[api]("r", 0.0, 3, forced_length=False)
    acc.fast = fast
    parser = SSEParser()
    for i, block in enumerate(blocks):
        t_s = 0.01 * (i + 1)
        if fast:
            acc.feed_block(parser, block, t_s)
        else:
            acc.feed(parser.feed(block), t_s)
    acc.feed(parser.close(), 1.0)
    return acc.finish(1.0, 200)


@pytest.mark.parametrize("api", ["openai-chat", "openai-completions", "tgi-generate-stream"])
def test_block_reads_give_the_same_record_as_parser_then_full_parse(api):
    rng = random.Random(7)
    fixed = {"openai-chat": [VLLM_CHAT, TGI_CHAT], "openai-completions": [COMPLETIONS],
             "tgi-generate-stream": [TGI_NATIVE, TGI_NATIVE + TGI_NATIVE[:1]]}[api]
    for k in range(300):
        if api == "tgi-generate-stream" or k % 2:
            payloads = list(rng.choice(fixed))
            if rng.random() < 0.3:
                payloads.insert(rng.randint(0, len(payloads)), rng.choice(ERRORS))
        else:
            payloads = _random_chunks(rng, api, rng.randint(1, 30))
        blocks = _frame(rng, payloads, space=api != "tgi-generate-stream")
        assert _by_blocks(api, blocks, True) == _by_blocks(api, blocks, False), blocks


# -- whatever JSON a server sends, one record: never an exception, the same record both ways

_KEYS = ["choices", "delta", "content", "text", "usage", "finish_reason", "error", "error_type", "index",
         "token", "special", "generated_text", "details", "generated_tokens", "input_length",
         "completion_tokens", "prompt_tokens", "message", "type"]
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-2, 10**30), st.floats(allow_nan=False),
                    st.text(max_size=6), st.sampled_from(["", "stop", "length", "overloaded"]))
_json = st.recursive(_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(_KEYS), inner, max_size=4)), max_leaves=12)
_any_payload = st.one_of(
    st.dictionaries(st.sampled_from(_KEYS), _json, max_size=5).map(lambda d: json.dumps(d).encode()),
    st.sampled_from(VLLM_CHAT + TGI_CHAT + COMPLETIONS + TGI_NATIVE + ERRORS),
    st.binary(max_size=12),
)


@st.composite
def _server_chunk(draw):
    """An OpenAI-shaped chunk as a server writes it (one choice with its index, keys in any order),
    with odd values: what the byte-level fast path must measure exactly as the full parse does."""
    choice = {"index": 0}
    if draw(st.booleans()):
        choice["delta"] = draw(st.dictionaries(st.sampled_from(["content", "role"]), _scalar, max_size=2))
    else:
        choice["text"] = draw(_scalar)
    for key in draw(st.lists(st.sampled_from(["finish_reason", "logprobs", "stop_reason"]), unique=True)):
        choice[key] = draw(_scalar)
    obj = {"id": "c", "choices": [choice] if draw(st.integers(0, 5)) else []}
    if draw(st.integers(0, 4)) == 0:
        obj["usage"] = draw(st.one_of(st.none(), st.dictionaries(
            st.sampled_from(["prompt_tokens", "completion_tokens"]), st.integers(0, 99), max_size=2)))
    sep = draw(st.sampled_from([(",", ":"), (", ", ": ")]))
    return json.dumps(obj, separators=sep, ensure_ascii=draw(st.booleans())).encode()


def _check_valid(rec):
    assert rec.error_type is None or rec.error_type in ERROR_TYPES
    assert rec.ok == (rec.error_type is None)
    if rec.error is not None:
        assert "\n" not in rec.error and len(rec.error) <= 300
    assert rec.finish_reason is None or isinstance(rec.finish_reason, str)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["openai-chat", "openai-completions", "tgi-generate-stream"]),
       st.lists(_any_payload, max_size=6))
def test_any_event_is_a_record_never_an_exception(api, payloads):
    for fast in (True, False):
        _check_valid(run(api, payloads, fast))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["openai-chat", "openai-completions"]), st.lists(_server_chunk(), max_size=8))
def test_server_shaped_chunks_with_odd_values_agree_both_ways(api, payloads):
    payloads = payloads + [b"[DONE]"]
    fast, full = run(api, payloads, True), run(api, payloads, False)
    _check_valid(fast)
    assert fast == full
