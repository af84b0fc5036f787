"""JSONL reader: requests.jsonl → RecordTable in one streaming pass (records file seam → scoring, reports).

`iter_parts(path)` reads the file in ~16 MB chunks and yields `Part`s in file order; `load_table(path)`
concatenates them. Lines laid out exactly as `RequestRecord.to_json` writes them (key order, no spaces,
plain numbers) are parsed in bulk: one regex `findall` per chunk splits every line into its field
texts, pandas' C CSV parser turns the numeric fields and all ITL gaps into float64 arrays. Any other
line goes through `iter_records`' rules (json.loads, record_problem); a line that is no usable record
is skipped and reported to `skips`, canonical ones checked by the same rules in columns. Measured at
1M records × 64 gaps (986 MB): ~12 s and a ~0.7 GB table (~16 s with requests.csv written alongside),
against ~50 s and ~4 GB for `load_run`.
"""

from __future__ import annotations

import dataclasses
import io
import re
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from harness.records import MAX_ABS, RequestRecord, parse_record_line
from harness.scoring.table import RecordTable, from_records, select

CHUNK_BYTES = 8 << 20  # per-chunk temporaries are ~10x this (line texts, CSV rows): ~80 MB

# Value patterns, kept loose where a stricter one would cost per character (the regex is ~60 % of
# the read): numbers are any [-0-9.eE+] run and the ITL list any text up to ']' — pandas then rejects
# what is not a number and that run of lines is re-read line by line. Strings are bodies without
# escapes (a line with an escaped quote or \u sequence takes the json.loads path). No pattern crosses
# a line end: a torn line never swallows the next one.
_NUM = rb"-?[0-9][0-9.eE+-]*"
_STR = rb'"([^"\\\n]*)"'
_VALUE = {
    "str": _STR, "str | None": rb"(?:" + _STR + rb"|(null))",
    "float": rb"(" + _NUM + rb")", "int": rb"(" + _NUM + rb")",
    "float | None": rb"(?:(" + _NUM + rb")|null)", "int | None": rb"(?:(" + _NUM + rb")|null)",
    "bool": rb"(true|false)", "list[float]": rb"\[([^\]\n]*)\]",
    "list[int] | None": rb"(?:(\[[^\]\n]*\])|null)",  # brackets kept: b"" is null, b"[]" an empty list
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
NUMERIC = ("sent_s", "end_s", "status", "scheduled_s", "ttft_s", "e2e_s", "prompt_tokens", "output_tokens",
           "requested_output_tokens", "cap_wait_s", "requested_prompt_tokens", "server_prompt_s", "server_decode_s",
           "server_prompt_tokens", "server_cached_tokens")
_INT_LISTS = re.compile(rb"(?:\[(?:[0-9]+(?:,[0-9]+)*)?\])*")  # chunk_tokens texts, concatenated


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


def _row_problems(col: dict[str, np.ndarray], itl: np.ndarray, counts: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(reason, bad-row mask) per rule in record_problem's order (fields in order, then the cross
    checks), so both paths give a line the same reason. NaN in an optional column is its null."""
    n = counts.size
    absurd = lambda x: np.abs(x) > MAX_ABS  # noqa: E731  (inf too)
    rng = lambda k: (f"'{k}' is out of range", absurd(col[k]))  # noqa: E731
    neg = lambda k: (f"'{k}' is negative", col[k] < 0)  # noqa: E731
    out = [(f"'{k}' is out of range", ~(np.abs(col[k]) <= MAX_ABS)) for k in ("sent_s", "end_s")]  # NaN too
    out += [rng("status"), rng("scheduled_s"), rng("ttft_s"), neg("ttft_s"), rng("e2e_s"), neg("e2e_s")]
    gap_bad = absurd(itl) | (itl < 0)
    if gap_bad.any():  # rare: each bad record's reason is its first bad gap's, as on the json path
        idx = np.flatnonzero(gap_bad)
        recs, first = np.unique(np.repeat(np.arange(n), counts)[idx], return_index=True)
        first_absurd = absurd(itl[idx[first]])
        for why, pick in (("'itl_s' is out of range", first_absurd), ("'itl_s' is negative", ~first_absurd)):
            mask = np.zeros(n, dtype=bool)
            mask[recs[pick]] = True
            out.append((why, mask))
    for k in ("prompt_tokens", "output_tokens", "requested_output_tokens", "cap_wait_s", "requested_prompt_tokens",
              "server_prompt_s", "server_decode_s", "server_prompt_tokens", "server_cached_tokens"):
        out += [rng(k), neg(k)]
    st = col["status"]
    out.append(("'status' is not an HTTP status", ~((st >= 0) & (st <= 999) & (st == np.floor(st)))))
    out.append(("'end_s' is before 'sent_s'", col["end_s"] < col["sent_s"]))
    return out


def _canonical_table(rows: list[tuple]) -> tuple[RecordTable, list[tuple[int, str]]]:
    """The table of canonical lines (findall tuples), all fields parsed in bulk, without the rows that
    break the record rules; returns it with (row index, reason) of each row left out."""
    n = len(rows)
    text = b"\n".join(map(b"\t".join, map(itemgetter(*(GROUP[k] for k in NUMERIC)), rows)))
    frame = pd.read_csv(io.BytesIO(text), sep="\t", header=None, names=list(NUMERIC), dtype=np.float64,
                        na_values=[""], keep_default_na=False, engine="c")
    col = {k: frame[k].to_numpy(dtype=np.float64) for k in NUMERIC}
    ok = np.fromiter(map(bytes.__eq__, map(itemgetter(GROUP["ok"]), rows), repeat(b"true")), dtype=bool, count=n)
    itl_text = list(map(itemgetter(GROUP["itl_s"]), rows))
    commas = np.fromiter(map(bytes.count, itl_text, repeat(b",")), dtype=np.int64, count=n)
    counts = np.where(np.fromiter(map(len, itl_text), dtype=np.int64, count=n) > 0, commas + 1, 0)
    itl = parse_floats(itl_text)
    chunk = b"".join(map(itemgetter(GROUP["chunk_tokens"]), rows))
    if itl.size != int(counts.sum()) or (chunk and not _INT_LISTS.fullmatch(chunk)):
        raise ValueError("a list that is not JSON numbers")  # e.g. "[1,,2]": these lines go one by one
    with np.errstate(invalid="ignore"):
        problems = _row_problems(col, itl, counts)
    bad = np.zeros(n, dtype=bool)
    for _, mask in problems:
        bad |= mask
    status = np.where(bad, 0, col["status"]).astype(np.int64)  # bad rows may hold inf: cast only good ones
    errs = np.flatnonzero(~ok)
    g_type, g_null = GROUP["error_type"], GROUP["error_type:null"]
    table = RecordTable(
        sent_s=col["sent_s"], end_s=col["end_s"], status=status, ok=ok,
        scheduled_s=col["scheduled_s"], ttft_s=col["ttft_s"], e2e_s=col["e2e_s"],
        prompt_tokens=col["prompt_tokens"], output_tokens=col["output_tokens"],
        itl=itl, itl_count=counts, cap_wait_s=col["cap_wait_s"], err_index=errs,
        **{k: col[k] for k in ("requested_prompt_tokens", "requested_output_tokens", "server_prompt_s",
                               "server_decode_s", "server_prompt_tokens", "server_cached_tokens")},
        itl_all_finite=bool(np.isfinite(itl).all()),
        err_type=[None if rows[i][g_null] else json_str(rows[i][g_type]) for i in errs],
        err_msg=[None if rows[i][GROUP["error:null"]] else json_str(rows[i][GROUP["error"]]) for i in errs],
        err_id=[json_str(rows[i][GROUP["request_id"]]) for i in errs])
    if not bad.any():
        return table, []
    left_out = [(int(i), next(why for why, m in problems if m[i])) for i in np.flatnonzero(bad)]
    return select(table, ~bad), left_out


def parse_line(line: bytes) -> RequestRecord | None:
    """One non-canonical line the way iter_records reads it (None: blank or not a usable record)."""
    return parse_record_line(line)[0]


@dataclass
class Part:
    """Consecutive records of the file: canonical `rows` (findall tuples) or parsed `records`."""

    table: RecordTable
    rows: list[tuple] | None = None
    records: list[RequestRecord] | None = None
    done_bytes: int = 0  # bytes of the file read once this part's chunk was read


def _not_utf8(chunk: bytes, cut: int) -> set[int]:
    """Indexes of the lines that are not UTF-8 (to_json writes ASCII, so this is one fast test)."""
    if chunk.isascii():
        return set()
    bad = set()
    for i, line in enumerate(chunk[:cut].split(b"\n")):
        if not line.isascii():
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                bad.add(i)
    return bad


def _one_by_one(lines: list[bytes], first_line: int, skips) -> Iterator[Part]:
    """Lines read with json.loads (iter_records' rules), unusable ones reported by line number."""
    recs = []
    for k, line in enumerate(lines):
        rec, why = parse_record_line(line)
        if rec is not None:
            recs.append(rec)
        elif why and skips is not None:
            skips.add(first_line + k, why)
    if recs:
        yield Part(from_records(recs), records=recs)


def _parts_of(found: list[tuple], chunk: bytes, cut: int, first_line: int = 1, skips=None) -> Iterator[Part]:
    """Split one chunk's findall result (one tuple per line; line `first_line` first) into runs of
    canonical rows and runs of other lines; canonical rows pandas cannot parse, or that are not
    UTF-8, are re-read from the chunk's lines. Rows breaking the record rules go to `skips`."""
    g_line = GROUP["line"]
    lines: list[bytes] = []
    not_utf8 = _not_utf8(chunk, cut)
    if not_utf8:  # such a line takes the json path, which says why it is skipped
        lines = chunk[:cut].split(b"\n")
        blank = [b""] * len(found[0])
        for k in not_utf8:
            blank[g_line] = lines[k]
            found[k] = tuple(blank)
    i, n = 0, len(found)
    while i < n:
        j = i
        if found[i][0]:
            while j < n and found[j][0]:
                j += 1
            rows = found[i:j]
            try:
                table, left_out = _canonical_table(rows)
            except ValueError:  # a loose match that is not JSON numbers: read these lines one by one
                lines = lines or chunk[:cut].split(b"\n")  # findall gave one tuple per line, in order
                yield from _one_by_one(lines[i:j], first_line + i, skips)
            else:
                if left_out:
                    gone = {k for k, _ in left_out}
                    rows = [r for k, r in enumerate(rows) if k not in gone]
                    if skips is not None:
                        for k, why in left_out:
                            skips.add(first_line + i + k, why)
                if rows:
                    yield Part(table, rows=rows)
        else:
            while j < n and not found[j][0]:
                j += 1
            yield from _one_by_one([t[g_line] for t in found[i:j]], first_line + i, skips)
        i = j


def iter_parts(path: Path | str, chunk_bytes: int = CHUNK_BYTES, skips=None) -> Iterator[Part]:
    """Parts of requests.jsonl in file order; a torn last line is read like any other line. Lines
    left out are reported to `skips.add(line_no, why)` (1-based line numbers)."""
    with open(path, "rb") as fh:
        rest, done, line_no = b"", 0, 1
        while True:
            data = fh.read(chunk_bytes)
            done += len(data)
            buf = rest + data if rest else data
            cut = len(buf) if not data else buf.rfind(b"\n") + 1  # at the end: the last, maybe torn, line
            if cut:
                found = CANONICAL.findall(buf, 0, cut)  # endpos: no copy
                lines_in_chunk = len(found) - (buf[cut - 1] == 10)  # findall adds an empty match after a final \n
                for part in _parts_of(found, buf, cut, line_no, skips):
                    part.done_bytes = done
                    yield part
                line_no += lines_in_chunk
            if not data:
                return
            rest = buf[cut:]


_COLUMNS = ("sent_s", "end_s", "status", "ok", "scheduled_s", "ttft_s", "e2e_s", "prompt_tokens",
            "output_tokens", "itl_count", "cap_wait_s", "requested_prompt_tokens", "requested_output_tokens",
            "server_prompt_s", "server_decode_s", "server_prompt_tokens", "server_cached_tokens")


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


def load_table(path: Path | str, sinks=(), skips=None) -> RecordTable:
    """Read requests.jsonl into a RecordTable; each sink's add(part) sees every part (CSV export);
    lines left out are reported to `skips` (runfolder.LineSkips)."""
    p = Path(path)
    builder = TableBuilder(p.stat().st_size if p.exists() else 0)
    if p.exists():
        for part in iter_parts(p, skips=skips):
            for s in sinks:
                s.add(part)
            builder.add(part.table, part.done_bytes)
    return builder.finish()
