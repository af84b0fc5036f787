"""Alert rules seam: an SLA policy → a Prometheus alerting-rules file over the exporter's metric names.

Each judgeable row gives two rules with the same reading as scoring's `judge`: target breached →
severity warning, alert threshold breached → severity critical. Rows no Prometheus series can
express (goodput) are listed as comments in `main_alerts`' YAML text, never silently dropped.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from harness.config import METRICS, SlaPolicy, SlaRow, load_sla
from harness.ops import exporter as m

WINDOW = "5m"  # rate / quantile window
FOR_WARNING, FOR_CRITICAL = "10m", "5m"  # the worse breach fires sooner
HISTOGRAM_OF = {"ttft_s": m.TTFT, "e2e_s": m.REQUEST_LATENCY, "tpot_s": m.TPOT, "itl_s": m.ITL}
GAUGE_OF = {"queue_depth": m.QUEUE_SIZE, "gpu_utilization_pct": m.GPU_UTILIZATION}
QUANTILE_OF_STAT = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p99.9": 0.999, "max": 1.0, "min": 0.0}
OVER_TIME = {"mean": "avg_over_time", "max": "max_over_time", "min": "min_over_time"}


def histogram_quantile(q: float, histogram: str, window: str = WINDOW) -> str:
    return f"histogram_quantile({q:g}, sum by (le) (rate({histogram}_bucket[{window}])))"


def error_rate_expr(window: str = WINDOW) -> str:
    """Errors as a % of the finished requests (ok + error): cancelled-at-stop ones are neither, as in scoring."""
    return (f'100 * sum(rate({m.REQUESTS_TOTAL}{{status="{m.STATUS_ERROR}"}}[{window}])) '
            f'/ sum(rate({m.REQUESTS_TOTAL}{{status=~"{m.FINISHED_STATUS_RE}"}}[{window}]))')


def row_expr(row: SlaRow, window: str = WINDOW) -> str | None:
    """The PromQL value of one SLA row (same unit as the row), or None when no series expresses it."""
    metric, stat = row.metric, row.stat
    if metric in HISTOGRAM_OF:
        h = HISTOGRAM_OF[metric]
        if stat == "mean":
            return f"sum(rate({h}_sum[{window}])) / sum(rate({h}_count[{window}]))"
        return histogram_quantile(QUANTILE_OF_STAT[stat], h, window)
    if metric in GAUGE_OF:
        g = GAUGE_OF[metric]
        if stat == "value":
            return g
        if stat in OVER_TIME:
            return f"{OVER_TIME[stat]}({g}[{window}])"
        return f"quantile_over_time({QUANTILE_OF_STAT[stat]:g}, {g}[{window}])"
    if metric == "request_rate_rps":
        return f'sum(rate({m.REQUESTS_TOTAL}{{status="{m.STATUS_OK}"}}[{window}]))'
    if metric == "error_rate_pct":
        return error_rate_expr(window)
    if metric == "output_token_rate_tps":
        return f'sum(rate({m.TOKENS_TOTAL}{{kind="output"}}[{window}]))'
    if metric == "total_token_rate_tps":
        return f"sum(rate({m.TOKENS_TOTAL}[{window}]))"
    return None  # goodput_rps needs per-request SLO checks: not a Prometheus series


def _camel(text: str) -> str:
    return "".join(w[:1].upper() + w[1:] for w in re.split(r"[^A-Za-z0-9]+", text) if w)


def _name(row: SlaRow) -> str:
    metric = row.metric.rsplit("_", 1)[0] if row.metric.endswith(("_s", "_pct", "_rps", "_tps")) else row.metric
    stat = "" if row.stat == "value" else row.stat.replace(".", "")
    return "Llm" + _camel(metric) + _camel(stat)


def _rules_for(row: SlaRow, expr: str, policy: str, seen: dict[str, int]) -> list[dict]:
    unit = METRICS[row.metric][1]
    base = _name(row)
    seen[base] = seen.get(base, 0) + 1
    if seen[base] > 1:
        base += str(seen[base])
    lower = row.better == "lower"
    # judge(): lower → PASS if v < target, FAIL if v > alert; higher → PASS if v > target, FAIL if v < alert.
    warn_op, crit_op = (">=", ">") if lower else ("<=", "<")
    word = "above" if lower else "below"
    out = []
    for severity, op, threshold, kind, for_ in (("warning", warn_op, row.target, "Target", FOR_WARNING),
                                                ("critical", crit_op, row.alert, "Alert", FOR_CRITICAL)):
        out.append({
            "alert": f"{base}{'Above' if lower else 'Below'}{kind}",
            "expr": f"({expr}) {op} {threshold:g}",
            "for": for_,
            "labels": {"severity": severity, "slo_policy": policy, "slo_metric": row.metric, "slo_stat": row.stat},
            "annotations": {
                "summary": f"{row.title} {word} the SLA {kind.lower()} ({threshold:g} {unit})",
                "description": (f"{row.title} is {{{{ $value | printf \"%.4g\" }}}} {unit} over the last {WINDOW}; "
                                f"SLA policy '{policy}': target {row.target:g}, alert {row.alert:g} {unit} "
                                f"({'lower' if lower else 'higher'} is better)."),
            },
        })
    return out


def alert_rules(policy: SlaPolicy) -> dict:
    """A Prometheus rules file (dict) for every row of `policy` a series can express."""
    rules: list[dict] = []
    seen: dict[str, int] = {}
    for row in policy.rows:
        expr = row_expr(row)
        if expr is not None:
            rules += _rules_for(row, expr, policy.name, seen)
    return {"groups": [{"name": f"slabench-sla-{policy.name}", "rules": rules}]}


def skipped_rows(policy: SlaPolicy) -> list[str]:
    """Titles of the rows no rule could be written for."""
    return [row.title for row in policy.rows if row_expr(row) is None]


def main_alerts(policy_path: str | Path) -> str:
    """YAML text of the rules for a policy file or shipped name (what `slabench alerts` prints)."""
    policy = load_sla(policy_path)
    head = [f"# Prometheus alerting rules generated by `slabench alerts` from SLA policy '{policy.name}'.",
            f"# {policy.description}" if policy.description else "",
            "# Regenerate instead of editing. Metrics: `slabench run --prometheus-port PORT` (llm_* names).",
            "# warning = the target is breached; critical = the alert threshold is breached."]
    head += [f"# not expressible as a Prometheus rule (skipped): {t}" for t in skipped_rows(policy)]
    body = yaml.safe_dump(alert_rules(policy), sort_keys=False, width=120, allow_unicode=True)
    return "\n".join(h for h in head if h) + "\n" + body
