"""Stats: percentile summaries of one sample set (the seam every distribution metric goes through).

Percentiles are numpy's default `linear` method (type 7: linear interpolation between the two
closest ranks). A tail percentile (p99, p99.9) from fewer than the policy's `min_samples`
(MIN_TAIL_SAMPLES by default) is flagged: in the SLA such a row is INCONCLUSIVE.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

PERCENTILES: tuple[tuple[str, float], ...] = (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p99.9", 99.9))
TAIL_STATS = ("p99", "p99.9")
MIN_TAIL_SAMPLES = 100
PERCENTILE_METHOD = "numpy.percentile method='linear' (linear interpolation between closest ranks)"
STAT_KEYS = ("n", "mean", "min", "max") + tuple(k for k, _ in PERCENTILES)


def finite_array(values: Iterable[float | None]) -> np.ndarray:
    """Values as a float array with None, NaN and inf dropped."""
    if isinstance(values, np.ndarray):  # already numeric (RecordTable columns): no per-item Python loop
        arr = values.astype(float, copy=False).ravel()
        return arr[np.isfinite(arr)]
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    return arr[np.isfinite(arr)] if arr.size else arr


def is_insufficient(stat: str, n: int, min_samples: int = MIN_TAIL_SAMPLES) -> bool:
    """True when `stat` is a tail percentile computed from fewer than `min_samples` samples."""
    return stat in TAIL_STATS and n < min_samples


def requests_for(samples_needed: int, samples: int, requests: int) -> int | None:
    """Requests a run needs for `samples_needed` samples, from the observed samples per request
    (one per ok request for TTFT/TPOT/E2E, ~output tokens per request for ITL gaps; errors give none)."""
    if samples <= 0 or requests <= 0:
        return None
    return max(requests, math.ceil(samples_needed * requests / samples))


def describe(values: Iterable[float | None]) -> dict:
    """n, mean, min, max, p50…p99.9 of `values` (None everywhere when n == 0), plus `insufficient`."""
    arr = finite_array(values)
    n = int(arr.size)
    out: dict = {"n": n}
    if n == 0:
        out.update({k: None for k in ("mean", "min", "max")})
        out.update({k: None for k, _ in PERCENTILES})
    else:
        out["mean"] = float(arr.mean())
        out["min"] = float(arr.min())
        out["max"] = float(arr.max())
        qs = np.percentile(arr, [q for _, q in PERCENTILES])
        out.update({k: float(v) for (k, _), v in zip(PERCENTILES, qs)})
    out["insufficient"] = [s for s in TAIL_STATS if is_insufficient(s, n)]
    return out


def stat_of(desc: dict | None, stat: str) -> float | None:
    """One statistic from a `describe` dict; 'value' reads as the mean (for gauges)."""
    if not desc:
        return None
    key = "mean" if stat == "value" else stat
    v = desc.get(key)
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return None
    return float(v)


def safe_div(num: float, den: float) -> float | None:
    """num / den, or None when den is zero or not finite."""
    if den is None or not math.isfinite(den) or den == 0:
        return None
    return num / den


# ---- Exact percentiles of a pool too large to copy (tens of millions of pooled ITL gaps).
#
# np.percentile copies and partitions its input: for 64M gaps that is another 512 MB. Instead the
# order statistics numpy would read (the two ranks around each virtual index) are found by radix
# selection over the pool's blocks: values are mapped to unsigned keys with the same order, one
# sweep counts keys per 20-bit prefix, the buckets holding the wanted ranks are gathered (or
# refined by the next bits when huge, e.g. constant gaps) and partitioned. Same order statistics,
# same interpolation formula as numpy's `linear` method → the same numbers, in ~3 sweeps.
_SIGN = np.uint64(1 << 63)
_ROUND_BITS = (20, 20, 20, 4)  # 64 bits of key in 4 rounds; 2**20 counters per sweep
GATHER_MAX = 1 << 22  # a bucket this small is gathered and partitioned directly (32 MB at most)


def _ukeys(v: np.ndarray) -> np.ndarray:
    """float64 → uint64 with the same order (negatives: all bits flipped; positives: sign bit set)."""
    b = v.view(np.uint64)
    return np.where(b >= _SIGN, ~b, b | _SIGN)


def _unkey(k: int) -> float:
    b = np.array([k], dtype=np.uint64)
    b = np.where(b >= _SIGN, b & ~_SIGN, ~b)
    return float(b.view(np.float64)[0])


def _top_hist(block: np.ndarray) -> np.ndarray:
    return np.bincount((_ukeys(block) >> np.uint64(64 - _ROUND_BITS[0])).astype(np.int64), minlength=1 << _ROUND_BITS[0])


def order_stats(pool, ranks: Iterable[int], first: np.ndarray | None = None) -> dict[int, float]:
    """The exact k-th smallest values (0-based ranks) of an ItlPool, without copying the pool.

    `first`: the pool's histogram of top-20-bit keys when the caller already swept it (_top_hist).
    """
    pending = {int(r): (0, int(r)) for r in ranks}  # rank -> (key prefix above `shift`, rank within it)
    sizes = {0: pool.n}
    out: dict[int, float] = {}
    shift = 64
    for rnd, bits in enumerate(_ROUND_BITS):
        if not pending:
            break
        prefixes = sorted({p for p, _ in pending.values()})
        gather = [p for p in prefixes if sizes[p] <= GATHER_MAX and not (rnd == 0 and first is not None)]
        refine = [p for p in prefixes if p not in gather]
        got: dict[int, list] = {p: [] for p in gather}
        hist = {p: np.zeros(1 << bits, dtype=np.int64) for p in refine}
        low = shift - bits
        if rnd == 0 and first is not None:
            hist[0] = first
        else:
            for block in pool.blocks():
                k = _ukeys(block)
                top = k >> np.uint64(shift) if shift < 64 else np.zeros(k.size, dtype=np.uint64)
                for p in gather:
                    got[p].append(block[top == np.uint64(p)])
                for p in refine:
                    sel = k[top == np.uint64(p)]
                    hist[p] += np.bincount(((sel >> np.uint64(low)) & np.uint64((1 << bits) - 1)).astype(np.int64),
                                           minlength=1 << bits)
        for r, (p, local) in list(pending.items()):
            if p in got:
                vals = np.concatenate(got[p]) if got[p] else np.empty(0)
                want = sorted({lr for q, lr in pending.values() if q == p})
                vals.partition(want)
                out[r] = float(vals[local])
                del pending[r]
                continue
            cum = np.cumsum(hist[p])
            d = int(np.searchsorted(cum, local, side="right"))
            newp = (p << bits) | d
            sizes[newp] = int(hist[p][d])
            pending[r] = (newp, local - int(cum[d] - hist[p][d]))
        shift = low
    for r, (p, _) in pending.items():  # all 64 bits fixed: the bucket holds one key, one value
        out[r] = _unkey(p)
    return out


def pool_percentiles(pool, n: int, qs: list[float], first: np.ndarray | None = None) -> list[float]:
    """numpy.percentile(pool, qs) (method 'linear') from exact order statistics; n = pool size."""
    q = np.true_divide(np.asarray(qs, dtype=float), 100)
    virtual = (n - 1) * q  # numpy's virtual index for method "linear"
    prev = np.floor(virtual)
    prev[virtual >= n - 1] = -1
    prev[virtual < 0] = 0
    nxt = np.where(prev == -1, -1, prev + 1)
    prev_i, next_i = prev.astype(np.int64), nxt.astype(np.int64)
    gamma = virtual - prev_i
    pos = lambda i: n - 1 if i == -1 else int(i)  # noqa: E731
    vals = order_stats(pool, {pos(i) for i in np.concatenate((prev_i, next_i))}, first)
    res = []
    for a_i, b_i, t in zip(prev_i, next_i, gamma):
        a, b = np.float64(vals[pos(a_i)]), np.float64(vals[pos(b_i)])
        diff = b - a
        res.append(float(b - diff * (1 - t) if t >= 0.5 else a + diff * t))  # numpy's _lerp
    return res


def describe_pool(pool) -> dict:
    """describe() of an ItlPool: the same keys and numbers, with exact percentiles and no full copy.

    One sweep gives n, sum, min, max and the first radix histogram; two more find the percentiles.
    The mean adds block sums (numpy's pairwise sum within a block): equal to np.mean up to rounding.
    """
    if pool.values.size <= GATHER_MAX:
        return describe(np.concatenate(list(pool.blocks())) if pool.values.size else [])
    n, total, lo, hi = 0, 0.0, math.inf, -math.inf
    first = np.zeros(1 << _ROUND_BITS[0], dtype=np.int64)
    for b in pool.blocks():
        if b.size:
            n += b.size
            total += float(b.sum())
            lo, hi = min(lo, float(b.min())), max(hi, float(b.max()))
            first += _top_hist(b)
    pool._n = n
    if n == 0:
        return describe([])
    out: dict = {"n": n, "mean": total / n, "min": lo, "max": hi}
    qs = pool_percentiles(pool, n, [q for _, q in PERCENTILES], first)
    out.update({k: v for (k, _), v in zip(PERCENTILES, qs)})
    out["insufficient"] = [s for s in TAIL_STATS if is_insufficient(s, n)]
    return out
