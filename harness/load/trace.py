"""Trace seam: a recorded production trace → a lazy stream of TraceEntry (when, how long, which prefix blocks).

One generator per format reads the file a row at a time; `read_trace` applies start_s, sampling,
time_scale and max_requests, so memory does not grow with the trace and the first entry comes at once.
Every bad row is a TraceError (a ConfigError): one line naming the file, the line, the column and the fix.

Formats (columns and units as their publishers document them):
  mooncake      JSONL, kvcache-ai/Mooncake FAST25-release/traces (*_trace.jsonl): `timestamp` (ms since
                the trace's start), `input_length`, `output_length` (tokens), `hash_ids` (one remapped id
                per block of 512 tokens, ceil(input_length / 512) of them; the last block may be partial).
                Alibaba's Bailian traces use the same keys with 16-token blocks (`block_tokens: 16`).
  azure-csv     Azure/AzurePublicDataset, Azure LLM inference trace 2023 (Splitwise) and 2024 (DynamoLLM):
                `TIMESTAMP` (wall-clock date and time, e.g. `2023-11-16 18:15:46.6805900`; 2024 rows mix
                precisions and may end in `+00:00`), `ContextTokens`, `GeneratedTokens`.
  burstgpt-csv  HPMLL/BurstGPT (BurstGPT_*.csv): `Timestamp` (s since the trace's start), `Model`,
                `Request tokens`, `Response tokens`, `Total tokens`, `Log Type`; the last three and Model
                are not used. Rows of failed requests have `Response tokens` 0 (see below).
  slabench      an earlier run's requests.jsonl (harness.records.RequestRecord), see _slabench.
Offsets are relative to the trace's first row. Lengths of 0 (BurstGPT's failed requests) are sent as
1 token, the least a server accepts, and counted in TraceStats.raised_to_one. Sessions (what
`sample_sessions` keeps whole): slabench → the `user` that sent it; mooncake → its first two hash ids
(a conversation: Mooncake's conversation trace starts every request with block 0, a shared system
prompt, so the first id alone would make one session of the whole trace); azure and burstgpt have
no session column, so each request is its own session.
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import io
import math
import re
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import BinaryIO, Iterator

from harness.config import MAX_TOKENS, ConfigError, LoadConfig, TraceConfig
from harness.config.errors import clip, open_regular, read_yaml
from harness.load.dataset import _json_problem, _loads
from harness.records import SCENARIO_FILE, parse_record_line

MAX_LINE_BYTES = 16 << 20  # a JSONL row: 1M tokens in 16-token blocks is 62,500 ids, ~0.5 MB
MAX_HASH_ID = 2**64 - 1
# ExpectedReuse: ids below this are one bit each in a growable bytearray (at most 32 MB); the rare
# larger ids (a trace of raw 64-bit hashes) go to a set. The public traces number ids densely from 0.
BITMAP_IDS = 1 << 28
# slabench: records are written when requests end, so a run's file is in end order, not send order.
# They are re-sorted in a heap holding the records that may still be overtaken: those sent within the
# longest request duration (timeout_s + drain_timeout_s of the run, or the longest seen) of the latest
# end. Slack covers records written a little after they ended (workers forward every 0.5 s).
REORDER_SLACK_S = 5.0


class TraceError(ConfigError):
    """A trace file that cannot be replayed; one line: `FILE:LINE: 'column' problem: fix`."""


@dataclass(frozen=True, slots=True)
class TraceEntry:
    offset_s: float  # when to send it: (recorded offset - start_s) x time_scale, from the replay's start
    input_tokens: int
    output_tokens: int
    hash_ids: tuple[int, ...] | None  # prefix blocks (mooncake); None: the prompt shares nothing
    session: str | None  # the trace's session key; None: the request is its own session
    prompt: str | None  # the recorded prompt text where the trace kept it (none of these formats does)
    row: int  # line number in the file (1-based; CSV header = line 1), for messages and seeds


class ExpectedReuse:
    """The reuse a trace allows: the share of blocks (over all hash ids in order) whose id came earlier.

    Memory: one bit per id up to the largest id seen (below BITMAP_IDS), a set entry for larger ones.
    Each id counts as one block whether full or the partial last one of its prompt.
    """

    def __init__(self) -> None:
        self._bits = bytearray()
        self._big: set[int] = set()
        self.blocks = 0
        self.reused = 0

    def add(self, hash_ids: tuple[int, ...] | None) -> None:
        if not hash_ids:
            return
        bits, reused = self._bits, 0
        for h in hash_ids:
            if h < BITMAP_IDS:
                byte, bit = h >> 3, 1 << (h & 7)
                if byte >= len(bits):  # grow by doubling: amortised O(1), at most 2x the largest id
                    bits.extend(bytes(max(byte + 1, 2 * len(bits)) - len(bits)))
                if bits[byte] & bit:
                    reused += 1
                else:
                    bits[byte] |= bit
            elif h in self._big:
                reused += 1
            else:
                self._big.add(h)
        self.blocks += len(hash_ids)
        self.reused += reused

    def __repr__(self) -> str:
        return f"ExpectedReuse(blocks={self.blocks}, reused={self.reused})"

    @property
    def share(self) -> float | None:
        """Reused blocks / blocks (None before any block)."""
        return self.reused / self.blocks if self.blocks else None


@dataclass
class TraceStats:
    """What reading a trace saw, filled in as entries are yielded (for meta.json and the summary)."""

    rows: int = 0  # data rows read
    before_start: int = 0  # recorded before start_s
    sampled_out: int = 0  # in sessions sample_sessions left out
    raised_to_one: int = 0  # yielded with a recorded length of 0 sent as 1
    skipped: int = 0  # slabench: a torn last line, or a record with no known prompt length
    yielded: int = 0
    reuse: ExpectedReuse = field(default_factory=ExpectedReuse)


def session_kept(key: str, fraction: float, seed: int) -> bool:
    """Whether sample_sessions keeps this session: a seeded 64-bit hash of its key below fraction x 2^64.
    Stateless, so whole sessions are kept without listing them, and the same seed keeps the same ones."""
    digest = hashlib.blake2b(f"{seed}\x00{key}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < fraction * 2.0**64


def read_trace(cfg: TraceConfig, seed: int, stats: TraceStats | None = None) -> Iterator[TraceEntry]:
    """Stream `cfg`'s trace as TraceEntries in send order; `stats` (optional) is updated as it goes.
    The file is opened on the first next(); every problem is a one-line ConfigError (TraceError for
    what is in the file)."""
    return _replay(cfg, seed, stats if stats is not None else TraceStats())


CHECK_ROWS = 10_000  # rows read before the load starts (~0.3 s): most bad traces fail before anything is sent


def check_trace(cfg: TraceConfig, seed: int, rows: int = CHECK_ROWS) -> TraceEntry:
    """The first entry the replay would send, after reading up to `rows` entries: a bad path, header or
    early row fails here, in one line, before the load starts (a later bad row ends the replay there)."""
    gen = read_trace(cfg, seed)
    try:
        first = next(gen)
        for _, _ in zip(range(rows - 1), gen):
            pass
        return first
    finally:
        gen.close()


# ---------------------------------------------------------------- the shared pipeline

_TIME_COLUMN = {"mooncake": "timestamp", "azure-csv": "TIMESTAMP", "burstgpt-csv": "Timestamp", "slabench": "sent_s"}


def _replay(cfg: TraceConfig, seed: int, stats: TraceStats) -> Iterator[TraceEntry]:
    path = Path(cfg.path)
    # closing(): the format's reader ends (and lets go of the file) before the file is closed.
    with open_regular(path, "trace file") as fh, closing(_READERS[cfg.format](fh, path, cfg, stats)) as rows:
        t0 = prev = None
        frac = cfg.sample_sessions
        n_rows = n_sent = 0
        for row, t, n_in, n_out, ids, session, prompt in rows:
            n_rows += 1
            stats.rows += 1
            if prev is not None and t < prev:
                raise TraceError(f"{path}:{row}: '{_TIME_COLUMN[cfg.format]}' goes back in time (to {t - t0:g} s "
                                 f"into the trace, after {prev - t0:g} s): sort the trace by time")
            prev = t
            t0 = t if t0 is None else t0
            recorded_s = t - t0
            if recorded_s < cfg.start_s:
                stats.before_start += 1
                continue
            if frac is not None and frac < 1 and not session_kept(session or f"row:{row}", frac, seed):
                stats.sampled_out += 1
                continue
            if n_in == 0 or n_out == 0:
                stats.raised_to_one += 1
            stats.reuse.add(ids)
            stats.yielded += 1
            n_sent += 1
            yield TraceEntry((recorded_s - cfg.start_s) * cfg.time_scale, max(1, n_in), max(1, n_out), ids, session,
                             prompt, row)
            if cfg.max_requests is not None and n_sent >= cfg.max_requests:
                return
        if n_sent == 0:
            if n_rows == 0:
                raise TraceError(f"{path}: has no requests ({cfg.format} trace): give a trace with at least one row")
            span = f"{prev - t0:g}" if prev is not None and t0 is not None else "0"
            raise TraceError(f"{path}: none of its {n_rows} requests is left to replay (start_s: {cfg.start_s:g} "
                             f"with the trace spanning {span} s, sample_sessions: {frac}): lower start_s or raise "
                             "sample_sessions")


def _bad(path: Path, line: int, column: str, problem: str) -> TraceError:
    return TraceError(f"{path}:{line}: '{column}' {problem}")


def _number(v: object) -> float | None:
    """A JSON number or CSV text as a finite float; None when it is neither."""
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        return None
    try:
        x = float(v.strip() if isinstance(v, str) else v)
    except (ValueError, OverflowError):  # not a number; an integer past float range
        return None
    return x if math.isfinite(x) else None


def _tokens(v: object, path: Path, line: int, column: str) -> int:
    """A recorded length: a whole number from 0 to MAX_TOKENS."""
    x = _number(v)
    if x is None or not x.is_integer():
        raise _bad(path, line, column, f"is {clip(repr(v), 40)}, not a whole number of tokens: fix or remove the row")
    if x < 0:
        raise _bad(path, line, column, f"is negative ({x:g} tokens): fix or remove the row")
    if x > MAX_TOKENS:
        raise _bad(path, line, column, f"is {x:g} tokens, over the {MAX_TOKENS:,} one request may have: fix the row")
    return int(x)


def _seconds(v: object, path: Path, line: int, column: str, unit_s: float) -> float:
    """A non-negative timestamp in the column's unit (1 s or 1 ms), as seconds."""
    x = _number(v)
    if x is None:
        raise _bad(path, line, column, f"is {clip(repr(v), 40)}, not a time: fix or remove the row")
    if x < 0:
        raise _bad(path, line, column, f"is negative ({x:g}): a trace's times start at 0 or later; fix the row")
    return x * unit_s


# ---------------------------------------------------------------- JSONL formats

def _lines(fh: BinaryIO, path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, line, whether it ended with a newline) for each non-blank line."""
    n = 0
    while True:
        raw = fh.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        n += 1
        if len(raw) > MAX_LINE_BYTES:
            raise TraceError(f"{path}:{n}: line longer than {MAX_LINE_BYTES >> 20} MB: one request per line "
                             "(is this a JSONL trace? check workload.trace.format)")
        if raw.strip():
            yield n, raw, raw.endswith(b"\n")


def _mooncake(fh: BinaryIO, path: Path, cfg: TraceConfig, stats: TraceStats) -> Iterator[tuple]:
    block = cfg.tokens_per_block or 1
    for n, raw, _ in _lines(fh, path):
        try:
            obj = _loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise TraceError(f"{path}:{n}: not UTF-8 text: save the trace as UTF-8") from None
        except (ValueError, RecursionError) as exc:
            raise TraceError(f"{path}:{n}: {_json_problem(exc)}") from None
        if not isinstance(obj, dict):
            raise TraceError(f"{path}:{n}: each line must be a JSON object like {{\"timestamp\": 0, \"input_length\": "
                             "512, \"output_length\": 64, \"hash_ids\": [0]}: is this a Mooncake trace?")
        for key in ("timestamp", "input_length", "output_length"):
            if key not in obj:
                raise _bad(path, n, key, "is missing (a Mooncake row has timestamp in ms, input_length, "
                           "output_length, hash_ids): fix the row, or check workload.trace.format")
        t = _seconds(obj["timestamp"], path, n, "timestamp", 1e-3)
        n_in = _tokens(obj["input_length"], path, n, "input_length")
        n_out = _tokens(obj["output_length"], path, n, "output_length")
        ids = _hash_ids(obj.get("hash_ids"), path, n)
        if ids and len(ids) > -(-n_in // block):
            raise _bad(path, n, "hash_ids", f"has {len(ids)} ids for {n_in} tokens, more than blocks of {block} "
                       "tokens make: set workload.trace.block_tokens to the trace's block size (16 for Alibaba's)")
        session = None if not ids else f"{ids[0]}/{ids[1]}" if len(ids) > 1 else str(ids[0])
        yield n, t, n_in, n_out, ids, session, None


def _hash_ids(v: object, path: Path, n: int) -> tuple[int, ...] | None:
    if v is None:
        return None
    if not isinstance(v, list):
        raise _bad(path, n, "hash_ids", f"must be a list of block ids, got {clip(repr(v), 40)}: fix the row")
    if v and all(type(h) is int for h in v) and min(v) >= 0 and max(v) <= MAX_HASH_ID:
        return tuple(v)
    for h in v:
        if type(h) is not int or not 0 <= h <= MAX_HASH_ID:
            raise _bad(path, n, "hash_ids", f"holds {clip(repr(h), 40)}, not a block id (a whole number from 0 to "
                       "2^64-1): fix the row")
    return None  # an empty list: no blocks


def _slabench(fh: BinaryIO, path: Path, cfg: TraceConfig, stats: TraceStats) -> Iterator[tuple]:
    """An earlier run's requests.jsonl, in send order: the offset is `scheduled_s` (open loop: when it
    was meant to go) else `sent_s`; the prompt length is what the run asked for (`requested_prompt_tokens`,
    so the same API and calibration rebuild the same prompt) else the server's count (`prompt_tokens`:
    dataset prompts, later chat turns); the output length is `requested_output_tokens` else
    `output_tokens`. Failed requests are replayed too: they were offered load. Records keep no prompt
    text, so prompts are synthesized (entry.prompt is None)."""
    horizon_s = _run_horizon_s(path)
    heap: list[tuple] = []
    latest_end = -math.inf
    last_out: float | None = None
    for n, raw, newline in _lines(fh, path):
        rec, why = parse_record_line(raw)
        if rec is None:
            if not newline:  # a torn last line: the run stopped mid-write
                stats.skipped += 1
                continue
            raise TraceError(f"{path}:{n}: not a slabench request record ({why}): replay a run's requests.jsonl, "
                             "or check workload.trace.format")
        t = rec.scheduled_s if rec.scheduled_s is not None else rec.sent_s
        n_in = rec.requested_prompt_tokens if rec.requested_prompt_tokens is not None else rec.prompt_tokens
        if n_in is None:  # a dataset prompt that failed before the server counted it
            stats.skipped += 1
            continue
        if last_out is not None and t < last_out:
            raise _bad(path, n, "sent_s", f"is {last_out - t:g} s before a request already replayed, further out of "
                       f"order than the run's longest request ({horizon_s:g} s): sort the file by sent_s")
        n_out = rec.requested_output_tokens if rec.requested_output_tokens is not None else rec.output_tokens
        heapq.heappush(heap, (t, n, (n, t, min(int(n_in), MAX_TOKENS), min(int(n_out), MAX_TOKENS), None, rec.user,
                                     None)))
        latest_end = max(latest_end, rec.end_s)
        horizon_s = max(horizon_s, rec.end_s - t + REORDER_SLACK_S)
        while heap and heap[0][0] <= latest_end - horizon_s:
            last_out, _, row = heapq.heappop(heap)
            yield row
    while heap:
        yield heapq.heappop(heap)[2]


def _run_horizon_s(path: Path) -> float:
    """The longest a request of the run could take (its timeout_s + drain_timeout_s, from the run
    folder's scenario.yaml, else the defaults) plus slack: how far out of send order records can be."""
    timeout_s = LoadConfig.model_fields["timeout_s"].default
    drain_s = LoadConfig.model_fields["drain_timeout_s"].default
    try:
        load = (read_yaml(path.parent / SCENARIO_FILE, "scenario file") or {}).get("load") or {}
        timeout_s = float(load.get("timeout_s", timeout_s))
        drain_s = float(load.get("drain_timeout_s", drain_s))
    except (ConfigError, AttributeError, TypeError, ValueError):
        pass  # no run folder around it (a copied file): the defaults, widened by the longest request seen
    return timeout_s + drain_s + REORDER_SLACK_S


# ---------------------------------------------------------------- CSV formats

_AZURE_TIME = re.compile(r"\s*(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9})\d*)?\s*"
                         r"(Z|[+-]\d{2}:?\d{2})?\s*$")
_EPOCH_DAY = date(1970, 1, 1).toordinal()


def _azure_time(text: str, path: Path, line: int) -> float:
    """`TIMESTAMP` as seconds since 1970 (UTC; a time without a zone is read as UTC)."""
    m = _AZURE_TIME.match(text)
    try:
        if not m:
            raise ValueError
        y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
        if h > 23 or mi > 59 or s > 60:
            raise ValueError
        t = (date(y, mo, d).toordinal() - _EPOCH_DAY) * 86400 + h * 3600 + mi * 60 + s
    except ValueError:
        raise _bad(path, line, "TIMESTAMP", f"is {clip(repr(text), 40)}, not a date and time like "
                   "2023-11-16 18:15:46.6805900: fix or remove the row") from None
    frac, zone = m.group(7), m.group(8)
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        t -= sign * (int(zone[1:3]) * 3600 + int(zone[-2:]) * 60)
    return t + (int(frac) / 10 ** len(frac) if frac else 0.0)


# format → (time column, its parser, input column, output column)
_CSV = {
    "azure-csv": ("TIMESTAMP", lambda v, p, n: _azure_time(v, p, n), "ContextTokens", "GeneratedTokens"),
    "burstgpt-csv": ("Timestamp", lambda v, p, n: _seconds(v, p, n, "Timestamp", 1.0), "Request tokens",
                     "Response tokens"),
}


def _csv_rows(fh: BinaryIO, path: Path, cfg: TraceConfig, stats: TraceStats) -> Iterator[tuple]:
    time_col, parse_time, in_col, out_col = _CSV[cfg.format]
    text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    try:
        header = next(reader, None)
        if header is None:
            return
        names = [h.strip() for h in header]
        missing = [c for c in (time_col, in_col, out_col) if c not in names]
        if missing:
            shown = ", ".join(clip(h, 30) for h in names[:8]) or "nothing"
            raise TraceError(f"{path}:1: no '{missing[0]}' column (the header has: {shown}): is this a "
                             f"{cfg.format} trace? check workload.trace.format")
        it, ii, io_ = names.index(time_col), names.index(in_col), names.index(out_col)
        need = max(it, ii, io_)
        for rec in reader:
            n = reader.line_num
            if not any(c.strip() for c in rec):
                continue
            if len(rec) <= need:
                raise TraceError(f"{path}:{n}: has {len(rec)} fields, the header {len(names)}: fix or remove the row")
            t = parse_time(rec[it], path, n)
            yield n, t, _tokens(rec[ii], path, n, in_col), _tokens(rec[io_], path, n, out_col), None, None, None
    except UnicodeDecodeError:
        raise TraceError(f"{path}:{reader.line_num + 1}: not UTF-8 text (here or a few lines on): save the trace "
                         "as UTF-8") from None
    except csv.Error as exc:
        raise TraceError(f"{path}:{reader.line_num}: not readable CSV ({clip(exc, 80)}): fix the row") from None
    finally:
        if not fh.closed:
            text.detach()  # the caller's `with` closes the file


_READERS = {"mooncake": _mooncake, "azure-csv": _csv_rows, "burstgpt-csv": _csv_rows, "slabench": _slabench}
