"""Performance-model seam: memory budget and roofline step time of one engine step on a GPU.

`Deployment` = GPU x model x quantization x tensor parallelism. It checks that the weights fit,
sizes the KV cache, and prices a step (decode tokens + prefill chunks) in simulated seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .catalog import GpuSpec, ModelSpec, QuantSpec, SimConfigError

# ---- calibration constants ------------------------------------------------------------------
# Achieved fraction of peak HBM/GDDR bandwidth during decode, and fixed cost per engine step.
# Calibrated on two published vLLM runs of Llama-3.1-8B BF16 at concurrency 1:
#  * A100 40GB, vLLM 0.23.0, 1024 in / 128 out: ~75 tok/s = 13.3 ms/token, "roughly 77% of the
#    memory-bandwidth ceiling" (https://johnmusgrave.com/p/vllm-throughput-latency-sweep-on).
#    Model: (16.06 GB weights + 0.13 GB KV) / (1555 GB/s x 0.85) + 1.0 ms = 13.3 ms.
#  * H100-80GB-HBM3, vLLM 0.21.0 fp16, chatbot-short: TPOT p50 6.48 ms, TTFT p50 13.98 ms
#    (https://yobitelcomm.github.io/bench/recipes/concurrency-sweep/). Model: 16.1/(3350x0.85)+1.0
#    = 6.7 ms (3 % high).
BANDWIDTH_FRACTION = 0.85
STEP_OVERHEAD_S = 0.0010  # kernel launches, sampling, scheduler; "order of a millisecond"
PER_SEQ_OVERHEAD_S = 10e-6  # CPU-side per running sequence per step (input prep, detokenize)
# TODO(calibrate): achieved fraction of tensor peak in prefill GEMMs. 0.6 sits under the ~0.7
# ceiling analytical tools use (hardware.md); no published prefill-only vLLM number was found that
# states prompt length, GPU and precision together.
FLOPS_FRACTION = 0.60
# API-server time before the engine sees a request and after the first token (HTTP parse,
# tokenize, detokenize). The H100 run above has TTFT 14 ms where the model's prefill of a short
# prompt is ~7 ms: the rest (~5-7 ms) is frontend; we charge 5 ms once per request.
FRONTEND_OVERHEAD_S = 0.005
# TODO(calibrate): memory reserved per GPU outside weights and KV (CUDA context, CUDA graphs,
# activation peak of a max-size chunked-prefill step, NCCL buffers). 1 GiB fixed + activations.
WORKSPACE_FIXED_BYTES = 1 << 30
ACTIVATION_BYTES_PER_BATCHED_TOKEN_PER_INTERMEDIATE = 4  # ~2 live fp16 MLP tensors
# TODO(calibrate): per-layer all-reduce latency with TP>1 (two all-reduces per layer: after
# attention and after the MLP). ~8 us is the NCCL small-message latency order on NVLink.
ALLREDUCE_LATENCY_S = 8e-6
KV_DTYPE_BYTES = 2  # fp16/bf16 KV cache (the default --kv-cache-dtype auto)
BLOCK_SIZE_TOKENS = 16  # vLLM's default KV block size


def kernel_efficiency(gpu: GpuSpec, quant: QuantSpec) -> float:
    """Per-GPU, per-scheme kernel quality (multiplies both achieved fractions).

    TODO(calibrate): judgement values. Turing (cc 7.5) lacks Marlin kernels, so int4 falls back to
    slow GEMV kernels; FP8 emulated as W8A16 on Ampere loses some; W8A8 INT8 is well supported.
    """
    if quant.id in ("fp16", "bf16"):
        return 1.0
    if quant.id in ("awq", "gptq"):
        return 0.55 if gpu.compute_capability < 8.0 else 0.85
    if quant.id == "fp8":
        return 0.9 if gpu.fp8_tflops else 0.8
    return 0.9  # int8 W8A8


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
        return self.model.kv_bytes_per_token(KV_DTYPE_BYTES)

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

    def step_cost(self, decode_context_tokens: list[int], prefill_chunks: list[tuple[int, int]]) -> StepCost:
        """Time of one engine step.

        decode_context_tokens: the context length of each sequence decoding one token this step.
        prefill_chunks: (chunk tokens, context length after the chunk) per prefilling sequence.
        Memory: every step reads the weights once plus the KV of every sequence in the batch.
        Compute: 2 x params FLOPs per token + attention (4 x layers x hidden x context per token).
        The step takes the larger of the two (roofline), plus fixed and per-sequence overhead.
        """
        eff = kernel_efficiency(self.gpu, self.quant)
        m = self.model
        tokens = len(decode_context_tokens) + sum(c for c, _ in prefill_chunks)
        if tokens == 0:
            return StepCost(0.0, 0.0, 0.0)
        kv_read = sum(decode_context_tokens) + sum(ctx for _, ctx in prefill_chunks)
        bytes_per_gpu = self.weight_bytes_per_gpu + kv_read * self.kv_bytes_per_token / self.tp
        memory_s = bytes_per_gpu / (self.gpu.bandwidth_gbps * 1e9 * BANDWIDTH_FRACTION * eff)
        attn_ctx = sum(decode_context_tokens) + sum(c * (ctx - c / 2) for c, ctx in prefill_chunks)
        flops = 2 * m.params * tokens + 4 * m.layers * m.hidden * attn_ctx
        compute_s = flops / self.tp / (self._peak_flops * FLOPS_FRACTION * eff)
        comm_s = 0.0
        if self.tp > 1:
            # Ring all-reduce of the fp16 activations, twice per layer.
            volume = tokens * m.hidden * 2 * 2 * (self.tp - 1) / self.tp
            comm_s = 2 * m.layers * (ALLREDUCE_LATENCY_S + volume / (self.gpu.interconnect_gbps * 1e9))
        seqs = len(decode_context_tokens) + len(prefill_chunks)
        time_s = max(memory_s, compute_s) + comm_s + STEP_OVERHEAD_S + PER_SEQ_OVERHEAD_S * seqs
        return StepCost(time_s, memory_s, compute_s)


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
