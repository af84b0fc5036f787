"""Trace reader: every format read from small files built here, filters, sampling by whole sessions,
one-line errors naming line and column, expected reuse, and streaming (the first entry without the rest)."""

import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from harness.config import ConfigError, TraceConfig
from harness.load import trace as trace_mod
from harness.load.trace import (BITMAP_IDS, ExpectedReuse, TraceError, TraceStats, check_trace, read_trace,
                                session_kept)
from harness.records import RequestRecord


def mooncake(tmp_path, rows, name="t.jsonl"):
    p = tmp_path / name
    p.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return p


def mc(ts_ms, n_in=100, n_out=10, ids=None):
    d = {"timestamp": ts_ms, "input_length": n_in, "output_length": n_out}
    if ids is not None:
        d["hash_ids"] = ids
    return d


def csv_file(tmp_path, header, rows, name="t.csv"):
    p = tmp_path / name
    p.write_text("\n".join([header, *rows]) + "\n")
    return p


def entries(path, fmt, seed=0, stats=None, **kw):
    return list(read_trace(TraceConfig(path=str(path), format=fmt, **kw), seed, stats))


# ---------------------------------------------------------------- formats

def test_mooncake_rows_become_entries_with_offsets_in_seconds_from_the_first_row(tmp_path):
    p = mooncake(tmp_path, [mc(2000, 1000, 10, [0, 1]), "", mc(2500, 1100, 7, [0, 2, 3]), mc(4000, 20, 5)])
    es = entries(p, "mooncake")
    assert [e.offset_s for e in es] == [0.0, 0.5, 2.0]
    assert [(e.input_tokens, e.output_tokens) for e in es] == [(1000, 10), (1100, 7), (20, 5)]
    assert [e.hash_ids for e in es] == [(0, 1), (0, 2, 3), None]
    assert [e.session for e in es] == ["0/1", "0/2", None]  # a conversation: its first two blocks
    assert [e.row for e in es] == [1, 3, 4]  # file lines (the blank line 2 skipped)
    assert all(e.prompt is None for e in es)


def test_azure_timestamps_mix_precisions_and_zones(tmp_path):
    p = csv_file(tmp_path, "TIMESTAMP,ContextTokens,GeneratedTokens", [
        "2023-11-16 18:15:46.6805900,4808,10",
        "2023-11-16 18:15:47,100,3",
        "2023-11-16T18:15:48.25Z,7,1",
        "2023-11-16 19:15:49.5+01:00,5,5",  # 18:15:49.5 UTC
    ])
    es = entries(p, "azure-csv")
    assert [e.offset_s for e in es] == pytest.approx([0.0, 0.31941, 1.56941, 2.81941], abs=1e-6)
    assert [(e.input_tokens, e.output_tokens, e.row) for e in es] == [(4808, 10, 2), (100, 3, 3), (7, 1, 4), (5, 5, 5)]
    assert all(e.session is None and e.hash_ids is None for e in es)


def test_burstgpt_columns_by_name_and_failed_rows_sent_with_one_token(tmp_path):
    p = csv_file(tmp_path, "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type", [
        "5,ChatGPT,472,18,490,Conversation log",
        "45,GPT-4,1087,0,1087,API log",  # a failed request: no response tokens
        "45.5,ChatGPT,0,3,3,API log",
    ])
    stats = TraceStats()
    es = entries(p, "burstgpt-csv", stats=stats)
    got = [(e.offset_s, e.input_tokens, e.output_tokens) for e in es]
    assert got == [(0.0, 472, 18), (40.0, 1087, 1), (40.5, 1, 3)]
    assert stats.raised_to_one == 2 and stats.rows == 3 and stats.yielded == 3


def record(i, sent, end, user="u-0", scheduled=None, prompt=None, asked=None, out=8, asked_out=None):
    return RequestRecord(request_id=f"r{i}", api="openai-chat", sent_s=sent, end_s=end, status=200, ok=True,
                         scheduled_s=scheduled, prompt_tokens=prompt, requested_prompt_tokens=asked,
                         output_tokens=out, requested_output_tokens=asked_out, user=user).to_json()


def test_slabench_records_written_in_end_order_replay_in_send_order(tmp_path):
    p = tmp_path / "requests.jsonl"
    lines = [
        record(1, sent=101.0, end=101.5, user="a", asked=64, prompt=71, asked_out=16),
        record(0, sent=100.0, end=103.0, user="b", prompt=50, out=4),  # long one, sent first, written later
        record(2, sent=102.2, end=104.0, user="a", scheduled=102.0, asked=32, asked_out=8),
        record(3, sent=104.0, end=105.0, user="c"),  # no prompt length known: skipped
    ]
    p.write_text("\n".join(lines) + "\n" + record(4, 106.0, 107.0)[:40])  # torn last line
    stats = TraceStats()
    es = entries(p, "slabench", stats=stats)
    assert [e.offset_s for e in es] == [0.0, 1.0, 2.0]  # scheduled_s where the run had one
    assert [(e.input_tokens, e.output_tokens) for e in es] == [(50, 4), (64, 16), (32, 8)]  # asked, else counted
    assert [e.session for e in es] == ["b", "a", "a"] and all(e.prompt is None for e in es)
    assert stats.skipped == 2


def test_slabench_record_out_of_order_past_the_runs_longest_request_is_refused(tmp_path):
    p = tmp_path / "requests.jsonl"
    p.write_text("\n".join([record(0, 1000.0, 1001.0, prompt=5), record(1, 2000.0, 2001.0, prompt=5),
                            record(2, 500.0, 2002.0, prompt=5)]) + "\n")
    with pytest.raises(TraceError) as ei:
        entries(p, "slabench")
    assert f"{p}:3: 'sent_s'" in str(ei.value) and "sort the file by sent_s" in str(ei.value)


# ---------------------------------------------------------------- filters

def test_time_scale_start_s_and_max_requests(tmp_path):
    p = mooncake(tmp_path, [mc(t * 1000) for t in range(10)] + ["not json"])
    es = entries(p, "mooncake", time_scale=0.5, start_s=3, max_requests=4)
    assert [e.offset_s for e in es] == [0.0, 0.5, 1.0, 1.5]  # rows 4..7, re-based to start_s, twice as fast
    assert [e.row for e in es] == [4, 5, 6, 7]  # and the bad last line is never read
    stats = TraceStats()
    assert [e.offset_s for e in entries(p, "mooncake", start_s=2.5, max_requests=2, stats=stats)] == [0.5, 1.5]
    assert stats.before_start == 3


def test_check_trace_returns_the_first_entry_the_replay_sends(tmp_path):
    p = mooncake(tmp_path, [mc(0), mc(1000), mc(2000)])
    e = check_trace(TraceConfig(path=str(p), format="mooncake", start_s=1), 0)
    assert (e.row, e.offset_s) == (2, 0.0)


def conversations(tmp_path, n_sessions=40, turns=3):
    rows, nid = [], 1
    for turn in range(turns):
        for s in range(n_sessions):
            rows.append(mc(1000 * len(rows), 512 * (turn + 2), 5, [0, 10_000 + s, *range(nid, nid + turn)]))
            nid += turn
    return mooncake(tmp_path, rows)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(-2**63, 2**63 - 1), frac=st.floats(0.05, 0.95))
def test_sample_sessions_keeps_whole_sessions_chosen_by_the_seed(tmp_path, seed, frac):
    p = conversations(tmp_path)
    try:
        kept = entries(p, "mooncake", seed=seed, sample_sessions=frac)
    except TraceError:  # a small fraction of 40 sessions may keep none: said in one line
        kept = []
    by_session = {}
    for e in kept:
        by_session.setdefault(e.session, []).append(e.row)
    assert all(len(rows) == 3 for rows in by_session.values())  # every turn of a kept conversation
    assert set(by_session) == {f"0/{10_000 + s}" for s in range(40) if session_kept(f"0/{10_000 + s}", frac, seed)}
    again = entries(p, "mooncake", seed=seed, sample_sessions=frac) if kept else []
    assert [e.row for e in again] == [e.row for e in kept]


def test_sample_sessions_keeps_about_the_fraction_and_other_seeds_keep_others():
    keys = [f"s{i}" for i in range(4000)]
    share = sum(session_kept(k, 0.3, 7) for k in keys) / len(keys)
    assert abs(share - 0.3) < 0.03
    assert {k for k in keys if session_kept(k, 0.3, 7)} != {k for k in keys if session_kept(k, 0.3, 8)}
    assert all(session_kept(k, 1.0, 7) for k in keys)


def test_sessionless_formats_sample_request_by_request(tmp_path):
    p = csv_file(tmp_path, "Timestamp,Request tokens,Response tokens", [f"{i},10,2" for i in range(400)])
    kept = entries(p, "burstgpt-csv", seed=3, sample_sessions=0.5)
    assert 150 < len(kept) < 250 and kept == entries(p, "burstgpt-csv", seed=3, sample_sessions=0.5)


# ---------------------------------------------------------------- bad traces

BAD_MOONCAKE = [
    ([mc(0), mc(2000), mc(1000)], 3, "'timestamp' goes back in time", "sort the trace"),
    ([mc(0), mc(-5)], 2, "'timestamp' is negative", "fix the row"),
    ([mc(0), {"timestamp": 1, "output_length": 3}], 2, "'input_length' is missing", "workload.trace.format"),
    ([mc(0), mc(1, n_out="abc")], 2, "'output_length' is 'abc', not a whole number", "fix or remove"),
    ([mc(0), mc(1, n_in=12.5)], 2, "'input_length' is 12.5, not a whole number", "fix or remove"),
    ([mc(0), mc(1, n_in=-3)], 2, "'input_length' is negative", "fix or remove"),
    ([mc(0, ids=[0]), mc(1, ids="0,1")], 2, "'hash_ids' must be a list", "fix the row"),
    ([mc(0, ids=[0, -1])], 1, "'hash_ids' holds -1", "fix the row"),
    ([mc(0, n_in=600, ids=[0, 1, 2])], 1, "'hash_ids' has 3 ids for 600 tokens", "block_tokens"),
    ([mc(0), "{not json"], 2, "not valid JSON", ""),
    ([mc(0), "[1, 2]"], 2, "each line must be a JSON object", "Mooncake"),
    ([mc("soon")], 1, "'timestamp' is 'soon', not a time", "fix or remove"),
]


def assert_one_line(exc_info, *parts):
    msg = str(exc_info.value)
    assert isinstance(exc_info.value, ConfigError) and "\n" not in msg
    for part in parts:
        assert part in msg, (part, msg)


@pytest.mark.parametrize("rows,line,problem,fix", BAD_MOONCAKE)
def test_bad_mooncake_rows_name_the_line_the_column_and_the_fix(tmp_path, rows, line, problem, fix):
    p = mooncake(tmp_path, rows)
    with pytest.raises(TraceError) as ei:
        entries(p, "mooncake")
    assert_one_line(ei, f"{p}:{line}: ", problem, fix)


AZURE = "TIMESTAMP,ContextTokens,GeneratedTokens"
BURST = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"
BAD_CSV = [
    ("azure-csv", "TIMESTAMP,ContextTokens,Output", ["2023-11-16 18:15:46,1,1"], 1, "no 'GeneratedTokens' column",
     "workload.trace.format"),
    ("azure-csv", AZURE, ["2023-11-16 18:15:46,1,1", "yesterday,1,1"], 3, "'TIMESTAMP' is 'yesterday'", "2023-11-16"),
    ("azure-csv", AZURE, ["2023-11-16 18:15:46,1,1", "2023-13-01 00:00:00,1,1"], 3, "'TIMESTAMP' is", "fix or remove"),
    ("azure-csv", AZURE, ["2023-11-16 18:15:46,1,1", "2023-11-16 18:15:45,1,1"], 3, "'TIMESTAMP' goes back in time",
     "sort the trace"),
    ("azure-csv", AZURE, ["2023-11-16 18:15:46,1,x"], 2, "'GeneratedTokens' is 'x'", "fix or remove"),
    ("azure-csv", AZURE, ["2023-11-16 18:15:46,1"], 2, "has 2 fields, the header 3", "fix or remove"),
    ("burstgpt-csv", BURST, ["5,ChatGPT,-4,18,490,Conversation log"], 2, "'Request tokens' is negative", "fix"),
    ("burstgpt-csv", BURST, ["-1,ChatGPT,4,18,490,Conversation log"], 2, "'Timestamp' is negative", "fix the row"),
    ("burstgpt-csv", BURST, ["nan,ChatGPT,4,18,490,Conversation log"], 2, "'Timestamp' is 'nan', not a time", "fix"),
    ("burstgpt-csv", "Time,Model,Request tokens,Response tokens", ["5,ChatGPT,4,18"], 1, "no 'Timestamp' column",
     "header has: Time, Model"),
]


@pytest.mark.parametrize("fmt,header,rows,line,problem,fix", BAD_CSV)
def test_bad_csv_rows_name_the_line_the_column_and_the_fix(tmp_path, fmt, header, rows, line, problem, fix):
    p = csv_file(tmp_path, header, rows)
    with pytest.raises(TraceError) as ei:
        entries(p, fmt)
    assert_one_line(ei, f"{p}:{line}: ", problem, fix)


@pytest.mark.parametrize("fmt,text", [("mooncake", ""), ("mooncake", "\n\n"), ("azure-csv", ""),
                                      ("azure-csv", AZURE + "\n"), ("slabench", "")])
def test_a_trace_without_rows_says_so(tmp_path, fmt, text):
    p = tmp_path / "empty"
    p.write_text(text)
    with pytest.raises(TraceError) as ei:
        entries(p, fmt)
    assert_one_line(ei, f"{p}: has no requests", "at least one row")


def test_filters_that_leave_nothing_say_which_to_change(tmp_path):
    p = mooncake(tmp_path, [mc(0), mc(1000)])
    with pytest.raises(TraceError) as ei:
        entries(p, "mooncake", start_s=5)
    assert_one_line(ei, "none of its 2 requests", "spanning 1 s", "lower start_s")


def test_missing_file_non_utf8_and_non_record_lines(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        entries(tmp_path / "nope.jsonl", "mooncake")
    (tmp_path / "latin1.csv").write_bytes(AZURE.encode() + b"\n2023-11-16 18:15:46,1,1\n\xe9\xe9,1,1\n")
    with pytest.raises(TraceError, match="not UTF-8"):
        entries(tmp_path / "latin1.csv", "azure-csv")
    p = tmp_path / "requests.jsonl"
    p.write_text(record(0, 1.0, 2.0, prompt=3) + "\n" + json.dumps({"sent_s": 1}) + "\n")
    with pytest.raises(TraceError) as ei:
        entries(p, "slabench")
    assert_one_line(ei, f"{p}:2: not a slabench request record", "'request_id' is missing", "requests.jsonl")


# ---------------------------------------------------------------- expected reuse

def test_expected_reuse_of_a_trace_whose_blocks_mostly_repeat(tmp_path):
    # Each request: the 3 blocks of a shared system prompt, then one block of its own: 3 of 4 repeat.
    rows = [mc(i, 4 * 512, 4, [7, 8, 9, 100 + i]) for i in range(1000)]
    stats = TraceStats()
    entries(mooncake(tmp_path, rows), "mooncake", stats=stats)
    assert (stats.reuse.blocks, stats.reuse.reused) == (4000, 2997)
    assert stats.reuse.share == pytest.approx(0.75, abs=0.001)


def test_expected_reuse_counts_only_what_is_replayed(tmp_path):
    rows = [mc(0, 1024, 4, [1, 2]), mc(1000, 1024, 4, [1, 2]), mc(2000, 1024, 4, [1, 3])]
    stats = TraceStats()
    entries(mooncake(tmp_path, rows), "mooncake", start_s=1, stats=stats)
    assert (stats.reuse.blocks, stats.reuse.reused) == (4, 1)


@given(st.lists(st.lists(st.integers(0, 300), max_size=6), max_size=30), st.booleans())
def test_expected_reuse_counts_ids_seen_before_whatever_their_size(id_lists, big):
    reuse, seen, reused, blocks = ExpectedReuse(), set(), 0, 0
    for ids in id_lists:
        ids = tuple(h + BITMAP_IDS * big for h in ids)  # big: the set path, else the bitmap
        reuse.add(ids)
        for h in ids:
            blocks += 1
            reused += h in seen
            seen.add(h)
    assert (reuse.blocks, reuse.reused) == (blocks, reused)
    assert reuse.share == (reused / blocks if blocks else None)


# ---------------------------------------------------------------- streaming

class CountingRaw(io.RawIOBase):
    """A file that counts the bytes read from it."""

    def __init__(self, path: Path):
        self._fh = open(path, "rb")
        self.read_bytes = 0

    def readable(self):
        return True

    def readinto(self, b):
        n = self._fh.readinto(b)
        self.read_bytes += n
        return n

    def close(self):
        self._fh.close()
        super().close()


@pytest.fixture(scope="module")
def big_traces(tmp_path_factory):
    d = tmp_path_factory.mktemp("big")
    with open(d / "big.jsonl", "w") as f:
        for i in range(100_000):
            f.write(f'{{"timestamp": {i}, "input_length": 2048, "output_length": 64, "hash_ids": [0, {2 * i + 1}, '
                    f'{2 * i + 2}, {2 * i + 3}]}}\n')
    with open(d / "big.csv", "w") as f:
        f.write(BURST + "\n")
        for i in range(100_000):
            f.write(f"{i},ChatGPT,472,18,490,Conversation log\n")
    return d


@pytest.mark.parametrize("name,fmt", [("big.jsonl", "mooncake"), ("big.csv", "burstgpt-csv")])
def test_the_first_entry_of_a_100k_row_trace_comes_before_the_file_is_read(big_traces, monkeypatch, name, fmt):
    path = big_traces / name
    opened = []

    def counting_open(p, what="file"):
        opened.append(CountingRaw(p))
        return io.BufferedReader(opened[-1])

    monkeypatch.setattr(trace_mod, "open_regular", counting_open)
    gen = read_trace(TraceConfig(path=str(path), format=fmt), 0)
    first = next(gen)
    assert first.row in (1, 2) and first.offset_s == 0.0
    assert opened[0].read_bytes < 64 * 1024 < path.stat().st_size // 50  # a buffer or two of a ~5 MB file
    assert sum(1 for _ in zip(range(1000), gen)) == 1000
    assert opened[0].read_bytes < path.stat().st_size // 10
    gen.close()
    assert opened[0].closed


def test_memory_does_not_grow_with_the_trace_length(big_traces):
    import tracemalloc

    def peak(n):
        tracemalloc.start()
        try:
            cfg = TraceConfig(path=str(big_traces / "big.csv"), format="burstgpt-csv", max_requests=n)
            for _ in read_trace(cfg, 0):
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    short, long = peak(2_000), peak(20_000)
    assert long < short + 64 * 1024  # ten times the rows, the same memory (a csv buffer, one row)
