"""Offline replay: a trace through the sim's scheduler without sockets (harness/decide/offline.py)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.config import Scenario
from harness.decide.offline import sim_plan, simulate_load
from harness.sim.prefixcache import trace_block_hashes


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=0, max_size=6), st.lists(st.integers(0, 5), min_size=0, max_size=6),
       st.sampled_from([16, 32, 40, 512]))
def test_shared_leading_ids_give_exactly_the_shared_sim_blocks(a, b, bt):
    n_a, n_b = len(a) * bt, len(b) * bt
    ha, hb = trace_block_hashes(tuple(a), bt, n_a, 1), trace_block_hashes(tuple(b), bt, n_b, 2)
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    shared_blocks = sum(1 for x, y in zip(ha, hb) if x == y)
    # Blocks wholly inside the k shared ids are shared; a block reaching past them is not.
    assert shared_blocks == (k * bt) // 16
    assert ha[:shared_blocks] == hb[:shared_blocks]


def test_rows_without_ids_share_nothing():
    assert not set(trace_block_hashes(None, None, 64, 1)) & set(trace_block_hashes(None, None, 64, 2))


def scenario(tmp_path, caching: bool) -> Scenario:
    rows = [{"timestamp": 200 * i, "input_length": 2048, "output_length": 16, "hash_ids": [0, 1, 2, 100 + i]}
            for i in range(40)]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return Scenario.model_validate({
        "name": "r", "backend": {"type": "sim", "model": "llama-3-8b", "gpu": "a100-80gb", "prefix_caching": caching},
        "load": {"mode": "replay", "duration_s": 20},
        "workload": {"trace": {"path": str(tmp_path / "t.jsonl"), "format": "mooncake"}}})


def test_replay_sends_at_the_trace_times_and_reuses_its_prefixes(tmp_path):
    on, off = (simulate_load(scenario(tmp_path, c), sim_plan(scenario(tmp_path, c).backend)) for c in (True, False))
    assert len(on.records) == 40 and all(r.ok for r in on.records)
    due = sorted(r.scheduled_s - 1000.0 for r in on.records)
    assert due == [0.2 * i for i in range(40)] or max(abs(a - 0.2 * i) for i, a in enumerate(due)) < 1e-9
    assert on.replay["sent_entries"] == 40 and abs(on.load_end_s - 7.8) < 1e-9
    # 3 of 4 blocks of 512 tokens repeat after the first row: the trace allows 117/160 reuse.
    assert on.replay["expected_reuse"] == (3 * 39) / 160
    ttft = lambda res: sorted(r.ttft_s for r in res.records)[20]  # noqa: E731
    assert ttft(on) < 0.5 * ttft(off)  # three quarters of each prefill skipped
