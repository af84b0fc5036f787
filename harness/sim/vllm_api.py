"""vLLM flavor seam: the OpenAI-compatible routes of vLLM 0.33 as protocols.md §A describes them.

Routes: /health, /version, /v1/models, /v1/completions, /v1/chat/completions, /metrics, /sim/gpu.
Chunk key order, `data: ` framing, usage, ids and error bodies follow the 0.33 FORMAT examples.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from aiohttp import web
from prometheus_client import Counter

from .common import ApiBase, ServerContext, Tracker, abort_connection, dumps, json_body
from .prefixcache import chat_block_hashes, prompt_block_hashes
from .textgen import WORD_JSON, WORDS, TextGen, choose_output_tokens, prompt_tokens_chat, prompt_tokens_text
from .wire import TokenWriter, open_wire

VLLM_VERSION = "0.33.0"
# Admission control (vLLM 0.33 --max-num-queued-reqs / --max-num-queued-tokens): 503, type = the HTTP phrase.
QUEUE_FULL = ("The engine is currently busy and cannot accept new requests. "
              "Please try again later or on a different instance.")
PREFILL_BACKLOG_FULL = ("The engine has reached its prefill token backlog limit. "
                        "Please try again later or on a different instance.")
ADMISSION_REASONS = ("max_num_queued_reqs", "max_num_queued_tokens")


class ApiError(Exception):
    def __init__(self, status: int, etype: str, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.etype, self.message, self.param = status, etype, message, param

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.etype, "param": self.param, "code": self.status}}

    def response(self) -> web.Response:
        return web.Response(status=self.status, text=dumps(self.body()), content_type="application/json")


def _bad_body(loc: str, msg: str, value: Any) -> ApiError:
    # vLLM maps pydantic RequestValidationError to 400 "Bad Request" with the error list as text.
    detail = dumps({"type": "value_error", "loc": ["body", *loc.split(".")], "msg": msg, "input": value})
    return ApiError(400, "Bad Request", f"1 validation error:\n  {detail}", f"body.{loc}")


def _int_field(body: dict, name: str, default: int | None) -> int | None:
    v = body.get(name, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad_body(name, "Input should be a valid integer", v)
    return v


def _check_common(ctx: ServerContext, body: dict, prompt_tokens: int, default_max: int | None) -> tuple[int, int, bool]:
    """Validate model / stream options / lengths; returns (max_tokens, min_tokens, stream)."""
    model = body.get("model")
    if model is not None and model != ctx.served_model_name:
        raise ApiError(404, "NotFoundError",
                       f"The model `{model}` does not exist. Valid aliases: {ctx.served_model_name}.", "model")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad_body("stream", "Input should be a valid boolean", stream)
    if body.get("stream_options") is not None and not stream:
        raise ApiError(400, "BadRequestError", "Stream options can only be defined when `stream=True`.",
                       "stream_options")
    max_tokens = _int_field(body, "max_completion_tokens", None) if "max_completion_tokens" in body else None
    if max_tokens is None:
        max_tokens = _int_field(body, "max_tokens", default_max)
    min_tokens = _int_field(body, "min_tokens", 0) or 0
    n = _int_field(body, "n", 1)
    if n != 1:
        raise ApiError(400, "BadRequestError", "The simulator supports only n=1.", "n")
    L = ctx.max_model_len
    if prompt_tokens > L:
        raise ApiError(400, "BadRequestError",
                       f"This model's maximum context length is {L} tokens. However, your prompt contains "
                       f"{prompt_tokens} input tokens, which exceeds this limit even without any output tokens. "
                       f"Please reduce the length of the input prompt. (parameter=input_tokens, value={prompt_tokens})",
                       "input_tokens")
    if prompt_tokens == L:
        raise ApiError(400, "BadRequestError",
                       f"The decoder prompt (length {prompt_tokens}) plus the number of requested output tokens "
                       f"(at least 1) is longer than the maximum model length of {L}. Make sure that `max_model_len` "
                       f"is no smaller than the number of text tokens (prompt + requested output tokens).")
    if max_tokens is not None and max_tokens < 1:
        raise ApiError(400, "BadRequestError", f"max_tokens must be at least 1, got {max_tokens}.", "max_tokens")
    if max_tokens is not None and max_tokens > L:
        raise ApiError(400, "BadRequestError", f"max_tokens={max_tokens} cannot be greater than max_model_len={L}. "
                       "Please request fewer output tokens.", "max_tokens")
    # 0.33 silently clamps max_tokens to the remaining context (None = all of it).
    max_tokens = min(L - prompt_tokens, max_tokens if max_tokens is not None else L)
    if min_tokens > max_tokens:
        raise ApiError(400, "BadRequestError",
                       f"min_tokens must be less than or equal to max_tokens={max_tokens}, got {min_tokens}.",
                       "min_tokens")
    return max_tokens, min_tokens, stream


class VllmApi(ApiBase):

    def __init__(self, ctx: ServerContext):
        super().__init__(ctx)
        self.max_queued_reqs = ctx.extra.get("max_num_queued_reqs")
        self.max_queued_tokens = ctx.extra.get("max_num_queued_tokens")
        # Admitted, unfinished requests (as vLLM's API server counts them): key → (prompt tokens, its ticket).
        self._live: dict[int, tuple[int, Any]] = {}
        self._next_key = 0
        registry = getattr(ctx.metrics, "registry", None)
        self._rejections: dict[str, Any] = {}
        if registry is not None:  # vLLM 0.33 always exposes it, both reasons from 0; no `engine` label
            c = Counter("vllm:admission_rejections", "Number of admission attempts rejected by a queue limit, "
                        "by reason.", ["model_name", "reason"], registry=registry)
            self._rejections = {r: c.labels(model_name=ctx.served_model_name, reason=r) for r in ADMISSION_REASONS}

    def _admit(self, prompt_tokens: int) -> ApiError | None:
        """vLLM's admission check, before the request reaches the engine: None when admitted."""
        if self.max_queued_reqs is not None and len(self._live) + 1 > self.max_queued_reqs:
            reason, msg = "max_num_queued_reqs", QUEUE_FULL
        elif self.max_queued_tokens is not None and sum(
                p for p, ticket in self._live.values()
                if (t := ticket()) is None or t.first_token_s is None) >= self.max_queued_tokens:
            reason, msg = "max_num_queued_tokens", PREFILL_BACKLOG_FULL  # counts whole prompts until the first token
        else:
            return None
        if reason in self._rejections:
            self._rejections[reason].inc()
        return ApiError(503, "Service Unavailable", msg)

    def routes(self, app: web.Application) -> None:
        self.common_routes(app, ("/health", "/ping"))
        app.router.add_get("/version", self.version)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/chat/completions", self.chat)

    async def version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": VLLM_VERSION}, dumps=dumps)

    async def models(self, request: web.Request) -> web.Response:
        now = int(time.time())
        card = {"id": self.ctx.served_model_name, "object": "model", "created": now, "owned_by": "vllm",
                "root": self.ctx.hf_name, "parent": None, "max_model_len": self.ctx.max_model_len,
                "permission": [{"id": f"modelperm-{uuid.uuid4().hex[:16]}", "object": "model_permission",
                                "created": now, "allow_create_engine": False, "allow_sampling": True,
                                "allow_logprobs": True, "allow_search_indices": False, "allow_view": True,
                                "allow_fine_tuning": False, "organization": "*", "group": None,
                                "is_blocking": False}]}
        return web.json_response({"object": "list", "data": [card]}, dumps=dumps)

    # ---- generation ----
    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def _generate(self, request: web.Request, chat: bool) -> web.StreamResponse:
        ctx = self.ctx
        arrival = ctx.clock()
        body, err = await json_body(request)
        try:
            if err is not None or not isinstance(body, dict):
                raise ApiError(400, "Bad Request", f"1 validation error:\n  {dumps({'type': 'json_invalid', 'loc': ['body'], 'msg': 'JSON decode error', 'ctx': {'error': err or 'not an object'}})}",
                               "body")
            if chat:
                msgs = body.get("messages")
                if not isinstance(msgs, list) or not all(isinstance(m, dict) for m in msgs):
                    raise _bad_body("messages", "Field required" if msgs is None else "Input should be a valid list", msgs)
                prompt_tokens = prompt_tokens_chat(msgs)
            else:
                if "prompt" not in body:
                    raise _bad_body("prompt", "Field required", None)
                try:
                    prompt_tokens = prompt_tokens_text(body["prompt"])
                except ValueError as exc:
                    raise _bad_body("prompt", str(exc), body["prompt"]) from None
            max_tokens, min_tokens, stream = _check_common(ctx, body, prompt_tokens, None if chat else 16)
            hashes = None
            if ctx.engine.prefix_caching:  # the prompt's full blocks, for the scheduler's prefix cache
                hashes = chat_block_hashes(msgs) if chat else prompt_block_hashes(body["prompt"])
        except ApiError as exc:
            ctx.metrics.on_reject("validation")
            return exc.response()
        refused = self._admit(prompt_tokens)
        if refused is not None:
            return refused.response()
        live_key, self._next_key = self._next_key, self._next_key + 1
        ticket = None  # read through the closure below (prefill backlog) once the engine has it
        self._live[live_key] = (prompt_tokens, lambda: ticket)
        rng = ctx.request_rng()
        n_out, reason = choose_output_tokens(rng, max_tokens, min_tokens, bool(body.get("ignore_eos", False)))
        faults = ctx.faults.draw(n_out)
        if faults.error:
            self._live.pop(live_key, None)
            return ApiError(500, "InternalServerError", "Simulated engine failure (fault injection).").response()
        prefix = "chatcmpl-" if chat else "cmpl-"
        client_rid = request.headers.get("X-Request-Id")
        rid = prefix + (client_rid or uuid.uuid4().hex[:16])
        gen = _Render(ctx, rid, chat, body, prompt_tokens, reason, n_out, TextGen(rng).word_indices(n_out))
        clean = faults == type(faults)()
        ticket = tracker = None
        try:
            if not stream:
                ticket = ctx.engine.submit(prompt_tokens, n_out, arrival, hashes)
                tracker = Tracker(ctx, arrival, prompt_tokens, max_tokens, ticket, client_rid)
                if ticket.instant:
                    tracker.tokens_at_once(n_out, ctx.clock())
                else:
                    writer = TokenWriter(None, gen.chunk, n_out, tracker)
                    ticket.attach(writer)
                    await writer.done
                tracker.finish(reason)
                return web.Response(text=dumps(gen.full()), content_type="application/json")
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
            await resp.prepare(request)
            ticket = ctx.engine.submit(prompt_tokens, n_out, arrival, hashes)
            tracker = Tracker(ctx, arrival, prompt_tokens, max_tokens, ticket, client_rid)
            if ticket.instant and clean:
                tracker.tokens_at_once(n_out, ctx.clock())
                await resp.write(gen.everything())
            elif clean:
                # The engine writes each token at its release (one socket write, no task wake-up).
                wire = await open_wire(request, resp, gen.head() if chat else b"")
                if wire is None:
                    raise ConnectionResetError("client went away before the first token")
                writer = TokenWriter(wire, gen.chunk, n_out, tracker, gen.tail())
                ticket.attach(writer)
                if await writer.done == "abort":
                    raise ConnectionResetError("client went away mid-stream")
            else:
                if chat:
                    await resp.write(gen.head())
                async for k in ticket.tokens():
                    if k == faults.stall_at:
                        await asyncio.sleep(ctx.faults.cfg.stall_s)
                    if k == faults.malformed_at:
                        await resp.write(b'data: {"id":"' + rid.encode() + b'","object":\n\n')
                    if k == faults.abort_at:
                        tracker.finish("abort")
                        abort_connection(request)
                        return resp
                    tracker.token()
                    await resp.write(gen.chunk(k))
                await resp.write(gen.tail())
            tracker.finish(reason)
            await resp.write_eof()
            return resp
        except (ConnectionResetError, asyncio.CancelledError):
            if tracker is not None:
                tracker.finish("abort")
            raise
        finally:
            self._live.pop(live_key, None)
            if ticket is not None:
                ticket.cancel()


class _Render:
    """Builds vLLM 0.33 chunk / response JSON for one request (one token per chunk), as bytes.

    The words are drawn up front. A token event is the request's chunk JSON rendered once with a
    placeholder for the text and split there; each token splices its pre-escaped word in. The
    last chunk (finish_reason, fingerprint) and per-chunk usage (continuous_usage_stats) are
    rendered whole, as are events whose placeholder split is ambiguous.
    """

    _MARK = "\x00slabench-token\x00"

    def __init__(self, ctx: ServerContext, rid: str, chat: bool, body: dict, prompt_tokens: int, reason: str,
                 n_out: int, words: list[int]):
        self.ctx, self.rid, self.chat, self.reason, self.n_out, self.words = ctx, rid, chat, reason, n_out, words
        self.prompt_tokens = prompt_tokens
        self.created = int(time.time())
        opts = body.get("stream_options") or {}
        self.include_usage = bool(opts.get("include_usage"))
        self.continuous = self.include_usage and bool(opts.get("continuous_usage_stats"))
        self.model = ctx.served_model_name
        self.obj = "chat.completion.chunk" if chat else "text_completion"
        self._split: tuple[bytes, bytes] | None = None
        if not self.continuous:
            parts = self._event(self._chunk_dict(0, self._MARK, False)).split(dumps(self._MARK).encode())
            if len(parts) == 2:
                self._split = (parts[0], parts[1])

    def _usage(self, completion: int) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "total_tokens": self.prompt_tokens + completion,
                "completion_tokens": completion}

    @staticmethod
    def _event(d: dict) -> bytes:
        return f"data: {dumps(d)}\n\n".encode()

    def head(self) -> bytes:
        choice = {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
        d = {"id": self.rid, "object": self.obj, "created": self.created, "model": self.model, "choices": [choice]}
        if self.continuous:
            d["usage"] = self._usage(0)
        d.update({"prompt_token_ids": None, "prompt_text": None})
        return self._event(d)

    def _chunk_dict(self, k: int, tok: str, last: bool) -> dict:
        if self.chat:
            choice = {"index": 0, "delta": {"content": tok}, "logprobs": None, "finish_reason": self.reason if last else None}
            if last:
                choice["stop_reason"] = None
            choice["token_ids"] = None
            if last:
                choice["weight_versions"] = None
        else:
            choice = {"index": 0, "text": tok, "logprobs": None, "finish_reason": self.reason if last else None,
                      "stop_reason": None, "prompt_token_ids": None, "token_ids": None, "weight_versions": None}
        d = {"id": self.rid, "object": self.obj, "created": self.created, "model": self.model, "choices": [choice]}
        if self.continuous:
            d["usage"] = self._usage(k + 1)
        if last and not self.include_usage:
            d["system_fingerprint"] = self.ctx.fingerprint
        d["kv_transfer_params"] = None
        return d

    def chunk(self, k: int) -> bytes:
        last = k == self.n_out - 1
        if self._split is not None and not last:
            return self._split[0] + WORD_JSON[self.words[k]] + self._split[1]
        return self._event(self._chunk_dict(k, " " + WORDS[self.words[k]], last))

    def tail(self) -> bytes:
        out = b""
        if self.include_usage:
            out = self._event({"id": self.rid, "object": self.obj, "created": self.created, "model": self.model,
                               "choices": [], "usage": self._usage(self.n_out),
                               "system_fingerprint": self.ctx.fingerprint})
        return out + b"data: [DONE]\n\n"

    def everything(self) -> bytes:
        """Head (chat), every token event and the tail, as one body (calibration mode 0/0)."""
        n = self.n_out
        if self._split is not None and n > 1:
            pre, post = self._split
            body = pre + (post + pre).join([WORD_JSON[w] for w in self.words[:n - 1]]) + post + self.chunk(n - 1)
        else:
            body = b"".join(self.chunk(k) for k in range(n))
        return (self.head() if self.chat else b"") + body + self.tail()

    def full(self) -> dict:
        text = "".join([" " + WORDS[w] for w in self.words])
        usage = {**self._usage(self.n_out), "prompt_tokens_details": None}
        if self.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text, "refusal": None,
                                              "annotations": None, "audio": None, "function_call": None,
                                              "tool_calls": [], "reasoning": None},
                      "logprobs": None, "finish_reason": self.reason, "stop_reason": None, "token_ids": None}
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": self.reason, "stop_reason": None,
                      "token_ids": None, "prompt_logprobs": None, "prompt_token_ids": None}
            obj = "text_completion"
        return {"id": self.rid, "object": obj, "created": self.created, "model": self.model, "choices": [choice],
                "service_tier": None, "system_fingerprint": self.ctx.fingerprint, "usage": usage,
                "prompt_logprobs": None, "prompt_token_ids": None, "kv_transfer_params": None}
