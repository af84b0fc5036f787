"""Backend configs: pydantic models for the servers a scenario can target (sim, external, vLLM, TGI).

Re-exported by harness.config; each model carries the real server's flag names and refuses values
the real server would refuse, with one-line messages.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SimBackend(_Model):
    """The built-in simulated server (`slabench sim serve`), launched as a child process."""

    type: Literal["sim"] = "sim"
    flavor: Literal["vllm", "tgi"] = "vllm"
    model: str = "llama-3-8b"
    gpu: str = "a100-80gb"
    quantization: str = "fp16"
    tensor_parallel_size: int = Field(1, ge=1)
    seed: int = 0
    speed: float = Field(1.0, gt=0)
    fixed_ttft_ms: float | None = Field(None, ge=0)
    fixed_itl_ms: float | None = Field(None, ge=0)
    max_num_seqs: int | None = Field(None, ge=1)
    max_model_len: int | None = Field(None, ge=16)
    extra_args: list[str] = []
    startup_timeout_s: float = Field(60, gt=0)

    @model_validator(mode="after")
    def _fixed_pair(self) -> "SimBackend":
        if (self.fixed_ttft_ms is None) != (self.fixed_itl_ms is None):
            raise ValueError("set both fixed_ttft_ms and fixed_itl_ms (calibration mode) or neither")
        return self


class ExternalBackend(_Model):
    """An already-running OpenAI- or TGI-compatible server; nothing is launched."""

    type: Literal["external"] = "external"
    url: str
    model: str | None = None  # served model name; asked from /v1/models when not set
    api_key_env: str | None = None  # name of the environment variable holding the API key
    startup_timeout_s: float = Field(10, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"url '{v}' must start with http:// or https://")
        return v.rstrip("/")


# Values the real servers accept (protocols.md: vLLM 0.33 QuantizationMethods, TGI launcher --quantize).
VLLM_QUANTIZATIONS = (
    "awq", "auto_awq", "fp8", "fbgemm_fp8", "fp_quant", "modelopt", "modelopt_fp4", "modelopt_mxfp8",
    "modelopt_mixed", "auto_gptq", "gptq", "gptq_marlin", "awq_marlin", "humming", "compressed-tensors",
    "experts_int8", "quark", "moe_wna16", "torchao", "inc", "mxfp4", "gpt_oss_mxfp4", "deepseek_v4_fp8",
    "online", "fp8_per_tensor", "fp8_per_block", "fp8_per_channel", "int8_per_channel_weight_only",
    "nvfp4_per_token", "mxfp8",
)
TGI_QUANTIZATIONS = ("awq", "compressed-tensors", "eetq", "exl2", "gptq", "marlin", "bitsandbytes",
                     "bitsandbytes-nf4", "bitsandbytes-fp4", "fp8")


def _one_of(value: str | None, allowed: tuple[str, ...], what: str) -> str | None:
    if value is not None and value not in allowed:
        hint = difflib.get_close_matches(value, allowed, n=1)
        extra = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise ValueError(f"{what} '{value}' is not accepted{extra}; allowed: {', '.join(allowed)}")
    return value


class VllmBackend(_Model):
    """`vllm serve MODEL ...` launched by the harness on a free port (real GPUs)."""

    type: Literal["vllm"]
    model: str  # Hugging Face id or local path
    served_model_name: str | None = None
    executable: str = "vllm"
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    max_num_seqs: int | None = Field(None, ge=1)
    max_model_len: int | None = Field(None, ge=16)
    quantization: str | None = None
    dtype: Literal["auto", "half", "float16", "bfloat16", "float", "float32"] | None = None
    api_key_env: str | None = None  # the key reaches vLLM through VLLM_API_KEY, never the command line
    cuda_visible_devices: str | None = None
    port: int | None = Field(None, ge=1, le=65535)  # None: a free port
    extra_args: list[str] = []
    gpu: str | None = None  # GPU id (t4, a10g, a100-80gb, h100-sxm, ...) for prices and the report
    startup_timeout_s: float = Field(900, gt=0)  # weights download and CUDA graph capture take minutes

    @field_validator("quantization")
    @classmethod
    def _q(cls, v: str | None) -> str | None:
        return _one_of(v, VLLM_QUANTIZATIONS, "vLLM --quantization")


class TgiBackend(_Model):
    """TGI via `text-generation-launcher` (native) or `docker run ghcr.io/huggingface/text-generation-inference`."""

    type: Literal["tgi"]
    model_id: str
    launcher: Literal["native", "docker"] = "native"
    executable: str = "text-generation-launcher"
    docker_image: str = "ghcr.io/huggingface/text-generation-inference:3.3.5"
    docker_volume: str | None = None  # host folder mounted at /data (the model cache)
    shm_size: str = "1g"
    num_shard: int | None = Field(None, ge=1)
    max_concurrent_requests: int | None = Field(None, ge=1)
    max_batch_total_tokens: int | None = Field(None, ge=1)
    max_input_tokens: int | None = Field(None, ge=1)
    max_total_tokens: int | None = Field(None, ge=2)
    quantize: str | None = None
    dtype: Literal["float16", "bfloat16"] | None = None
    api_key_env: str | None = None
    cuda_visible_devices: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    extra_args: list[str] = []
    gpu: str | None = None
    startup_timeout_s: float = Field(900, gt=0)

    @field_validator("quantize")
    @classmethod
    def _q(cls, v: str | None) -> str | None:
        return _one_of(v, TGI_QUANTIZATIONS, "TGI --quantize")

    @model_validator(mode="after")
    def _check(self) -> "TgiBackend":
        if self.dtype and self.quantize:
            raise ValueError("TGI cannot combine dtype with quantize: drop one of them")
        if self.max_input_tokens and self.max_total_tokens and self.max_input_tokens >= self.max_total_tokens:
            raise ValueError(f"max_input_tokens ({self.max_input_tokens}) must be < max_total_tokens ({self.max_total_tokens})")
        return self


BackendConfig = Annotated[Union[SimBackend, ExternalBackend, VllmBackend, TgiBackend], Field(discriminator="type")]
