"""Recovery section: summary.json `recovery` → the report's "Overload and recovery" rows (HTML, Markdown,
text) and its plot (one base64 PNG).

The plot has two panels on one clock (seconds since load start): the rolling window's value of the
first recovery row (p99 TTFT by default) against its limit, each window's verdict a coloured dot, and
the server's queue depth. The spike is shaded; SLA crossing, recovery and queue drain are marked.
"""

from __future__ import annotations

import numpy as np

from harness.report.fmt import DASH, axis_label, num, plural
from harness.report.plots import COLORS, FONT, fixed_margins, legend_above, page_figure, png_b64

STATE_COLORS = {"inside": COLORS["pass"], "outside": COLORS["fail"], "inconclusive": "#9e9e9e"}


def _secs(v) -> str:
    return DASH if v is None else f"{num(v)} s"


def recovery_rows(rec: dict | None) -> list[tuple[str, str, str]]:
    """(figure, value, detail) rows of the section; [] when the summary has no usable recovery."""
    if not rec or not rec.get("spike"):
        return []
    kinds = rec.get("shed_by_kind") or {}
    if rec.get("recovered"):
        ttr, how = _secs(rec.get("time_to_recover_s")), rec.get("reason") or "the rolling window is back inside the SLA"
    else:
        ttr, how = "not recovered", rec.get("reason") or "did not recover within the run"
    unit = rec.get("capacity_unit") or ""
    crossed = rec.get("capacity_crossed_at")
    return [
        ("time to recover", ttr, f"from the spike's end; {how}"),
        ("capacity crossed at", DASH if crossed is None else f"{num(crossed)} {unit}",
         "the SLA held until the spike ended" if crossed is None else
         f"offered load when a rolling window first left the SLA, {num(rec.get('capacity_crossed_t_s'))} s in"),
        ("shed", DASH if rec.get("shed_pct") is None else f"{num(rec['shed_pct'])} %",
         f"{rec.get('shed', 0)} of {plural(rec.get('requests'), 'requests')}: {kinds.get('http_429', 0)} × 429, "
         f"{kinds.get('http_503', 0)} × 503, {kinds.get('in_stream', 0)} overload errors inside a stream"),
        ("timeouts", DASH if rec.get("timeouts") is None else str(rec["timeouts"]), "requests the client gave up on"),
        ("peak queue depth", DASH if rec.get("peak_queue_depth") is None else num(rec["peak_queue_depth"]),
         f"waiting requests in the server's metrics; {num(rec.get('queue_depth_at_spike_end'))} when the spike ended"),
        ("queue drain", _secs(rec.get("drain_time_s")) if rec.get("drain_time_s") is not None else DASH,
         rec.get("queue_note") or f"from the spike's end to a queue depth of {num(rec.get('drain_queue_depth', 1))} "
         "or less"),
    ]


def recovery_lines(rec: dict | None) -> list[str]:
    """The section as plain lines (the CLI's text summary, summary.md)."""
    if not rec:
        return []
    if not rec.get("spike"):
        return [f"overload and recovery: {rec.get('reason') or 'not judged'}"]
    sp = rec["spike"]
    head = (f"overload and recovery (spike: stage {sp['stage']}, {num(sp['level'])} {sp['unit']} for "
            f"{num(sp['end_t_s'] - sp['start_t_s'])} s; rolling {num(rec.get('window_s'))} s window):")
    return [head] + [f"  {name}: {val} ({detail})" for name, val, detail in recovery_rows(rec)]


def recovery_plot(rec: dict | None, ts: dict | None) -> str | None:
    """recovery_figure as a base64 PNG; None without a judged recovery series."""
    fig = recovery_figure(rec, ts)
    return None if fig is None else png_b64(fig)


def _marks(ax, rec: dict, spike: dict) -> None:
    """Spike span, and vertical lines where the capacity was crossed and where the run recovered."""
    ax.axvspan(spike["start_t_s"], spike["end_t_s"], color=COLORS["alt"], alpha=0.12, lw=0,
               label="spike")
    if rec.get("capacity_crossed_t_s") is not None:
        ax.axvline(rec["capacity_crossed_t_s"], color=COLORS["fail"], ls=":", lw=1.0, label="SLA left")
    if rec.get("time_to_recover_s") is not None and rec.get("status") == "recovered":
        ax.axvline(spike["end_t_s"] + rec["time_to_recover_s"], color=COLORS["pass"], ls="--", lw=1.2,
                   label=f"recovered +{rec['time_to_recover_s']:g} s")


def recovery_figure(rec: dict | None, ts: dict | None) -> "object | None":
    series = (rec or {}).get("series") or {}
    spike = (rec or {}).get("spike")
    t = np.asarray(series.get("t_s") or [], dtype=float)
    if t.size == 0 or not spike:
        return None
    ts = ts or {}
    queue = ts.get("queue_depth")
    fig = page_figure(4.6 if queue else 2.6)
    axes = fig.subplots(2 if queue else 1, 1, sharex=True, squeeze=False)[:, 0]
    ax = axes[0]
    metric, stat = series.get("metric") or "", series.get("stat") or ""
    latency = metric != "error_rate_pct"
    scale = 1000.0 if latency else 1.0
    ys = np.asarray([np.nan if v is None else v for v in series.get("value") or []], dtype=float) * scale
    label = f"{axis_label(metric, 'ms') if latency else 'error rate (%)'}"
    ax.plot(t, ys, color=COLORS["line"], lw=1.2, label=f"{stat} of a rolling {rec.get('window_s'):g} s window")
    for state, color in STATE_COLORS.items():
        keep = np.asarray([s == state for s in series.get("state") or []], dtype=bool)
        if keep.size == t.size and keep.any():
            ax.scatter(t[keep], np.where(np.isnan(ys[keep]), 0.0, ys[keep]), s=9, color=color, zorder=3,
                       label=state)
    limit = series.get("limit")
    if limit is not None:
        ax.axhline(limit * scale, color=COLORS["fail"], lw=0.9, ls="-.", label=f"SLA {rec.get('threshold')}")
    err = series.get("error_rate_pct")
    if err and len(err) == t.size:  # the error-rate row on its own axis, 0-100 %
        ax2 = ax.twinx()
        ax2.plot(t, [np.nan if v is None else v for v in err], color=COLORS["alt"], lw=1.0, ls="--",
                 label="error rate (%)")
        ax2.set_ylim(0, 105)
        ax2.set_ylabel("error rate (%)", fontsize=FONT["axes"])
        ax2.legend_ = None
        extra = ax2.get_legend_handles_labels()
    else:
        extra = ([], [])
    _marks(ax, rec, spike)
    top = np.nanmax(np.concatenate([ys[np.isfinite(ys)], [(limit or 0) * scale, 1e-9]]))
    ax.set_ylim(0, top * 1.12)
    ax.set_ylabel(label, fontsize=FONT["axes"])
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles + extra[0], labels + extra[1], loc="lower left", bbox_to_anchor=(0, 1.0),
              ncol=len(handles) + len(extra[0]), frameon=False, fontsize=FONT["legend"] - 0.5, borderaxespad=0.2,
              handlelength=1.6, columnspacing=1.0)
    if queue:
        qa = axes[1]
        width = float(ts.get("bucket_s") or 1.0)
        qt = np.asarray(ts.get("t_s") or [], dtype=float) + width / 2
        qy = np.asarray([np.nan if v is None else v for v in queue], dtype=float)
        qa.plot(qt, qy, color=COLORS["line"], lw=1.2,
                label="queue depth" + (" (simulated)" if ts.get("server_simulated") else ""))
        _marks(qa, {"status": None}, spike)
        if rec.get("drain_time_s") is not None:
            qa.axvline(spike["end_t_s"] + rec["drain_time_s"], color=COLORS["pass"], ls="--", lw=1.2,
                       label=f"drained +{rec['drain_time_s']:.1f} s")
        qtop = np.nanmax(qy) if np.isfinite(qy).any() else 0.0
        qa.set_ylim(0, max(qtop, 1.0) * 1.12)
        qa.set_ylabel("waiting requests", fontsize=FONT["axes"])
        qa.grid(alpha=0.3)
        legend_above(qa)
    axes[-1].set_xlim(0, max(float(t[-1]), spike["end_t_s"]) + 1)
    axes[-1].set_xlabel("seconds since load start (each window ends at its point)", fontsize=FONT["axes"])
    fixed_margins(fig, left_in=0.8, right_in=0.6 if err else 0.2, top_in=0.35, bottom_in=0.5, hspace_in=0.45)
    return fig
