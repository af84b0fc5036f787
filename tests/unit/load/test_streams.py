import json

from harness.load.failures import classify_status, error_message
from harness.load.streams import OpenAIChatStream, OpenAICompletionsStream, TGIGenerateStream


def chat_chunk(content=None, finish=None, role=False):
    delta = {"role": "assistant", "content": ""} if role else {"content": content}
    return json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}).encode()


def usage_chunk(prompt, completion):
    return json.dumps({"id": "chatcmpl-1", "choices": [], "usage": {
        "prompt_tokens": prompt, "total_tokens": prompt + completion, "completion_tokens": completion}}).encode()


def test_chat_ttft_is_first_text_chunk_not_role_chunk_and_itl_pools_gaps():
    acc = OpenAIChatStream("r1", sent_s=10.0, requested_output_tokens=3, forced_length=True)
    acc.feed([chat_chunk(role=True)], 10.01)
    acc.feed([chat_chunk("Hello")], 10.05)
    acc.feed([chat_chunk(" big")], 10.07)
    acc.feed([chat_chunk(" world", finish="length")], 10.12)
    acc.feed([usage_chunk(7, 3), b"[DONE]"], 10.13)
    rec = acc.finish(10.14, 200)
    assert rec.ok and rec.error_type is None
    assert abs(rec.ttft_s - 0.05) < 1e-9
    assert [round(x, 6) for x in rec.itl_s] == [0.02, 0.05]
    assert rec.output_tokens == 3 and rec.output_tokens_source == "usage" and rec.prompt_tokens == 7
    assert rec.finish_reason == "length"
    assert abs(rec.e2e_s - 0.14) < 1e-9
    assert abs(rec.tpot_s - (0.14 - 0.05) / 2) < 1e-9


def test_chat_without_usage_counts_chunks():
    acc = OpenAIChatStream("r", 0.0, 2, True)
    acc.feed([chat_chunk("a"), chat_chunk("b", finish="length"), b"[DONE]"], 1.0)
    rec = acc.finish(1.0, 200)
    assert rec.output_tokens == 2 and rec.output_tokens_source == "chunks"
    assert rec.itl_s == [0.0]  # two tokens in one read: the client saw no gap


def test_missing_done_is_malformed_stream():
    acc = OpenAIChatStream("r", 0.0, 1, True)
    acc.feed([chat_chunk("a", finish="length")], 0.5)
    rec = acc.finish(0.6, 200)
    assert not rec.ok and rec.error_type == "malformed_stream"


def test_unparseable_event_is_malformed_stream():
    acc = OpenAICompletionsStream("r", 0.0, 1, True)
    acc.feed([b"{not json", b"[DONE]"], 0.5)
    rec = acc.finish(0.6, 200)
    assert rec.error_type == "malformed_stream" and "unparseable" in rec.error


def test_in_stream_error_event_is_stream_error():
    acc = OpenAIChatStream("r", 0.0, 4, True)
    acc.feed([chat_chunk("a"), json.dumps({"error": {"message": "boom", "type": "InternalServerError",
                                                     "code": 500}}).encode(), b"[DONE]"], 0.5)
    rec = acc.finish(0.6, 200)
    assert rec.error_type == "stream_error" and rec.error == "boom"


def test_short_output_flagged_only_when_length_was_forced():
    acc = OpenAIChatStream("r", 0.0, 10, True)
    acc.feed([chat_chunk("a", finish="stop"), usage_chunk(3, 1), b"[DONE]"], 0.2)
    rec = acc.finish(0.3, 200)
    assert rec.error_type == "short_output" and "asked for 10" in rec.error
    tgi = TGIGenerateStream("t", 0.0, 10, forced_length=False)
    tgi.feed([json.dumps({"index": 1, "token": {"id": 2, "text": "x", "logprob": 0, "special": False},
                          "generated_text": "x", "details": None}).encode()], 0.2)
    assert tgi.finish(0.3, 200).ok


def test_completions_intermediate_empty_finish_reason_ignored():
    acc = OpenAICompletionsStream("r", 0.0, 2, True)
    mk = lambda t, f: json.dumps({"choices": [{"index": 0, "text": t, "finish_reason": f}]}).encode()
    acc.feed([mk(" a", "")], 0.1)
    acc.feed([mk(" b", "length"), b"data: ignored" if False else b"[DONE]"], 0.2)
    rec = acc.finish(0.2, 200)
    assert rec.ok and rec.finish_reason == "length" and rec.output_tokens == 2


def test_tgi_final_event_details_give_usage_and_no_done_needed():
    ev = lambda i, text, final=None, details=None: json.dumps({
        "index": i, "token": {"id": i, "text": text, "logprob": -0.1, "special": False},
        "generated_text": final, "details": details}).encode()
    acc = TGIGenerateStream("t", 5.0, 3, False)
    acc.feed([ev(1, " a")], 5.1)
    acc.feed([ev(2, " b")], 5.2)
    acc.feed([ev(3, " c", " a b c", {"finish_reason": "length", "generated_tokens": 3, "seed": None,
                                      "input_length": 9})], 5.3)
    rec = acc.finish(5.3, 200)
    assert rec.ok and rec.output_tokens == 3 and rec.output_tokens_source == "usage"
    assert rec.prompt_tokens == 9 and rec.finish_reason == "length"
    assert abs(rec.ttft_s - 0.1) < 1e-9 and len(rec.itl_s) == 2


def test_tgi_in_stream_overload_is_overloaded_429():
    acc = TGIGenerateStream("t", 0.0, 3, False)
    acc.feed([b'{"error":"Model is overloaded","error_type":"overloaded"}'], 0.01)
    rec = acc.finish(0.02, 200)
    assert rec.error_type == "overloaded_429" and rec.error == "Model is overloaded" and rec.ttft_s is None


def test_http_status_classes_and_messages():
    assert [classify_status(s) for s in (200, 0, 400, 404, 429, 500, 503)] == [
        None, "connect", "http_4xx", "http_4xx", "overloaded_429", "http_5xx", "overloaded_503"]
    vllm = b'{"error":{"message":"This model\'s maximum context length is 4096 tokens.","type":"BadRequestError","param":"input_tokens","code":400}}'
    assert error_message(vllm).startswith("This model's maximum context length")
    assert error_message(b'{"error":"Input validation error: x","error_type":"validation"}') == "Input validation error: x"
    assert error_message(b"plain\ntext") == "plain text"
    acc = OpenAIChatStream("r", 0.0, 3, True)
    rec = acc.finish(0.1, 404)
    assert not rec.ok and rec.error_type == "http_4xx" and rec.output_tokens == 0


def test_transport_error_wins_over_status():
    acc = OpenAIChatStream("r", 0.0, 3, True)
    acc.feed([chat_chunk("a")], 0.1)
    rec = acc.finish(0.5, 200, ("stream_error", "ConnectionResetError: reset"))
    assert rec.error_type == "stream_error" and rec.ttft_s == 0.1 and not rec.ok


def test_chat_reply_text_kept_only_when_asked():
    acc = OpenAIChatStream("r", 0.0, 2, True)
    acc.keep_text = True
    acc.feed([chat_chunk(role=True), chat_chunk("Hi"), chat_chunk(" you", finish="length"), b"[DONE]"], 0.1)
    acc.finish(0.2, 200)
    assert "".join(acc.text) == "Hi you"
    plain = OpenAIChatStream("r", 0.0, 2, True)
    plain.feed([chat_chunk("Hi"), b"[DONE]"], 0.1)
    assert plain.text == []


def completion_chunk(text, done, finish=None):
    """A vLLM completions chunk with continuous_usage_stats: usage counts every token so far."""
    return json.dumps({"id": "cmpl-1", "object": "text_completion", "choices": [
        {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": 5, "total_tokens": 5 + done, "completion_tokens": done}}).encode()


def test_usage_in_every_chunk_says_how_many_tokens_each_chunk_carried():
    # Speculative decoding: one chunk carries 1 token, the next 3, the last 2.
    acc = OpenAICompletionsStream("r", sent_s=0.0, requested_output_tokens=6, forced_length=True)
    acc.feed([completion_chunk(" a", 1)], 0.1)
    acc.feed([completion_chunk(" b c d", 4)], 0.2)
    acc.feed([completion_chunk(" e f", 6, finish="length")], 0.3)
    acc.feed([json.dumps({"id": "cmpl-1", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 6}}).encode(),
              b"[DONE]"], 0.31)
    rec = acc.finish(0.32, 200)
    assert rec.ok and rec.output_tokens == 6 and len(rec.itl_s) == 2
    assert rec.chunk_tokens == [1, 3, 2]


def test_chat_role_chunk_with_usage_is_not_a_text_chunk():
    acc = OpenAIChatStream("r", sent_s=0.0, requested_output_tokens=2, forced_length=True)
    role = json.loads(chat_chunk(role=True))
    acc.feed([json.dumps({**role, "usage": {"completion_tokens": 0}}).encode()], 0.05)
    for k, t in enumerate((0.1, 0.2), start=1):
        acc.feed([json.dumps({**json.loads(chat_chunk("x")), "usage": {"completion_tokens": k}}).encode()], t)
    acc.feed([usage_chunk(5, 2), b"[DONE]"], 0.21)
    assert acc.finish(0.22, 200).chunk_tokens == [1, 1]


def test_no_per_chunk_usage_means_chunk_tokens_unknown():
    acc = OpenAICompletionsStream("r", sent_s=0.0, requested_output_tokens=3, forced_length=True)
    acc.feed([completion_chunk(" a", 1)], 0.1)
    acc.feed([json.dumps({"id": "cmpl-1", "choices": [{"index": 0, "text": " b", "finish_reason": None}]}).encode()],
             0.2)  # this chunk did not say: the per-chunk list would be short
    acc.feed([completion_chunk(" c", 3, finish="length"), b"[DONE]"], 0.3)
    rec = acc.finish(0.31, 200)
    assert rec.ok and rec.output_tokens == 3 and rec.chunk_tokens is None
    plain = OpenAIChatStream("r", sent_s=0.0, requested_output_tokens=1, forced_length=False)
    plain.feed([chat_chunk("x"), usage_chunk(5, 1), b"[DONE]"], 0.1)
    assert plain.finish(0.2, 200).chunk_tokens is None
