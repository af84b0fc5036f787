"""Catalog seam: GPU, model and quantization facts the simulator is built from.

Numbers come from /work/shared/reference/hardware.md (vendor datasheets, Hugging Face configs).
Users can add or override entries with a YAML file (`--catalog FILE`, see `load_catalog`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config.errors import ConfigError, clip, read_yaml


class SimConfigError(Exception):
    """Bad simulator input: the message is one line naming the problem and the fix."""


@dataclass(frozen=True)
class GpuSpec:
    id: str
    name: str  # what NVML would report (nvmlDeviceGetName)
    mem_mib: int  # total memory as NVML reports it (MiB)
    bandwidth_gbps: float  # peak memory bandwidth, GB/s
    fp16_tflops: float  # dense FP16/BF16 tensor peak
    int8_tops: float  # dense INT8 tensor peak
    fp8_tflops: float | None  # dense FP8 tensor peak; None = no FP8 tensor cores
    compute_capability: float
    tdp_w: float
    idle_w: float
    max_sm_clock_mhz: float
    interconnect_gbps: float  # per-GPU all-reduce bandwidth (NVLink, else PCIe)

    @property
    def mem_bytes(self) -> int:
        return self.mem_mib * 1024 * 1024


@dataclass(frozen=True)
class ModelSpec:
    id: str
    hf_name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    params_b: float  # billions of parameters
    max_context: int  # max_position_embeddings

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def params(self) -> float:
        return self.params_b * 1e9

    def kv_bytes_per_token(self, kv_dtype_bytes: int = 2) -> int:
        """K and V for every layer: 2 x layers x kv_heads x head_dim x bytes per element."""
        return 2 * self.layers * self.kv_heads * self.head_dim * kv_dtype_bytes


@dataclass(frozen=True)
class QuantSpec:
    id: str
    bytes_per_weight: float  # for the quantized (non-embedding) weights
    compute: str  # which tensor peak the matmuls run at: fp16 | int8 | fp8 (falls back to fp16)
    min_cc: float  # lowest compute capability vLLM supports it on


# Catalog facts (hardware.md table). NVML names and MiB totals are what nvidia-smi shows on these
# parts; TDP / clocks are the datasheet board power and boost clock. Idle power ~ 10-15 % of TDP.
# interconnect: NVLink 600 GB/s (A100 SXM), 900 GB/s (H100 SXM / H200); PCIe Gen4/5 x16 otherwise.
# A10G tensor peaks: NVIDIA publishes none for the AWS part; the A10 datasheet's 125 TFLOPS FP16 /
# 250 TOPS INT8 (dense), which vLLM's llm-compressor docs also list for the A10G, fit its measured
# prefill (validation point llmcompressor-l3-8b-fp16-a10g-sharegpt-1qps-ttft); the 70 TFLOPS an
# analysis tool's config gives put that TTFT ~50 % too slow.
GPUS: dict[str, GpuSpec] = {g.id: g for g in [
    GpuSpec("t4", "Tesla T4", 15360, 320, 65, 130, None, 7.5, 70, 10, 1590, 32),
    GpuSpec("a10g", "NVIDIA A10G", 23028, 600, 125, 250, None, 8.6, 300, 25, 1710, 32),
    GpuSpec("l4", "NVIDIA L4", 23034, 300, 121, 242.5, 242.5, 8.9, 72, 16, 2040, 32),
    GpuSpec("a100-40gb", "NVIDIA A100-SXM4-40GB", 40960, 1555, 312, 624, None, 8.0, 400, 55, 1410, 600),
    GpuSpec("a100-80gb", "NVIDIA A100-SXM4-80GB", 81920, 2039, 312, 624, None, 8.0, 400, 60, 1410, 600),
    GpuSpec("h100-sxm", "NVIDIA H100 80GB HBM3", 81559, 3350, 989, 1979, 1979, 9.0, 700, 70, 1980, 900),
    GpuSpec("h100-pcie", "NVIDIA H100 PCIe", 81559, 2000, 756, 1513, 1513, 9.0, 350, 50, 1755, 64),
    GpuSpec("h200", "NVIDIA H200", 143771, 4800, 989, 1979, 1979, 9.0, 700, 75, 1980, 900),
]}

MODELS: dict[str, ModelSpec] = {m.id: m for m in [
    ModelSpec("llama-2-7b", "meta-llama/Llama-2-7b-hf", 32, 4096, 32, 32, 11008, 32000, 6.74, 4096),
    ModelSpec("llama-2-13b", "meta-llama/Llama-2-13b-hf", 40, 5120, 40, 40, 13824, 32000, 13.02, 4096),
    ModelSpec("llama-3-8b", "meta-llama/Meta-Llama-3-8B", 32, 4096, 32, 8, 14336, 128256, 8.03, 8192),
    ModelSpec("mistral-7b", "mistralai/Mistral-7B-v0.1", 32, 4096, 32, 8, 14336, 32000, 7.24, 32768),
    ModelSpec("llama-3-70b", "meta-llama/Meta-Llama-3-70B", 80, 8192, 64, 8, 28672, 128256, 70.55, 8192),
    # Llama-2-70B (config.json of meta-llama/Llama-2-70b-hf): the model of TensorRT-LLM's and MLPerf's
    # published 70B throughput tables (validation points trtllm-*-llama2-70b-*).
    ModelSpec("llama-2-70b", "meta-llama/Llama-2-70b-hf", 80, 8192, 64, 8, 28672, 32000, 68.98, 4096),
]}

# Weight-only int4 (AWQ/GPTQ): 4 bits + a fp16 scale/zero per group of 128 ≈ 4.25 bits; we round to
# 4.5 bits (0.5625 B) to cover packing/metadata. FP8 on GPUs without FP8 tensor cores runs as
# weight-only (W8A16, Marlin) at the FP16 peak; that needs compute capability 8.0.
QUANTS: dict[str, QuantSpec] = {q.id: q for q in [
    QuantSpec("fp16", 2.0, "fp16", 0.0),
    QuantSpec("bf16", 2.0, "fp16", 8.0),
    QuantSpec("fp8", 1.0, "fp8", 8.0),
    QuantSpec("int8", 1.0, "int8", 7.5),
    QuantSpec("awq", 0.5625, "fp16", 7.5),
    QuantSpec("gptq", 0.5625, "fp16", 7.5),
]}


@dataclass(frozen=True)
class Catalog:
    gpus: dict[str, GpuSpec]
    models: dict[str, ModelSpec]
    quants: dict[str, QuantSpec]

    def gpu(self, gpu_id: str) -> GpuSpec:
        return _lookup(self.gpus, gpu_id, "GPU", "--gpu")

    def model(self, model_id: str) -> ModelSpec:
        return _lookup(self.models, model_id, "model", "--model")

    def quant(self, quant_id: str) -> QuantSpec:
        return _lookup(self.quants, quant_id, "quantization", "--quantization")

    def describe(self) -> str:
        """The catalogs as a human-readable table (for `list`)."""
        lines = ["GPUs:", f"  {'id':<11} {'name':<24} {'mem GB':>7} {'GB/s':>6} {'FP16 TF':>8} {'FP8 TF':>7}"]
        for g in self.gpus.values():
            fp8 = f"{g.fp8_tflops:g}" if g.fp8_tflops else "-"
            lines.append(f"  {g.id:<11} {g.name:<24} {g.mem_bytes / 1e9:>7.1f} {g.bandwidth_gbps:>6g} "
                         f"{g.fp16_tflops:>8g} {fp8:>7}")
        lines += ["Models:", f"  {'id':<12} {'params B':>8} {'layers':>6} {'kv heads':>8} {'context':>7}  hf name"]
        for m in self.models.values():
            lines.append(f"  {m.id:<12} {m.params_b:>8g} {m.layers:>6} {m.kv_heads:>8} {m.max_context:>7}  {m.hf_name}")
        lines.append("Quantizations: " + ", ".join(self.quants))
        return "\n".join(lines)


def _lookup(table: dict, key: str, kind: str, flag: str):
    k = key.strip().lower()
    if k in table:
        return table[k]
    raise SimConfigError(f"unknown {kind} '{key}': use {flag} with one of {', '.join(table)} "
                         f"(or add it with --catalog FILE)")


def default_catalog() -> Catalog:
    return Catalog(dict(GPUS), dict(MODELS), dict(QUANTS))


# Bounds on user catalog numbers, far outside every real part (H200: 141 GB, 4.8 TB/s, 1979 TFLOPS;
# Llama-3-70B: 80 layers, 70.6 B parameters). Outside them a value is a typo or NaN/infinity, which
# would divide by zero, hang the simulated server (zero bandwidth) or size absurd buffers.
# field: (lowest, highest, lowest allowed itself)
_GPU_LIMITS: dict[str, tuple[float, float, bool]] = {
    "mem_mib": (1, 16 * 1024 * 1024, True),  # up to 16 TiB
    "bandwidth_gbps": (0, 1e6, False), "fp16_tflops": (0, 1e6, False), "int8_tops": (0, 1e6, False),
    "fp8_tflops": (0, 1e6, False), "compute_capability": (1, 100, True), "tdp_w": (0, 1e5, False),
    "idle_w": (0, 1e5, True), "max_sm_clock_mhz": (0, 1e5, False), "interconnect_gbps": (0, 1e6, False),
}
_MODEL_LIMITS: dict[str, tuple[float, float, bool]] = {
    "layers": (1, 10_000, True), "hidden": (1, 1_000_000, True), "heads": (1, 100_000, True),
    "kv_heads": (1, 100_000, True), "intermediate": (1, 10_000_000, True), "vocab": (1, 100_000_000, True),
    "params_b": (0, 1e6, False), "max_context": (1, 1_000_000_000, True),
}
_INT_FIELDS = {"mem_mib", "layers", "hidden", "heads", "kv_heads", "intermediate", "vocab", "max_context"}
_MAX_NAME_CHARS = 200
_ID_RX = re.compile(r"[a-z0-9][a-z0-9._+-]{0,63}")


def load_catalog(path: str | Path | None) -> Catalog:
    """The built-in catalog plus entries from a YAML file shaped like:

    gpus:   {my-gpu: {name: ..., mem_mib: ..., bandwidth_gbps: ..., fp16_tflops: ..., ...}}
    models: {my-model: {hf_name: ..., layers: ..., hidden: ..., ...}}
    An entry whose id already exists overrides the built-in one field by field. The file is read by
    the config reader (regular file, size cap, UTF-8, bounded YAML); every number is range-checked.
    """
    cat = default_catalog()
    if path is None:
        return cat
    p = Path(path)
    try:
        data = read_yaml(p, "catalog file")
    except ConfigError as exc:
        raise SimConfigError(f"--catalog {exc}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise SimConfigError(f"catalog file {p} must be a mapping with 'gpus' and/or 'models': fix the file")
    unknown = sorted(clip(k, 40) for k in data if k not in ("gpus", "models"))
    if unknown:
        raise SimConfigError(f"catalog file {p}: unknown section(s) {unknown[:5]}: use 'gpus' and 'models'")
    for section, table, cls in (("gpus", cat.gpus, GpuSpec), ("models", cat.models, ModelSpec)):
        entries = data.get(section) or {}
        if not isinstance(entries, dict):
            raise SimConfigError(f"catalog file {p}: '{section}' must be a mapping of id: {{field: value}}: "
                                 "fix the file")
        for key, fields in entries.items():
            key = _entry_id(key, section, p)
            table[key] = _build(cls, key, fields, table.get(key), p)
    return cat


def _entry_id(key: Any, section: str, path: Path) -> str:
    k = str(key).strip().lower() if isinstance(key, (str, int)) and not isinstance(key, bool) else None
    if k is None or not _ID_RX.fullmatch(k):
        raise SimConfigError(f"catalog file {path}: {section}: id '{clip(key, 40)}' is not a usable id: use 1-64 "
                             "letters, digits, '.', '_', '+' or '-' (it is what --gpu / --model take)")
    return k


def _build(cls: type, key: str, fields: Any, base: Any, path: Path):
    where = f"catalog file {path}: entry '{key}'"
    if not isinstance(fields, dict):
        raise SimConfigError(f"{where} must be a mapping of fields")
    names = {f.name for f in dataclasses.fields(cls)} - {"id"}
    bad = sorted(clip(f, 40) for f in fields if f not in names)
    if bad:
        raise SimConfigError(f"{where} has unknown field(s) {bad[:5]}: known fields are {sorted(names)}")
    merged: dict[str, Any] = dataclasses.asdict(base) if base else {}
    merged.update(fields)
    merged["id"] = key
    missing = names - set(merged)
    if missing:
        raise SimConfigError(f"{where} is missing {sorted(missing)}: add them")
    limits = _GPU_LIMITS if cls is GpuSpec else _MODEL_LIMITS
    for name in sorted(names):
        if name in limits:
            merged[name] = _number(merged[name], name, limits[name], where)
        elif not isinstance(merged[name], str) or not merged[name].strip() or len(merged[name]) > _MAX_NAME_CHARS \
                or not merged[name].isprintable():
            raise SimConfigError(f"{where}: {name} must be a one-line text of 1-{_MAX_NAME_CHARS} characters, "
                                 f"got '{clip(merged[name], 40)}'")
    if cls is GpuSpec and merged["idle_w"] > merged["tdp_w"]:
        raise SimConfigError(f"{where}: idle_w {merged['idle_w']:g} is above tdp_w {merged['tdp_w']:g}: "
                             "idle power is a fraction of the board power (about 10-15 %)")
    if cls is ModelSpec and not merged["kv_heads"] <= merged["heads"] <= merged["hidden"]:
        raise SimConfigError(f"{where}: needs kv_heads <= heads <= hidden, got {merged['kv_heads']}, "
                             f"{merged['heads']}, {merged['hidden']}: check the model's config.json")
    return cls(**merged)


def _number(value: Any, name: str, limit: tuple[float, float, bool], where: str) -> float | int | None:
    """`value` if it is a finite number within `limit` (an int for count fields); SimConfigError otherwise."""
    lo, hi, lo_ok = limit
    if value is None and name == "fp8_tflops":
        return None  # no FP8 tensor cores
    whole = name in _INT_FIELDS
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        kind = "a whole number" if whole else "a number"
        raise SimConfigError(f"{where}: {name} must be {kind}, got '{clip(value, 40)}'"
                             f"{' (or null: no FP8 tensor cores)' if name == 'fp8_tflops' else ''}")
    if not math.isfinite(value):
        raise SimConfigError(f"{where}: {name} must be a finite number, got {value} (NaN and infinity are "
                             "not accepted)")
    if value > hi or value < lo or (value == lo and not lo_ok):
        low = f"{'>=' if lo_ok else '>'} {_num(lo)}"
        raise SimConfigError(f"{where}: {name} must be {low} and <= {_num(hi)}, got {clip(value, 40)} "
                             "(check the unit in the field's name)")
    return value


def _num(x: float) -> str:
    return f"{x:,}" if isinstance(x, int) else f"{x:g}"
