"""Plots: matplotlib (Agg, `Figure` objects, never pyplot) → inline base64 PNG strings for report.html.

One figure per plot, dropped after rendering; no global matplotlib state is touched. Distributions
are drawn as CDF + histogram side by side; time series as stacked panels on one shared clock. Figures
are WIDTH_IN × DPI = the page's content width in pixels, so the page shows them 1:1 (crisp text), and
every legend sits above its axes, never on the data.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.layout_engine import PlaceHolderLayoutEngine
from matplotlib.ticker import MaxNLocator

from harness.report.fmt import axis_label, metric_label, value
from harness.scoring.stats import pool_percentiles
from harness.scoring.table import ItlPool, as_pool

DPI = 100
WIDTH_IN = 10.5  # 1050 px: report.html's content width (max-width 1100 px less its padding)
FONT = {"axes": 9, "legend": 8, "title": 10}
MAX_CDF_POINTS = 2000
MAX_EXACT_SAMPLES = 1 << 21  # up to here a distribution is sorted whole (16 MB); beyond, swept in blocks
CDF_SAMPLE = 1 << 20  # values in the strided subsample a larger pool's CDF curve is drawn from
COLORS = {"pass": "#2e7d32", "warn": "#f9a825", "fail": "#c62828", "line": "#1f5fa8", "alt": "#e07b00"}


def png_b64(fig: Figure) -> str:
    """Render a Figure to a base64 PNG (data-URI payload). A figure with a layout engine (constrained)
    is saved at its own size (WIDTH_IN wide: the page shows it 1:1); others are trimmed to their ink."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    tight = None if fig.get_layout_engine() is not None else "tight"
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches=tight)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def page_figure(height_in: float, width_in: float = WIDTH_IN) -> Figure:
    """A figure as wide as the page's content, laid out so labels and outside legends fit."""
    return Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")


def fixed_margins(fig: Figure, *, left_in: float, right_in: float, top_in: float, bottom_in: float,
                  wspace_in: float = 0.0, hspace_in: float = 0.0) -> None:
    """Margins set in inches instead of by the constrained-layout solver. The report's figures have a
    known shape (labels, one legend row above each axes), and the solver measured every text twice per
    figure: about 40 % of rendering a report. The figure keeps its page width when saved."""
    fig.set_layout_engine(None)
    w, h = fig.get_size_inches()
    grid = fig.axes[0].get_subplotspec().get_gridspec() if fig.axes else None
    rows, cols = grid.get_geometry() if grid is not None else (1, 1)
    ax_w = (w - left_in - right_in - wspace_in * (cols - 1)) / cols
    ax_h = (h - top_in - bottom_in - hspace_in * (rows - 1)) / rows
    fig.subplots_adjust(left=left_in / w, right=1 - right_in / w, top=1 - top_in / h, bottom=bottom_in / h,
                        wspace=wspace_in / ax_w if cols > 1 else None, hspace=hspace_in / ax_h if rows > 1 else None)
    # A layout engine that does nothing: png_b64 then saves the figure at its page width, untrimmed.
    fig.set_layout_engine(PlaceHolderLayoutEngine(adjust_compatible=True, colorbar_gridspec=True))


def legend_above(ax, ncol: int | None = None) -> None:
    """The axes' legend in one row just above the plot area: it can never cover a data point."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=ncol or len(handles), frameon=False,
                  fontsize=FONT["legend"], borderaxespad=0.2, handlelength=1.8)


def _cdf_hist(fig: Figure, arr: np.ndarray, title: str, shown: str) -> None:
    """The exact panels from sorted, scaled samples (every pool up to MAX_EXACT_SAMPLES)."""
    ax1, ax2 = fig.subplots(1, 2)
    q = np.linspace(0, 1, min(arr.size, MAX_CDF_POINTS))
    xs = np.quantile(arr, q) if arr.size > MAX_CDF_POINTS else arr
    ys = q if arr.size > MAX_CDF_POINTS else np.arange(1, arr.size + 1) / arr.size
    ax1.step(xs, ys, where="post", color=COLORS["line"])
    for p, ls in ((50, ":"), (99, "--")):
        x = float(np.percentile(arr, p))
        ax1.axvline(x, color="grey", ls=ls, lw=0.9, label=f"p{p} = {_shown(x, shown)}")
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


def _shown(x: float, shown: str) -> str:
    """A percentile line's value in the axis unit ('41.5 ms')."""
    return value(x / 1000.0, "s") if shown == "ms" else value(x, shown)


def _cdf_labels(ax, title: str, shown: str) -> None:
    ax.set_xlabel(axis_label(title, shown), fontsize=FONT["axes"])
    ax.set_ylabel("fraction ≤ x", fontsize=FONT["axes"])
    ax.set_ylim(0, 1.01)
    legend_above(ax)
    ax.grid(alpha=0.3)


def _hist_labels(ax, title: str, shown: str, clipped: bool) -> None:
    ax.set_xlabel(axis_label(title, shown) + (", up to p99.9" if clipped else ""), fontsize=FONT["axes"])
    ax.set_ylabel("count", fontsize=FONT["axes"])
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
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
        x = st[f"p{p}"] * scale
        ax1.axvline(x, color="grey", ls=":" if p == 50 else "--", lw=0.9, label=f"p{p} = {_shown(x, shown)}")
    _cdf_labels(ax1, title, shown)
    edges = np.linspace(rng[0], rng[1], bins + 1) * scale
    ax2.hist(edges[:-1], bins=edges, weights=counts, color=COLORS["line"], alpha=0.8)
    _hist_labels(ax2, title, shown, st["max"] > hi)


def distribution_plot(samples, title: str, unit: str = "s", stats: dict | None = None) -> str | None:
    """distribution_figure as a base64 PNG; None when there are no samples."""
    fig = distribution_figure(samples, title, unit, stats)
    return None if fig is None else png_b64(fig)


def distribution_figure(samples, title: str, unit: str = "s", stats: dict | None = None) -> Figure | None:
    """CDF (left) and histogram (right) of one latency distribution; None when there are no samples.

    `samples`: a list, an array or an ItlPool; non-finite values are dropped. `title`: a metric key
    (ttft_s: shown as its label, "TTFT") or a label. `stats`, a describe() dict of the same samples,
    spares re-computing percentiles of a large pool.
    """
    pool = as_pool(samples)
    n = pool.n
    if n == 0:
        return None
    scale, shown = (1000.0, "ms") if unit == "s" else (1.0, unit)
    fig = page_figure(3.3)
    if n <= MAX_EXACT_SAMPLES:
        _cdf_hist(fig, np.sort(np.concatenate(list(pool.blocks()))) * scale, title, shown)
    else:
        _pool_panels(fig, pool, n, stats, title, shown, scale)
    fig.suptitle(f"{metric_label(title)}: n = {n:,}", fontsize=FONT["title"])
    # Room for: the suptitle and a legend row above the axes (top), tick labels and the x label (bottom),
    # the y labels (left of each axes).
    fixed_margins(fig, left_in=0.75, right_in=0.2, top_in=0.68, bottom_in=0.5, wspace_in=0.85)
    return fig


# Panels whose values are counts (integer ticks), and those that are percentages (0..100 axis).
COUNT_PANELS = {"in flight", "errors", "requests"}
PCT_PANELS = {"GPU util (%)", "KV cache (%)"}


def _panels(ts: dict) -> list[tuple[str, list[tuple[str, str]]]]:
    """(y label, [(column, legend)]) for every panel whose columns are present."""
    gsim = " (simulated)" if ts.get("gpu_simulated") else ""
    ssim = " (simulated)" if ts.get("server_simulated") else ""
    spec = [
        ("requests/s", [("offered_rps", "offered (sent or scheduled)"), ("achieved_rps", "achieved (ok completions)")]),
        ("in flight", [("in_flight", "in-flight requests (mean per bucket)")]),
        (axis_label("ttft_s", "ms"), [("ttft_p99_s", "TTFT p99 per bucket")]),
        ("errors", [("errors", "errors per bucket"), ("cancelled_at_stop", "cancelled at stop (not errors)")]),
        ("GPU util (%)", [("gpu_util_pct", "GPU utilization (mean over GPUs)" + gsim)]),
        ("GPU memory (GiB)", [("gpu_mem_used_gib", "GPU memory used (sum)" + gsim)]),
        ("GPU power (W)", [("gpu_power_w", "GPU power (sum)" + gsim)]),
        ("requests", [("queue_depth", "queue depth" + ssim), ("running", "running" + ssim)]),
        ("KV cache (%)", [("kv_usage_pct", "KV-cache usage" + ssim)]),
    ]
    return [(y, [(c, lab) for c, lab in cols if c in ts]) for y, cols in spec if any(c in ts for c, _ in cols)]


def _limits(ax, ylabel: str, top: float) -> None:
    """Every panel's quantity is >= 0: the y axis starts at 0, so a flat line reads as its level,
    not as noise magnified to fill the panel. A panel that is all zero gets 0..1 and says so;
    one with no value at all says that instead of showing empty axes."""
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=ylabel in COUNT_PANELS))
    if np.isnan(top):
        ax.set_ylim(0, 1)
        ax.text(0.5, 0.5, "no data in any bucket", transform=ax.transAxes, ha="center", va="center",
                color="grey", fontsize=FONT["axes"])
    elif top <= 0:
        ax.set_ylim(0, 1)
        what = "no errors" if ylabel == "errors" else "zero in every bucket"
        ax.text(0.5, 0.55, what, transform=ax.transAxes, ha="center", va="center", color="grey",
                fontsize=FONT["axes"] + 1)
    elif ylabel in PCT_PANELS:
        ax.set_ylim(0, max(100.0, top * 1.05))
    else:
        ax.set_ylim(0, top * 1.12)


def timeseries_plot(ts: dict) -> str | None:
    """timeseries_figure as a base64 PNG; None when nothing was recorded."""
    fig = timeseries_figure(ts)
    return None if fig is None else png_b64(fig)


def timeseries_figure(ts: dict) -> Figure | None:
    """Stacked time-series panels sharing the x axis (seconds since load start); warm-up/cool-down shaded."""
    t = np.asarray(ts.get("t_s") or [], dtype=float)
    panels = _panels(ts)
    if t.size == 0 or not panels:
        return None
    fig = page_figure(1.75 * len(panels) + 0.5)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    ws, we = ts.get("window_start_t_s"), ts.get("window_end_t_s")
    width = float(ts.get("bucket_s") or 1.0)
    for ax, (ylabel, cols) in zip(axes, panels):
        top = np.nan
        for i, (col, legend) in enumerate(cols):
            ys = np.asarray([np.nan if v is None else v for v in ts[col]], dtype=float)
            if col == "ttft_p99_s":
                ys = ys * 1000.0
            if not np.all(np.isnan(ys)):
                top = np.nanmax([top, np.nanmax(ys)])
            ax.plot(t + width / 2, ys, lw=1.2, marker="." if t.size < 60 else None,
                    color=COLORS["line"] if i == 0 else COLORS["alt"], label=legend)
        if ws is not None and ws > t[0]:
            ax.axvspan(t[0], ws, color="grey", alpha=0.15, lw=0)
        if we is not None and we < t[-1] + width:
            ax.axvspan(we, t[-1] + width, color="grey", alpha=0.15, lw=0)
        ax.set_ylabel(ylabel, fontsize=FONT["axes"])
        ax.grid(alpha=0.3)
        _limits(ax, ylabel, top)
        legend_above(ax)
    axes[-1].set_xlim(t[0], t[-1] + width)
    axes[-1].set_xlabel(f"seconds since load start ({width:g} s buckets; grey = warm-up / cool-down, not scored)",
                        fontsize=FONT["axes"])
    # A legend row above every panel (top and between panels), y labels on the left, x label at the bottom.
    fixed_margins(fig, left_in=0.8, right_in=0.2, top_in=0.3, bottom_in=0.5, hspace_in=0.32)
    return fig


# Label placement: candidate spots around each point, nearest first, right before left, and at
# growing distances; the first spot whose box overlaps no marker and no label placed so far wins.
_DIRECTIONS = ((1, 0), (1, 1), (1, -1), (-1, 0), (-1, 1), (-1, -1), (0, 1), (0, -1))
_RINGS_PX = (5.0, 14.0, 26.0, 40.0, 58.0, 80.0)


def _overlap(a: tuple, b: tuple) -> float:
    """Overlap area of two (x0, y0, x1, y1) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def line_boxes(xy: np.ndarray, step_px: float = 6.0, half_px: float = 2.0) -> list[tuple]:
    """Small boxes along a polyline (pixel vertices), for place_labels to keep numbers off a line."""
    out = []
    for (x0, y0), (x1, y1) in zip(xy[:-1], xy[1:]):
        n = max(1, int(np.hypot(x1 - x0, y1 - y0) // step_px))
        for f in np.linspace(0.0, 1.0, n + 1):
            x, y = x0 + f * (x1 - x0), y0 + f * (y1 - y0)
            out.append((x - half_px, y - half_px, x + half_px, y + half_px))
    return out


def place_labels(points: list[tuple[float, float]], sizes: list[tuple[float, float]], marker_px: float = 6.0,
                 bounds: tuple[float, float, float, float] | None = None,
                 obstacles: list[tuple] = ()) -> list[tuple[float, float]]:
    """Centre offsets (dx, dy, in pixels, y up) that keep every label off every marker, every
    obstacle box (x0, y0, x1, y1: a line, see line_boxes) and each other where the rings allow;
    otherwise the spot with the least overlap. A spot nearer another point than its own counts as
    half an overlap. `points`: marker centres in pixels; `sizes`: each label's (width, height) in
    pixels; `bounds`: the box labels must stay in."""
    markers = [(x - marker_px, y - marker_px, x + marker_px, y + marker_px) for x, y in points] + list(obstacles)
    placed: list[tuple] = []
    out = []
    for (x, y), (w, h) in zip(points, sizes):
        best, best_cost = None, None
        for ring in _RINGS_PX:
            for ux, uy in _DIRECTIONS:
                dx = ux * (marker_px + ring + w / 2) if ux else 0.0
                dy = uy * (marker_px + ring + h / 2) if uy else 0.0
                box = (x + dx - w / 2, y + dy - h / 2, x + dx + w / 2, y + dy + h / 2)
                cost = sum(_overlap(box, o) for o in placed + markers)
                cx, cy = x + dx, y + dy
                if any(np.hypot(px - cx, py - cy) < np.hypot(x - cx, y - cy) for px, py in points):
                    cost += w * h / 2  # nearer another point than its own: it would read as that one's
                if bounds is not None and (box[0] < bounds[0] or box[1] < bounds[1] or box[2] > bounds[2]
                                           or box[3] > bounds[3]):
                    cost += w * h  # outside the axes: as bad as covering one label
                if best_cost is None or cost < best_cost:
                    best, best_cost = (dx, dy, box), cost
                if cost == 0:
                    break
            if best_cost == 0:
                break
        placed.append(best[2])
        out.append((best[0], best[1]))
    return out
