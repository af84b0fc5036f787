"""TGI flavor seam: text-generation-inference 3.3 routes as protocols.md §B describes them.

Native /generate and /generate_stream (`data:` framing with no space, no [DONE]), the Messages API
(/v1/chat/completions, /v1/completions, `id:""`), /health, /info, /v1/models, /metrics, /sim/gpu.
The concurrency permit (--max-concurrent-requests) is taken before validation and held throughout.
Simulator extension: a truthy `ignore_eos` in the body or `parameters` disables the early EOS.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from .common import ApiBase, ServerContext, Tracker, abort_connection, dumps
from .wire import TokenWriter, open_wire
from .prefixcache import chat_block_hashes, prompt_block_hashes
from .textgen import (WORD_JSON, WORDS, TextGen, choose_output_tokens, count_words, prompt_tokens_chat,
                      prompt_tokens_text)

TGI_VERSION = "3.3.6-dev0"
OVERLOADED = ("Model is overloaded", "overloaded")


# A middle /generate_stream event, byte for byte what dumps() renders for its dict (tested); a
# format string costs a fraction of building and encoding the dict for every token.
_NATIVE_MIDDLE = (b'data:{"index":%d,"token":{"id":%d,"text":%s,"logprob":%r,"special":false},'
                  b'"generated_text":null,"details":null}\n\n')


_TEXT_JSON = {" " + w: j for w, j in zip(WORDS, WORD_JSON)}  # token text → its JSON string, escaped once


def native_middle_event(k: int, tid: int, txt: str, lp: float) -> bytes:
    text_json = _TEXT_JSON.get(txt)
    if text_json is None:
        text_json = dumps(txt).encode()
    return _NATIVE_MIDDLE % (k + 1, tid, text_json, lp)


class TgiError(Exception):
    def __init__(self, status: int, message: str, etype: str):
        super().__init__(message)
        self.status, self.message, self.etype = status, message, etype


def _validation(msg: str) -> TgiError:
    return TgiError(422, f"Input validation error: {msg}", "validation")


class TgiApi(ApiBase):
    def __init__(self, ctx: ServerContext):
        super().__init__(ctx)
        self.fingerprint = f"{TGI_VERSION}-native"

    def routes(self, app: web.Application) -> None:
        self.common_routes(app, ("/health", "/", "/ping"))
        app.router.add_get("/info", self.info)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/generate", self.generate)
        app.router.add_post("/generate_stream", self.generate_stream)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)

    async def info(self, request: web.Request) -> web.Response:
        c = self.ctx
        return web.json_response({
            "model_id": c.served_model_name, "model_sha": None, "model_pipeline_tag": "text-generation",
            "max_concurrent_requests": c.max_concurrent_requests, "max_best_of": 2, "max_stop_sequences": 4,
            "max_input_tokens": c.max_input_tokens, "max_total_tokens": c.max_total_tokens,
            "validation_workers": 2, "max_client_batch_size": 4, "router": "text-generation-router",
            "version": TGI_VERSION, "sha": None, "docker_label": None}, dumps=dumps)

    async def models(self, request: web.Request) -> web.Response:
        m = self.ctx.served_model_name
        return web.json_response({"object": "list", "data": [{"id": m, "object": "model", "created": 0,
                                                               "owned_by": m}]}, dumps=dumps)

    # ---- request parsing ----
    async def _intake(self, request: web.Request, required: str):
        """Every generation route's start: (arrival time, body dict, None), or a plain-text
        axum-style rejection as the third item. The request is counted (tgi_request_count) first."""
        arrival = self.ctx.clock()
        self.ctx.metrics.on_request()
        raw = await request.read()
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return arrival, None, web.Response(status=400, text=f"Failed to parse the request body as JSON: {exc}")
        if not isinstance(body, dict) or required not in body:
            return arrival, None, web.Response(
                status=422, text="Failed to deserialize the JSON body into the target type: "
                                 f"missing field `{required}` at line 1 column {len(raw)}")
        return arrival, body, None

    @staticmethod
    def _error_json(exc: TgiError) -> web.Response:
        return web.json_response({"error": exc.message, "error_type": exc.etype}, status=exc.status)

    @staticmethod
    def _native_ignore_eos(body: dict, params: dict) -> bool:
        return bool(params.get("ignore_eos") or body.get("ignore_eos"))  # simulator extension, either place

    def _limits(self, input_tokens: int, max_new: int | None) -> int:
        """Validate lengths as TGI's router does; returns max_new_tokens."""
        c = self.ctx
        if max_new is None:
            max_new = c.max_total_tokens - input_tokens
        if not isinstance(max_new, int) or isinstance(max_new, bool) or max_new <= 0:
            raise _validation("`max_new_tokens` must be strictly positive")
        if input_tokens + max_new > c.max_total_tokens:
            raise _validation(f"`inputs` tokens + `max_new_tokens` must be <= {c.max_total_tokens}. Given: "
                              f"{input_tokens} `inputs` tokens and {max_new} `max_new_tokens`")
        if input_tokens > c.max_input_tokens:
            raise _validation(f"`inputs` must have less than {c.max_input_tokens} tokens. Given: {input_tokens}")
        return max_new

    def _acquire(self) -> None:
        if self.ctx.in_flight >= self.ctx.max_concurrent_requests:
            raise TgiError(429, *OVERLOADED)
        self.ctx.in_flight += 1

    def _fail(self, exc: TgiError) -> None:
        self.ctx.metrics.on_reject(exc.etype)

    # ---- shared generation loop ----
    def _hashes(self, prompt, chat: bool = False) -> tuple[int, ...] | None:
        """The prompt's full-block hashes when the engine caches prefixes (TGI 3's default), else None."""
        if not self.ctx.engine.prefix_caching:
            return None
        return chat_block_hashes(prompt) if chat else prompt_block_hashes(prompt)

    async def _run(self, request, resp, arrival, input_tokens, max_new, ignore_eos, render, hashes=None):
        """Submit to the engine; render(k, id, text, logprob, last, reason) gives token k's event
        bytes (None: nothing to send). Streams without injected faults are written by the engine at
        each release (one socket write, no task wake-up per token), as the vLLM flavor does."""
        ctx = self.ctx
        rng = ctx.request_rng()
        n_out, reason = choose_output_tokens(rng, max_new, 0, ignore_eos)
        faults = ctx.faults.draw(n_out)
        if faults.error:
            raise TgiError(424, "Request failed during generation: simulated fault", "generation")
        text = TextGen(rng)
        ticket = ctx.engine.submit(input_tokens, n_out, arrival, hashes)
        tracker = Tracker(ctx, arrival, input_tokens, max_new, ticket, request.headers.get("X-Request-Id"))
        try:
            if resp is not None and faults == type(faults)():
                wire = await open_wire(request, resp)
                if wire is None:
                    raise ConnectionResetError("client went away before the first token")
                writer = TokenWriter(wire, lambda k: render(k, *text.token_details(), k == n_out - 1, reason),
                                     n_out, tracker)
                ticket.attach(writer)
                if await writer.done == "abort":
                    raise ConnectionResetError("client went away mid-stream")
                tracker.finish(reason)
                return reason
            async for k in ticket.tokens():
                if k == faults.stall_at:
                    await asyncio.sleep(ctx.faults.cfg.stall_s)
                if resp is not None and k == faults.malformed_at:
                    await resp.write(b"data:{\"index\":\n\n")
                if resp is not None and k == faults.abort_at:
                    tracker.finish("abort")
                    abort_connection(request)
                    return None
                tracker.token()
                data = render(k, *text.token_details(), k == n_out - 1, reason)
                if data:
                    await resp.write(data)
            tracker.finish(reason)
            return reason
        except (ConnectionResetError, asyncio.CancelledError):
            tracker.finish("abort")
            raise
        finally:
            ticket.cancel()

    # ---- native API ----
    async def generate(self, request: web.Request) -> web.Response:
        arrival, body, bad = await self._intake(request, "inputs")
        if bad:
            return bad
        params = body.get("parameters") or {}
        try:
            self._acquire()
        except TgiError as exc:
            self._fail(exc)
            return self._error_json(exc)
        try:
            input_tokens = self._input_tokens(body)
            max_new = self._limits(input_tokens, params.get("max_new_tokens"))
            toks: list[dict] = []

            def render(k, tid, txt, lp, last, reason) -> None:
                toks.append({"id": tid, "text": txt, "logprob": lp, "special": False})
            reason = await self._run(request, None, arrival, input_tokens, max_new,
                                     self._native_ignore_eos(body, params), render, self._hashes(body["inputs"]))
        except TgiError as exc:
            self._fail(exc)
            return self._error_json(exc)
        finally:
            self.ctx.in_flight -= 1
        out = {"generated_text": "".join(t["text"] for t in toks)}
        if params.get("details"):
            out["details"] = {"finish_reason": _native_reason(reason), "generated_tokens": len(toks), "seed": None,
                              "prefill": [], "tokens": toks}
        total_ms = (self.ctx.clock() - arrival) * 1000
        headers = {"x-compute-type": "gpu+optimized", "x-total-time": f"{total_ms:.0f}",
                   "x-prompt-tokens": str(input_tokens), "x-generated-tokens": str(len(toks)),
                   "x-time-per-token": f"{total_ms / max(len(toks), 1):.0f}"}
        return web.json_response(out, headers=headers, dumps=dumps)

    def _input_tokens(self, body: dict) -> int:
        inputs = body.get("inputs")
        if not isinstance(inputs, str) or not inputs.strip():
            raise _validation("`inputs` cannot be empty")
        return count_words(inputs)

    async def generate_stream(self, request: web.Request) -> web.StreamResponse:
        arrival, body, bad = await self._intake(request, "inputs")
        if bad:
            return bad
        params = body.get("parameters") or {}
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no", "x-compute-type": "gpu+optimized"})
        await resp.prepare(request)
        try:
            self._acquire()
        except TgiError as exc:
            self._fail(exc)
            await resp.write(f"data:{dumps({'error': exc.message, 'error_type': exc.etype})}\n\n".encode())
            return resp
        texts: list[str] = []
        try:
            input_tokens = self._input_tokens(body)
            max_new = self._limits(input_tokens, params.get("max_new_tokens"))
            want_details = bool(params.get("details"))

            def render(k, tid, txt, lp, last, reason) -> bytes:
                texts.append(txt)
                if not last:
                    return native_middle_event(k, tid, txt, lp)
                ev = {"index": k + 1, "token": {"id": tid, "text": txt, "logprob": lp, "special": False},
                      "generated_text": "".join(texts) if last else None, "details": None}
                if last and want_details:
                    ev["details"] = {"finish_reason": _native_reason(reason), "generated_tokens": k + 1,
                                     "seed": None, "input_length": input_tokens}
                return f"data:{dumps(ev)}\n\n".encode()
            await self._run(request, resp, arrival, input_tokens, max_new,
                            self._native_ignore_eos(body, params), render, self._hashes(body["inputs"]))
        except TgiError as exc:
            self._fail(exc)
            await resp.write(f"data:{dumps({'error': exc.message, 'error_type': exc.etype})}\n\n".encode())
        finally:
            self.ctx.in_flight -= 1
        return resp

    # ---- Messages API ----
    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._openai(request, chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._openai(request, chat=False)

    async def _openai(self, request: web.Request, chat: bool) -> web.StreamResponse:
        ctx = self.ctx
        arrival, body, bad = await self._intake(request, "messages" if chat else "prompt")
        if bad:
            return bad
        stream = bool(body.get("stream"))
        req_model = body.get("model")
        model = req_model if chat and req_model not in (None, "tgi") else ctx.served_model_name
        created = int(time.time())
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        resp = None
        if stream:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                               "X-Accel-Buffering": "no"})
            await resp.prepare(request)
        try:
            self._acquire()
        except TgiError as exc:
            self._fail(exc)
            return await self._openai_error(resp, exc)
        texts: list[str] = []
        head = {"object": "chat.completion.chunk" if chat else "text_completion", "id": "", "created": created}

        def render(k, tid, txt, lp, last, reason) -> bytes | None:
            texts.append(txt)
            if not stream:
                return None
            if chat:
                ev = {**head, "model": model, "system_fingerprint": self.fingerprint,
                      "choices": [{"index": 0, "delta": {"role": "assistant", "content": txt}, "logprobs": None,
                                   "finish_reason": _chat_reason(reason) if last else None}], "usage": None}
            elif not last:
                ev = {**head, "choices": [{"index": 0, "text": txt, "logprobs": None, "finish_reason": ""}],
                      "model": model, "system_fingerprint": self.fingerprint}
            else:
                ev = {"id": "", "object": "text_completion", "created": created, "model": model,
                      "system_fingerprint": self.fingerprint,
                      "choices": [{"index": 0, "text": txt, "logprobs": None, "finish_reason": _native_reason(reason)}],
                      "usage": usage(k + 1)}
            return f"data:{dumps(ev)}\n\n".encode()

        try:
            if chat:
                msgs = body.get("messages")
                if not isinstance(msgs, list) or not msgs:
                    raise _validation("`inputs` cannot be empty")
                input_tokens = prompt_tokens_chat(msgs)
            else:
                try:
                    input_tokens = prompt_tokens_text(body.get("prompt"))
                except ValueError as exc:
                    raise _validation(str(exc)) from None
                if body.get("suffix") is not None:
                    raise TgiError(422, "Suffix is not supported and can only be used with `Ollama`",
                                   "suffix not supported")
            max_new = self._limits(input_tokens, body.get("max_tokens"))

            def usage(n: int) -> dict:
                return {"prompt_tokens": input_tokens, "completion_tokens": n, "total_tokens": input_tokens + n}
            reason = await self._run(request, resp, arrival, input_tokens, max_new, bool(body.get("ignore_eos")),
                                     render, self._hashes(msgs if chat else body.get("prompt"), chat))
        except TgiError as exc:
            self._fail(exc)
            return await self._openai_error(resp, exc)
        finally:
            ctx.in_flight -= 1
        if reason is None:
            return resp
        if stream:
            if chat and include_usage:
                ev = {**head, "model": model, "system_fingerprint": self.fingerprint, "choices": [],
                      "usage": usage(len(texts))}
                await resp.write(f"data:{dumps(ev)}\n\n".encode())
            await resp.write(b"data:[DONE]\n\n")
            return resp
        text = "".join(texts)
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                      "finish_reason": _chat_reason(reason)}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": _chat_reason(reason)}
        out = {"object": "chat.completion" if chat else "text_completion", "id": "", "created": created,
               "model": model, "system_fingerprint": self.fingerprint, "choices": [choice],
               "usage": usage(len(texts))}
        return web.json_response(out, dumps=dumps)

    async def _openai_error(self, resp, exc: TgiError):
        if resp is None:
            return self._error_json(exc)
        # In-stream errors always say 422 in the payload (InferError::into_openai_event), HTTP 200.
        await resp.write(f"data:{dumps({'error': {'message': exc.message, 'http_status_code': 422}})}\n\n".encode())
        await resp.write(b"data:[DONE]\n\n")
        return resp


def _native_reason(reason: str | None) -> str:
    return {"stop": "eos_token", "length": "length"}.get(reason or "", "length")


def _chat_reason(reason: str | None) -> str:
    return "stop" if reason == "stop" else "length"
