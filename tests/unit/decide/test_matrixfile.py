"""Matrix files: expansion into variant scenarios, one-line errors, the shipped GPU matrix."""

from pathlib import Path

import pytest

from harness.config import ConfigError
from harness.decide.matrixfile import expand, load_matrix

ROOT = Path(__file__).resolve().parents[3]

BASE = """
name: m
scenario:
  name: base
  backend: {type: sim, model: llama-3-8b, gpu: a100-80gb}
  load: {mode: open, rate_rps: 2, duration_s: 10}
"""


def write(tmp_path, text):
    p = tmp_path / "matrix-x.yaml"
    p.write_text(BASE + text, encoding="utf-8")
    return p


def variants(tmp_path, text):
    p = write(tmp_path, text)
    return expand(load_matrix(p), p)


def test_every_combination_with_axes_applied(tmp_path):
    vs = variants(tmp_path, "axes:\n  gpu: [a10g, h100-sxm]\n  quantization: [fp16, awq]\n  gpu_count: [1, 2]\n"
                            "  backend.max_num_seqs: [64]\nexclude:\n  - {gpu: a10g, gpu_count: 2}\n")
    assert len(vs) == 8
    v = next(v for v in vs if v.id == "h100-sxm-awq-2-64")
    b = v.scenario.backend
    assert (b.gpu, b.quantization, b.tensor_parallel_size, b.max_num_seqs) == ("h100-sxm", "awq", 2, 64)
    assert v.scenario.cost.gpu_count == 2 and v.scenario.sla.rows  # SLA inlined
    assert sorted(v.id for v in vs if v.excluded) == ["a10g-awq-2-64", "a10g-fp16-2-64"]


def test_backend_axis_maps_fields_per_engine(tmp_path):
    vs = variants(tmp_path, "backends:\n  vllm: {type: vllm, model: meta-llama/Meta-Llama-3-8B}\n"
                            "axes:\n  backend: [sim, vllm]\n  quantization: [fp16, awq]\n"
                            "  model: [{sim: llama-3-8b, vllm: meta-llama/Meta-Llama-3-8B-Instruct}]\n")
    v = next(v for v in vs if v.id.startswith("vllm-awq"))
    assert v.scenario.backend.type == "vllm" and v.scenario.backend.quantization == "awq"
    assert v.scenario.backend.model == "meta-llama/Meta-Llama-3-8B-Instruct"
    v16 = next(v for v in vs if v.id.startswith("vllm-fp16"))
    assert v16.scenario.backend.quantization is None and v16.scenario.backend.dtype == "float16"


@pytest.mark.parametrize("text, words", [
    ("axes:\n  gpus: [t4]\n", ["unknown axis 'gpus'", "did you mean 'gpu'"]),
    ("axes:\n  gpu: [h100x]\n", ["unknown GPU 'h100x'", "use --gpu with one of"]),
    ("axes:\n  quantization: [int3]\n", ["unknown quantization 'int3'"]),
    ("axes:\n  gpu: []\n", ["has no values"]),
    ("axes:\n  backend: [vllm]\n", ["differs from the scenario's backend", "backends:"]),
    ("axes:\n  gpu: [t4]\nexclude:\n  - {quant: fp8}\n", ["'quant' is not an axis"]),
    ("axes:\n  backend.max_num_seqs: [0]\n", ["variant 0", "max_num_seqs"]),
    ("axis:\n  gpu: [t4]\n", ["unknown key 'axis'", "did you mean 'axes'"]),
])
def test_bad_matrix_files_are_one_line_config_errors(tmp_path, text, words):
    with pytest.raises(ConfigError) as ei:
        variants(tmp_path, text)
    msg = str(ei.value)
    assert "\n" not in msg and "matrix-x.yaml" in msg
    for w in words:
        assert w in msg, msg


def test_scenario_by_path_relative_to_the_matrix(tmp_path):
    (tmp_path / "s.yaml").write_text("name: s\nbackend: {type: sim}\nload: {mode: open, rate_rps: 1, duration_s: 5}\n")
    p = tmp_path / "matrix-y.yaml"
    p.write_text("name: y\nscenario: s.yaml\naxes: {gpu: [t4, a10g]}\n")
    assert [v.scenario.name for v in expand(load_matrix(p), p)] == ["s-t4", "s-a10g"]
    p.write_text("name: y\nscenario: missing.yaml\naxes: {gpu: [t4]}\n")
    with pytest.raises(ConfigError, match="scenario 'missing.yaml' not found"):
        expand(load_matrix(p), p)


def test_shipped_gpu_matrix_expands_to_the_guides_five_gpus_by_three_quantizations():
    p = ROOT / "scenarios" / "matrix-gpus.yaml"
    vs = expand(load_matrix(p), p)
    assert len(vs) == 15
    assert {v.scenario.backend.gpu for v in vs} == {"t4", "a10g", "a100-40gb", "a100-80gb", "h100-sxm"}
    assert {v.scenario.backend.quantization for v in vs} == {"fp16", "fp8", "awq"}
    assert all(v.scenario.load.mode == "open" and v.scenario.backend.model == "llama-3-8b" for v in vs)
