"""HTML: one self-contained report.html (summary + run → jinja2 template, inline CSS, base64 PNG plots).

Autoescape is on and a Content-Security-Policy forbids scripts, so server and dataset strings render
as inert text; no network, fonts or files. An invalid run opens with an "INVALID RUN" banner. The
scenario is shown with only the load fields of the run's mode (scenario.yaml keeps them all).
"""

from __future__ import annotations

import functools
import json
import shlex
from pathlib import Path

import numpy as np
import yaml
from jinja2 import ChainableUndefined, Environment, FileSystemLoader

from harness.config.errors import ConfigError, parse_yaml
from harness.records import SCENARIO_FILE, RunResult
from harness.report import fmt
from harness.report.plots import distribution_plot, timeseries_plot
from harness.report.recovery import recovery_plot, recovery_rows
from harness.report.replay import replay_plot, replay_rows
from harness.scoring import scoring_window, table_of
from harness.scoring.metrics import in_window, table_distributions
from harness.scoring.stats import MIN_TAIL_SAMPLES
from harness.scoring.table import as_pool

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
# Section titles: the metric's label (fmt.METRIC_LABELS, as on the plots) and what it measures.
LATENCY_TITLES = {k: f"{fmt.metric_label(k)} ({what})" for k, what in (
    ("ttft_s", "time to first token"), ("tpot_s", "time per output token, per request"),
    ("itl_s", "every inter-chunk gap"), ("e2e_s", "end to end"), ("schedule_lag_s", "scheduled → sent"),
    ("ttft_from_schedule_s", "open loop: measured from the scheduled send time"),
    ("e2e_from_schedule_s", "open loop: measured from the scheduled send time"))}


@functools.lru_cache(maxsize=1)
def make_env() -> Environment:
    """The jinja2 environment; built once per process, since compiling the template costs ~0.1 s
    (a matrix or sweep renders a report per point). It holds only the template and filters."""
    env = Environment(loader=FileSystemLoader(str(TEMPLATES_DIR)), autoescape=True,
                      undefined=ChainableUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=fmt.num, val=fmt.value, signed=fmt.signed, pct=fmt.pct, usd=fmt.usd,
                       vclass=fmt.verdict_class, plural=fmt.plural, label=fmt.metric_label,
                       count=fmt.count)
    env.globals.update(threshold=fmt.threshold, regression_cells=fmt.regression_cells)
    return env


# Load fields that mean something in one mode only (harness.config.scenario.LoadConfig).
OPEN_ONLY = ("rate_rps", "arrival", "burstiness", "max_in_flight", "stages")
CLOSED_ONLY = ("users", "spawn_rate", "think_time_s", "think_time_max_s", "user_stages")


def shown_scenario(scenario: dict) -> tuple[dict, list[str]]:
    """The scenario without the load fields of the other mode (a closed-loop run shows no rate_rps,
    an open-loop one no users; burstiness only for gamma arrivals), and the names left out."""
    load = scenario.get("load") if isinstance(scenario, dict) else None
    if not isinstance(load, dict):
        return scenario, []
    mode = load.get("mode") or "closed"
    drop = set(CLOSED_ONLY if mode == "open" else OPEN_ONLY)
    if mode == "open" and load.get("arrival", "poisson") != "gamma":
        drop.add("burstiness")
    hidden = [k for k in load if k in drop]
    return {**scenario, "load": {k: v for k, v in load.items() if k not in drop}}, hidden


def _scenario_text(run: RunResult) -> tuple[str, list[str]]:
    """The resolved scenario as YAML for the page, and the load fields left out of it."""
    p = Path(run.run_dir) / SCENARIO_FILE if run.run_dir else None
    text = None
    if p is not None and p.is_file():
        text = p.read_text(encoding="utf-8", errors="replace")
        try:  # the config reader's bounded parse: an alias bomb is refused, never dumped back out
            data = parse_yaml(text, SCENARIO_FILE)
        except ConfigError:  # shown as saved: a damaged file is evidence too
            return text, []
    else:
        data = run.scenario or {}
    if not isinstance(data, dict):
        return text if text is not None else yaml.safe_dump(data), []
    shown, hidden = shown_scenario(data)
    if not hidden and text is not None:
        return text, []
    return yaml.safe_dump(shown, sort_keys=False, allow_unicode=True, width=1000), hidden


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
    return {"distributions": plots, "timeseries": timeseries_plot(summary.get("timeseries") or {}),
            "itl_zero": zero_gaps(dists["itl_s"]),
            "recovery": recovery_plot(summary.get("recovery"), summary.get("timeseries")),
            "replay": replay_plot(summary.get("replay"))}


def zero_gaps(itl) -> dict | None:
    """How many ITL gaps are exactly 0 (of how many), or None when none is.

    The client stamps every byte of one socket read with that read's arrival time
    (harness.load.streams), so text chunks that arrive in the same read are 0 s apart: the server
    (or a proxy) flushed them together. They are real gaps of the stream as the client saw it.
    """
    pool = as_pool(itl)
    zeros = sum(int(np.count_nonzero(b == 0)) for b in pool.blocks())
    if not zeros:
        return None
    return {"n": zeros, "of": pool.n, "pct": 100.0 * zeros / pool.n}


def _min_samples(summary: dict) -> int:
    """The tail-sample threshold the SLA used (the policy's min_samples; older summaries: the method's)."""
    for v in (((summary.get("sla") or {}).get("policy") or {}).get("min_samples"),
              (summary.get("method") or {}).get("min_tail_samples")):
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return MIN_TAIL_SAMPLES


def zero_gap_text(z: dict | None) -> str:
    """The note next to ITL's 'min 0 ms'."""
    if not z:
        return ""
    return (f"{z['n']:,} of {fmt.plural(z['of'], 'gaps')} ({fmt.num(z['pct'])} %) are 0 ms: text chunks that "
            "arrived in one network read (the client times each read once), so the server flushed them together. "
            "They stay in the ITL pool: that is the stream as a user receives it.")


def _mode(run: RunResult) -> str:
    load = (run.scenario or {}).get("load") if isinstance(run.scenario, dict) else None
    return str((load or {}).get("mode") or "closed") if isinstance(load, dict) else "closed"


def render_html(run: RunResult, summary: dict) -> str:
    """The report.html text for one run and its summary."""
    meta = run.meta if isinstance(run.meta, dict) else {}
    latency_keys = [k for k in LATENCY_TITLES if k in (summary.get("metrics") or {})]
    scenario_yaml, scenario_hidden = _scenario_text(run)
    host = dict(meta["host"]) if isinstance(meta.get("host"), dict) else {}
    version = (summary.get("run") or {}).get("slabench_version") or host.get("slabench")
    host.pop("slabench", None)  # shown once, as the run's slabench version
    plots = build_plots(run, summary)
    ctx = {
        "s": summary, "run": summary.get("run") or {}, "sla": summary.get("sla") or {},
        "plots": plots, "itl_zero_text": zero_gap_text(plots.get("itl_zero")),
        "latency_keys": latency_keys, "latency_titles": LATENCY_TITLES,
        "scenario_yaml": scenario_yaml, "scenario_hidden": scenario_hidden, "load_mode": _mode(run),
        "command_line": _command_line(meta), "slabench_version": version,
        "meta_json": json.dumps(meta, indent=2, sort_keys=True, default=str),
        "backend": meta.get("backend") if isinstance(meta.get("backend"), dict) else {},
        "host": host,
        "pcts": ["p50", "p90", "p95", "p99", "p99.9"],
        "overall": fmt.shown_overall(summary), "invalid_reasons": fmt.invalid_reasons(summary),
        "min_samples": _min_samples(summary),
        "recovery_rows": recovery_rows(summary.get("recovery")),
        "replay_rows": replay_rows(summary.get("replay")),
    }
    return make_env().get_template("report.html.j2").render(**ctx)
