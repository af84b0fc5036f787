"""requests.jsonl with damaged lines: the bulk reader (load_table) and the object reader
(iter_records) skip the same lines for the same reasons, at the same line numbers, chunked or not."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import harness.scoring.jsonl as J
from harness.records import iter_records
from harness.runfolder import LineSkips
from harness.scoring.table import from_records, select
from tests.fuzzing.run_folders import request_lines

COLUMNS = ("sent_s", "end_s", "status", "ok", "scheduled_s", "ttft_s", "e2e_s", "prompt_tokens", "output_tokens",
           "itl", "itl_count", "err_index")
QUICK = settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def _read(data: bytes, chunk_bytes: int | None = None):
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "requests.jsonl"
        p.write_bytes(data)
        bulk, objs = LineSkips("requests.jsonl"), LineSkips("requests.jsonl")
        if chunk_bytes is None:
            table = J.load_table(p, (), bulk)
        else:
            b = J.TableBuilder()
            for part in J.iter_parts(p, chunk_bytes, bulk):
                b.add(part.table)
            table = b.finish()
        recs = list(iter_records(p, objs))
    return table, recs, bulk, objs


@QUICK
@given(request_lines(value_damage_only=True))
def test_bulk_and_object_paths_agree_on_every_damaged_value(data):
    table, recs, bulk, objs = _read(data)
    ref = from_records(recs)
    assert table.n == ref.n
    for k in COLUMNS:
        a, b = getattr(table, k), getattr(ref, k)
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), k
    assert (table.err_type, table.err_msg, table.err_id) == (ref.err_type, ref.err_msg, ref.err_id)
    assert (bulk.count, bulk.first) == (objs.count, objs.first)


@QUICK
@given(request_lines(max_n=40), st.integers(256, 8192))
def test_any_damage_is_skipped_with_line_numbers_that_do_not_depend_on_chunks(data, chunk_bytes):
    whole, _, bulk, objs = _read(data)
    chunked, _, bulk_c, _ = _read(data, chunk_bytes)
    assert chunked.n == whole.n and np.array_equal(chunked.itl, whole.itl, equal_nan=True)
    assert (bulk_c.count, bulk_c.first) == (bulk.count, bulk.first)
    lines = data.split(b"\n")
    assert whole.n + bulk.count <= len(lines)
    if bulk.first is not None:  # the line named is one that the object reader skips too
        assert bulk.first[0] <= len(lines) and objs.count >= 1
    # Every value kept is usable: finite times, end after send, non-negative durations and gaps.
    assert np.isfinite(whole.sent_s).all() and (whole.end_s >= whole.sent_s).all()
    assert not (whole.ttft_s < 0).any() and not (whole.itl < 0).any() and not np.isinf(whole.itl).any()
    assert ((whole.status >= 0) & (whole.status <= 999)).all()


def test_select_keeps_rows_with_their_gaps_and_errors(make_rec):
    recs = [make_rec(0, itl_s=[0.1, 0.2]), make_rec(1, ok=False), make_rec(2, itl_s=[0.3]), make_rec(3, ok=False)]
    t = select(from_records(recs), np.array([False, True, True, True]))
    ref = from_records(recs[1:])
    for k in COLUMNS:
        assert np.array_equal(getattr(t, k), getattr(ref, k), equal_nan=True), k
    assert t.err_id == ref.err_id == ["1", "3"]


def test_a_line_the_bulk_path_cannot_split_is_read_one_by_one(tmp_path, make_rec):
    good = make_rec(0).to_json()
    bad_list = good.replace('"itl_s":[0.01,0.01]', '"itl_s":[0.01,,0.01]')  # loose match, not JSON
    p = tmp_path / "requests.jsonl"
    p.write_text("\n".join([good, bad_list, good]) + "\n")
    skips = LineSkips("requests.jsonl")
    assert J.load_table(p, (), skips).n == 2
    assert skips.note() == "requests.jsonl: 1 line skipped (line 2: not valid JSON (a torn or corrupt line))"


def test_a_line_torn_inside_a_list_or_string_never_swallows_the_next(tmp_path, make_rec):
    good = make_rec(1, itl_s=[0.25]).to_json()
    for torn in (good[:good.index('"itl_s":[') + 9], good[:good.index('"api":"') + 8]):
        p = tmp_path / "requests.jsonl"
        p.write_text(torn + "\n" + good + "\n")
        skips = LineSkips("requests.jsonl")
        t = J.load_table(p, (), skips)
        assert t.n == 1 and t.itl.tolist() == [0.25] and skips.first[0] == 1 and skips.count == 1


def test_record_rules_accept_older_records_and_name_the_first_problem():
    from harness.records import record_problem
    base = {"request_id": "a", "api": "x", "sent_s": 1.0, "end_s": 2.0, "status": 200, "ok": True}
    assert record_problem(base) is None  # every other field is absent: its default applies
    assert record_problem({**base, "output_tokens_source": None}) == "'output_tokens_source' is not a string"
    assert record_problem({k: v for k, v in base.items() if k != "end_s"}) == "'end_s' is missing"
    assert record_problem({**base, "ok": 1}) == "'ok' is not true/false"
    assert record_problem({**base, "itl_s": [0.1, -0.1, float("inf")]}) == "'itl_s' is negative"
    assert record_problem({**base, "status": 200.5}) == "'status' is not an HTTP status"
    assert record_problem({**base, "end_s": 0.5}) == "'end_s' is before 'sent_s'"
    assert record_problem({**base, "ttft_s": float("nan"), "first_token_s": 1e300}) is None  # NaN: not recorded
