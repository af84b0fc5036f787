"""ReplayFeed: a streamed trace as the open-loop dispatcher's schedule (harness/load/replay.py)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.config import Scenario
from harness.load.openloop import OpenLoopDispatcher
from harness.load.replay import ReplayFeed, replay_feed
from harness.load.trace import TraceEntry


def entries(offsets, hash_ids=None):
    for i, t in enumerate(offsets):
        yield TraceEntry(t, 100, 10, hash_ids[i] if hash_ids else None, None, None, i + 2)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep_until(self, t):
        self.now = max(self.now, t)


def dispatch(feed, end_s, max_in_flight=None):
    clock, launched = FakeClock(), []
    d = OpenLoopDispatcher(feed, 0.0, sleep_until=clock.sleep_until,
                           launch=lambda k, due, cap: launched.append((due, feed.take())),
                           in_flight=lambda: 0, wait_slot=lambda deadline: True, max_in_flight=max_in_flight,
                           end_s=end_s, clock=clock)
    return d.run(), launched


def test_each_launch_takes_the_entry_of_its_own_due_time():
    offsets = [0.0, 0.1, 0.1, 0.5, 2.0]
    stats, launched = dispatch(ReplayFeed(entries(offsets), end_s=10.0), 10.0)
    assert [due for due, _ in launched] == offsets
    assert [e.offset_s for _, e in launched] == offsets
    assert [e.row for _, e in launched] == [2, 3, 4, 5, 6]
    assert (stats.scheduled, stats.sent, stats.not_sent) == (5, 5, 0)


def test_rows_at_or_after_the_load_end_are_not_scheduled():
    feed = ReplayFeed(entries([0.0, 1.0, 2.0, 3.0, 4.0]), end_s=2.5)
    stats, launched = dispatch(feed, 2.5)
    assert len(launched) == 3 and stats.scheduled == 3 and stats.not_sent == 0


def test_max_count_caps_the_schedule():
    feed = ReplayFeed(entries([0.0, 0.1, 0.2, 0.3]), end_s=10.0, max_count=2)
    stats, launched = dispatch(feed, 10.0)
    assert len(launched) == 2 and stats.scheduled == 2


def test_a_stop_counts_the_rest_of_the_trace_before_the_end_as_not_sent():
    feed = ReplayFeed(entries([0.0, 1.0, 2.0, 3.0, 9.0, 20.0]), end_s=10.0)
    clock = FakeClock()
    sent = []

    def launch(k, due, cap):
        sent.append(feed.take())

    d = OpenLoopDispatcher(feed, 0.0, sleep_until=clock.sleep_until, launch=launch, in_flight=lambda: 0,
                           wait_slot=lambda deadline: True, should_stop=lambda: len(sent) >= 2, end_s=10.0,
                           clock=clock)
    stats = d.run()
    # Two sent; the third was taken from the schedule then stopped; 3.0 and 9.0 remain before the end.
    assert stats.sent == 2 and stats.stopped_early
    assert stats.scheduled == 5 and stats.not_sent == 3


def test_expected_reuse_counts_only_sent_entries():
    ids = [(0, 1), (0, 1), (0, 2), (5, 6)]
    feed = ReplayFeed(entries([0.0, 1.0, 2.0, 3.0], ids), end_s=2.5)
    dispatch(feed, 2.5)
    assert (feed.reuse.blocks, feed.reuse.reused) == (6, 3)
    assert feed.reuse.share == 0.5


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 100, allow_nan=False), max_size=40), st.floats(0.1, 120))
def test_scheduled_is_sent_plus_not_sent_and_only_rows_before_the_end(offsets, end_s):
    offsets = sorted(offsets)
    stats, launched = dispatch(ReplayFeed(entries(offsets), end_s=end_s), end_s)
    before_end = [t for t in offsets if t < end_s]
    assert stats.scheduled == stats.sent + stats.not_sent
    assert [due for due, _ in launched] == before_end


def test_replay_feed_reads_a_scenario_trace(tmp_path):
    rows = [{"timestamp": 1000 * i, "input_length": 600, "output_length": 8, "hash_ids": [0, 1 + i]}
            for i in range(5)]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    scn = Scenario.model_validate({"name": "r", "backend": {"type": "sim"},
                              "load": {"mode": "replay", "duration_s": 3.5},
                              "workload": {"trace": {"path": str(tmp_path / "t.jsonl"), "format": "mooncake",
                                                     "time_scale": 0.5}}})
    feed = replay_feed(scn)
    stats, launched = dispatch(feed, 3.5)
    # Offsets 0, 1, 2, 3, 4 s x 0.5: all five fall before 3.5 s.
    assert [due for due, _ in launched] == [0.0, 0.5, 1.0, 1.5, 2.0]
    meta = feed.meta(scn.workload.trace)
    assert meta["sent_entries"] == 5 and meta["format"] == "mooncake" and meta["block_tokens"] == 512
    assert meta["expected_reuse"] == 0.4  # id 0 repeats in 4 of the 10 blocks
