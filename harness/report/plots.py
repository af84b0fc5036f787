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

DPI = 80
MAX_CDF_POINTS = 2000
COLORS = {"pass": "#2e7d32", "warn": "#f9a825", "fail": "#c62828", "line": "#1f5fa8", "alt": "#e07b00"}


def png_b64(fig: Figure) -> str:
    """Render a Figure to a base64 PNG (data-URI payload)."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def distribution_plot(samples: list[float], title: str, unit: str = "s") -> str | None:
    """CDF (left) and histogram (right) of one latency distribution; None when there are no samples."""
    arr = np.asarray(samples, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return None
    scale, shown = (1000.0, "ms") if unit == "s" else (1.0, unit)
    arr = np.sort(arr) * scale
    fig = Figure(figsize=(9, 2.8))
    ax1, ax2 = fig.subplots(1, 2)
    q = np.linspace(0, 1, min(arr.size, MAX_CDF_POINTS))
    xs = np.quantile(arr, q) if arr.size > MAX_CDF_POINTS else arr
    ys = q if arr.size > MAX_CDF_POINTS else np.arange(1, arr.size + 1) / arr.size
    ax1.step(xs, ys, where="post", color=COLORS["line"])
    for p, ls in ((50, ":"), (99, "--")):
        ax1.axvline(np.percentile(arr, p), color="grey", ls=ls, lw=0.8, label=f"p{p}")
    ax1.set(xlabel=f"{title} ({shown})", ylabel="fraction ≤ x", ylim=(0, 1.01))
    ax1.legend(loc="lower right", fontsize=7)
    ax1.grid(alpha=0.3)
    hi = np.percentile(arr, 99.9)
    clipped = arr[arr <= hi] if hi > arr[0] else arr
    lo, hi = float(clipped[0]), float(clipped[-1])
    if hi - lo <= 1e-9 * max(1.0, abs(hi)):  # (near-)constant samples: one visible bar, not a numpy error
        pad = max(abs(lo) * 0.01, 1e-9)
        bins, rng = 1, (lo - pad, hi + pad)
    else:
        bins, rng = min(50, max(5, clipped.size // 5)), (lo, hi)
    ax2.hist(clipped, bins=bins, range=rng, color=COLORS["line"], alpha=0.8)
    ax2.set(xlabel=f"{title} ({shown})" + (", x ≤ p99.9" if clipped.size < arr.size else ""), ylabel="count")
    ax2.grid(alpha=0.3)
    fig.suptitle(f"{title}: n = {arr.size}", fontsize=10)
    return png_b64(fig)


def _panels(ts: dict) -> list[tuple[str, list[tuple[str, str]]]]:
    """(y label, [(column, legend)]) for every panel whose columns are present."""
    gsim = " (simulated)" if ts.get("gpu_simulated") else ""
    ssim = " (simulated)" if ts.get("server_simulated") else ""
    spec = [
        ("req/s", [("offered_rps", "offered (sent or scheduled)"), ("achieved_rps", "achieved (ok completions)")]),
        ("in flight", [("in_flight", "in-flight requests (mean per bucket)")]),
        ("TTFT p99 (ms)", [("ttft_p99_s", "TTFT p99 per bucket")]),
        ("errors", [("errors", "errors per bucket")]),
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
