"""summary.json `replay` (harness/scoring/replay.py) and its report rows (harness/report/replay.py)."""

import numpy as np

from harness.records import RequestRecord
from harness.report.replay import replay_figure, replay_lines, replay_rows
from harness.scoring.metrics import Window
from harness.scoring.replay import arrival_series, replay_summary
from harness.scoring.table import RecordTable, from_records

META = {"replay": {"path": "t.jsonl", "format": "mooncake", "time_scale": 0.5, "start_s": 0.0, "block_tokens": 512,
                   "sent_entries": 6, "blocks": 12, "reused_blocks": 6, "rows_read": 6, "expected_reuse": 0.5}}


def table(due: list[float], lag_s: float = 0.0) -> RecordTable:
    recs = [RequestRecord(request_id=str(i), api="openai-chat", sent_s=100 + t + lag_s, end_s=100 + t + 1, status=200,
                          ok=True, scheduled_s=100 + t) for i, t in enumerate(due)]
    return from_records(recs)


WINDOW = Window(100.0, 106.0, 1.0, 0.0, 101.0, 106.0)


def test_arrival_series_bins_due_and_sent_times_over_the_whole_load():
    a = arrival_series(table([0.1, 0.2, 0.3, 2.5, 4.2, 5.5], lag_s=1.0), WINDOW)
    assert a["bin_s"] == 1 and a["t_s"] == [0, 1, 2, 3, 4, 5]
    assert a["recorded_rps"] == [3, 0, 1, 0, 1, 1]
    assert a["achieved_rps"] == [0, 3, 0, 1, 0, 1]  # a second late: the gap shows


def test_a_long_run_gets_at_most_120_round_bins():
    w = Window(0.0, 3600.0, 0.0, 0.0, 0.0, 3600.0)
    a = arrival_series(table(list(np.linspace(1, 3500, 50)), 0.0), w)
    assert a["bin_s"] == 50 and len(a["t_s"]) == 72


def test_replay_summary_sets_hit_rate_beside_expected_reuse():
    out = replay_summary(META, table([0.0, 1.0]), WINDOW, {"value": 0.45, "reason": None})
    assert out["expected_reuse"] == 0.5 and out["prefix_cache_hit_rate"] == 0.45
    assert "45%" in out["note"] and "50%" in out["note"]
    rows = dict((a, b) for a, b, _ in replay_rows(out))
    assert rows["expected prefix reuse"] == "50.0 %" and rows["prefix-cache hit rate"] == "45.0 %"
    assert any("trace replay" in x for x in replay_lines(out))
    assert replay_figure(out) is not None


def test_no_counters_and_no_hashes_say_so():
    out = replay_summary(META, table([0.0]), WINDOW, {"value": None, "reason": "the server exposes no counters"})
    assert "hit rate is unknown" in out["note"] and "exposes no counters" in out["note"]
    meta = {"replay": {**META["replay"], "expected_reuse": None}}
    assert "no block hashes" in replay_summary(meta, table([0.0]), WINDOW, None)["note"]


def test_runs_that_replayed_nothing_have_no_section():
    assert replay_summary({}, table([0.0]), WINDOW, None) is None
    assert replay_rows(None) == [] and replay_figure(None) is None
