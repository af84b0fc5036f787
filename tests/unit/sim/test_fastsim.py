"""The fast offline scheduler gives exactly the step-by-step `Scheduler`'s results."""

import random

import pytest

from harness.sim.catalog import default_catalog
from harness.sim.fastsim import FastScheduler, step_pricer
from harness.sim.perfmodel import Deployment
from harness.sim.scheduler import Scheduler, SchedulerConfig, SimRequest, TraceRequest, run_trace, simulate

CAT = default_catalog()
DEP = Deployment(CAT.gpu("a100-80gb"), CAT.model("llama-3-8b"), CAT.quant("fp16"), 1, 0.92, 2048)


def trace(n, seed, rate, prompt=(16, 600), output=(1, 200)):
    rng, t, out = random.Random(seed), 0.0, []
    for _ in range(n):
        t += rng.expovariate(rate)
        out.append(TraceRequest(t, rng.randint(*prompt), rng.randint(*output)))
    return out


CASES = {
    "overloaded, default vLLM sizing": (SchedulerConfig(256, 2048, DEP.kv_blocks), trace(600, 1, 100, (64, 512))),
    "tight KV: recompute preemptions": (SchedulerConfig(64, 512, 300), trace(300, 1, 50)),
    "tiny budget: partial chunks": (SchedulerConfig(32, 256, 200), trace(300, 2, 80)),
    "TGI reserve_full": (SchedulerConfig(10**6, 4096, 200, reserve_full=True), trace(200, 3, 50)),
    "empty prompts, 64-token budget": (SchedulerConfig(8, 64, 100), trace(150, 4, 30, (0, 300), (1, 50))),
    "burst at t=0": (SchedulerConfig(16, 2048, DEP.kv_blocks), [TraceRequest(0.0, 256, 128)] * 40),
}


@pytest.mark.parametrize("name", list(CASES))
def test_fast_simulate_equals_step_by_step_exactly(name):
    cfg, tr = CASES[name]
    ref = run_trace(tr, Scheduler(DEP, cfg))
    fast = simulate(tr, DEP, cfg)
    assert fast.requests == ref.requests  # every token time, TTFT, queue time, preemption count
    assert (fast.makespan_s, fast.busy_s, fast.num_preemptions, fast.max_kv_blocks_used) == \
           (ref.makespan_s, ref.busy_s, ref.num_preemptions, ref.max_kv_blocks_used)
    if name.startswith("tight"):
        assert ref.num_preemptions > 0  # the case really exercises the fallback path


def test_fast_scheduler_state_matches_reference_after_every_step():
    cfg = SchedulerConfig(32, 256, 200)
    reqs = trace(120, 5, 60)
    scheds = [Scheduler(DEP, cfg), FastScheduler(DEP, cfg)]
    pend = [[SimRequest(i, t.arrival_s, t.prompt_tokens, t.output_tokens) for i, t in enumerate(reqs)]
            for _ in scheds]
    for _ in range(400):
        for s, p in zip(scheds, pend):
            while p and (not s.has_work() or p[0].arrival_s <= s.now_s):
                s.add(p.pop(0))
            s.step()
        scheds[1].finish()  # write the aggregates back into the requests
        a, b = scheds
        assert (a.now_s, a.free_blocks, a.busy_s) == (b.now_s, b.free_blocks, b.busy_s)
        assert [(r.rid, r.computed, r.generated, r.blocks) for r in a.running] == \
               [(r.rid, r.computed, r.generated, r.blocks) for r in b.running]


@pytest.mark.parametrize("tp, quant", [(1, "fp16"), (2, "fp16"), (1, "awq")])
def test_step_pricer_is_bit_identical_to_step_cost(tp, quant):
    model = "llama-3-70b" if tp > 1 else "llama-3-8b"
    dep = Deployment(CAT.gpu("h100-sxm" if tp > 1 else "a100-80gb"), CAT.model(model), CAT.quant(quant), tp)
    price = step_pricer(dep)
    rng = random.Random(tp)
    for _ in range(300):
        dec = [rng.randint(1, 4000) for _ in range(rng.randint(0, 300))]
        pre = [(c, c + rng.randint(0, 3000)) for c in (rng.randint(1, 2048) for _ in range(rng.randint(0, 4)))]
        assert price(len(dec), sum(dec), pre) == dep.step_cost(dec, pre).time_s
