"""Records: the data that crosses every seam (one request, one GPU sample, one server sample).

Load writes RequestRecords to `requests.jsonl` as requests complete; telemetry writes GpuSample and
ServerSample rows to CSV; scoring and reports read them back with `load_run`. All `*_s` times
that are not durations are seconds on `time.perf_counter()` (CLOCK_MONOTONIC, shared by every
process on one machine), so requests, GPU samples and server samples align on one clock.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence
from typing import Any, Iterable, Iterator

# Error classes a request can end with (None = success).
ERROR_TYPES = (
    "connect",
    "timeout",
    "http_4xx",
    "http_5xx",
    "overloaded_429",
    "overloaded_503",
    "stream_error",
    "malformed_stream",
    "short_output",
    # The server's answer is not HTTP (garbage on the port, broken chunked framing).
    "protocol_error",
    # Still in flight when the load stopped and not finished within load.drain_timeout_s: neither a
    # success nor a server error (scoring counts it apart); TTFT and tokens so far are kept.
    "cancelled_at_stop",
)
CANCELLED_AT_STOP = "cancelled_at_stop"


@dataclass
class RequestRecord:
    """One request as the client saw it. Durations in seconds; times on the monotonic clock."""

    request_id: str
    api: str  # openai-chat | openai-completions | tgi-generate-stream
    sent_s: float  # monotonic time the request bytes were handed to the socket
    end_s: float  # monotonic time the last byte (or the error) arrived
    status: int  # HTTP status; 0 when no response (connect error, timeout before headers)
    ok: bool
    scheduled_s: float | None = None  # open-loop: when it was meant to be sent
    first_token_s: float | None = None  # first chunk that carried generated text
    ttft_s: float | None = None
    e2e_s: float | None = None
    itl_s: list[float] = field(default_factory=list)  # every gap between text-carrying chunks
    prompt_tokens: int | None = None
    output_tokens: int = 0
    output_tokens_source: str = "chunks"  # "usage" (server said) or "chunks" (counted)
    requested_output_tokens: int | None = None
    finish_reason: str | None = None
    error_type: str | None = None
    error: str | None = None
    sent_unix_s: float | None = None  # wall clock, for humans and for cross-machine alignment
    user: str | None = None  # which simulated user / worker sent it
    turn: int | None = None  # multi-turn chat: 1-based turn within its session
    # Tokens each text chunk carried (first chunk first, one per ITL gap after it), from the server's
    # usage in every chunk (workload.usage_every_chunk); None when the server did not say.
    chunk_tokens: list[int] | None = None
    # Open loop: seconds the request waited for a max_in_flight slot after its due time (None: it did
    # not wait). Its schedule lag minus this is the client's own lag, so a saturated client and a
    # full cap are told apart.
    cap_wait_s: float | None = None
    # Re-sends on a new connection after the kept-alive one proved closed before any answer
    # (streams.StreamAccumulator.resend): the server's keep-alive behaviour, never an error.
    reconnects: int | None = None
    # Prompt tokens the workload asked for (synthetic prompts; None for dataset prompts and for the later
    # turns of a chat session, whose history was not asked for). `prompt_tokens` is what the server counted.
    requested_prompt_tokens: int | None = None
    # The server's own account of this request, where its last chunk carries one (llama.cpp `timings`;
    # None for vLLM, TGI and the sim): its prompt processing time (`prompt_ms`, the tokens it computed,
    # cache hits excluded) and its generation time after that (`predicted_ms`, for `predicted_n` tokens).
    server_prompt_s: float | None = None
    server_decode_s: float | None = None
    server_prompt_tokens: int | None = None  # timings.prompt_n: prompt tokens it computed
    server_cached_tokens: int | None = None  # prompt tokens it took from its cache (usage or timings.cache_n)
    server_output_tokens: int | None = None  # timings.predicted_n

    @property
    def tpot_s(self) -> float | None:
        """Time per output token after the first: (E2E - TTFT) / (output tokens - 1)."""
        if not self.ok or self.ttft_s is None or self.e2e_s is None or self.output_tokens < 2:
            return None
        return (self.e2e_s - self.ttft_s) / (self.output_tokens - 1)

    def to_json(self) -> str:
        # vars(), not dataclasses.asdict(): asdict deep-copies itl_s, which cost the Locust
        # client ~15 % of its CPU per request. Same keys, same order.
        return json.dumps(vars(self), separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RequestRecord":
        names = _FIELD_NAMES.get(cls)
        if names is None:  # computed once per class: dataclasses.fields() per record was ~20 % of load_run
            names = _FIELD_NAMES[cls] = frozenset(f.name for f in dataclasses.fields(cls))
        if d.keys() <= names:
            return cls(**d)
        return cls(**{k: v for k, v in d.items() if k in names})


_FIELD_NAMES: dict[type, frozenset[str]] = {}

# Validation of one record as read back (json path). A bigger time, duration or count than MAX_ABS
# is a corrupt line, not a measurement (1e12 s is ~31,700 years); NaN in an optional number reads
# as "not recorded", like null. The bulk reader (scoring.jsonl) applies the same rules in columns.
# Numbers scoring never reads (first_token_s, sent_unix_s, ...) are only checked to be numbers.
MAX_ABS = 1e12
NON_NEGATIVE = frozenset({"ttft_s", "e2e_s", "itl_s", "prompt_tokens", "output_tokens", "cap_wait_s",
                          "requested_output_tokens", "requested_prompt_tokens", "server_prompt_s", "server_decode_s",
                          "server_prompt_tokens", "server_cached_tokens"})
SCORED_NUMBERS = frozenset({"sent_s", "end_s", "status", "scheduled_s", "ttft_s", "e2e_s", "itl_s",
                            "prompt_tokens", "output_tokens", "chunk_tokens", "cap_wait_s",
                            "requested_output_tokens", "requested_prompt_tokens", "server_prompt_s",
                            "server_decode_s", "server_prompt_tokens", "server_cached_tokens"})
_KINDS = {f.name: str(f.type) for f in dataclasses.fields(RequestRecord)}
_REQUIRED = tuple(f.name for f in dataclasses.fields(RequestRecord)
                  if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)


def number_problem(name: str, v: Any, optional: bool = True) -> str | None:
    """Why `v` is not a usable number for field `name` (None: it is, or it is an allowed null)."""
    if v is None:
        return None if optional else f"'{name}' is missing"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return f"'{name}' is not a number"
    if name not in SCORED_NUMBERS:
        return None
    try:
        f = float(v)
    except OverflowError:
        return f"'{name}' is out of range"
    if f != f:
        return None if optional else f"'{name}' is not a number"
    if not abs(f) <= MAX_ABS:
        return f"'{name}' is out of range"
    if f < 0 and name in NON_NEGATIVE:
        return f"'{name}' is negative"
    return None


def record_problem(d: dict) -> str | None:
    """Why a JSON object is not a usable RequestRecord (first problem in field order), or None."""
    for name in _REQUIRED:
        if name not in d:
            return f"'{name}' is missing"
    for name, kind in _KINDS.items():
        if name not in d:  # an older writer's record: the field's default applies
            continue
        v = d[name]
        if kind in ("float", "int", "float | None", "int | None"):
            why = number_problem(name, v, optional="None" in kind)
        elif kind == "bool":
            why = None if isinstance(v, bool) else f"'{name}' is not true/false"
        elif kind.startswith("str"):
            why = None if isinstance(v, str) or (v is None and "None" in kind) else f"'{name}' is not a string"
        elif v is None:
            why = None if "None" in kind else f"'{name}' is not a list"
        elif not isinstance(v, list):
            why = f"'{name}' is not a list"
        else:
            why = next((w for x in v if (w := number_problem(name, x))), None)
        if why:
            return why
    if not (0 <= d["status"] <= 999 and float(d["status"]).is_integer()):
        return "'status' is not an HTTP status"
    if d["end_s"] < d["sent_s"]:
        return "'end_s' is before 'sent_s'"
    return None


def parse_record_line(line: bytes) -> tuple[RequestRecord | None, str | None]:
    """(record, None), (None, why it was skipped), or (None, None) for a blank line."""
    line = line.strip()
    if not line:
        return None, None
    try:
        d = json.loads(line.decode("utf-8"), strict=False)  # strict=False: raw control characters, as the bulk path
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except (ValueError, RecursionError):
        return None, "not valid JSON (a torn or corrupt line)"
    if not isinstance(d, dict):
        return None, "not a JSON object"
    why = record_problem(d)
    return (None, why) if why else (RequestRecord.from_dict(d), None)


@dataclass
class GpuSample:
    """One NVML (or simulated) reading of one GPU."""

    t_s: float
    gpu_index: int
    name: str
    util_gpu_pct: float | None = None  # % of the sample period a kernel was running (not SM occupancy)
    util_mem_pct: float | None = None  # % of the period device memory was read/written
    mem_used_bytes: int | None = None
    mem_total_bytes: int | None = None
    power_w: float | None = None
    energy_j: float | None = None  # cumulative energy counter, where the GPU has one
    temp_c: float | None = None
    sm_clock_mhz: float | None = None
    simulated: bool = False


@dataclass
class ServerSample:
    """One scrape of the server's own /metrics, mapped to one schema for vLLM, TGI and the sim."""

    t_s: float
    queue_depth: float | None = None
    running: float | None = None
    kv_usage_frac: float | None = None
    preemptions_total: float | None = None
    prompt_tokens_total: float | None = None  # cumulative since the server started (llama.cpp)
    output_tokens_total: float | None = None
    simulated: bool = False
    # vLLM's prefix cache counters, in prompt tokens looked up / found cached (cumulative; None: the
    # server exposes none, as TGI and llama.cpp). Last, so older server_metrics.csv files still load.
    prefix_cache_queries_total: float | None = None
    prefix_cache_hits_total: float | None = None


class RecordWriter:
    """Appends RequestRecords to a JSONL file, flushed at least every `flush_every_s` seconds.

    Thread-safe; a crash loses at most the records of the last flush interval.
    """

    def __init__(self, path: Path | str, flush_every_s: float = 1.0, clock=time.monotonic):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")
        self._lock = threading.Lock()
        self._flush_every_s = flush_every_s
        self._clock = clock
        self._last_flush = clock()
        self.count = 0

    def write(self, rec: RequestRecord) -> None:
        self.write_line(rec.to_json())

    def write_line(self, line: str) -> None:
        with self._lock:
            self._fh.write(line + "\n")
            self.count += 1
            now = self._clock()
            if now - self._last_flush >= self._flush_every_s:
                self._fh.flush()
                self._last_flush = now

    def flush(self) -> None:
        with self._lock:
            self._fh.flush()
            self._last_flush = self._clock()

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class JsonlTail:
    """Reads only the complete lines appended to a JSONL file since the last call (torn tail kept)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._offset = 0
        self._partial = b""

    def read(self) -> list[dict]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        out = []
        for line in lines:
            if line.strip():
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    out.append(obj)
        return out


def iter_records(path: Path | str, skips: Any = None) -> Iterator[RequestRecord]:
    """Read requests.jsonl; a torn last line (crash mid-write) or any unusable line is skipped, not
    fatal, and reported to `skips.add(line_no, why)` when given (runfolder.LineSkips)."""
    with open(path, "rb") as fh:
        for no, line in enumerate(fh, 1):
            rec, why = parse_record_line(line)
            if rec is not None:
                yield rec
            elif why and skips is not None:
                skips.add(no, why)


def write_csv(path: Path | str, rows: Iterable[Any], cls: type) -> int:
    """Write dataclass rows to CSV with a header from the dataclass fields."""
    names = [f.name for f in dataclasses.fields(cls)]
    n = 0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(names)
        for r in rows:
            w.writerow(["" if getattr(r, k) is None else getattr(r, k) for k in names])
            n += 1
    return n


def read_csv(path: Path | str, cls: type, skips: Any = None) -> list[Any]:
    """Read a CSV written by `write_csv` back into dataclass rows (missing file → []); rows that
    cannot be read are skipped and reported to `skips` (harness.runfolder.read_csv)."""
    from harness.runfolder import read_csv as _read_csv

    return _read_csv(path, cls, skips)


@dataclass
class RunResult:
    """Everything saved in one run folder, loaded back for scoring and reports.

    `table` (a harness.scoring.table.RecordTable) is the columnar form of the records when the run
    was loaded for scoring at scale; then `records` is a LazyRecords that parses the file on first use.
    `reader_notes`: one line per file the readers could only partly use (summary notes);
    `reader_problems`: why the run cannot be trusted as recorded (summary validity reasons).
    """

    run_dir: Path
    scenario: dict[str, Any]
    records: list[RequestRecord]
    gpu_samples: list[GpuSample]
    server_samples: list[ServerSample]
    meta: dict[str, Any]
    table: Any = None
    reader_notes: list[str] = field(default_factory=list)
    reader_problems: list[str] = field(default_factory=list)


class LazyRecords(Sequence):
    """requests.jsonl as a read-only list of RequestRecords, read (iter_records) on first access."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._items: list[RequestRecord] | None = None

    def _all(self) -> list[RequestRecord]:
        if self._items is None:
            try:
                self._items = list(iter_records(self.path)) if self.path.exists() else []
            except OSError:  # unreadable: write_reports has already said so
                self._items = []
        return self._items

    def __len__(self) -> int:
        return len(self._all())

    def __getitem__(self, i):
        return self._all()[i]

    def __iter__(self):
        return iter(self._all())


# Names of the files in a run folder (one place, so writers and readers agree).
SCENARIO_FILE = "scenario.yaml"
REQUESTS_FILE = "requests.jsonl"
GPU_FILE = "gpu.csv"
SERVER_FILE = "server_metrics.csv"
META_FILE = "meta.json"
SUMMARY_FILE = "summary.json"
BACKEND_LOG = "backend.log"


def load_run(run_dir: Path | str) -> RunResult:
    """Load a saved run folder with its records as objects (harness.runfolder.load_run).
    Raises runfolder.RunFolderError (a ConfigError, one line) when it is not a run folder."""
    from harness.runfolder import load_run as _load_run

    return _load_run(run_dir)


def load_run_parts(run_dir: Path | str) -> RunResult:
    """A run folder without its request records (records=[]): scenario, meta and samples, with
    what could not be read in reader_notes / reader_problems (harness.runfolder.load_run_parts)."""
    from harness.runfolder import load_run_parts as _load_parts

    return _load_parts(run_dir)
