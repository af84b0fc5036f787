"""Performance-model seam: memory budget and the time of one engine step on a GPU.

`Deployment` = GPU x model x quantization x tensor parallelism. It checks that the weights fit,
sizes the KV cache, and prices a step (decode tokens + prefill chunks) in simulated seconds: bytes
read + FLOPs done + TP all-reduces + fixed costs, each constant fitted to published points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

from .catalog import GpuSpec, ModelSpec, QuantSpec, SimConfigError

# ---- calibration constants ------------------------------------------------------------------
# Each constant names the validation points (harness/sim/validation/points.yaml) that fit it;
# `slabench sim validate` shows how every point lands. docs/sim-validation.md explains the model.
#
# Decode at small batch reads every weight once per step. Two single-stream decode points fit the
# achieved bandwidth fraction and the fixed per-step time together (the 8B bf16 model on a slow and a
# fast HBM part): musgrave-l31-8b-bf16-a100-40-c1-tpot (13.3 ms) and
# inferencebench-l31-8b-fp16-h100-c1-tpot (6.48 ms): 16.2 GB / (BW x f) + o gives f = 0.82, o = 0.64 ms.
BANDWIDTH_FRACTION = 0.82
# The fixed time splits into a per-step part (sampling, scheduling) and a per-layer part (the ~8
# kernels a decoder layer launches have a latency floor, CUDA graphs or not): 0.16 ms + 32 x 15 us is
# the 0.64 ms above, and the per-layer part is what makes 80-layer models slower than their bytes
# (nim-l33-70b-*-c1-itl) and fast-HBM parts (H200) less far ahead at batch 1 than bandwidth says.
STEP_OVERHEAD_S = 0.00016
LAYER_OVERHEAD_S = 15e-6
PER_SEQ_OVERHEAD_S = 10e-6  # CPU-side per running sequence per step (input prep, detokenize)
# Prefill and large-batch steps: GEMMs run at GEMM_FRACTION of the tensor peak, and their math does
# not hide the weight read (see `_parts`: the step is memory + compute, not the larger of the two).
# One constant fits both of TensorRT-LLM's batch-1 first-token latencies of Llama-2-7B FP16 on A100:
# trtllm05-llama2-7b-fp16-a100-2048in-ttft (133 ms: 124 ms of GEMMs at 0.71 x 312 TFLOPS + the
# 8 ms weight read) and ...-128in-ttft (16 ms: 7.5 ms of math + 8 ms of weights, which a max() would
# put at 9 ms). Checked by nim-guard-8b-bf16-a100-500in-c1-ttft, the A10G TTFT point and the
# prefill-bound saturated points (trtllm-*-2048-128-tput).
GEMM_FRACTION = 0.71
# API-server time before the engine sees a request and after the first token (HTTP parse,
# tokenize, detokenize): the H100 c1 point has TTFT 14 ms where prefill of a short prompt is ~7 ms.
FRONTEND_OVERHEAD_S = 0.005
# Memory reserved per GPU outside weights and KV (CUDA context, CUDA graphs, activation peak of a
# max-size chunked-prefill step, NCCL buffers): 1 GiB fixed + activations. Not fitted: no published
# run states its KV-cache size next to the numbers used here.
WORKSPACE_FIXED_BYTES = 1 << 30
ACTIVATION_BYTES_PER_BATCHED_TOKEN_PER_INTERMEDIATE = 4  # ~2 live fp16 MLP tensors
# Two all-reduces per layer with TP > 1: a latency each + the ring volume (fp16 activations, 2(tp-1)/tp
# of them) at a fraction of the catalog's interconnect figure (NVLink 600/900 GB/s, PCIe 32 GB/s).
# The fraction is fitted to the four 2,048-token first-token latencies of Llama-2-70B at TP4/TP8,
# where the all-reduces are a third of the step: trtllm05-llama2-70b-fp8-tp4-h100-2048in-ttft (109 ms),
# trtllm05-llama2-70b-fp16-tp4-a100-2048in-ttft (377), trtllm09-llama2-70b-fp8-tp8-h100-2048in-ttft
# (85.1) and trtllm09-llama2-70b-fp16-tp8-a100-2048in-ttft (249): 0.25 puts them at -5/+6/-9/-4 %
# (at the full NVLink figure they were -30/-5/-47/-24 %). 0.25 x 900 GB/s is about half of what NCCL's
# bus-bandwidth test reaches on an HGX H100: the fraction also carries the rest of what TP costs in
# these runs (narrower per-GPU GEMMs, the synchronisation at every all-reduce). PCIe parts get the same
# fraction (8 GB/s) untested: the one TP-over-PCIe point (pricecompass-*) is confounded (see the docs).
ALLREDUCE_BW_FRACTION = 0.25
# The latency is fitted to the TP2 decode points at concurrency 1, whose steps carry 160 all-reduces
# of one token: nim-l33-70b-fp8-tp2-h100-{5000,500}in-c1-itl at +1 / -2 % with 15 us (-5 / -8 % with the
# 8 us of NCCL's bare small-message latency); vllmci-l3-70b-bf16-tp4-h200-b8-* checks it at TP4.
ALLREDUCE_LATENCY_S = 15e-6
# Points from vLLM before 0.8 (`server.engine_core: v0` in points.yaml; the sim itself always models
# the current engine): the V0 engine core scheduled, prepared inputs and (before 0.6) processed outputs
# on the CPU between GPU steps. Fitted to vllmci-l3-8b-bf16-h200-b8-32in-128out-e2e (vLLM 0.6.3,
# 6.5 ms per step of 8 sequences on an H200, where the GPU needs ~5 ms); llmperf-l3-8b-bf16-a10g-c1-tpot
# (vLLM 0.4.3) alone would give 2.0 ms. This is the "H200 decodes too fast at small batch" miss: the same
# ~1.5 ms per step shows on slower GPUs too, where it is a smaller share of the step.
V0_STEP_OVERHEAD_S = 0.0015
KV_DTYPE_BYTES = 2  # fp16/bf16 KV cache (the default --kv-cache-dtype auto)
BLOCK_SIZE_TOKENS = 16  # vLLM's default KV block size


def efficiencies(gpu: GpuSpec, quant: QuantSpec) -> tuple[float, float]:
    """(memory, compute) kernel quality of a quantization scheme on a GPU, relative to 16-bit.

    Memory: how close the scheme's decode GEMV gets to the bandwidth 16-bit weights reach.
    Compute: how close its prefill GEMM gets to the tensor peak it runs at (`_peak_flops`).
    """
    ampere = gpu.compute_capability >= 8.0
    if quant.id in ("fp16", "bf16"):
        return 1.0, 1.0
    # Weight-only schemes (int4 AWQ/GPTQ; FP8 on a GPU without FP8 tensor cores, W8A16): on Ampere+
    # the Marlin kernels stream the packed weights at the bandwidth 16-bit weights reach
    # (llmcompressor-l3-8b-int4-a10g-*-tpot, llmcompressor-l3-8b-fp8w-a10g-*-tpot), and large GEMMs
    # dequantize on the way, at about half the 16-bit GEMM rate: vllm2566-mistral-7b-awq-a100-* fit
    # 0.5; 0.55 keeps W8A16 no slower than 16-bit at decode batch 64, as Marlin's batch scaling shows.
    # Turing has no Marlin: its AWQ GEMV reaches 0.6 of the bandwidth (autoawq92-mistral-7b-awq-t4-b1-tpot).
    weight_only = quant.id in ("awq", "gptq") or (quant.id == "fp8" and not gpu.fp8_tflops)
    if weight_only:
        return (1.0 if ampere else 0.6), 0.55
    # W8A8 (FP8 on Hopper/Ada, INT8): the scaled-mm GEMV loses some bandwidth at small batch
    # (nim-l33-70b-fp8-tp2-h100-*-c1-itl) and the GEMMs some of the doubled peak
    # (trtllm-l31-8b-fp8-*-tput, llmcompressor-l3-8b-int8-a10g-offline-tput).
    return 0.9, 0.9


Pricer = Callable[[int, int, list[tuple[int, int]]], float]


def step_pricer(dep: "Deployment") -> Pricer:
    """`price(n_decode, decode_ctx_sum, prefill_chunks) -> step seconds` (what `step_cost` returns as
    time_s, bit for bit): the hot path of the fast scheduler, constants hoisted."""
    parts = dep._parts
    return lambda n_dec, dec_sum, prefill: parts(n_dec, dec_sum, prefill)[0]


@dataclass(frozen=True)
class StepCost:
    time_s: float
    memory_s: float  # time the weight + KV read alone would take
    compute_s: float  # time the FLOPs alone would take

    @property
    def memory_bound_share(self) -> float:
        busy = max(self.memory_s, self.compute_s, 1e-12)
        return self.memory_s / busy


@dataclass(frozen=True)
class Deployment:
    gpu: GpuSpec
    model: ModelSpec
    quant: QuantSpec
    tp: int = 1
    gpu_memory_utilization: float = 0.92
    max_batched_tokens: int = 2048
    kv_dtype_bytes: int = KV_DTYPE_BYTES  # 1: fp8 KV cache (--kv-cache-dtype fp8)
    host_step_s: float = 0.0  # extra CPU time per step of an older engine (see V0_STEP_OVERHEAD_S)

    # ---- memory ----
    @property
    def weight_bytes(self) -> float:
        """All weights; embeddings and lm_head (untied, vocab x hidden each) stay 16-bit."""
        m = self.model
        embed = 2 * m.vocab * m.hidden
        return embed * 2.0 + max(m.params - embed, 0.0) * self.quant.bytes_per_weight

    @property
    def weight_bytes_per_gpu(self) -> float:
        return self.weight_bytes / self.tp

    @property
    def workspace_bytes_per_gpu(self) -> float:
        act = (self.max_batched_tokens * self.model.intermediate
               * ACTIVATION_BYTES_PER_BATCHED_TOKEN_PER_INTERMEDIATE / self.tp)
        return WORKSPACE_FIXED_BYTES + act

    @property
    def kv_bytes_per_token(self) -> int:
        return self.model.kv_bytes_per_token(self.kv_dtype_bytes)

    @property
    def kv_budget_bytes_per_gpu(self) -> float:
        return (self.gpu.mem_bytes * self.gpu_memory_utilization
                - self.weight_bytes_per_gpu - self.workspace_bytes_per_gpu)

    @property
    def kv_blocks(self) -> int:
        """Blocks of BLOCK_SIZE_TOKENS tokens the KV cache holds (all ranks together)."""
        per_token_per_gpu = self.kv_bytes_per_token / self.tp
        tokens = self.kv_budget_bytes_per_gpu / per_token_per_gpu
        return max(int(tokens // BLOCK_SIZE_TOKENS), 0)

    @property
    def kv_capacity_tokens(self) -> int:
        return self.kv_blocks * BLOCK_SIZE_TOKENS

    def check(self) -> None:
        """Raise SimConfigError (with the arithmetic) if this deployment cannot start."""
        g, m, q = self.gpu, self.model, self.quant
        if g.compute_capability < q.min_cc:
            fix = "use --quantization fp16" if q.id == "bf16" else "use another --quantization or a newer GPU"
            raise SimConfigError(f"{q.id} needs compute capability {q.min_cc:.1f}, {g.name} has "
                                 f"{g.compute_capability:.1f}: {fix}")
        if m.heads % self.tp:
            raise SimConfigError(f"--tensor-parallel-size {self.tp} must divide the {m.heads} attention heads "
                                 f"of {m.id}: use a divisor such as 1, 2, 4 or 8")
        if self.kv_budget_bytes_per_gpu > self.kv_bytes_per_token / self.tp * BLOCK_SIZE_TOKENS:
            return
        usable = g.mem_bytes * self.gpu_memory_utilization - self.workspace_bytes_per_gpu
        need_tp = next((t for t in (1, 2, 4, 8, 16, 32, 64)
                        if m.heads % t == 0 and self.weight_bytes / t < usable * 0.9), None)
        tp_fix = f"--tensor-parallel-size >= {need_tp}" if need_tp else "a larger GPU"
        detail = (f"{m.id} {q.id}; {self.gpu_memory_utilization:g} x {g.mem_bytes / 1e9:.1f} GB - "
                  f"{self.workspace_bytes_per_gpu / 1e9:.1f} GB workspace = {usable / 1e9:.1f} GB usable per GPU"
                  f"{f', weights per GPU at TP {self.tp} = {self.weight_bytes_per_gpu / 1e9:.1f} GB' if self.tp > 1 else ''}")
        raise SimConfigError(
            f"weights need {self.weight_bytes / 1e9:.0f} GB, the GPU has {g.mem_bytes / 1e9:.0f} GB: "
            f"use {tp_fix} or a quantization ({detail})")

    def check_context(self, max_model_len: int) -> None:
        if max_model_len > self.kv_capacity_tokens:
            raise SimConfigError(
                f"max model len {max_model_len} is larger than the {self.kv_capacity_tokens} tokens the KV cache "
                f"holds ({self.kv_budget_bytes_per_gpu / 1e9:.2f} GB per GPU / "
                f"{self.kv_bytes_per_token / self.tp / 1024:.0f} KiB per token): lower --max-model-len, "
                f"raise --gpu-memory-utilization, or add GPUs")

    # ---- time ----
    @property
    def _peak_flops(self) -> float:
        g, c = self.gpu, self.quant.compute
        if c == "fp8" and g.fp8_tflops:
            return g.fp8_tflops * 1e12
        if c == "int8":
            return g.int8_tops * 1e12
        return g.fp16_tflops * 1e12

    @cached_property
    def _parts(self) -> Callable[[int, int, list[tuple[int, int]]], tuple[float, float, float]]:
        """The step model as one closure: (n_decode, decode_ctx_sum, prefill_chunks) -> (time, memory, compute).

        Memory: every step reads the weights once plus the KV of every token attended to.
        Compute: transformer-block GEMMs at 2 FLOPs per weight per token (the embedding is a lookup; the
        LM head runs once per sequence) at the scheme's tensor peak; attention (4 x layers x hidden per
        attended position) at the 16-bit peak; both at GEMM_FRACTION. The step takes memory + compute:
        at batch 1 the math is ~1 % of the weight read and at 2,048 prompt tokens the read is ~6 % of the
        math, so max() and the sum agree there; in between (short prompts, decode batches of hundreds)
        the published points follow the sum. Plus all-reduces with TP and per-step, per-layer and
        per-sequence overhead.
        """
        m, tp, g = self.model, self.tp, self.gpu
        mem_eff, comp_eff = efficiencies(g, self.quant)
        weight, kvb = self.weight_bytes_per_gpu, self.kv_bytes_per_token / tp
        mem_rate = g.bandwidth_gbps * 1e9 * BANDWIDTH_FRACTION * mem_eff
        head = m.vocab * m.hidden
        block_flops = 2 * max(m.params - 2 * head, 0.0) / tp  # per token, per GPU
        head_flops = 2 * head / tp  # per sequence, per GPU
        lin_rate = self._peak_flops * GEMM_FRACTION * comp_eff
        attn_flops = 4 * m.layers * m.hidden / tp  # per attended position, per GPU
        attn_rate = g.fp16_tflops * 1e12 * GEMM_FRACTION
        fixed = STEP_OVERHEAD_S + LAYER_OVERHEAD_S * m.layers
        comm_lat = 2 * m.layers * ALLREDUCE_LATENCY_S if tp > 1 else 0.0
        # ring all-reduce of fp16 activations, twice per layer: bytes per token over the link
        comm_per_token = (2 * m.layers * m.hidden * 2 * 2 * (tp - 1) / tp
                          / (g.interconnect_gbps * 1e9 * ALLREDUCE_BW_FRACTION))
        host = self.host_step_s

        def parts(n_dec: int, dec_sum: int, prefill: list[tuple[int, int]]) -> tuple[float, float, float]:
            if prefill:
                tokens = n_dec + sum(c for c, _ in prefill)
                kv_read = dec_sum + sum(ctx for _, ctx in prefill)
                attn_ctx = dec_sum + sum(c * (ctx - c / 2) for c, ctx in prefill)
            else:
                tokens, kv_read, attn_ctx = n_dec, dec_sum, dec_sum
            if tokens == 0:
                return 0.0, 0.0, 0.0
            seqs = n_dec + len(prefill)
            memory_s = (weight + kv_read * kvb) / mem_rate
            compute_s = (block_flops * tokens + head_flops * seqs) / lin_rate + attn_flops * attn_ctx / attn_rate
            comm_s = comm_lat + comm_per_token * tokens if tp > 1 else 0.0
            time_s = memory_s + compute_s + comm_s + fixed + host + PER_SEQ_OVERHEAD_S * seqs
            return time_s, memory_s, compute_s

        return parts

    def step_cost(self, decode_context_tokens: list[int], prefill_chunks: list[tuple[int, int]]) -> StepCost:
        """Time of one engine step.

        decode_context_tokens: the context length of each sequence decoding one token this step.
        prefill_chunks: (chunk tokens, context length after the chunk) per prefilling sequence.
        """
        return StepCost(*self._parts(len(decode_context_tokens), sum(decode_context_tokens), prefill_chunks))


def default_max_num_seqs(gpu: GpuSpec) -> tuple[int, int]:
    """vLLM 0.33 `vllm serve` defaults (max_num_seqs, max_num_batched_tokens) by GPU memory."""
    gib = gpu.mem_bytes / (1 << 30)
    if gib >= 160:
        return 1024, 16384
    if gib >= 70 and "A100" not in gpu.name:
        return 1024, 8192
    return 256, 2048


def blocks_for(tokens: int) -> int:
    return math.ceil(tokens / BLOCK_SIZE_TOKENS)
