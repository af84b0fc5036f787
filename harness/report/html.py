"""HTML: one self-contained report.html (summary + run → jinja2 template, inline CSS, base64 PNG plots).

Autoescape is on and a Content-Security-Policy forbids scripts, so server and dataset strings render
as inert text; no network, fonts or files. An invalid run opens with an "INVALID RUN" banner.
"""

from __future__ import annotations

import functools

import json
import shlex
from pathlib import Path

import yaml
from jinja2 import ChainableUndefined, Environment, FileSystemLoader

from harness.records import SCENARIO_FILE, RunResult
from harness.report import fmt
from harness.report.plots import distribution_plot, timeseries_plot
from harness.scoring import scoring_window, table_of
from harness.scoring.metrics import in_window, table_distributions
from harness.scoring.stats import MIN_TAIL_SAMPLES

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
LATENCY_TITLES = {"ttft_s": "TTFT (time to first token)", "tpot_s": "TPOT (time per output token, per request)",
                  "itl_s": "ITL (every inter-chunk gap)", "e2e_s": "E2E (end-to-end latency)",
                  "schedule_lag_s": "Schedule lag (scheduled → sent)",
                  "ttft_from_schedule_s": "TTFT from the scheduled send time (open loop)",
                  "e2e_from_schedule_s": "E2E from the scheduled send time (open loop)"}


@functools.lru_cache(maxsize=1)
def make_env() -> Environment:
    """The jinja2 environment; built once per process, since compiling the template costs ~0.1 s
    (a matrix or sweep renders a report per point). It holds only the template and filters."""
    env = Environment(loader=FileSystemLoader(str(TEMPLATES_DIR)), autoescape=True,
                      undefined=ChainableUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=fmt.num, val=fmt.value, signed=fmt.signed, pct=fmt.pct, usd=fmt.usd,
                       vclass=fmt.verdict_class)
    env.globals.update(threshold=fmt.threshold)
    return env


def _scenario_text(run: RunResult) -> str:
    p = Path(run.run_dir) / SCENARIO_FILE if run.run_dir else None
    if p is not None and p.is_file():
        return p.read_text(encoding="utf-8", errors="replace")
    return yaml.safe_dump(run.scenario or {}, sort_keys=False)


def _command_line(meta: dict) -> str | None:
    cmd = (meta.get("backend") or {}).get("command") if isinstance(meta.get("backend"), dict) else None
    if isinstance(cmd, list):
        return shlex.join(str(c) for c in cmd)
    return str(cmd) if cmd else None


def build_plots(run: RunResult, summary: dict) -> dict:
    """Base64 PNGs: one per latency distribution present, plus the time-series stack.

    The summary's percentiles of each distribution are passed to the plot (p50/p99 lines, p99.9
    histogram clip), so a 64M-gap ITL pool is swept, not sorted again.
    """
    table = table_of(run)
    window = scoring_window(run.meta or {}, run.scenario or {}, table)
    dists = table_distributions(table, in_window(table, window))
    metrics = summary.get("metrics") or {}
    plots = {}
    for key, title in LATENCY_TITLES.items():
        img = distribution_plot(dists[key], key, "s", stats=metrics.get(key))
        if img:
            plots[key] = {"title": title, "png": img}
    return {"distributions": plots, "timeseries": timeseries_plot(summary.get("timeseries") or {})}


def _min_samples(summary: dict) -> int:
    """The tail-sample threshold the SLA used (the policy's min_samples; older summaries: the method's)."""
    for v in (((summary.get("sla") or {}).get("policy") or {}).get("min_samples"),
              (summary.get("method") or {}).get("min_tail_samples")):
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return MIN_TAIL_SAMPLES


def render_html(run: RunResult, summary: dict) -> str:
    """The report.html text for one run and its summary."""
    meta = run.meta if isinstance(run.meta, dict) else {}
    latency_keys = [k for k in LATENCY_TITLES if k in (summary.get("metrics") or {})]
    ctx = {
        "s": summary, "run": summary.get("run") or {}, "sla": summary.get("sla") or {},
        "plots": build_plots(run, summary), "latency_keys": latency_keys, "latency_titles": LATENCY_TITLES,
        "scenario_yaml": _scenario_text(run), "command_line": _command_line(meta),
        "meta_json": json.dumps(meta, indent=2, sort_keys=True, default=str),
        "backend": meta.get("backend") if isinstance(meta.get("backend"), dict) else {},
        "host": meta.get("host") if isinstance(meta.get("host"), dict) else {},
        "pcts": ["p50", "p90", "p95", "p99", "p99.9"],
        "overall": fmt.shown_overall(summary), "invalid_reasons": fmt.invalid_reasons(summary),
        "min_samples": _min_samples(summary),
    }
    return make_env().get_template("report.html.j2").render(**ctx)
