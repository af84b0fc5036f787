"""Engine seam of `slabench k8s`: a scenario's backend → the container that serves it in a pod.

The command line comes from the project's own launchers (`vllm_argv`, TGI's `launcher_flags`), so a
pod runs with the flags slabench measured; only the listen address changes (all interfaces, port
8000). A sim backend becomes the engine it simulates, sized as the sim sized it (`sim_plan`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from harness.config import ConfigError, ExternalBackend, SimBackend, TgiBackend, VllmBackend
from harness.config.errors import clip

PORT = 8000
# The default vLLM tag is v + the release harness/backends/vllm.py was checked against (VLLM_VERSION).
VLLM_IMAGE = "vllm/vllm-openai"
PERIOD_S = 10  # startupProbe period
TAG_RX = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")  # a Docker image tag
# Sim quantizations whose weights must come pre-quantized: the checkpoint is not the catalog's model.
PREQUANTIZED = {"awq": "awq", "gptq": "gptq", "int8": None}


@dataclass
class Engine:
    kind: str  # vllm | tgi
    image: str
    command: list[str]
    model: str
    gpus: int  # per pod: tensor-parallel size / TGI shards
    gpu: str | None  # GPU id (t4, a100-40gb, ...) for the price and the node selector
    startup_s: float  # how long loading may take: the backend's startup_timeout_s
    key_env: str  # the variable the engine reads its API key from
    waiting_series: str  # the waiting-queue gauge on /metrics
    running_series: str  # the requests-in-the-batch gauge
    cache_path: str  # where the engine keeps downloaded weights
    shm_size: str
    notes: list[str] = field(default_factory=list)

    @property
    def startup_failure_threshold(self) -> int:
        return max(1, math.ceil(self.startup_s / PERIOD_S))


def _image(default: str, tag: str | None) -> str:
    if tag is None:
        return default
    if not TAG_RX.match(tag):
        raise ConfigError(f"--image-tag '{clip(tag)}' is not a Docker tag (letters, digits, '_', '.', '-'; at most 128): "
                          "give e.g. v0.33.0")
    repo, _, last = default.rpartition("/")
    name = last.split(":", 1)[0]  # a ':' before the last '/' is a registry port, not a tag
    return f"{repo}/{name}:{tag}" if repo else f"{name}:{tag}"


def _listen_everywhere(argv: list[str], host_flag: str) -> list[str]:
    """The launcher's argv with 0.0.0.0 for its loopback address (a pod is reached through its IP)."""
    out = list(argv)
    i = out.index(host_flag)
    out[i + 1] = "0.0.0.0"
    return out


def _key_env(server_cls) -> str:
    # The launchers own the name the engine reads its key from (VLLM_API_KEY, API_KEY).
    return next(iter(server_cls.key_env(None, "").keys()))


def vllm_engine(cfg: VllmBackend, image_tag: str | None) -> Engine:
    from harness.backends.base import BackendError
    from harness.backends.vllm import VllmServer, vllm_argv
    from harness.sim.vllm_api import VLLM_VERSION

    try:
        argv = vllm_argv(cfg.model_copy(update={"executable": "vllm"}), PORT)
    except BackendError as exc:
        raise ConfigError(str(exc).splitlines()[0]) from None
    return Engine("vllm", _image(f"{VLLM_IMAGE}:v{VLLM_VERSION}", image_tag), _listen_everywhere(argv, "--host"),
                  cfg.served_model_name or cfg.model, cfg.tensor_parallel_size, cfg.gpu, cfg.startup_timeout_s,
                  _key_env(VllmServer), "vllm:num_requests_waiting", "vllm:num_requests_running",
                  "/root/.cache/huggingface", "2Gi")


def tgi_engine(cfg: TgiBackend, image_tag: str | None) -> Engine:
    from harness.backends.base import BackendError
    from harness.backends.tgi import TgiServer, launcher_flags

    try:
        flags = launcher_flags(cfg)
    except BackendError as exc:
        raise ConfigError(str(exc).splitlines()[0]) from None
    argv = ["text-generation-launcher", *flags, "--hostname", "0.0.0.0", "--port", str(PORT)]
    return Engine("tgi", _image(cfg.docker_image, image_tag), argv, cfg.model_id, cfg.num_shard or 1, cfg.gpu,
                  cfg.startup_timeout_s, _key_env(TgiServer), "tgi_queue_size", "tgi_batch_current_size",
                  "/data", "1Gi")


def sim_engine(b: SimBackend, image_tag: str | None, model: str | None) -> Engine:
    """The engine a sim backend simulates, with the sizing the sim measured with."""
    from harness.decide.offline import sim_plan
    from harness.sim.catalog import SimConfigError, default_catalog
    from harness.sim.perfmodel import default_max_num_seqs

    try:
        plan = sim_plan(b)
        cat = default_catalog()
        spec, gpu = cat.model(b.model), cat.gpu(b.gpu)
    except SimConfigError as exc:
        raise ConfigError(f"the sim backend cannot be deployed: {exc}") from None
    if plan.fixed is not None or plan.cfg is None:
        raise ConfigError("the sim backend runs in calibration mode (fixed_ttft_ms / fixed_itl_ms): it models no "
                          "engine to deploy: measure a scenario without them")
    q = b.quantization.lower()
    if q in PREQUANTIZED and not model:
        raise ConfigError(f"the variant is {q}-quantized: the pods need a pre-quantized {q} checkpoint of "
                          f"{spec.hf_name}: give its Hugging Face id with --model")
    hf = model or spec.hf_name
    notes = [f"model {hf}: the Hugging Face id of the sim's {b.model}" if not model else f"model {hf} (--model)"]
    if b.flavor == "vllm":
        quant = {"fp8": "fp8", **PREQUANTIZED}.get(q)
        dtype = {"fp16": "float16", "bf16": "bfloat16"}.get(q)
        batched = plan.cfg.max_batched_tokens
        extra = [] if batched == default_max_num_seqs(gpu)[1] else ["--max-num-batched-tokens", str(batched)]
        cfg = VllmBackend(type="vllm", model=hf, tensor_parallel_size=b.tensor_parallel_size,
                          gpu_memory_utilization=plan.dep.gpu_memory_utilization, max_num_seqs=plan.cfg.max_num_seqs,
                          max_model_len=plan.max_model_len, quantization=quant, dtype=dtype, gpu=b.gpu,
                          extra_args=extra)
        eng = vllm_engine(cfg, image_tag)
    else:
        # TGI quantizes on load: fp8 as fp8, int8 as EETQ; AWQ/GPTQ read pre-quantized weights.
        quant = {"fp8": "fp8", "int8": "eetq", "awq": "awq", "gptq": "gptq"}.get(q)
        dtype = {"fp16": "float16", "bf16": "bfloat16"}.get(q)
        cfg = TgiBackend(type="tgi", model_id=hf, num_shard=b.tensor_parallel_size,
                         max_concurrent_requests=plan.max_concurrent_requests,
                         max_input_tokens=plan.max_input_tokens, max_total_tokens=plan.max_total_tokens,
                         quantize=quant, dtype=dtype, gpu=b.gpu)
        eng = tgi_engine(cfg, image_tag)
    eng.notes = notes + eng.notes
    return eng


def engine_for(backend, image_tag: str | None = None, model: str | None = None) -> Engine:
    """The container for a scenario's backend; ConfigError for one that is no engine to deploy."""
    if isinstance(backend, SimBackend):
        return sim_engine(backend, image_tag, model)
    if isinstance(backend, VllmBackend):
        return vllm_engine(backend.model_copy(update={"model": model}) if model else backend, image_tag)
    if isinstance(backend, TgiBackend):
        return tgi_engine(backend.model_copy(update={"model_id": model}) if model else backend, image_tag)
    if isinstance(backend, ExternalBackend):
        raise ConfigError(f"the source measured a running server ({clip(backend.url)}), whose engine and flags "
                          "slabench does not know: give the scenario that describes it (backend type vllm or tgi) "
                          "with --capacity-rps set to the measured capacity")
    raise ConfigError(f"backend type {backend.type} is not deployed by `slabench k8s`: it writes vLLM and TGI "
                      "manifests (backend type vllm, tgi or sim)")
