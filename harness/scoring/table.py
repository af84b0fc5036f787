"""Record table: the columnar form of a run's RequestRecords (records seam → scoring and reports).

One numpy array per field scoring reads (None → NaN), every ITL gap of every record in one float64
array with per-record counts, and the few strings scoring reports (error type, message, id) kept for
failed requests only. Built from RequestRecord objects here, or straight from requests.jsonl by
`harness.scoring.jsonl.load_table`; 1M records with 64 gaps each take ~0.6 GB instead of ~4 GB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np

from harness.records import RequestRecord

NAN = float("nan")
BLOCK = 1 << 18  # values per block when sweeping the ITL pool: ~2 MB arrays, never a full copy


def num_or_nan(x: Any) -> float:
    """float(x) when it is a finite number (or numeric string), else NaN — the scoring `_num` rule."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return NAN
    return v if math.isfinite(v) else NAN


@dataclass(frozen=True, eq=False)
class RecordTable:
    """Columns of n records in file order. Float columns hold NaN where the record had None."""

    sent_s: np.ndarray  # float64
    end_s: np.ndarray  # float64
    status: np.ndarray  # int64
    ok: np.ndarray  # bool
    scheduled_s: np.ndarray  # float64
    ttft_s: np.ndarray  # float64
    e2e_s: np.ndarray  # float64
    prompt_tokens: np.ndarray  # float64 (NaN: None)
    output_tokens: np.ndarray  # float64 (as recorded; int() where the scalar code truncated)
    itl: np.ndarray  # float64, every gap of every record; NaN where a gap was not a finite number
    itl_count: np.ndarray  # int64, len(itl_s) per record
    cap_wait_s: np.ndarray  # float64, NaN: did not wait for a max_in_flight slot
    requested_prompt_tokens: np.ndarray  # float64, NaN: not asked for (dataset prompt, later chat turn)
    requested_output_tokens: np.ndarray  # float64, NaN: not recorded
    server_prompt_s: np.ndarray  # float64, the server's prompt time (llama.cpp timings); NaN: it did not say
    server_decode_s: np.ndarray  # float64, the server's generation time after the prompt; NaN: it did not say
    server_prompt_tokens: np.ndarray  # float64, prompt tokens the server computed (llama.cpp prompt_n); NaN: not said
    server_cached_tokens: np.ndarray  # float64, prompt tokens it took from its prefix cache; NaN: not said
    err_index: np.ndarray  # int64, positions of the records with ok False
    err_type: list  # error_type of each of those (str | None)
    err_msg: list  # error of each (str | None)
    err_id: list  # request_id of each
    itl_all_finite: bool = False  # True when every value of `itl` is finite (pools skip the test)

    @property
    def n(self) -> int:
        return int(self.sent_s.size)

    def tpot(self) -> np.ndarray:
        """(e2e - ttft) / (output_tokens - 1) per record; NaN where RequestRecord.tpot_s is None."""
        valid = self.ok & ~np.isnan(self.ttft_s) & ~np.isnan(self.e2e_s) & (self.output_tokens >= 2)
        out = np.full(self.n, NAN)
        np.divide(self.e2e_s - self.ttft_s, self.output_tokens - 1, out=out, where=valid)
        return out

    def itl_pool(self, mask: np.ndarray) -> "ItlPool":
        """Every finite ITL gap of the records where mask is True (no copy of the values, no per-gap mask)."""
        return ItlPool(self.itl, mask, self.itl_count, all_finite=self.itl_all_finite)


class ItlPool:
    """A selection of a large float array read in blocks, so pooling 64M gaps never copies them all.

    `keep` (with `counts`) flags records: a record's `counts[i]` consecutive values are kept or not.
    Non-finite values are never part of the pool; `all_finite` says there are none (skips the test).
    """

    def __init__(self, values: np.ndarray, keep: np.ndarray | None = None, counts: np.ndarray | None = None,
                 all_finite: bool = False):
        self.values = values
        self.keep = keep
        self.starts = None if counts is None else np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))
        self.all_finite = all_finite
        self._n: int | None = None
        if all_finite:
            self._n = int(values.size if keep is None else np.asarray(counts)[keep].sum())

    @property
    def n(self) -> int:
        """How many values the pool holds (one sweep unless known, then cached)."""
        if self._n is None:
            self._n = sum(b.size for b in self.blocks())
        return self._n

    def blocks(self, size: int = BLOCK) -> Iterator[np.ndarray]:
        """The kept finite values, in order, as arrays of at most `size` (fresh, small copies)."""
        for i in range(0, self.values.size, size):
            v = self.values[i:i + size]
            m = None if self.all_finite else np.isfinite(v)
            if self.keep is not None:
                f = self._record_flags(i, i + v.size)
                m = f if m is None else m & f
            yield v.copy() if m is None else v[m]

    def _record_flags(self, i: int, j: int) -> np.ndarray:
        """Per-value flags for values [i, j) from per-record flags (records overlapping the block)."""
        st = self.starts
        r0 = int(np.searchsorted(st, i, side="right")) - 1
        r1 = int(np.searchsorted(st, j, side="left"))
        lens = np.minimum(st[r0 + 1:r1 + 1], j) - np.maximum(st[r0:r1], i)
        return np.repeat(self.keep[r0:r1], lens)


def as_pool(samples: Any) -> ItlPool:
    """A list / array of samples as a pool (finite values only), or the pool itself."""
    if isinstance(samples, ItlPool):
        return samples
    arr = np.asarray([v for v in samples if v is not None] if isinstance(samples, list) else samples, dtype=float)
    return ItlPool(arr.ravel())


def _f(v: Any) -> float:
    return NAN if v is None else float(v)


def from_records(records: Iterable[RequestRecord]) -> RecordTable:
    """The table of a list of RequestRecords (the object path: tests, callers holding records)."""
    recs = list(records)
    n = len(recs)
    col = lambda get, dtype=float: np.fromiter((get(r) for r in recs), dtype=dtype, count=n)  # noqa: E731
    counts = np.fromiter((len(r.itl_s or []) for r in recs), dtype=np.int64, count=n)
    itl = np.fromiter((num_or_nan(g) for r in recs for g in (r.itl_s or [])), dtype=float, count=int(counts.sum()))
    bad = [i for i, r in enumerate(recs) if not r.ok]
    return RecordTable(
        sent_s=col(lambda r: float(r.sent_s)), end_s=col(lambda r: float(r.end_s)),
        status=col(lambda r: int(r.status), np.int64), ok=col(lambda r: bool(r.ok), bool),
        scheduled_s=col(lambda r: _f(r.scheduled_s)), ttft_s=col(lambda r: num_or_nan(r.ttft_s)),
        e2e_s=col(lambda r: num_or_nan(r.e2e_s)), prompt_tokens=col(lambda r: _f(r.prompt_tokens)),
        output_tokens=col(lambda r: float(r.output_tokens or 0)), itl=itl, itl_count=counts,
        cap_wait_s=col(lambda r: _f(getattr(r, "cap_wait_s", None))),
        requested_prompt_tokens=col(lambda r: _f(r.requested_prompt_tokens)),
        requested_output_tokens=col(lambda r: _f(r.requested_output_tokens)),
        server_prompt_s=col(lambda r: num_or_nan(r.server_prompt_s)),
        server_decode_s=col(lambda r: num_or_nan(r.server_decode_s)),
        server_prompt_tokens=col(lambda r: num_or_nan(r.server_prompt_tokens)),
        server_cached_tokens=col(lambda r: num_or_nan(r.server_cached_tokens)),
        err_index=np.asarray(bad, dtype=np.int64), err_type=[recs[i].error_type for i in bad],
        err_msg=[recs[i].error for i in bad], err_id=[recs[i].request_id for i in bad],
        itl_all_finite=bool(np.isfinite(itl).all()))


def select(t: RecordTable, keep: np.ndarray) -> RecordTable:
    """The rows of `t` where `keep` is True (with their ITL gaps and error strings), in order."""
    bad_kept = keep[t.err_index]
    new_pos = np.cumsum(keep) - 1  # row i's index in the result, where kept
    itl = t.itl[np.repeat(keep, t.itl_count)]
    pick = lambda xs: [x for x, k in zip(xs, bad_kept.tolist()) if k]  # noqa: E731
    return RecordTable(
        sent_s=t.sent_s[keep], end_s=t.end_s[keep], status=t.status[keep], ok=t.ok[keep],
        scheduled_s=t.scheduled_s[keep], ttft_s=t.ttft_s[keep], e2e_s=t.e2e_s[keep],
        prompt_tokens=t.prompt_tokens[keep], output_tokens=t.output_tokens[keep], itl=itl,
        itl_count=t.itl_count[keep], cap_wait_s=t.cap_wait_s[keep],
        requested_prompt_tokens=t.requested_prompt_tokens[keep], requested_output_tokens=t.requested_output_tokens[keep],
        server_prompt_s=t.server_prompt_s[keep], server_decode_s=t.server_decode_s[keep],
        server_prompt_tokens=t.server_prompt_tokens[keep], server_cached_tokens=t.server_cached_tokens[keep],
        err_index=new_pos[t.err_index[bad_kept]].astype(np.int64),
        err_type=pick(t.err_type), err_msg=pick(t.err_msg), err_id=pick(t.err_id),
        itl_all_finite=bool(np.isfinite(itl).all()))


def table_of(run: Any) -> RecordTable:
    """The run's table: the one loaded with it, else built from run.records."""
    t = getattr(run, "table", None)
    return t if t is not None else from_records(run.records or [])
