"""Render: matrix / sweep / compare documents (plain dicts) → self-contained HTML + strict JSON.

Jinja2 with autoescape (templates in `templates.py`, so they ship inside the package), matplotlib
Figures rendered to inline base64 PNGs, a CSP that forbids scripts; no network, fonts or files.
Figures are the page's content width; the matrix plot numbers its points (the table names them).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from jinja2 import ChainableUndefined, Environment, DictLoader
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from harness.decide.templates import TEMPLATES
from harness.report import fmt
from harness.report.plots import COLORS, DPI, legend_above, line_boxes, page_figure, place_labels, png_b64
from harness.scoring import json_safe

VERDICT_COLORS = {"PASS": COLORS["pass"], "WARN": COLORS["warn"], "FAIL": COLORS["fail"], "INCONCLUSIVE": "#5e35b1"}
PALETTE = ["#1f5fa8", "#e07b00", "#2e7d32", "#c62828", "#6a1b9a", "#00838f", "#5d4037", "#827717"]


def _ms(v) -> str:
    return "—" if v is None else f"{v * 1000:.1f} ms" if v < 10 else f"{v:.2f} s"


def _usd(v) -> str:
    return "—" if v is None else f"${v:.5f}" if v < 0.1 else f"${v:.2f}"


def _env() -> Environment:
    env = Environment(loader=DictLoader(TEMPLATES), autoescape=True, undefined=ChainableUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(ms=_ms, usd=_usd, num=fmt.num, pct=fmt.pct, vclass=fmt.verdict_class, val=fmt.value,
                       plural=fmt.plural)
    return env


def _write(path: Path, text: str) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def _write_json(path: Path, doc: dict) -> Path:
    return _write(path, json.dumps(json_safe(doc), indent=1, allow_nan=False) + "\n")


# ---------------------------------------------------------------- plots

PAGE_WIDTH_IN = 11.5  # 1150 px at plots.DPI: these pages' content width (max-width 1200 px less padding)


def _latency_tick(v: float, _pos=None) -> str:
    """A log-scale latency tick in ms: '200 ms', '1 s', '20 s'."""
    return f"{v:g} ms" if v < 1000 else f"{v / 1000:g} s"


def plot_numbers(rows: list[dict]) -> dict[str, int]:
    """Variant id → the number its point carries on the cost/latency plot (1, 2, … in table order;
    only variants with both a cost and a latency have a point)."""
    pts = [r for r in rows if r.get("cost") is not None and r.get("latency") is not None]
    return {r["id"]: i for i, r in enumerate(pts, 1)}


def cost_latency_plot(rows: list[dict], latency_label: str, target_s: float | None) -> str | None:
    """Cost per 1k output tokens vs latency (log), one numbered point per variant, Pareto frontier dashed.

    Variant names do not fit beside points that share a GPU price (same cost, close latencies), so
    each point carries its number from plot_numbers (the page's table says which variant it is),
    placed by plots.place_labels off every marker and every other number.
    """
    numbers = plot_numbers(rows)
    pts = [r for r in rows if r["id"] in numbers]
    if not pts:
        return None
    fig = Figure(figsize=(PAGE_WIDTH_IN, 5.4), dpi=DPI)
    # Fixed margins (no layout engine until the labels are placed): data → pixel stays as computed.
    fig.subplots_adjust(left=0.08, right=0.985, bottom=0.11, top=0.86)
    ax = fig.subplots()
    xs = np.array([r["cost"] for r in pts], float)
    ys = np.array([r["latency"] * 1000 for r in pts], float)
    for r, x, y in zip(pts, xs, ys):
        ax.scatter(x, y, color=VERDICT_COLORS.get(r.get("verdict"), "grey"), s=70 if r.get("pareto") else 40,
                   edgecolors="black" if r.get("pareto") else "white", linewidths=1.2 if r.get("pareto") else 0.6,
                   zorder=3)
    front = sorted((r for r in pts if r.get("pareto")), key=lambda r: r["cost"])
    steps = np.empty((0, 2))
    if len(front) > 1:  # a post step: across at each point's latency, then down to the next point's
        fx, fy = [r["cost"] for r in front], [r["latency"] * 1000 for r in front]
        steps = np.array([v for i in range(len(fx)) for v in ([(fx[i], fy[i])] if i == 0 else
                                                              [(fx[i], fy[i - 1]), (fx[i], fy[i])])])
        ax.plot(steps[:, 0], steps[:, 1], color="black", lw=1, ls="--", label="Pareto frontier", zorder=2)
    if target_s is not None:
        ax.axhline(target_s * 1000, color=COLORS["fail"], lw=0.9, ls=":",
                   label=f"SLA target {_latency_tick(target_s * 1000)}")
    for v, c in VERDICT_COLORS.items():
        ax.scatter([], [], color=c, label=v)
    span = float(xs.max() - xs.min()) or max(float(xs.max()) * 0.2, 1e-9)
    ax.set_xlim(max(0.0, float(xs.min()) - 0.06 * span), float(xs.max()) + 0.1 * span)
    lo, hi = float(ys.min()), float(ys.max())
    if target_s is not None:
        lo, hi = min(lo, target_s * 1000), max(hi, target_s * 1000)
    ax.set_yscale("log")
    ax.set_ylim(lo / 1.8, hi * 1.8)
    ax.yaxis.set_major_formatter(FuncFormatter(_latency_tick))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"${v:.6g}"))
    px = ax.transData.transform(np.column_stack([xs, ys]))
    size = 9.0  # points
    sizes = [(0.62 * size * len(str(numbers[r["id"]])) * DPI / 72 + 4, size * 1.25 * DPI / 72) for r in pts]
    box = ax.get_window_extent()
    lines = line_boxes(ax.transData.transform(steps)) if len(steps) else []  # numbers stay off the lines
    if target_s is not None:
        ty = ax.transData.transform((xs[0], target_s * 1000))[1]
        lines += line_boxes(np.array([(box.x0, ty), (box.x1, ty)]))
    offsets = place_labels([tuple(p) for p in px], sizes, marker_px=6.0, bounds=(box.x0, box.y0, box.x1, box.y1),
                           obstacles=lines)
    for i, (r, x, y, (dx, dy)) in enumerate(zip(pts, xs, ys, offsets)):
        # A leader line when the number sits nearer another point than its own (clustered points).
        far = int(np.argmin(np.hypot(px[:, 0] - (px[i, 0] + dx), px[:, 1] - (px[i, 1] + dy)))) != i
        ax.annotate(str(numbers[r["id"]]), (x, y), xytext=(dx * 72 / DPI, dy * 72 / DPI), textcoords="offset points",
                    ha="center", va="center", fontsize=size, fontweight="bold", zorder=4,
                    arrowprops=dict(arrowstyle="-", lw=0.6, color="grey", shrinkA=0, shrinkB=4) if far else None)
    ax.set_xlabel("cost, USD per 1k output tokens", fontsize=10)
    ax.set_ylabel(f"{latency_label} (log scale)", fontsize=10)
    ax.grid(alpha=0.3, which="major")
    ax.grid(alpha=0.12, which="minor")
    legend_above(ax)
    return png_b64(fig)


def sweep_plots(points: list[dict], capacity: float | None, axis: str) -> dict:
    """Latency vs load and goodput vs load, one marker per measured repeat."""
    if not points:
        return {}
    out = {}
    xs = [p["x"] for p in points]
    fig = page_figure(3.8, PAGE_WIDTH_IN)
    ax = fig.subplots()
    positive = False  # a log axis needs one value above 0 (a point that scored no request has none)
    for key, label, color in (("ttft_p99_s", "TTFT p99", PALETTE[0]), ("tpot_p99_s", "TPOT p99", PALETTE[1]),
                              ("e2e_p99_s", "E2E latency p99", PALETTE[2])):
        ys = [(p[key] or np.nan) * 1000 if p.get(key) is not None else np.nan for p in points]
        positive |= any(np.isfinite(y) and y > 0 for y in ys)
        ax.scatter(xs, ys, color=color, s=18, label=label)
    if capacity:
        ax.axvline(capacity, color="black", ls="--", lw=0.8, label=f"capacity {capacity:.3g}")
    for p in points:
        if not p.get("passes"):
            ax.axvspan(p["x"] * 0.995, p["x"] * 1.005, color=COLORS["fail"], alpha=0.08)
    ax.set(xlabel=axis, ylabel="latency (log scale)" if positive else "latency")
    if positive:
        ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(_latency_tick))
    ax.grid(alpha=0.3, which="both")
    legend_above(ax)
    out["latency"] = png_b64(fig)
    fig = page_figure(3.4, PAGE_WIDTH_IN)
    ax = fig.subplots()
    ax.scatter(xs, [p.get("request_rate_rps") or 0 for p in points], s=18, color=PALETTE[0], label="completed req/s")
    ax.scatter(xs, [p.get("goodput_rps") or 0 for p in points], s=18, color=PALETTE[2], label="goodput req/s")
    if capacity:
        ax.axvline(capacity, color="black", ls="--", lw=0.8, label=f"capacity {capacity:.3g}")
    ax.set(xlabel=axis, ylabel="req/s")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    legend_above(ax)
    out["goodput"] = png_b64(fig)
    return out


def cdf_overlay(series: dict[str, list[float]], metric: str) -> str | None:
    """One CDF per run of a latency metric (key: ttft_s), legend above the axes."""
    series = {k: np.sort(np.asarray(v, float)) for k, v in series.items() if len(v)}
    if not series:
        return None
    fig = page_figure(3.4, PAGE_WIDTH_IN)
    ax = fig.subplots()
    for i, (name, arr) in enumerate(series.items()):
        q = np.arange(1, arr.size + 1) / arr.size
        ax.step(arr * 1000, q, where="post", color=PALETTE[i % len(PALETTE)], label=f"{name} (n = {arr.size:,})")
    ax.set(xlabel=fmt.axis_label(metric, "ms"), ylabel="fraction ≤ x", ylim=(0, 1.01))
    ax.grid(alpha=0.3)
    legend_above(ax, ncol=min(len(series), 4))
    return png_b64(fig)


# ---------------------------------------------------------------- documents

def write_matrix_report(out: Path, doc: dict) -> tuple[Path, Path]:
    lat = doc["latency_axis"]
    label = fmt.metric_label(lat["metric"], lat["stat"])
    target = None
    for r in doc["variants"]:
        for m in r.get("misses") or []:
            if m["metric"] == lat["metric"] and m.get("stat") == lat["stat"]:
                target = m["target"]
    plot = cost_latency_plot(doc["variants"], label, target or doc.get("latency_target_s"))
    html = _env().get_template("matrix").render(d=doc, plot=plot, latency_label=label,
                                                 plot_no=plot_numbers(doc["variants"]))
    return _write(out / "comparison.html", html), _write_json(out / "comparison.json", doc)


def write_sweep_report(out: Path, doc: dict) -> tuple[Path, Path]:
    plots = sweep_plots(doc["points"], doc.get("capacity"), doc["axis_label"])
    html = _env().get_template("sweep").render(d=doc, plots=plots)
    return _write(out / "sweep.html", html), _write_json(out / "sweep.json", doc)


def write_compare_report(out: Path, doc: dict, samples: dict[str, dict[str, list[float]]]) -> tuple[Path, Path]:
    titles = {m: fmt.metric_label(m) for m in ("ttft_s", "tpot_s", "e2e_s")}
    plots = {m: cdf_overlay({name: s.get(m) or [] for name, s in samples.items()}, m) for m in titles}
    html = _env().get_template("compare").render(d=doc, plots={k: v for k, v in plots.items() if v}, titles=titles)
    return _write(out / "comparison.html", html), _write_json(out / "comparison.json", doc)
