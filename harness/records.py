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
)


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
    simulated: bool = False


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


def iter_records(path: Path | str) -> Iterator[RequestRecord]:
    """Read requests.jsonl; a torn last line (crash mid-write) is skipped, not fatal."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                yield RequestRecord.from_dict(json.loads(line))
            except (json.JSONDecodeError, TypeError):
                continue


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


def read_csv(path: Path | str, cls: type) -> list[Any]:
    """Read a CSV written by `write_csv` back into dataclass rows (missing file → [])."""
    p = Path(path)
    if not p.exists():
        return []
    types = {f.name: f.type for f in dataclasses.fields(cls)}
    out = []
    with open(p, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            kw: dict[str, Any] = {}
            for k, v in row.items():
                if k not in types:
                    continue
                t = str(types[k])
                if v == "" and "None" in t:
                    kw[k] = None
                elif t.startswith("bool"):
                    kw[k] = v == "True"
                elif t.startswith("int"):
                    kw[k] = int(float(v))
                elif t.startswith("str"):
                    kw[k] = v
                else:
                    kw[k] = float(v)
            out.append(cls(**kw))
    return out


@dataclass
class RunResult:
    """Everything saved in one run folder, loaded back for scoring and reports.

    `table` (a harness.scoring.table.RecordTable) is the columnar form of the records when the run
    was loaded for scoring at scale; then `records` is a LazyRecords that parses the file on first use.
    """

    run_dir: Path
    scenario: dict[str, Any]
    records: list[RequestRecord]
    gpu_samples: list[GpuSample]
    server_samples: list[ServerSample]
    meta: dict[str, Any]
    table: Any = None


class LazyRecords(Sequence):
    """requests.jsonl as a read-only list of RequestRecords, read (iter_records) on first access."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._items: list[RequestRecord] | None = None

    def _all(self) -> list[RequestRecord]:
        if self._items is None:
            self._items = list(iter_records(self.path)) if self.path.exists() else []
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
    """Load a saved run folder. Raises FileNotFoundError naming what is missing."""
    run = load_run_parts(run_dir)
    req_path = run.run_dir / REQUESTS_FILE
    run.records = list(iter_records(req_path)) if req_path.exists() else []
    return run


def load_run_parts(run_dir: Path | str) -> RunResult:
    """A run folder without its request records (records=[]): scenario, meta and samples.

    The base of load_run, and of the columnar loader, which adds a RecordTable and LazyRecords.
    """
    import yaml  # local: keep records importable by the gevent side without extra work

    d = Path(run_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"run folder {d} does not exist")
    scen_path = d / SCENARIO_FILE
    if not scen_path.exists():
        raise FileNotFoundError(f"{scen_path} is missing: is {d} a slabench run folder?")
    scenario = yaml.safe_load(scen_path.read_text(encoding="utf-8")) or {}
    meta_path = d / META_FILE
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    return RunResult(
        run_dir=d,
        scenario=scenario,
        records=[],
        gpu_samples=read_csv(d / GPU_FILE, GpuSample),
        server_samples=read_csv(d / SERVER_FILE, ServerSample),
        meta=meta,
    )
