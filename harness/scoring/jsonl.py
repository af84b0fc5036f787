"""JSONL reader: requests.jsonl → RecordTable in one streaming pass (records file seam → scoring, reports).

`iter_parts(path)` reads the file in ~16 MB chunks and yields `Part`s in file order; `load_table(path)`
concatenates them. Lines laid out exactly as `RequestRecord.to_json` writes them (key order, no spaces,
plain numbers) are parsed in bulk: one regex `findall` per chunk splits every line into its field
texts, pandas' C CSV parser turns the numeric fields and all ITL gaps into float64 arrays. Any other
line (other key order, NaN, a torn or corrupt line, extra keys) goes through `json.loads` and
`RequestRecord.from_dict`, with `iter_records`' rules: blank and undecodable lines are skipped.
Measured at 1M records × 64 gaps (986 MB): ~12 s and a ~0.7 GB table (~16 s with requests.csv written
alongside), against ~50 s and ~4 GB for `load_run`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from harness.records import RequestRecord
from harness.scoring.table import RecordTable, from_records

CHUNK_BYTES = 8 << 20  # per-chunk temporaries are ~10x this (line texts, CSV rows): ~80 MB

# Value patterns, kept loose where a stricter one would cost per character (the regex is ~60 % of
# the read): numbers are any [-0-9.eE+] run and the ITL list any text up to ']' — pandas then rejects
# what is not a number and that run of lines is re-read line by line. Strings are bodies without
# escapes (a line with an escaped quote or \u sequence takes the json.loads path).
_NUM = rb"-?[0-9][0-9.eE+-]*"
_STR = rb'"([^"\\]*)"'
_VALUE = {
    "str": _STR, "str | None": rb"(?:" + _STR + rb"|(null))",
    "float": rb"(" + _NUM + rb")", "int": rb"(" + _NUM + rb")",
    "float | None": rb"(?:(" + _NUM + rb")|null)", "int | None": rb"(?:(" + _NUM + rb")|null)",
    "bool": rb"(true|false)", "list[float]": rb"\[([^\]]*)\]",
    "list[int] | None": rb"(?:(\[[^\]]*\])|null)",  # brackets kept: b"" is null, b"[]" an empty list
}


def _canonical_pattern() -> tuple[re.Pattern, dict[str, int]]:
    """One regex per line: the first group is '{' on a canonical line, else the last group is the line.

    Keys must come in field order; the trailing fields that default to None may be absent (older
    writers, e.g. runs without `turn`). Returns the pattern and field name → group index (0-based
    into findall's tuples; optional strings also have a '<name>:null' group).
    """
    fields = dataclasses.fields(RequestRecord)
    n_opt = 0
    for f in reversed(fields):
        if f.default is not None or f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            break
        n_opt += 1
    groups: dict[str, int] = {}
    parts, g = [], 1
    for i, f in enumerate(fields):
        pat = _VALUE[str(f.type)]
        groups[f.name] = g
        if str(f.type) == "str | None":
            groups[f.name + ":null"] = g + 1
        g += re.compile(pat).groups
        sep = b"," if i else b""
        parts.append((sep + b'"' + f.name.encode() + b'":' + pat, i >= len(fields) - n_opt))
    body, tail = b"", b""
    for text, optional in parts:
        if optional:
            body += b"(?:" + text
            tail += b")?"
        else:
            body += text
    pattern = re.compile(rb"^(?:(\{)" + body + tail + rb"\}|(.*))$", re.M)
    groups["{"] = 0
    groups["line"] = g
    return pattern, groups


CANONICAL, GROUP = _canonical_pattern()
NUMERIC = ("sent_s", "end_s", "status", "scheduled_s", "ttft_s", "e2e_s", "prompt_tokens", "output_tokens")


def json_str(raw: bytes) -> str:
    """A JSON string body as matched (no escapes) → str."""
    return raw.decode("utf-8")


def parse_floats(texts: list[bytes]) -> np.ndarray:
    """Comma-separated JSON numbers → float64, with pandas' C parser (correctly rounded, ~60 ns each)."""
    parts = [t for t in texts if t]
    if not parts:
        return np.empty(0)
    frame = pd.read_csv(io.BytesIO(b",".join(parts)), header=None, lineterminator=",", dtype=np.float64,
                        names=["v"], na_filter=False, engine="c")
    return frame["v"].to_numpy(dtype=np.float64)


def _canonical_table(rows: list[tuple]) -> RecordTable:
    """The table of canonical lines (findall tuples), all fields parsed in bulk."""
    n = len(rows)
    text = b"\n".join(map(b"\t".join, map(itemgetter(*(GROUP[k] for k in NUMERIC)), rows)))
    frame = pd.read_csv(io.BytesIO(text), sep="\t", header=None, names=list(NUMERIC), dtype=np.float64,
                        na_values=[""], keep_default_na=False, engine="c")
    col = {k: frame[k].to_numpy(dtype=np.float64) for k in NUMERIC}
    ok = np.fromiter(map(bytes.__eq__, map(itemgetter(GROUP["ok"]), rows), repeat(b"true")), dtype=bool, count=n)
    itl_text = list(map(itemgetter(GROUP["itl_s"]), rows))
    commas = np.fromiter(map(bytes.count, itl_text, repeat(b",")), dtype=np.int64, count=n)
    counts = np.where(np.fromiter(map(len, itl_text), dtype=np.int64, count=n) > 0, commas + 1, 0)
    bad = np.flatnonzero(~ok)
    itl = parse_floats(itl_text)
    g_type, g_null = GROUP["error_type"], GROUP["error_type:null"]
    return RecordTable(
        sent_s=col["sent_s"], end_s=col["end_s"], status=col["status"].astype(np.int64), ok=ok,
        scheduled_s=col["scheduled_s"], ttft_s=col["ttft_s"], e2e_s=col["e2e_s"],
        prompt_tokens=col["prompt_tokens"], output_tokens=col["output_tokens"],
        itl=itl, itl_count=counts, err_index=bad, itl_all_finite=bool(np.isfinite(itl).all()),
        err_type=[None if rows[i][g_null] else json_str(rows[i][g_type]) for i in bad],
        err_msg=[None if rows[i][GROUP["error:null"]] else json_str(rows[i][GROUP["error"]]) for i in bad],
        err_id=[json_str(rows[i][GROUP["request_id"]]) for i in bad])


def parse_line(line: bytes) -> RequestRecord | None:
    """One non-canonical line the way iter_records reads it (None: blank or not a record)."""
    line = line.strip()
    if not line:
        return None
    try:
        d = json.loads(line)
        return RequestRecord.from_dict(d) if isinstance(d, dict) else None
    except (ValueError, TypeError):
        return None


@dataclass
class Part:
    """Consecutive records of the file: canonical `rows` (findall tuples) or parsed `records`."""

    table: RecordTable
    rows: list[tuple] | None = None
    records: list[RequestRecord] | None = None
    done_bytes: int = 0  # bytes of the file read once this part's chunk was read


def _parts_of(found: list[tuple], chunk: bytes, cut: int) -> Iterator[Part]:
    """Split one chunk's findall result (one tuple per line) into runs of canonical rows and runs of
    other lines; canonical rows pandas cannot parse are re-read from the chunk's lines."""
    g_line = GROUP["line"]
    lines: list[bytes] = []
    i, n = 0, len(found)
    while i < n:
        j = i
        if found[i][0]:
            while j < n and found[j][0]:
                j += 1
            rows = found[i:j]
            try:
                yield Part(_canonical_table(rows), rows=rows)
            except ValueError:  # a loose match that is not JSON numbers: read these lines one by one
                lines = lines or chunk[:cut].split(b"\n")  # findall gave one tuple per line, in order
                recs = [r for r in map(parse_line, lines[i:j]) if r is not None]
                if recs:
                    yield Part(from_records(recs), records=recs)
        else:
            while j < n and not found[j][0]:
                j += 1
            recs = [r for r in (parse_line(t[g_line]) for t in found[i:j]) if r is not None]
            if recs:
                yield Part(from_records(recs), records=recs)
        i = j


def iter_parts(path: Path | str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Part]:
    """Parts of requests.jsonl in file order; a torn last line is read like any other line."""
    with open(path, "rb") as fh:
        rest, done = b"", 0
        while True:
            data = fh.read(chunk_bytes)
            done += len(data)
            buf = rest + data if rest else data
            cut = len(buf) if not data else buf.rfind(b"\n") + 1  # at the end: the last, maybe torn, line
            if cut:
                for part in _parts_of(CANONICAL.findall(buf, 0, cut), buf, cut):  # endpos: no copy
                    part.done_bytes = done
                    yield part
            if not data:
                return
            rest = buf[cut:]


_COLUMNS = ("sent_s", "end_s", "status", "ok", "scheduled_s", "ttft_s", "e2e_s", "prompt_tokens",
            "output_tokens", "itl_count")


class TableBuilder:
    """Concatenates parts column by column; the ITL array grows in place, sized from the first chunk."""

    def __init__(self, expect_bytes: int = 0):
        self.expect_bytes = expect_bytes  # the file size: sizes the ITL array from the first chunk's density
        self.cols: dict[str, list[np.ndarray]] = {k: [] for k in _COLUMNS}
        self.errs: list[tuple[np.ndarray, list, list, list]] = []
        self.n = 0
        self.all_finite = True
        self.itl = np.empty(0)
        self.n_itl = 0

    def add(self, t: RecordTable, done_bytes: int = 0) -> None:
        need = self.n_itl + t.itl.size
        if need > self.itl.size:
            guess = int(need / done_bytes * self.expect_bytes * 1.05) if done_bytes and self.expect_bytes else 0
            grown = np.empty(max(need, guess, int(self.itl.size * 1.5)))
            grown[:self.n_itl] = self.itl[:self.n_itl]
            self.itl = grown
        self.itl[self.n_itl:need] = t.itl
        self.n_itl = need
        for k in _COLUMNS:
            self.cols[k].append(getattr(t, k))
        self.errs.append((t.err_index + self.n, t.err_type, t.err_msg, t.err_id))
        self.n += t.n
        self.all_finite &= t.itl_all_finite

    def finish(self) -> RecordTable:
        dtypes = {"status": np.int64, "ok": bool, "itl_count": np.int64}
        # One column at a time, dropping its parts: the transient copy is one column, not the table.
        cols = {k: np.concatenate(self.cols.pop(k)) if self.cols[k] else np.empty(0, dtypes.get(k, float))
                for k in _COLUMNS}
        errs = self.errs
        return RecordTable(
            **cols, itl=self.itl[:self.n_itl],
            err_index=np.concatenate([e[0] for e in errs]).astype(np.int64) if errs else np.empty(0, np.int64),
            err_type=[x for e in errs for x in e[1]], err_msg=[x for e in errs for x in e[2]],
            err_id=[x for e in errs for x in e[3]], itl_all_finite=self.all_finite)


def load_table(path: Path | str, sinks=()) -> RecordTable:
    """Read requests.jsonl into a RecordTable; each sink's add(part) sees every part (CSV export)."""
    p = Path(path)
    builder = TableBuilder(p.stat().st_size if p.exists() else 0)
    if p.exists():
        for part in iter_parts(p):
            for s in sinks:
                s.add(part)
            builder.add(part.table, part.done_bytes)
    return builder.finish()
