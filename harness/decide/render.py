"""Render: matrix / sweep / compare documents (plain dicts) → self-contained HTML + strict JSON.

Jinja2 with autoescape (templates in `templates.py`, so they ship inside the package), matplotlib
Figures rendered to inline base64 PNGs, a CSP that forbids scripts; no network, fonts or files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from jinja2 import ChainableUndefined, Environment, DictLoader
from matplotlib.figure import Figure

from harness.decide.templates import TEMPLATES
from harness.report import fmt
from harness.report.plots import COLORS, png_b64
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
    env.filters.update(ms=_ms, usd=_usd, num=fmt.num, pct=fmt.pct, vclass=fmt.verdict_class)
    return env


def _write(path: Path, text: str) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def _write_json(path: Path, doc: dict) -> Path:
    return _write(path, json.dumps(json_safe(doc), indent=1, allow_nan=False) + "\n")


# ---------------------------------------------------------------- plots

def cost_latency_plot(rows: list[dict], latency_label: str, target_s: float | None) -> str | None:
    pts = [r for r in rows if r.get("cost") is not None and r.get("latency") is not None]
    if not pts:
        return None
    fig = Figure(figsize=(8.5, 4.2))
    ax = fig.subplots()
    for r in pts:
        c = VERDICT_COLORS.get(r.get("verdict"), "grey")
        ax.scatter(r["cost"], r["latency"] * 1000, color=c, s=60 if r.get("pareto") else 30,
                   edgecolors="black" if r.get("pareto") else "none", zorder=3)
        ax.annotate(r["id"], (r["cost"], r["latency"] * 1000), fontsize=7, xytext=(4, 3), textcoords="offset points")
    front = sorted((r for r in pts if r.get("pareto")), key=lambda r: r["cost"])
    if len(front) > 1:
        ax.step([r["cost"] for r in front], [r["latency"] * 1000 for r in front], where="post",
                color="black", lw=1, ls="--", label="Pareto frontier", zorder=2)
    if target_s is not None:
        ax.axhline(target_s * 1000, color=COLORS["fail"], lw=0.8, ls=":", label=f"SLA target {target_s * 1000:g} ms")
    for v, c in VERDICT_COLORS.items():
        ax.scatter([], [], color=c, label=v)
    ax.set(xlabel="cost, USD per 1k output tokens", ylabel=f"{latency_label} (ms)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="best")
    return png_b64(fig)


def sweep_plots(points: list[dict], capacity: float | None, axis: str) -> dict:
    """Latency vs load and goodput vs load, one marker per measured repeat."""
    if not points:
        return {}
    out = {}
    xs = [p["x"] for p in points]
    fig = Figure(figsize=(8.5, 3.6))
    ax = fig.subplots()
    for key, label, color in (("ttft_p99_s", "TTFT p99", PALETTE[0]), ("tpot_p99_s", "TPOT p99", PALETTE[1]),
                              ("e2e_p99_s", "E2E p99", PALETTE[2])):
        ys = [(p[key] or np.nan) * 1000 if p.get(key) is not None else np.nan for p in points]
        ax.scatter(xs, ys, color=color, s=14, label=label)
    if capacity:
        ax.axvline(capacity, color="black", ls="--", lw=0.8, label=f"capacity {capacity:.3g}")
    for p in points:
        if not p.get("passes"):
            ax.axvspan(p["x"] * 0.995, p["x"] * 1.005, color=COLORS["fail"], alpha=0.08)
    ax.set(xlabel=axis, ylabel="latency (ms)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    out["latency"] = png_b64(fig)
    fig = Figure(figsize=(8.5, 3.2))
    ax = fig.subplots()
    ax.scatter(xs, [p.get("request_rate_rps") or 0 for p in points], s=14, color=PALETTE[0], label="completed req/s")
    ax.scatter(xs, [p.get("goodput_rps") or 0 for p in points], s=14, color=PALETTE[2], label="goodput req/s")
    if capacity:
        ax.axvline(capacity, color="black", ls="--", lw=0.8)
    ax.set(xlabel=axis, ylabel="req/s")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    out["goodput"] = png_b64(fig)
    return out


def cdf_overlay(series: dict[str, list[float]], title: str) -> str | None:
    series = {k: np.sort(np.asarray(v, float)) for k, v in series.items() if len(v)}
    if not series:
        return None
    fig = Figure(figsize=(8.5, 3.2))
    ax = fig.subplots()
    for i, (name, arr) in enumerate(series.items()):
        q = np.arange(1, arr.size + 1) / arr.size
        ax.step(arr * 1000, q, where="post", color=PALETTE[i % len(PALETTE)], label=f"{name} (n={arr.size})")
    ax.set(xlabel=f"{title} (ms)", ylabel="fraction ≤ x", ylim=(0, 1.01))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return png_b64(fig)


# ---------------------------------------------------------------- documents

def write_matrix_report(out: Path, doc: dict) -> tuple[Path, Path]:
    lat = doc["latency_axis"]
    label = f"{lat['metric'].removesuffix('_s').upper()} {lat['stat']}"
    target = None
    for r in doc["variants"]:
        for m in r.get("misses") or []:
            if m["metric"] == lat["metric"] and m.get("stat") == lat["stat"]:
                target = m["target"]
    plot = cost_latency_plot(doc["variants"], label, target or doc.get("latency_target_s"))
    html = _env().get_template("matrix").render(d=doc, plot=plot, latency_label=label)
    return _write(out / "comparison.html", html), _write_json(out / "comparison.json", doc)


def write_sweep_report(out: Path, doc: dict) -> tuple[Path, Path]:
    plots = sweep_plots(doc["points"], doc.get("capacity"), doc["axis_label"])
    html = _env().get_template("sweep").render(d=doc, plots=plots)
    return _write(out / "sweep.html", html), _write_json(out / "sweep.json", doc)


def write_compare_report(out: Path, doc: dict, samples: dict[str, dict[str, list[float]]]) -> tuple[Path, Path]:
    titles = {"ttft_s": "TTFT", "tpot_s": "TPOT", "e2e_s": "E2E"}
    plots = {m: cdf_overlay({name: s.get(m) or [] for name, s in samples.items()}, t) for m, t in titles.items()}
    html = _env().get_template("compare").render(d=doc, plots={k: v for k, v in plots.items() if v}, titles=titles)
    return _write(out / "comparison.html", html), _write_json(out / "comparison.json", doc)
