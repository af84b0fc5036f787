"""Catalog lookups, user catalogs, impossible-config messages and the CLI's exit codes."""

import pytest

from harness.sim.catalog import SimConfigError, default_catalog, load_catalog
from harness.sim.cli import main
from harness.sim.perfmodel import Deployment

USER_IDS = {
    "gpus": ["t4", "a10g", "l4", "a100-40gb", "a100-80gb", "h100-sxm", "h100-pcie", "h200"],
    "models": ["llama-2-7b", "llama-2-13b", "llama-3-8b", "mistral-7b", "llama-3-70b", "llama-2-70b"],
    "quants": ["fp16", "bf16", "fp8", "int8", "awq", "gptq"],
}


def test_catalog_has_the_ids_users_type():
    cat = default_catalog()
    assert list(cat.gpus) == USER_IDS["gpus"]
    assert list(cat.models) == USER_IDS["models"]
    assert list(cat.quants) == USER_IDS["quants"]
    assert cat.gpu("A100-80GB").mem_bytes == 80 * 1024**3


def test_kv_bytes_per_token_match_hardware_md():
    cat = default_catalog()
    kib = {m: cat.model(m).kv_bytes_per_token() // 1024 for m in cat.models}
    assert kib == {"llama-2-7b": 512, "llama-2-13b": 800, "llama-3-8b": 128, "mistral-7b": 128, "llama-3-70b": 320,
                   "llama-2-70b": 320}


def test_unknown_ids_name_the_flag_and_choices():
    cat = default_catalog()
    with pytest.raises(SimConfigError, match=r"unknown GPU 'v100'.*--gpu.*a100-80gb"):
        cat.gpu("v100")
    with pytest.raises(SimConfigError, match=r"--model"):
        cat.model("gpt-5")
    with pytest.raises(SimConfigError, match=r"--quantization"):
        cat.quant("nf4")


def test_impossible_config_shows_the_arithmetic():
    cat = default_catalog()
    dep = Deployment(cat.gpu("t4"), cat.model("llama-3-70b"), cat.quant("fp16"))
    with pytest.raises(SimConfigError) as exc:
        dep.check()
    msg = str(exc.value)
    assert "weights need 141 GB, the GPU has 16 GB: use --tensor-parallel-size >= 16 or a quantization" in msg
    # 70B fp16 over 4 x A100-80GB fits.
    Deployment(cat.gpu("a100-80gb"), cat.model("llama-3-70b"), cat.quant("fp16"), tp=4).check()


def test_bf16_on_turing_is_rejected_with_fix():
    cat = default_catalog()
    with pytest.raises(SimConfigError, match=r"bf16 needs compute capability 8.0.*use --quantization fp16"):
        Deployment(cat.gpu("t4"), cat.model("llama-2-7b"), cat.quant("bf16")).check()


def test_user_catalog_adds_and_overrides(tmp_path):
    f = tmp_path / "cat.yaml"
    f.write_text("gpus:\n  my-gpu: {name: My GPU, mem_mib: 49152, bandwidth_gbps: 864, fp16_tflops: 150,\n"
                 "    int8_tops: 300, fp8_tflops: null, compute_capability: 8.6, tdp_w: 300, idle_w: 30,\n"
                 "    max_sm_clock_mhz: 1740, interconnect_gbps: 32}\n"
                 "  t4: {bandwidth_gbps: 300}\n")
    cat = load_catalog(f)
    assert cat.gpu("my-gpu").bandwidth_gbps == 864
    assert cat.gpu("t4").bandwidth_gbps == 300 and cat.gpu("t4").mem_mib == 15360
    f.write_text("gpus:\n  x: {name: X, bogus: 1}\n")
    with pytest.raises(SimConfigError, match="unknown field"):
        load_catalog(f)


def test_cli_bad_input_exits_2_with_one_line(capsys):
    assert main(["serve", "--model", "llama-3-70b", "--gpu", "t4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "weights need 141 GB" in err[0] and "--tensor-parallel-size >= 16" in err[0]
    assert main(["serve", "--gpu", "v100"]) == 2
    assert "unknown GPU 'v100'" in capsys.readouterr().err
    assert main(["serve", "--fixed-ttft-ms", "5"]) == 2
    assert "--fixed-itl-ms" in capsys.readouterr().err
    assert main(["serve", "--flavor", "tgi", "--max-input-tokens", "5000", "--max-total-tokens", "4000"]) == 2
    assert "must be < `max_total_tokens`" in capsys.readouterr().err
    assert main(["serve", "--max-model-len", "100000000"]) == 2
    assert "lower --max-model-len" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--flavor", "xyz"])
    assert exc.value.code == 2


def test_cli_list_prints_catalogs(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for ident in USER_IDS["gpus"] + USER_IDS["models"]:
        assert ident in out
