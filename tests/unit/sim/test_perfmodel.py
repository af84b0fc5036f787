"""Roofline step-time model: sanity targets and monotonicity (faster GPU / lighter weights)."""

import pytest

from harness.sim.catalog import default_catalog
from harness.sim.perfmodel import Deployment
from harness.sim.scheduler import SchedulerConfig, TraceRequest, simulate

CAT = default_catalog()


def dep(gpu="a100-80gb", model="llama-3-8b", quant="fp16", tp=1):
    d = Deployment(CAT.gpu(gpu), CAT.model(model), CAT.quant(quant), tp)
    d.check()
    return d


def test_sanity_llama3_8b_a100_80gb_low_load():
    d = dep()
    res = simulate([TraceRequest(0.0, 128, 64)], d, SchedulerConfig(256, 2048, d.kv_blocks)).requests[0]
    assert 0.010 <= res.ttft_s <= 0.080  # tens of ms
    itl = (res.token_times_s[-1] - res.token_times_s[0]) / 63
    assert 0.008 <= itl <= 0.015


def test_weights_and_kv_budget():
    d = dep()
    assert d.weight_bytes == pytest.approx(16.06e9, rel=0.01)
    assert 0 < d.kv_capacity_tokens * d.kv_bytes_per_token < 0.92 * d.gpu.mem_bytes - d.weight_bytes


@pytest.mark.parametrize("batch", [1, 8, 32, 64])
def test_faster_gpu_never_decodes_slower(batch):
    ctx = [512] * batch
    order = ["t4", "l4", "a10g", "a100-40gb", "a100-80gb", "h100-sxm", "h200"]
    times = {g: dep(g, "llama-2-7b").step_cost(ctx, []).time_s for g in order}
    # A step reads the weights and does the math (memory + compute): a GPU at least as fast in both
    # bandwidth and 16-bit tensor peak never decodes slower (L4 vs T4 differ in opposite directions).
    for a in order:
        for b in order:
            ga, gb = CAT.gpu(a), CAT.gpu(b)
            if ga.bandwidth_gbps >= gb.bandwidth_gbps and ga.fp16_tflops >= gb.fp16_tflops:
                assert times[a] <= times[b] + 1e-12, (a, b)


@pytest.mark.parametrize("gpu", ["a100-80gb", "h100-sxm", "l4"])
@pytest.mark.parametrize("batch", [1, 16, 64])
def test_lighter_quantization_never_decodes_slower(gpu, batch):
    ctx = [256] * batch
    fp16 = dep(gpu, quant="fp16").step_cost(ctx, []).time_s
    for q in ("fp8", "int8", "awq"):
        assert dep(gpu, quant=q).step_cost(ctx, []).time_s <= fp16


def test_prefill_is_compute_bound_for_long_prompts_and_never_below_weight_read():
    d = dep()
    short = d.step_cost([], [(8, 8)])
    long = d.step_cost([], [(2048, 2048)])
    assert short.time_s >= short.memory_s and short.memory_s >= short.compute_s
    assert long.compute_s > long.memory_s


def test_tensor_parallel_splits_weights_and_adds_comm():
    one, four = dep("a100-80gb", "llama-3-8b"), dep("a100-80gb", "llama-3-8b", tp=4)
    assert four.weight_bytes_per_gpu == pytest.approx(one.weight_bytes / 4)
    t1, t4 = one.step_cost([512], []).time_s, four.step_cost([512], []).time_s
    assert t4 < t1 and t4 > one.step_cost([512], []).memory_s / 4  # all-reduce + overhead not free


def test_host_step_time_adds_to_every_step_and_nothing_else():
    d = dep()
    slow = Deployment(d.gpu, d.model, d.quant, host_step_s=0.0015)
    for ctx, prefill in (([300] * 8, []), ([], [(512, 512)]), ([100] * 64, [(256, 900)])):
        a, b = d.step_cost(ctx, prefill), slow.step_cost(ctx, prefill)
        assert b.time_s - a.time_s == pytest.approx(0.0015, abs=1e-12)
        assert (b.memory_s, b.compute_s) == (a.memory_s, a.compute_s)


def test_tp_all_reduce_costs_more_over_pcie_than_nvlink_and_grows_with_tokens():
    """Same model and TP on two GPUs that differ only in interconnect: the PCIe one pays more for the
    all-reduces, by a gap that grows with the tokens in the step (ring volume), and a TP1 step has none."""
    import dataclasses

    a100 = CAT.gpu("a100-80gb")
    pcie = dataclasses.replace(a100, id="a100-pcie-test", interconnect_gbps=32)
    nv = Deployment(a100, CAT.model("llama-3-70b"), CAT.quant("fp16"), tp=4)
    pc = Deployment(pcie, CAT.model("llama-3-70b"), CAT.quant("fp16"), tp=4)
    gaps = [pc.step_cost([], [(n, n)]).time_s - nv.step_cost([], [(n, n)]).time_s for n in (16, 256, 2048)]
    assert 0 < gaps[0] < gaps[1] < gaps[2]
    one = Deployment(a100, CAT.model("llama-3-8b"), CAT.quant("fp16"))
    faster_link = Deployment(dataclasses.replace(a100, interconnect_gbps=10_000), one.model, one.quant)
    assert one.step_cost([], [(2048, 2048)]).time_s == faster_link.step_cost([], [(2048, 2048)]).time_s
