"""Stream accounting: turn timed SSE payloads of one request into a RequestRecord.

Pure (no I/O): the caller stamps each block of payloads with the monotonic time its bytes
arrived. One accumulator per API shape: OpenAI chat, OpenAI completions, TGI generate_stream.
TTFT is the first chunk that carries generated text; ITL is every gap between such chunks.
"""

from __future__ import annotations

import json
import re

from harness.records import RequestRecord
from harness.load.failures import MAX_ERROR_CHARS, MAX_RECONNECTS, classify_status, closed_before_response, error_message
from harness.load.sse import DONE, EventTooLarge, event_data


class StreamAccumulator:
    """Collects one streamed response. Subclasses implement `_payload(obj, t_s)`."""

    api = ""
    needs_done = True  # OpenAI streams end with data: [DONE]; TGI's does not

    def __init__(self, request_id: str, sent_s: float, requested_output_tokens: int | None,
                 forced_length: bool, scheduled_s: float | None = None, sent_unix_s: float | None = None,
                 user: str | None = None, requested_prompt_tokens: int | None = None):
        self.rec = RequestRecord(request_id=request_id, api=self.api, sent_s=sent_s, end_s=sent_s, status=0,
                                 ok=False, scheduled_s=scheduled_s, requested_output_tokens=requested_output_tokens,
                                 sent_unix_s=sent_unix_s, user=user, requested_prompt_tokens=requested_prompt_tokens)
        self.forced_length = forced_length  # the request asked for exactly N tokens (ignore_eos)
        self._last_token_s: float | None = None
        self._chunks = 0
        self._usage_tokens: int | None = None
        self.done = False
        self.text: list[str] = []
        self._tpl = None  # OpenAI streams: the learnt shape of a plain middle chunk (_Template)
        self._per_chunk: list[int] = []  # tokens each text chunk carried, while the server says (usage)
        self._usage_prev = 0
        self.reconnects = 0  # re-sends after the kept-alive connection proved closed (resend)

    # -- re-sending on a new connection

    def may_resend(self, status: int, exc: BaseException | None) -> bool:
        """True when the attempt that ended with (status, exc) should go again on a new connection."""
        return self.reconnects < MAX_RECONNECTS and self._chunks == 0 and closed_before_response(status, exc)

    def resend(self, sent_s: float, sent_unix_s: float | None = None) -> None:
        """The request goes again: nothing of an answer came, so the record starts over at the new send.
        Its id, user and scheduled_s stay; the reconnect is counted on the record, never as an error."""
        self.reconnects += 1
        rec = self.rec
        rec.sent_s = rec.end_s = sent_s
        if sent_unix_s is not None:
            rec.sent_unix_s = sent_unix_s
        rec.status, rec.error_type, rec.error = 0, None, None
        rec.reconnects = self.reconnects

    # -- feeding

    def feed(self, payloads: list[bytes], t_s: float) -> None:
        for p in payloads:
            if self.done and not self.needs_done:
                break
            if p == DONE:
                self.done = True
                continue
            if self.fast and self._fast(p, t_s):
                continue
            try:
                obj = json.loads(p)
            except (ValueError, RecursionError):
                self._fail("malformed_stream", f"unparseable event: {p[:80]!r}")
                continue
            if not isinstance(obj, dict):
                self._fail("malformed_stream", f"event is not a JSON object: {p[:80]!r}")
                continue
            if "error" in obj:
                self._stream_error(obj)
                continue
            try:
                self._payload(obj, t_s)
            except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as exc:  # "choices": [1]
                self._fail("malformed_stream", f"unexpected event shape ({type(exc).__name__}: {exc}): {p[:80]!r}")

    fast = True  # tests switch it off to prove the fast path gives the same records

    def feed_block(self, parser, block: bytes, t_s: float) -> None:
        """One read's bytes, all stamped with the time they arrived.

        A read that ends on an event boundary (nearly all of them while streaming) is split here
        and each event goes straight to `_fast`, with no payload list; anything else goes through
        `parser` and `feed`. Both ways give the same record (tests feed the same bytes both ways).
        Raises EventTooLarge (the record already says malformed_stream) when the parser gave up.
        """
        if parser.pending or not self.fast or block[-2:] != b"\n\n" or b"\r" in block:
            self.feed(parser.feed(block), t_s)
            if parser.error is not None:  # only this path buffers: the check costs the fast path nothing
                self._fail("malformed_stream", parser.error)
                raise EventTooLarge(parser.error)
            return
        for ev in block.split(b"\n\n")[:-1]:
            p = ev[6:] if ev[5:6] == b" " else ev[5:]
            if ev[:5] != b"data:" or b"\n" in ev:  # several lines or a comment: the general path
                p = event_data(ev)
                if p is None:
                    continue
            elif (self.needs_done or not self.done) and self._fast(p, t_s):
                continue
            self.feed([p], t_s)

    def _fast(self, p: bytes, t_s: float) -> bool:
        """Handle a plain middle chunk without parsing its JSON; False = parse it fully.

        Most chunks of a stream only say "one more token". Recognising them from their bytes
        keeps the client's CPU per request low (the json.loads per chunk was ~30 % of it).
        Anything that may carry more (an error, usage, a finish reason) takes the full parse.
        """
        return False

    def _token(self, t_s: float, n: int = 1) -> None:
        """A chunk carrying generated text arrived at t_s."""
        if self.rec.first_token_s is None:
            self.rec.first_token_s = t_s
        else:
            self.rec.itl_s.append(t_s - self._last_token_s)
        self._last_token_s = t_s
        self._chunks += n

    def fail(self, error_type: str, message: str) -> None:
        """A failure the reader found outside the events (e.g. a body that is not a stream)."""
        self._fail(error_type, message)

    def _fail(self, error_type: str, message: str) -> None:
        if self.rec.error_type is None:  # the first failure is the cause; later ones are fallout
            self.rec.error_type = error_type
            self.rec.error = message[:MAX_ERROR_CHARS]

    def _stream_error(self, obj: dict) -> None:
        err = obj.get("error")
        msg = error_message(json.dumps(obj))
        kind = obj.get("error_type") or (err.get("type") if isinstance(err, dict) else None)
        self._fail("overloaded_429" if kind == "overloaded" else "stream_error", msg)

    def _chunk_usage(self, had_text: bool, usage) -> None:
        """Usage in every chunk (vLLM's continuous_usage_stats) is cumulative: the difference from
        the previous chunk's is what this chunk carried. A text chunk without usage leaves the
        per-chunk list short, and the record then says nothing per chunk."""
        done = usage.get("completion_tokens") if isinstance(usage, dict) else None
        if done is None:
            return
        if had_text:
            self._per_chunk.append(int(done) - self._usage_prev)
        self._usage_prev = int(done)

    def _usage(self, usage: dict | None) -> None:
        if isinstance(usage, dict):
            if usage.get("prompt_tokens") is not None:
                self.rec.prompt_tokens = int(usage["prompt_tokens"])
            if usage.get("completion_tokens") is not None:
                self._usage_tokens = int(usage["completion_tokens"])
            details = usage.get("prompt_tokens_details")  # OpenAI's shape: vLLM and llama.cpp send it
            if isinstance(details, dict) and details.get("cached_tokens") is not None:
                self.rec.server_cached_tokens = _non_negative(details["cached_tokens"], whole=True)

    def _timings(self, timings) -> None:
        """llama.cpp's own account of the request (`timings`, on its last chunk; on every chunk with
        timings_per_token, where the last one wins). Milliseconds become seconds; a value that is not a
        finite, non-negative number is left out, not an error: the stream itself was fine."""
        if not isinstance(timings, dict):
            return
        for key, name, per_s in _TIMINGS:
            v = _non_negative(timings.get(key), whole=per_s is None)
            if v is not None and not (name == "server_cached_tokens" and self.rec.server_cached_tokens is not None):
                setattr(self.rec, name, v if per_s is None else v / per_s)

    def _payload(self, obj: dict, t_s: float) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- ending

    def finish(self, end_s: float, status: int, transport_error: tuple[str, str] | None = None) -> RequestRecord:
        """Close the record. `transport_error` = (error class, message) for connect/timeout/reset."""
        rec = self.rec
        rec.end_s = end_s
        rec.status = status
        if transport_error is not None:
            self._fail(*transport_error)
        elif status and classify_status(status):
            self._fail(classify_status(status), f"HTTP {status}")
        elif self.needs_done and not self.done and rec.error_type is None:
            self._fail("malformed_stream", "stream ended without data: [DONE]")
        elif not self.needs_done and not self.done and rec.error_type is None:
            self._fail("malformed_stream", "stream ended without a final event (generated_text)")
        if self._usage_tokens is not None:
            rec.output_tokens, rec.output_tokens_source = self._usage_tokens, "usage"
        else:
            rec.output_tokens, rec.output_tokens_source = self._chunks, "chunks"
        if rec.first_token_s is not None:
            rec.ttft_s = rec.first_token_s - rec.sent_s
        if self._per_chunk and len(self._per_chunk) == len(rec.itl_s) + 1:
            rec.chunk_tokens = self._per_chunk
        rec.e2e_s = end_s - rec.sent_s
        want = rec.requested_output_tokens
        if rec.error_type is None and self.forced_length and want and rec.output_tokens < want:
            # The server was told to produce exactly `want` tokens; fewer silently inflates throughput.
            self._fail("short_output", f"asked for {want} output tokens, got {rec.output_tokens}")
        rec.ok = rec.error_type is None
        return rec


# llama.cpp `timings` key -> record field, and its units per second (None: a token count). The usage's
# cached_tokens, in the same chunk and read first, wins over cache_n.
_TIMINGS = (("prompt_ms", "server_prompt_s", 1000.0), ("predicted_ms", "server_decode_s", 1000.0),
            ("prompt_n", "server_prompt_tokens", None), ("predicted_n", "server_output_tokens", None),
            ("cache_n", "server_cached_tokens", None))


def _non_negative(v, whole: bool = False) -> float | int | None:
    """A finite, non-negative JSON number (bool is not one; `whole`: an integer count), else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1e15:  # NaN fails the range
        return None
    return (int(v) if v == int(v) else None) if whole else float(v)


_SPECIAL = re.compile(rb'"error"|"usage": ?\{|"finish_reason": ?[^n ]')  # a finish reason: anything but null


def _plain_middle(p: bytes) -> bool:
    """One JSON object, one choice, no error, no usage object, no finish reason (null or absent).

    Like every byte-level check here it assumes no repeated keys, which no JSON encoder writes.
    """
    return (p[:1] == b"{" and p[-1:] == b"}" and _SPECIAL.search(p) is None and p.count(b'"index"') < 2
            and b'"choices"' in p)  # e.g. a TGI native event sent to an OpenAI user carries no choice


def _has_text(p: bytes, key: bytes) -> bool | None:
    """Whether `"key": "<non-empty>"` is in p; None when the key is missing or not a string."""
    i = p.find(key)
    if i < 0:
        return None
    i += len(key)
    while p[i:i + 1] == b" ":
        i += 1
    if p[i:i + 1] != b'"':
        return False if p[i:i + 4] == b"null" else None
    return p[i + 1:i + 2] != b'"'


class _Template:
    """The bytes around a plain chunk's text, learnt from one chunk the checks above accepted.

    A server sends every middle chunk of a stream with the same bytes around the text (same id,
    created, model, nulls), so a later chunk that starts and ends like the learnt one, and whose
    middle holds no quote and no trailing backslash (so the string cannot end elsewhere), carries
    exactly that middle as its text: no other check is needed.
    """

    __slots__ = ("head", "tail", "size")

    def __init__(self, p: bytes, key: bytes):
        self.size = 0  # 0 = nothing learnt: the text's bytes hold a quote or a backslash
        i = p.find(key) + len(key)
        while p[i:i + 1] == b" ":
            i += 1
        j = p.find(b'"', i + 1)
        if p[i:i + 1] == b'"' and j > i + 1 and b"\\" not in p[i + 1:j]:
            self.head, self.tail = p[:i + 1], p[j:]
            self.size = len(self.head) + len(self.tail)

    def text(self, p: bytes) -> bytes | None:
        """The raw text bytes of `p` when it has the learnt shape; None otherwise."""
        if self.size and len(p) >= self.size and p.startswith(self.head) and p.endswith(self.tail):
            mid = p[len(self.head):len(p) - len(self.tail)]
            if b'"' not in mid and mid[-1:] != b"\\":
                return mid
        return None


class _OpenAIStream(StreamAccumulator):
    """OpenAI-shaped chunks: the text is under `text_key` in the one choice; usage may follow."""

    keep_text = False  # multi-turn sessions need the reply to build the next turn's history
    text_key = b""

    def _fast(self, p: bytes, t_s: float) -> bool:
        if self.keep_text:
            return False
        tpl = self._tpl
        if tpl is not None and tpl.text(p) is not None:
            if len(p) > tpl.size:
                self._token(t_s)
            return True
        if not _plain_middle(p):
            return False
        has = _has_text(p, self.text_key)
        if has is None:
            return self._textless(p)
        if has:
            self._token(t_s)
            self._tpl = _Template(p, self.text_key)
        return True

    def _textless(self, p: bytes) -> bool:
        """A plain chunk without the text key: True when its bytes show it carries nothing."""
        return False

    def _choice(self, ch: dict, t_s: float) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _payload(self, obj: dict, t_s: float) -> None:
        before = self._chunks
        for ch in obj.get("choices") or ():
            self._choice(ch, t_s)
            if ch.get("finish_reason"):  # TGI sends "" on intermediate completions chunks
                self.rec.finish_reason = str(ch["finish_reason"])
        usage = obj.get("usage")
        if usage:
            self._usage(usage)
        self._chunk_usage(self._chunks > before, usage)
        if "timings" in obj:
            self._timings(obj["timings"])


class OpenAIChatStream(_OpenAIStream):
    api = "openai-chat"
    text_key = b'"content":'

    def _textless(self, p: bytes) -> bool:
        return b'"delta"' in p and b'"content"' not in p and b'"tool_calls"' not in p  # e.g. a role-only delta

    def _choice(self, ch: dict, t_s: float) -> None:
        delta = ch.get("delta") or {}
        if delta.get("content"):
            self._token(t_s)
            if self.keep_text:
                self.text.append(delta["content"])


class OpenAICompletionsStream(_OpenAIStream):
    api = "openai-completions"
    text_key = b'"text":'

    def _choice(self, ch: dict, t_s: float) -> None:
        if ch.get("text"):
            self._token(t_s)


class TGIGenerateStream(StreamAccumulator):
    api = "tgi-generate-stream"
    needs_done = False

    def _fast(self, p: bytes, t_s: float) -> bool:
        # A middle token event: generated_text still null, an ordinary (non-special) token.
        if (p[:1] != b"{" or p[-1:] != b"}" or b'"error"' in p or b'"generated_text":null' not in p
                or b'"special":false' not in p):
            return False
        self._token(t_s)
        return True

    def _payload(self, obj: dict, t_s: float) -> None:
        tok = obj.get("token")
        if isinstance(tok, dict):
            # Every TGI event is one generated token (special EOS tokens included in its count).
            if tok.get("text") or not tok.get("special"):
                self._token(t_s)
            else:
                self._chunks += 1
        if obj.get("generated_text") is not None:
            self.done = True
            details = obj.get("details")
            if isinstance(details, dict):
                if details.get("generated_tokens") is not None:
                    self._usage_tokens = int(details["generated_tokens"])
                if details.get("input_length") is not None:
                    self.rec.prompt_tokens = int(details["input_length"])
                if details.get("finish_reason"):
                    self.rec.finish_reason = str(details["finish_reason"])


ACCUMULATORS = {c.api: c for c in (OpenAIChatStream, OpenAICompletionsStream, TGIGenerateStream)}
