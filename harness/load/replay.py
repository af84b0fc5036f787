"""Replay feed: a streamed trace as the open-loop dispatcher's schedule (`load.mode: replay`).

Pure, no gevent: the dispatcher walks `ReplayFeed` for due times (the same absolute-time dispatch and
lag accounting as `mode: open`); each launch takes the entry behind the due time it just used. The
trace is never held in memory: one entry waits between its due time and its launch.
"""

from __future__ import annotations

from collections import deque
from typing import Iterator

from harness.config import Scenario
from harness.load.trace import ExpectedReuse, TraceEntry, TraceStats, read_trace

# Rows past the end of dispatch counted one by one for `not_sent` before the count is called inexact
# (as ArrivalSchedule.count_rest does): a run stopped early on a huge trace ends at once.
COUNT_LIMIT = 200_000


class ReplayFeed:
    """Due times (s from the replay start) of a trace's entries up to `end_s`, at most `max_count`.

    `take()` hands over the entry of the due time last yielded (call it once per launch); the expected
    reuse counts the entries taken, so it describes the traffic that was actually sent.
    """

    def __init__(self, entries: Iterator[TraceEntry], end_s: float, max_count: int | None = None,
                 stats: TraceStats | None = None):
        self._entries = entries
        self.end_s = end_s
        self.max_count = max_count
        self.stats = stats
        self.reuse = ExpectedReuse()
        self.taken = 0
        self._pending: deque[TraceEntry] = deque()
        self._yielded = 0
        self._exhausted = False

    def __iter__(self) -> Iterator[float]:
        for e in self._entries:
            if e.offset_s >= self.end_s or (self.max_count is not None and self._yielded >= self.max_count):
                self._exhausted = True  # past the load's end: neither scheduled nor counted
                return
            self._yielded += 1
            self._pending.append(e)
            yield e.offset_s
        self._exhausted = True

    def take(self) -> TraceEntry:
        e = self._pending.popleft()
        self.reuse.add(e.hash_ids)
        self.taken += 1
        return e

    def count_rest(self, limit: int = COUNT_LIMIT) -> tuple[int, bool]:
        """Entries scheduled before end_s that dispatch never reached: (count, exact)."""
        if self._exhausted:
            return 0, True
        n = 0
        for e in self._entries:
            if e.offset_s >= self.end_s or (self.max_count is not None and self._yielded + n >= self.max_count):
                return n, True
            n += 1
            if n >= limit:
                return n, False
        return n, True

    def meta(self, trace_cfg) -> dict:
        """meta.json `replay`: the trace replayed and what its sent traffic allowed a prefix cache."""
        out = {"path": trace_cfg.path, "format": trace_cfg.format, "time_scale": trace_cfg.time_scale,
               "start_s": trace_cfg.start_s, "sample_sessions": trace_cfg.sample_sessions,
               "block_tokens": trace_cfg.tokens_per_block, "sent_entries": self.taken,
               "expected_reuse": self.reuse.share, "blocks": self.reuse.blocks, "reused_blocks": self.reuse.reused}
        if self.stats is not None:
            out.update(rows_read=self.stats.rows, rows_before_start=self.stats.before_start,
                       rows_sampled_out=self.stats.sampled_out, lengths_raised_to_one=self.stats.raised_to_one,
                       rows_skipped=self.stats.skipped)
        return out


def replay_feed(scn_or_parts, seed: int | None = None) -> ReplayFeed:
    """The feed for a replay scenario (or its (load, workload) pair): trace entries up to load.duration_s,
    at most min(trace.max_requests, load.max_requests)."""
    if isinstance(scn_or_parts, Scenario):
        load, workload = scn_or_parts.load, scn_or_parts.workload
    else:
        load, workload = scn_or_parts
    stats = TraceStats()
    entries = read_trace(workload.trace, workload.seed if seed is None else seed, stats)
    return ReplayFeed(entries, load.duration_s, load.max_requests, stats)
