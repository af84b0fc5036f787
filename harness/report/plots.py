"""Plots: matplotlib (Agg, `Figure` objects, never pyplot) → inline base64 PNG strings for report.html.

One figure per plot, dropped after rendering; no global matplotlib state is touched. Distributions
are drawn as CDF + histogram side by side; time series as stacked panels on one shared clock.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness.scoring.stats import pool_percentiles
from harness.scoring.table import ItlPool, as_pool

DPI = 80
MAX_CDF_POINTS = 2000
MAX_EXACT_SAMPLES = 1 << 21  # up to here a distribution is sorted whole (16 MB); beyond, swept in blocks
CDF_SAMPLE = 1 << 20  # values in the strided subsample a larger pool's CDF curve is drawn from
COLORS = {"pass": "#2e7d32", "warn": "#f9a825", "fail": "#c62828", "line": "#1f5fa8", "alt": "#e07b00"}


def png_b64(fig: Figure) -> str:
    """Render a Figure to a base64 PNG (data-URI payload)."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _cdf_hist(fig: Figure, arr: np.ndarray, title: str, shown: str) -> None:
    """The exact panels from sorted, scaled samples (every pool up to MAX_EXACT_SAMPLES)."""
    ax1, ax2 = fig.subplots(1, 2)
    q = np.linspace(0, 1, min(arr.size, MAX_CDF_POINTS))
    xs = np.quantile(arr, q) if arr.size > MAX_CDF_POINTS else arr
    ys = q if arr.size > MAX_CDF_POINTS else np.arange(1, arr.size + 1) / arr.size
    ax1.step(xs, ys, where="post", color=COLORS["line"])
    for p, ls in ((50, ":"), (99, "--")):
        ax1.axvline(np.percentile(arr, p), color="grey", ls=ls, lw=0.8, label=f"p{p}")
    _cdf_labels(ax1, title, shown)
    hi = np.percentile(arr, 99.9)
    clipped = arr[arr <= hi] if hi > arr[0] else arr
    lo, hi = float(clipped[0]), float(clipped[-1])
    bins, rng = _bins(lo, hi, clipped.size)
    ax2.hist(clipped, bins=bins, range=rng, color=COLORS["line"], alpha=0.8)
    _hist_labels(ax2, title, shown, clipped.size < arr.size)


def _bins(lo: float, hi: float, n: int) -> tuple[int, tuple[float, float]]:
    if hi - lo <= 1e-9 * max(1.0, abs(hi)):  # (near-)constant samples: one visible bar, not a numpy error
        pad = max(abs(lo) * 0.01, 1e-9)
        return 1, (lo - pad, hi + pad)
    return min(50, max(5, n // 5)), (lo, hi)


def _cdf_labels(ax, title: str, shown: str) -> None:
    ax.set(xlabel=f"{title} ({shown})", ylabel="fraction ≤ x", ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=7)
    ax.grid(alpha=0.3)


def _hist_labels(ax, title: str, shown: str, clipped: bool) -> None:
    ax.set(xlabel=f"{title} ({shown})" + (", x ≤ p99.9" if clipped else ""), ylabel="count")
    ax.grid(alpha=0.3)


def _pool_panels(fig: Figure, pool: ItlPool, n: int, stats: dict | None, title: str, shown: str,
                 scale: float) -> None:
    """The same panels from a pool too large to sort or copy (tens of millions of ITL gaps), in one sweep.

    Percentile lines use the exact percentiles (the summary's, else computed by radix selection);
    the histogram counts every sample up to p99.9 in 50 bins over [min, p99.9] (the exact path's
    range ends at the largest sample <= p99.9, a hair below). Only the CDF curve is drawn from an
    evenly strided subsample of ~CDF_SAMPLE values: at 720 px wide it is the full curve.
    """
    keys = ("p50", "p99", "p99.9", "min", "max")
    st = {k: (stats or {}).get(k) for k in keys}
    if any(v is None for v in st.values()) or (stats or {}).get("n") != n:
        st = dict(zip(("p50", "p99", "p99.9"), pool_percentiles(pool, n, [50, 99, 99.9])))
        st["min"] = min(float(b.min()) for b in pool.blocks() if b.size)
        st["max"] = max(float(b.max()) for b in pool.blocks() if b.size)
    hi = st["p99.9"] if st["p99.9"] > st["min"] else st["max"]
    bins, rng = _bins(st["min"], hi, n)
    counts = np.zeros(bins, dtype=np.int64)
    step = max(1, n // CDF_SAMPLE)
    sub, seen = [], 0
    for b in pool.blocks():
        sub.append(b[(-seen) % step::step].copy())  # a copy: a view would keep the whole block alive
        seen += b.size
        counts += np.histogram(b, bins=bins, range=rng)[0]
    cdf = np.sort(np.concatenate(sub)) * scale
    ax1, ax2 = fig.subplots(1, 2)
    q = np.linspace(0, 1, MAX_CDF_POINTS)
    ax1.step(np.quantile(cdf, q), q, where="post", color=COLORS["line"])
    for p in (50, 99):
        ax1.axvline(st[f"p{p}"] * scale, color="grey", ls=":" if p == 50 else "--", lw=0.8, label=f"p{p}")
    _cdf_labels(ax1, title, shown)
    edges = np.linspace(rng[0], rng[1], bins + 1) * scale
    ax2.hist(edges[:-1], bins=edges, weights=counts, color=COLORS["line"], alpha=0.8)
    _hist_labels(ax2, title, shown, st["max"] > hi)


def distribution_plot(samples, title: str, unit: str = "s", stats: dict | None = None) -> str | None:
    """CDF (left) and histogram (right) of one latency distribution; None when there are no samples.

    `samples`: a list, an array or an ItlPool; non-finite values are dropped. `stats`, a describe()
    dict of the same samples, spares re-computing percentiles of a large pool.
    """
    pool = as_pool(samples)
    n = pool.n
    if n == 0:
        return None
    scale, shown = (1000.0, "ms") if unit == "s" else (1.0, unit)
    fig = Figure(figsize=(9, 2.8))
    if n <= MAX_EXACT_SAMPLES:
        _cdf_hist(fig, np.sort(np.concatenate(list(pool.blocks()))) * scale, title, shown)
    else:
        _pool_panels(fig, pool, n, stats, title, shown, scale)
    fig.suptitle(f"{title}: n = {n}", fontsize=10)
    return png_b64(fig)


def _panels(ts: dict) -> list[tuple[str, list[tuple[str, str]]]]:
    """(y label, [(column, legend)]) for every panel whose columns are present."""
    gsim = " (simulated)" if ts.get("gpu_simulated") else ""
    ssim = " (simulated)" if ts.get("server_simulated") else ""
    spec = [
        ("req/s", [("offered_rps", "offered (sent or scheduled)"), ("achieved_rps", "achieved (ok completions)")]),
        ("in flight", [("in_flight", "in-flight requests (mean per bucket)")]),
        ("TTFT p99 (ms)", [("ttft_p99_s", "TTFT p99 per bucket")]),
        ("errors", [("errors", "errors per bucket"), ("cancelled_at_stop", "cancelled at stop (not errors)")]),
        ("GPU util %", [("gpu_util_pct", "GPU utilization (mean over GPUs)" + gsim)]),
        ("GPU mem GiB", [("gpu_mem_used_gib", "GPU memory used (sum)" + gsim)]),
        ("GPU power W", [("gpu_power_w", "GPU power (sum)" + gsim)]),
        ("queue", [("queue_depth", "queue depth" + ssim), ("running", "running" + ssim)]),
        ("KV cache %", [("kv_usage_pct", "KV-cache usage" + ssim)]),
    ]
    return [(y, [(c, lab) for c, lab in cols if c in ts]) for y, cols in spec if any(c in ts for c, _ in cols)]


def timeseries_plot(ts: dict) -> str | None:
    """Stacked time-series panels sharing the x axis (seconds since load start); warm-up/cool-down shaded."""
    t = np.asarray(ts.get("t_s") or [], dtype=float)
    panels = _panels(ts)
    if t.size == 0 or not panels:
        return None
    fig = Figure(figsize=(9, 1.6 * len(panels) + 0.6))
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    ws, we = ts.get("window_start_t_s"), ts.get("window_end_t_s")
    width = float(ts.get("bucket_s") or 1.0)
    for ax, (ylabel, cols) in zip(axes, panels):
        for i, (col, legend) in enumerate(cols):
            ys = np.asarray([np.nan if v is None else v for v in ts[col]], dtype=float)
            if col == "ttft_p99_s":
                ys = ys * 1000.0
            ax.plot(t + width / 2, ys, lw=1.2, marker="." if t.size < 60 else None,
                    color=COLORS["line"] if i == 0 else COLORS["alt"], label=legend)
        if ws is not None and ws > t[0]:
            ax.axvspan(t[0], ws, color="grey", alpha=0.15, lw=0)
        if we is not None and we < t[-1] + width:
            ax.axvspan(we, t[-1] + width, color="grey", alpha=0.15, lw=0)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=7)
    axes[-1].set_xlabel(f"seconds since load start ({width:g} s buckets; grey = warm-up / cool-down, not scored)")
    return png_b64(fig)
