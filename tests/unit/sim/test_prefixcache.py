"""Automatic prefix caching: chain hashes, the cache's LRU and holder counts, and the scheduler with it."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.sim.catalog import default_catalog
from harness.sim.perfmodel import BLOCK_SIZE_TOKENS as BS
from harness.sim.perfmodel import Deployment
from harness.sim.prefixcache import (PrefixCache, chain_hashes, chat_block_hashes, prompt_block_hashes,
                                     shared_prefix_hashes, synthetic_block_hashes)
from harness.sim.scheduler import Scheduler, SchedulerConfig, SimRequest, TraceRequest, run_trace, simulate
from harness.sim.textgen import prompt_tokens_chat

CAT = default_catalog()
DEP = Deployment(CAT.gpu("a100-80gb"), CAT.model("llama-3-8b"), CAT.quant("fp16"), 1, 0.92, 2048)


def words(n, tag):
    return [f"{tag}{i}" for i in range(n)]


# ---- hashes ----

def test_only_full_blocks_are_hashed_and_equal_prefixes_give_equal_leading_hashes():
    a = chain_hashes(words(40, "x"))
    b = chain_hashes(words(32, "x") + words(8, "y"))
    assert len(a) == 2 and len(chain_hashes(words(15, "x"))) == 0  # the partial tail block has none
    assert a == b  # the differing words are all in the partial third block
    assert chain_hashes(words(48, "x"))[:2] == a


def test_same_block_content_after_a_different_parent_is_a_different_block():
    common = words(16, "c")
    a = chain_hashes(words(16, "p") + common)
    b = chain_hashes(words(16, "q") + common)
    assert a[1] != b[1]  # identical second-block tokens, different prefixes
    assert chain_hashes(common)[0] not in (a[1], b[1])


def test_prompt_forms_hash_like_the_word_counter():
    text = " ".join(words(33, "w"))
    assert prompt_block_hashes(text) == prompt_block_hashes([text]) == chain_hashes(text.split())
    assert prompt_block_hashes(list(range(40))) == chain_hashes(list(range(40)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["system", "user", "assistant"]), st.integers(0, 60)),
                min_size=1, max_size=6))
def test_chat_hashes_cover_exactly_the_counted_tokens(msgs):
    messages = [{"role": r, "content": " ".join(words(n, r[0]))} for r, n in msgs]
    assert len(chat_block_hashes(messages)) == prompt_tokens_chat(messages) // BS


def test_chat_history_and_system_prompt_share_leading_blocks():
    system = {"role": "system", "content": " ".join(words(200, "s"))}
    turn1 = [system, {"role": "user", "content": "what is the plan"}]
    turn2 = turn1 + [{"role": "assistant", "content": "the plan"}, {"role": "user", "content": "and then"}]
    h1, h2 = chat_block_hashes(turn1), chat_block_hashes(turn2)
    shared = (prompt_tokens_chat([system]) - 3) // BS  # the system message's whole blocks (less the reply primer)
    assert h1[:shared] == h2[:shared] and len(h2) > len(h1)
    other = chat_block_hashes([{"role": "user", "content": system["content"]}, turn1[1]])
    assert other[0] != h1[0]  # the same words under another role's header: different tokens


def test_synthetic_hashes_share_the_prefix_and_nothing_else():
    shared = shared_prefix_hashes(4, seed=7)
    a, b = synthetic_block_hashes(10, shared, 1), synthetic_block_hashes(10, shared, 2)
    assert a[:4] == b[:4] == shared and not set(a[4:]) & set(b[4:])
    assert synthetic_block_hashes(2, shared, 1) == shared[:2]  # a prompt shorter than the prefix
    assert synthetic_block_hashes(10, (), 1) != synthetic_block_hashes(10, (), 2)


# ---- the cache alone ----

def test_lookup_stops_at_the_first_miss_and_counts_idle_blocks():
    c = PrefixCache()
    for h in (1, 2, 4):
        assert c.insert(h)
    assert not c.insert(2)  # already cached: the newcomer keeps its own copy
    c.release([1, 2], now_s=0.0, rid=0)
    assert c.lookup([1, 2, 3, 4], 10) == (2, 2)  # 3 missing: 4 is not reachable
    assert c.lookup([1, 2, 3, 4], 1) == (1, 1)
    assert c.lookup([4], 10) == (1, 0)  # held, not idle


def test_idle_blocks_leave_least_recently_released_first_tails_first():
    c = PrefixCache()
    for h in (10, 11, 12, 20, 21):
        c.insert(h)
    c.release([10, 11, 12], now_s=1.0, rid=0)  # released first: evicted first, its tail before its head
    c.release([20, 21], now_s=2.0, rid=1)
    c.trim(4)
    assert 12 not in c.held and {10, 11, 20, 21} <= set(c.held)
    c.trim(2)
    assert set(c.held) == {20, 21} and c.evicted_blocks == 3


def test_held_blocks_are_never_evicted_and_a_hit_refreshes_nothing_until_released():
    c = PrefixCache()
    for h in (1, 2, 3):
        c.insert(h)
    c.release([1, 2, 3], now_s=0.0, rid=0)
    c.acquire([1, 2])  # a new request hits the first two
    c.trim(0)
    assert set(c.held) == {1, 2} and c.idle_blocks == 0
    c.release([1, 2], now_s=5.0, rid=1)
    c.trim(1)
    assert set(c.held) == {1}  # tail first again


def test_stale_heap_entries_are_compacted():
    c = PrefixCache()
    c.insert(1)
    for k in range(5000):  # re-held and released over and over: one live idle entry
        c.release([1], float(k), k)
        c.acquire([1])
    assert len(c._heap) < 2100 and c.idle_blocks == 0


# ---- the scheduler with the cache ----

def drain(sched, reqs):
    pending = sorted(reqs, key=lambda r: r.arrival_s)
    steps = []
    while pending or sched.has_work():
        while pending and (not sched.has_work() or pending[0].arrival_s <= sched.now_s):
            sched.add(pending.pop(0))
        res = sched.step()
        if res is not None:
            steps.append(res)
            check_accounting(sched)
    return steps


def check_accounting(sched):
    """Used blocks = private blocks + cached blocks someone holds; idle cached blocks fit in the free space."""
    c = sched.cache
    if c is None:
        return
    private = sum(r.blocks - len(r.cache_refs) for r in sched.running)
    held = sum(1 for n in c.held.values() if n > 0)
    assert sched.used_blocks == private + held
    assert c.idle_blocks <= sched.free_blocks
    for r in sched.running:  # a running request's cached blocks are held, never evicted
        assert all(c.held.get(h, 0) > 0 for h in r.cache_refs)


def one(prompt, hashes, t=0.0, rid=0, out=4):
    return SimRequest(rid, t, prompt, out, block_hashes=hashes)


def test_second_request_skips_the_cached_prefix():
    sched = Scheduler(DEP, SchedulerConfig(16, 2048, 1000, prefix_caching=True))
    h = chain_hashes(words(1000, "p"))
    a, b = one(1000, h), one(1000, h, t=1.0, rid=1)
    steps = drain(sched, [a, b])
    assert a.cached_tokens == 0 and b.cached_tokens == (999 // BS) * BS == 992
    assert sched.cache.queries_tokens == 2000 and sched.cache.hits_tokens == 992
    first_b = next(s for s in steps if b in s.emitted)
    assert first_b.prefill_tokens == 1000 - 992  # only the uncached tail was computed
    assert (b.token_times_s[0] - b.arrival_s) < (a.token_times_s[0] - a.arrival_s) / 3


@pytest.mark.parametrize("prompt, hit", [(64, 48), (65, 64), (17, 16), (16, 0), (15, 0)])
def test_the_last_prompt_token_is_always_computed(prompt, hit):
    sched = Scheduler(DEP, SchedulerConfig(16, 2048, 100, prefix_caching=True))
    h = chain_hashes(list(range(prompt)))
    a, b = one(prompt, h), one(prompt, h, t=1.0, rid=1)
    drain(sched, [a, b])
    assert b.cached_tokens == hit  # a fully cached 64-token prompt recomputes its whole last block (vLLM)


def test_idle_cached_blocks_count_as_free_and_are_evicted_lru_when_space_is_needed():
    # 12 blocks of KV. A's 4 blocks stay cached (idle) after it ends: all 12 still count as free.
    # B takes 6 fresh blocks (6 free left, 4 of them A's); C takes 5 more: 3 of A's idle blocks are
    # evicted, A's tail first, so A's first block is still there for a later hit.
    cfg = SchedulerConfig(4, 2048, 12, prefix_caching=True)
    sched = Scheduler(DEP, cfg)
    ha = chain_hashes(words(64, "a"))
    drain(sched, [one(64, ha, out=1)])
    assert sched.cache.idle_blocks == 4 and sched.free_blocks == 12 and sched.used_blocks == 0
    t = sched.now_s + 1
    b = one(96, chain_hashes(words(96, "b")), t=t, rid=1, out=1)
    c = one(80, chain_hashes(words(80, "c")), t=t, rid=2, out=1)
    sched.add(b)
    sched.add(c)
    res = sched.step()  # both prefill (one free block left in between) and finish
    assert res.prefill_tokens == 96 + 80 and len(res.finished) == 2
    assert ha[0] in sched.cache.held and not set(ha[1:]) & set(sched.cache.held)
    assert sched.cache.evicted_blocks == 3 and sched.cache.idle_blocks == 12 and sched.free_blocks == 12
    d = one(40, ha[:2], t=sched.now_s, rid=3, out=1)  # A's first block is a hit; the second was evicted
    sched.add(d)
    drain(sched, [])
    assert d.cached_tokens == 16


def test_preempted_request_reuses_its_own_cached_blocks_but_is_not_counted_in_the_metric():
    cfg = SchedulerConfig(64, 512, 300, prefix_caching=True)
    rng = random.Random(1)
    reqs = [one(rng.randint(100, 600), None, t=i * 0.002, rid=i, out=rng.randint(50, 200)) for i in range(120)]
    for r in reqs:
        r.block_hashes = chain_hashes(words(r.prompt_tokens, f"r{r.rid}_"))
    sched = Scheduler(DEP, cfg)
    drain(sched, reqs)
    c = sched.cache
    assert sched.num_preemptions > 0 and c.preempted_hits_tokens > 0
    assert c.hits_tokens == 0 and c.queries_tokens == sum(r.prompt_tokens for r in reqs)  # unique prompts


def trace_with_reuse(n, share, prompt_blocks=64, rate=4.0, seed=3, out=32):
    """Every request after the first shares `share` of its blocks with an earlier one (a chain of turns)."""
    rng, t, trace, prev = random.Random(seed), 0.0, [], ()
    keep = round(prompt_blocks * share)
    for k in range(n):
        t += rng.expovariate(rate)
        hashes = synthetic_block_hashes(prompt_blocks, prev[:keep], k)  # the head, then its own blocks
        trace.append(TraceRequest(t, prompt_blocks * BS + 5, out, hashes))
        prev = hashes
    return trace


def test_issue_numbers_75_percent_shared_blocks():
    trace = trace_with_reuse(200, 0.75)
    on = simulate(trace, DEP, SchedulerConfig(256, 2048, DEP.kv_blocks, prefix_caching=True))
    off = simulate(trace, DEP, SchedulerConfig(256, 2048, DEP.kv_blocks, prefix_caching=False))
    rate = on.prefix_cache_hits_tokens / on.prefix_cache_queries_tokens
    assert abs(rate - 0.75) <= 0.05, rate
    assert off.prefix_cache_hits_tokens == off.prefix_cache_queries_tokens == 0
    ttft_on = sorted(r.ttft_s for r in on.requests)[len(trace) // 2]
    ttft_off = sorted(r.ttft_s for r in off.requests)[len(trace) // 2]
    assert ttft_on < 0.5 * ttft_off  # three quarters of the prefill skipped: TTFT drops accordingly


def test_caching_on_without_hashes_or_off_with_hashes_steps_exactly_as_before():
    rng = random.Random(9)
    base = [(i * 0.004, rng.randint(16, 700), rng.randint(1, 150)) for i in range(150)]
    shared = shared_prefix_hashes(20, 1)

    def run(caching, with_hashes):
        reqs = [SimRequest(i, t, p, o, block_hashes=synthetic_block_hashes(p // BS, shared, i) if with_hashes else None)
                for i, (t, p, o) in enumerate(base)]
        steps = drain(Scheduler(DEP, SchedulerConfig(64, 512, 400, prefix_caching=caching)), reqs)
        return [(s.start_s, s.end_s, s.prefill_tokens, s.decode_tokens, [r.rid for r in s.emitted]) for s in steps]

    today = run(False, False)
    assert run(False, True) == today and run(True, False) == today
    assert run(True, True) != today  # and with both, the shared prefix really changes the steps


@pytest.mark.parametrize("cfg", [
    SchedulerConfig(256, 2048, DEP.kv_blocks, prefix_caching=True),
    SchedulerConfig(64, 512, 300, prefix_caching=True),  # tight: preemptions and evictions
    SchedulerConfig(32, 256, 120, prefix_caching=True),  # tiny budget: chunked prefill over cached blocks
    SchedulerConfig(10**6, 4096, 200, reserve_full=True, prefix_caching=True),  # TGI
])
def test_fast_scheduler_matches_the_reference_with_prefix_caching(cfg):
    rng, t, trace = random.Random(5), 0.0, []
    shared = shared_prefix_hashes(12, 2)
    for k in range(250):
        t += rng.expovariate(60)
        p = rng.randint(16, 600)
        trace.append(TraceRequest(t, p, rng.randint(1, 150), synthetic_block_hashes(p // BS, shared, k % 40)))
    ref = run_trace(trace, Scheduler(DEP, cfg))
    fast = simulate(trace, DEP, cfg)
    assert fast.requests == ref.requests
    assert (fast.busy_s, fast.num_preemptions, fast.prefix_cache_hits_tokens) == \
           (ref.busy_s, ref.num_preemptions, ref.prefix_cache_hits_tokens)
    assert ref.prefix_cache_hits_tokens > 0


def test_more_hashes_than_full_prompt_blocks_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="give one hash per full block"):
        SimRequest(0, 0.0, 40, 4, block_hashes=(1, 2, 3))
    assert SimRequest(0, 0.0, 48, 4, block_hashes=(1, 2, 3)).block_hashes == (1, 2, 3)
