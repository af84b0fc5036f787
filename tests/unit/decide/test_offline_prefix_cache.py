"""Offline runs (`matrix`, `sweep`) model the sim's prefix cache: a shared prefix is reused, TTFT drops,
and the simulated /metrics scrapes carry vLLM's counters."""

from __future__ import annotations

import pytest

from harness.config.scenario import parse_scenario
from harness.decide.offline import sim_plan, simulate_load


def scenario(shared_prefix: int, caching: bool | None, flavor: str = "vllm"):
    return parse_scenario({
        "name": "pc", "backend": {"type": "sim", "flavor": flavor, "model": "llama-3-8b", "gpu": "a100-80gb",
                                  "prefix_caching": caching},
        "load": {"api": "openai-completions", "mode": "open", "arrival": "poisson", "rate_rps": 6,
                 "duration_s": 20, "warmup_s": 0},
        "workload": {"prompt_tokens": {"dist": "uniform", "min": 64, "max": 512},
                     "output_tokens": {"dist": "fixed", "value": 32}, "shared_prefix_tokens": shared_prefix,
                     "seed": 3},
        "sla": "guide"})


def run(scn):
    res = simulate_load(scn, sim_plan(scn.backend))
    ttft = sorted(r.ttft_s for r in res.records if r.ok)
    return res, ttft[len(ttft) // 2]


def test_shared_prefix_hits_and_lowers_ttft_unless_caching_is_off():
    on, ttft_on = run(scenario(1024, None))  # the default: on
    off, ttft_off = run(scenario(1024, False))
    last_on, last_off = on.server_samples[-1], off.server_samples[-1]
    # 64 of each prompt's 68..96 blocks are the shared prefix: all but the first request hit them
    rate = last_on.prefix_cache_hits_total / last_on.prefix_cache_queries_total
    assert 0.6 < rate < 0.85
    assert last_off.prefix_cache_queries_total == 0 and last_off.prefix_cache_hits_total == 0
    assert ttft_on < 0.6 * ttft_off
    assert len(on.records) == len(off.records)  # the same traffic


def test_without_a_shared_prefix_nothing_hits_and_nothing_changes():
    on, ttft_on = run(scenario(0, True))
    off, ttft_off = run(scenario(0, False))
    assert on.server_samples[-1].prefix_cache_hits_total == 0 < on.server_samples[-1].prefix_cache_queries_total
    assert [r.ttft_s for r in on.records] == [r.ttft_s for r in off.records]


@pytest.mark.parametrize("caching", [True, False])
def test_tgi_flavor_caches_but_exposes_no_counters(caching):
    res, ttft = run(scenario(1024, caching, flavor="tgi"))
    assert all(s.prefix_cache_queries_total is None for s in res.server_samples)
    if caching:
        _, ttft_off = run(scenario(1024, False, flavor="tgi"))
        assert ttft < 0.6 * ttft_off
