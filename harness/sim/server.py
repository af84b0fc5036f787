"""Server seam: turns validated options into a running aiohttp app (engine, metrics, routes).

`build_server(opts)` checks the deployment and sizes everything (raises SimConfigError with the
arithmetic when impossible); `Server.start()` binds, `Server.stop()` shuts down. `serve()` is the
CLI's long-running entry: prints the one stdout line, exits 0 on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import random
import signal
import sys
from dataclasses import dataclass, field

from aiohttp import web

from .catalog import SimConfigError, load_catalog
from .common import FaultConfig, Faults, ServerContext
from .engine import FixedEngine, GpuEngine
from .gate import DEFAULT_RECOVERY_S, CircuitBreaker, gate_middleware, watch_stream
from .metrics import TgiMetrics, VllmMetrics
from .perfmodel import BLOCK_SIZE_TOKENS, Deployment, default_max_num_seqs
from .scheduler import SchedulerConfig
from .telemetry import gpu_snapshot
from .tgi_api import TgiApi
from .vllm_api import VLLM_VERSION, VllmApi

LISTEN_BACKLOG = 2048  # uvicorn's default, which vLLM's API server inherits
# TGI sizes its KV cache from (nearly) all free memory (--cuda-memory-fraction 1.0 minus a margin).
TGI_MEMORY_FRACTION = 0.95
TGI_MAX_BATCH_SEQS = 1 << 20  # TGI has no --max-num-seqs; the token budget is the limit


@dataclass
class ServeOptions:
    flavor: str = "vllm"
    model: str = "llama-3-8b"
    gpu: str = "a100-80gb"
    quantization: str = "fp16"
    tensor_parallel_size: int = 1
    host: str = "127.0.0.1"
    port: int = 0
    seed: int = 0
    speed: float = 1.0
    served_model_name: str | None = None
    fixed_ttft_ms: float | None = None
    fixed_itl_ms: float | None = None
    catalog: str | None = None
    # vLLM
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.92
    # automatic prefix caching, both flavors (vLLM --[no-]enable-prefix-caching; TGI env PREFIX_CACHING)
    prefix_caching: bool = True
    # vLLM 0.33 admission control (None = unbounded queue, vLLM's default): past the cap → 503
    max_num_queued_reqs: int | None = None  # unfinished requests (waiting + running)
    max_num_queued_tokens: int | None = None  # prompt tokens of requests not past prefill
    # TGI
    max_concurrent_requests: int = 128
    max_batch_total_tokens: int | None = None
    max_input_tokens: int | None = None
    max_total_tokens: int | None = None
    faults: FaultConfig = field(default_factory=FaultConfig)
    # gateway switches (off by default): API key as vLLM/TGI check it; token-bucket rate limit → 429
    api_key: str | None = None
    rate_limit_rps: float | None = None
    rate_limit_burst: float | None = None  # bucket size; default max(1, rate_limit_rps)
    # circuit breaker (guide section 6): open after N consecutive engine failures, for S seconds → 503
    circuit_failure_threshold: int | None = None
    circuit_recovery_s: float | None = None  # default 30 (the guide's recovery_timeout)


class Server:
    def __init__(self, opts: ServeOptions, ctx: ServerContext, app: web.Application, dep: Deployment):
        self.opts, self.ctx, self.app, self.dep = opts, ctx, app, dep
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.opts.host}:{self.port}"

    async def start(self) -> None:
        self.ctx.engine.start()
        self.runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self.runner.setup()
        # uvicorn (vLLM's server) listens with a backlog of 2048; aiohttp's default of 128 makes a
        # client that opens a few hundred connections at once see 1 s SYN-retry stalls.
        site = web.TCPSite(self.runner, self.opts.host, self.opts.port, backlog=LISTEN_BACKLOG)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # the real port when --port 0

    async def stop(self) -> None:
        await self.ctx.engine.stop()
        if self.runner:
            await self.runner.cleanup()


def build_server(opts: ServeOptions) -> Server:
    if opts.flavor not in ("vllm", "tgi"):
        raise SimConfigError(f"unknown flavor '{opts.flavor}': use --flavor vllm or --flavor tgi")
    if opts.speed <= 0:
        raise SimConfigError(f"--speed must be > 0, got {opts.speed:g}: use e.g. --speed 1")
    if (opts.fixed_ttft_ms is None) != (opts.fixed_itl_ms is None):
        raise SimConfigError("calibration mode needs both --fixed-ttft-ms and --fixed-itl-ms: set both or neither")
    if opts.tensor_parallel_size < 1:
        raise SimConfigError("--tensor-parallel-size must be >= 1")
    cat = load_catalog(opts.catalog)
    gpu, model, quant = cat.gpu(opts.gpu), cat.model(opts.model), cat.quant(opts.quantization)
    name = opts.served_model_name or opts.model
    vllm = opts.flavor == "vllm"
    def_seqs, def_tokens = default_max_num_seqs(gpu)
    batched = opts.max_num_batched_tokens or def_tokens
    if not vllm:
        batched = (opts.max_input_tokens or model.max_context - 1) + 50  # --max-batch-prefill-tokens default
    util = opts.gpu_memory_utilization if vllm else TGI_MEMORY_FRACTION
    if not 0 < util <= 1:
        raise SimConfigError(f"--gpu-memory-utilization must be in (0, 1], got {util:g}")
    dep = Deployment(gpu, model, quant, opts.tensor_parallel_size, util, batched)
    dep.check()
    rng = random.Random(opts.seed)
    ctx_kw: dict = {}
    if vllm:
        max_len = opts.max_model_len or model.max_context
        dep.check_context(max_len)
        cfg = SchedulerConfig(opts.max_num_seqs or def_seqs, max(batched, 1), dep.kv_blocks,
                              prefix_caching=opts.prefix_caching)
        ctx_kw["max_model_len"] = max_len
    else:
        cap = dep.kv_capacity_tokens
        mbt = opts.max_batch_total_tokens or cap
        if mbt > cap:
            raise SimConfigError(f"--max-batch-total-tokens {mbt} does not fit: the KV cache holds {cap} tokens "
                                 f"({dep.kv_budget_bytes_per_gpu / 1e9:.2f} GB per GPU): lower it or add GPUs")
        total = opts.max_total_tokens or min(mbt, model.max_context)
        inp = opts.max_input_tokens or total - 1
        if inp >= total:
            raise SimConfigError(f"`max_input_tokens`({inp}) must be < `max_total_tokens`({total}): lower "
                                 "--max-input-tokens or raise --max-total-tokens")
        if total > mbt:
            raise SimConfigError(f"`max_total_tokens` ({total}) must be <= `max_batch_total_tokens` ({mbt}): "
                                 "lower --max-total-tokens or raise --max-batch-total-tokens")
        cfg = SchedulerConfig(TGI_MAX_BATCH_SEQS, max(batched, 1), mbt // BLOCK_SIZE_TOKENS, reserve_full=True,
                              prefix_caching=opts.prefix_caching)
        ctx_kw.update(max_input_tokens=inp, max_total_tokens=total,
                      max_concurrent_requests=opts.max_concurrent_requests)
    if opts.fixed_ttft_ms is not None:
        engine = FixedEngine(opts.fixed_ttft_ms / 1000.0, opts.fixed_itl_ms / 1000.0)
    else:
        engine = GpuEngine(dep, cfg, opts.speed)

    def used_bytes() -> float:
        return dep.weight_bytes_per_gpu + dep.workspace_bytes_per_gpu + engine.kv_bytes_used_per_gpu

    if vllm:
        metrics = VllmMetrics(name, ctx_kw["max_model_len"], engine)
    else:
        metrics = TgiMetrics(ctx_kw["max_input_tokens"], ctx_kw["max_total_tokens"],
                             cfg.kv_blocks * BLOCK_SIZE_TOKENS, engine)
    digest = hashlib.sha256(f"{model.id}:{quant.id}:{opts.tensor_parallel_size}".encode()).hexdigest()[:8]
    tp = f"-tp{opts.tensor_parallel_size}" if opts.tensor_parallel_size > 1 else ""
    ctx = ServerContext(
        flavor=opts.flavor, served_model_name=name, model_id=model.id, hf_name=model.hf_name, engine=engine,
        metrics=metrics, seed=opts.seed, faults=Faults(opts.faults, random.Random(rng.random())),
        gpu_snapshot=lambda: gpu_snapshot(gpu, opts.tensor_parallel_size, engine.busy, used_bytes()),
        fingerprint=f"vllm-{VLLM_VERSION}{tp}-{digest}", **ctx_kw)
    if opts.rate_limit_rps is not None and opts.rate_limit_rps <= 0:
        raise SimConfigError(f"--rate-limit-rps must be > 0, got {opts.rate_limit_rps:g} (omit it for no limit)")
    if opts.rate_limit_burst is not None and opts.rate_limit_burst < 1:
        raise SimConfigError(f"--rate-limit-burst must be >= 1, got {opts.rate_limit_burst:g}")
    breaker = _breaker(opts)
    if not vllm and (opts.max_num_queued_reqs is not None or opts.max_num_queued_tokens is not None):
        raise SimConfigError("--max-num-queued-reqs / --max-num-queued-tokens are vLLM flags: TGI bounds its queue "
                             "with --max-concurrent-requests (429 past it)")
    ctx.extra.update(max_num_queued_reqs=opts.max_num_queued_reqs, max_num_queued_tokens=opts.max_num_queued_tokens)
    gate = gate_middleware(opts.flavor, opts.api_key, opts.rate_limit_rps, opts.rate_limit_burst, breaker=breaker)
    app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[gate] if gate else [])
    if breaker is not None:
        app.on_response_prepare.append(watch_stream)
    (VllmApi(ctx) if vllm else TgiApi(ctx)).routes(app)
    return Server(opts, ctx, app, dep)


async def serve(opts: ServeOptions, out=sys.stdout, err=sys.stderr) -> int:
    server = build_server(opts)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
    except OSError as exc:
        print(f"slabench-sim: cannot listen on {opts.host}:{opts.port} ({exc.strerror}): pick another --port",
              file=err, flush=True)
        return 2
    d = server.dep
    mode = (f"calibration mode ttft={opts.fixed_ttft_ms:g} ms itl={opts.fixed_itl_ms:g} ms"
            if opts.fixed_ttft_ms is not None else f"speed x{opts.speed:g}")
    print(f"slabench-sim: {d.gpu.name} x{d.tp}, {d.model.id} {d.quant.id}, weights "
          f"{d.weight_bytes / 1e9:.1f} GB, KV cache {d.kv_capacity_tokens} tokens, {mode}", file=err, flush=True)
    print(f"slabench-sim: serving {server.ctx.served_model_name} (flavor {opts.flavor}) on {server.url}",
          file=out, flush=True)
    if opts.faults.crash_after_s > 0:
        loop.call_later(opts.faults.crash_after_s, _crash, err)
    # The start-up heap (aiohttp, the catalog, imports) lives as long as the process: keep it out of
    # the collector, whose full passes over it (~30 ms) would delay every stream's next token.
    gc.collect()
    gc.freeze()
    await stop.wait()
    print("slabench-sim: shutting down", file=err, flush=True)
    await server.stop()
    return 0


def _breaker(opts: ServeOptions) -> CircuitBreaker | None:
    if opts.circuit_failure_threshold is None:
        if opts.circuit_recovery_s is not None:
            raise SimConfigError("--circuit-recovery-s needs --circuit-failure-threshold N (the breaker is off without it)")
        return None
    if opts.circuit_failure_threshold < 1:
        raise SimConfigError(f"--circuit-failure-threshold must be >= 1, got {opts.circuit_failure_threshold}")
    recovery_s = DEFAULT_RECOVERY_S if opts.circuit_recovery_s is None else opts.circuit_recovery_s
    if not recovery_s > 0:
        raise SimConfigError(f"--circuit-recovery-s must be > 0, got {recovery_s:g}")
    return CircuitBreaker(opts.circuit_failure_threshold, recovery_s,
                          on_change=lambda state: print(f"slabench-sim: circuit breaker {state}", file=sys.stderr,
                                                        flush=True))


def _crash(err) -> None:
    print("slabench-sim: simulated crash (--fault-crash-after-s)", file=err, flush=True)
    os._exit(70)
