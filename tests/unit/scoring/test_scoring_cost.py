import math

import pytest

from harness.records import GpuSample
from harness.scoring import summarize
from harness.scoring.cost import cost_metrics, normalize_gpu, price_lookup
from harness.scoring.gauges import energy_j
from harness.scoring.metrics import Window


def test_guide_price_times_gpu_count():
    p = price_lookup({"backend": {"gpu": "h100-sxm", "tensor_parallel_size": 2}}, {})
    assert p["price_usd_per_gpu_hour"] == 5.0 and p["gpu_count"] == 2 and "guide" in p["price_source"]
    c = cost_metrics(p, duration_s=3600.0, tokens={"output_tokens": 1_000_000, "total_tokens": 4_000_000},
                     ok_requests=2000, good_requests=1000)
    assert c["gpu_hours"] == 2.0 and c["cost_usd"] == 10.0 and c["cluster_usd_per_hour"] == 10.0
    assert math.isclose(c["usd_per_1k_output_tokens"], 0.01)
    assert math.isclose(c["usd_per_1k_total_tokens"], 0.0025)
    assert math.isclose(c["usd_per_1m_total_tokens"], 2.5)
    assert math.isclose(c["usd_per_1k_requests"], 5.0)
    assert math.isclose(c["good_requests_per_usd"], 100.0)


@pytest.mark.parametrize("gpu,price", [("t4", 0.35), ("a10g", 1.0), ("a100-40gb", 3.0), ("a100-80gb", 4.0),
                                       ("h100-pcie", 5.0), ("h100", 5.0)])
def test_guide_table(gpu, price):
    assert price_lookup({"backend": {"gpu": gpu}}, {})["price_usd_per_gpu_hour"] == price


def test_gpus_not_in_guide_use_hardware_md():
    for gpu in ("l4", "h200"):
        p = price_lookup({"backend": {"gpu": gpu}}, {})
        assert p["price_usd_per_gpu_hour"] > 0 and "hardware.md" in p["price_source"] and p["price_date"]


def test_override_records_source_and_date():
    p = price_lookup({"backend": {"gpu": "h100"}, "cost": {"gpu_price_usd_per_hour": 2.5, "price_set_on": "2026-01-02",
                                                           "gpu_count": 8}}, {"backend": {"gpu_count": 2}})
    assert p["price_usd_per_gpu_hour"] == 2.5 and p["price_date"] == "2026-01-02" and p["gpu_count"] == 8
    assert "scenario" in p["price_source"]


def test_meta_gpu_count_beats_tensor_parallel():
    p = price_lookup({"backend": {"gpu": "t4", "tensor_parallel_size": 4}}, {"backend": {"gpu_count": 3}})
    assert p["gpu_count"] == 3


def test_unknown_gpu_has_no_cost():
    p = price_lookup({"backend": {"type": "external"}}, {}, gpu_names_seen=["NVIDIA RTX 9999"])
    c = cost_metrics(p, 10.0, {"output_tokens": 5, "total_tokens": 5}, 1, 1)
    assert c["cost_usd"] is None and c["usd_per_1k_output_tokens"] is None and "cost.gpu_price_usd_per_hour" in p["reason"]


@pytest.mark.parametrize("name,gpu", [("NVIDIA A100-SXM4-80GB", "a100-80gb"), ("NVIDIA A100-PCIE-40GB", "a100-40gb"),
                                      ("Tesla T4", "t4"), ("NVIDIA A10G", "a10g"), ("NVIDIA H100 80GB HBM3", "h100"),
                                      ("NVIDIA H100 PCIe", "h100-pcie"), ("NVIDIA L4", "l4"), ("NVIDIA H200", "h200")])
def test_nvml_names_normalize(name, gpu):
    assert normalize_gpu(name) == gpu


def test_energy_trapezoid_and_counter():
    w = Window(0.0, 10.0, 0.0, 0.0, 0.0, 10.0)
    pw = [GpuSample(t_s=float(t), gpu_index=g, name="x", power_w=300.0) for t in range(11) for g in range(2)]
    e = energy_j(pw, w)
    assert math.isclose(e["energy_j"], 2 * 3000.0) and "trapezoid" in e["method"]
    ctr = [GpuSample(t_s=float(t), gpu_index=0, name="x", power_w=1.0, energy_j=1000.0 + 250.0 * t) for t in range(11)]
    assert math.isclose(energy_j(ctr, w)["energy_j"], 2500.0)
    assert energy_j([], w)["energy_j"] is None


def test_summary_cost_and_energy_per_token(make_rec, make_run):
    recs = [make_rec(i, sent_s=float(i), itl_s=[0.01] * 9, prompt_tokens=90) for i in range(10)]  # 10 out tokens each
    gpu = [GpuSample(t_s=float(t), gpu_index=0, name="NVIDIA A10G", power_w=100.0) for t in range(11)]
    s = summarize(make_run(recs, scenario={"name": "t", "backend": {"type": "external", "url": "http://x"}},
                           meta={"load_start_s": 0.0, "load_end_s": 10.0}, gpu=gpu))
    c = s["cost"]
    assert c["gpu"] == "a10g" and c["gpu_count"] == 1  # from the NVML name when the backend does not say
    assert math.isclose(c["cost_usd"], 10 / 3600 * 1.0)
    assert math.isclose(c["usd_per_1k_output_tokens"], c["cost_usd"] / 100 * 1000)
    assert math.isclose(c["energy"]["energy_j"], 1000.0)
    assert math.isclose(c["energy"]["j_per_output_token"], 10.0)
    assert math.isclose(c["energy"]["j_per_total_token"], 1.0)


def test_a_tgi_backends_num_shard_is_its_gpu_count():
    from harness.scoring.cost import price_lookup

    p = price_lookup({"backend": {"type": "tgi", "gpu": "a10g", "num_shard": 2}}, {})
    assert (p["gpu_count"], p["gpu_count_source"]) == (2, "scenario backend.num_shard")
