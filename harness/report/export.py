"""Export: requests.csv, one flat row per RequestRecord (records → CSV for spreadsheets and pandas).

Every RequestRecord field, with itl_s as a JSON list, plus derived columns: tpot_s, itl_count,
itl_mean_s and phase (warmup / scored / cooldown). `RequestsCsv` writes it while requests.jsonl is
read (a sink of `load_table`): lines in to_json's layout are turned into rows from their field
texts in bulk (numbers keep their JSON text, which is repr() for to_json's floats, so the bytes
match csv.writer's); any other line is written by csv.writer from its RequestRecord.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from operator import itemgetter
from pathlib import Path

import numpy as np

from harness.records import RequestRecord
from harness.scoring.jsonl import GROUP, Part, iter_parts
from harness.scoring.metrics import Window, phase_of

DERIVED = ("tpot_s", "itl_count", "itl_mean_s", "phase")
FIELDS = [f.name for f in dataclasses.fields(RequestRecord)]
_TYPES = {f.name: str(f.type) for f in dataclasses.fields(RequestRecord)}
_BOOL = {b"true": b"True", b"false": b"False"}


def csv_columns() -> list[str]:
    return FIELDS + list(DERIVED)


def _row(r: RequestRecord, window: Window) -> list:
    row = []
    for k in FIELDS:
        v = getattr(r, k)
        row.append(json.dumps(v) if k == "itl_s" or (k == "chunk_tokens" and v is not None) else "" if v is None else v)
    gaps = r.itl_s or []
    return row + ["" if r.tpot_s is None else r.tpot_s, len(gaps), sum(gaps) / len(gaps) if gaps else "",
                  phase_of(r, window)]


def write_requests_csv(path: Path, records: list[RequestRecord], window: Window) -> int:
    """Write requests.csv from RequestRecord objects; returns the number of rows."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(csv_columns())
        for r in records:
            w.writerow(_row(r, window))
    return len(records)


def sequential_sums(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """sum(gaps) per record, adding left to right like Python's sum (so itl_mean_s has the same digits)."""
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    sums = np.zeros(counts.size)
    order = np.argsort(-counts, kind="stable")  # records still adding at step j are a prefix of this order
    sorted_counts = counts[order]
    for j in range(int(counts.max()) if counts.size else 0):
        k = int(np.searchsorted(-sorted_counts, -j, side="left"))  # records with count > j
        idx = order[:k]
        sums[idx] += values[starts[idx] + j]
    return sums


def _floats(a: np.ndarray, empty: np.ndarray) -> list[bytes]:
    """repr() of each float as bytes (what csv.writer writes), b'' where `empty`."""
    out = list(map(b"%r".__mod__, a.tolist()))
    for i in np.flatnonzero(empty).tolist():
        out[i] = b""
    return out


def _quote_commas(col: list[bytes]) -> list[bytes]:
    """csv QUOTE_MINIMAL for field texts that have no quote or line break: quote those with a comma."""
    if b"," not in b"\0".join(col):
        return col
    return [b'"' + x + b'"' if b"," in x else x for x in col]


def _phase(sent: np.ndarray, window: Window) -> list[bytes]:
    if window.start_s is None or window.end_s is None:
        return [b"unscored"] * sent.size
    code = (sent < window.start_s).astype(np.int8) + 2 * ((sent >= window.start_s) & (sent > window.end_s))
    return list(map((b"scored", b"warmup", b"cooldown").__getitem__, code.tolist()))


def canonical_rows(part: Part, window: Window) -> bytes:
    """CSV rows (\\r\\n-terminated) of a part of canonical lines, from the field texts and its table."""
    rows, t = part.rows, part.table
    cols = []
    for k in FIELDS:
        col = list(map(itemgetter(GROUP[k]), rows))
        kind = _TYPES[k]
        if kind == "bool":
            col = list(map(_BOOL.__getitem__, col))
        elif kind.startswith("str"):
            col = _quote_commas(col)
        elif k == "itl_s":
            spaced = b"\0".join(col).replace(b",", b", ").split(b"\0")  # json.dumps' ", " separator
            col = [b'"[' + x + b']"' if b"," in x else b"[" + x + b"]" for x in spaced]
        elif k == "chunk_tokens":  # "[2,1]" or b"" (null) → json.dumps' "[2, 1]", quoted for the comma
            col = [b'"' + x.replace(b",", b", ") + b'"' if b"," in x else x for x in col]
        cols.append(col)
    counts = t.itl_count
    tpot = t.tpot()
    mean = sequential_sums(t.itl, counts) / np.maximum(counts, 1)
    cols += [_floats(tpot, np.isnan(tpot)), list(map(b"%d".__mod__, counts.tolist())),
             _floats(mean, counts == 0), _phase(t.sent_s, window)]
    return b"\r\n".join(map(b",".join, zip(*cols))) + b"\r\n" if rows else b""


class RequestsCsv:
    """requests.csv written part by part while requests.jsonl is read (a `load_table` sink)."""

    def __init__(self, path: Path, window: Window):
        self.window = window
        self.rows = 0
        self._fh = open(path, "wb")
        self._fh.write(",".join(csv_columns()).encode() + b"\r\n")

    def add(self, part: Part) -> None:
        if part.rows is not None:
            self._fh.write(canonical_rows(part, self.window))
        else:
            buf = io.StringIO(newline="")
            w = csv.writer(buf)
            for r in part.records or []:
                w.writerow(_row(r, self.window))
            self._fh.write(buf.getvalue().encode("utf-8"))
        self.rows += part.table.n

    def close(self) -> None:
        self._fh.close()


def write_requests_csv_from_jsonl(jsonl: Path, path: Path, window: Window) -> int:
    """requests.csv from requests.jsonl in one streaming pass (when the window needs the records first)."""
    sink = RequestsCsv(path, window)
    try:
        if jsonl.exists():
            for part in iter_parts(jsonl):
                sink.add(part)
    finally:
        sink.close()
    return sink.rows
