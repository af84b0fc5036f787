"""Replay section: summary.json `replay` → the report's "Trace replay" rows and its arrival-rate plot.

The plot sets the trace's arrival rate (its offsets x time_scale, the records' due times) against the
rate requests really went out, per bin, so a dispatcher or max_in_flight that fell behind shows as a gap.
"""

from __future__ import annotations

import numpy as np

from harness.report.fmt import DASH, num
from harness.report.plots import COLORS, FONT, fixed_margins, legend_above, page_figure, png_b64


def _pct(v) -> str:
    return DASH if v is None else f"{100 * v:.1f} %"


def replay_rows(rp: dict | None) -> list[tuple[str, str, str]]:
    """(figure, value, detail) rows; [] for a run that replayed nothing."""
    if not rp:
        return []
    fmt, scale = rp.get("format"), rp.get("time_scale")
    rows = [("trace", str(rp.get("path") or DASH), f"format {fmt}, time_scale {num(scale)}"
             + (f", from {num(rp.get('start_s'))} s" if rp.get("start_s") else "")
             + (f", {num(100 * rp['sample_sessions'])} % of sessions" if rp.get("sample_sessions") else "")),
            ("requests sent", num(rp.get("sent_entries")), f"{num(rp.get('rows_read'))} rows read"
             + (f", {rp['rows_sampled_out']} left out by sample_sessions" if rp.get("rows_sampled_out") else "")
             + (f", {rp['lengths_raised_to_one']} zero lengths sent as 1 token" if rp.get("lengths_raised_to_one") else "")),
            ("expected prefix reuse", _pct(rp.get("expected_reuse")),
             f"share of the sent requests' {num(rp.get('blocks'))} blocks of {num(rp.get('block_tokens'))} tokens "
             "whose hash id came earlier" if rp.get("expected_reuse") is not None else "the trace carries no block hashes"),
            ("prefix-cache hit rate", _pct(rp.get("prefix_cache_hit_rate")),
             f"{rp.get('prefix_cache_hit_rate_source') or 'server counters'} over the scored window "
             "(prompt tokens found cached / tokens looked up)")]
    return rows


def replay_lines(rp: dict | None) -> list[str]:
    """The section as plain lines (summary.md, the CLI's text summary)."""
    if not rp:
        return []
    return ["trace replay:"] + [f"  {a}: {b} ({c})" for a, b, c in replay_rows(rp)] + \
        ([f"  {rp['note']}"] if rp.get("note") else [])


def replay_plot(rp: dict | None) -> str | None:
    fig = replay_figure(rp)
    return None if fig is None else png_b64(fig)


def replay_figure(rp: dict | None):
    arr = (rp or {}).get("arrival") or {}
    t = np.asarray(arr.get("t_s") or [], dtype=float)
    if t.size == 0:
        return None
    width = float(arr.get("bin_s") or 1.0)
    fig = page_figure(2.4)
    ax = fig.subplots(1, 1)
    edges = np.append(t, t[-1] + width)  # each bin drawn over its whole width, the first one included

    def bins(key: str) -> np.ndarray:
        y = np.asarray(arr.get(key) or [0.0] * t.size, dtype=float)
        return np.append(y, y[-1])

    ax.step(edges, bins("recorded_rps"), where="post", color=COLORS["alt"], lw=1.4, label="recorded (trace x time_scale)")
    ax.step(edges, bins("achieved_rps"), where="post", color=COLORS["line"], lw=1.0, ls="--", label="achieved (sent)")
    top = max(max(arr.get("recorded_rps") or [0]), max(arr.get("achieved_rps") or [0]), 1e-9)
    ax.set_ylim(0, top * 1.15)
    ax.set_xlim(0, float(t[-1]) + width)
    ax.set_ylabel(f"requests/s ({width:g} s bins)", fontsize=FONT["axes"])
    ax.set_xlabel("seconds since load start", fontsize=FONT["axes"])
    ax.grid(alpha=0.3)
    legend_above(ax)
    fixed_margins(fig, left_in=0.8, right_in=0.2, top_in=0.35, bottom_in=0.5)
    return fig
