"""Stats: percentile summaries of one sample set (the seam every distribution metric goes through).

Percentiles are numpy's default `linear` method (type 7: linear interpolation between the two
closest ranks). A tail percentile (p99, p99.9) from fewer than MIN_TAIL_SAMPLES samples is flagged.
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
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    return arr[np.isfinite(arr)] if arr.size else arr


def is_insufficient(stat: str, n: int) -> bool:
    """True when `stat` is a tail percentile computed from too few samples to trust."""
    return stat in TAIL_STATS and n < MIN_TAIL_SAMPLES


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
