"""Dashboard seam: the Grafana dashboard shipped as monitoring/grafana-dashboard.json, built here so
its queries can only name series the LiveExporter exposes (a test keeps the shipped file equal).

Panels follow the guide's section 4 (request rate, latency p99, GPU memory) plus TTFT, errors,
queue and tokens. Regenerate: `python -m harness.ops.dashboard > monitoring/grafana-dashboard.json`.
"""

from __future__ import annotations

import json
import sys

from harness.ops import exporter as m
from harness.ops.alerts import WINDOW, error_rate_expr, histogram_quantile

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _panel(pid: int, title: str, kind: str, targets: list[tuple[str, str]], unit: str, x: int, y: int,
           description: str, w: int = 12, h: int = 8) -> dict:
    return {
        "id": pid, "title": title, "type": kind, "description": description, "datasource": DATASOURCE,
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "targets": [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
                    for i, (expr, legend) in enumerate(targets)],
    }


def grafana_dashboard() -> dict:
    """A Grafana (schema 39) dashboard over the llm_* series, with a Prometheus datasource variable."""
    w = WINDOW
    panels = [
        _panel(1, "Request Rate", "timeseries",
               [(f"sum by (status) (rate({m.REQUESTS_TOTAL}[{w}]))", "{{status}}")], "reqps", 0, 0,
               "Requests per second by outcome: ok, error, and cancelled (in flight when a run stopped: "
               "neither) (guide: rate(llm_requests_total[5m]))."),
        _panel(2, "Latency P99", "timeseries",
               [(histogram_quantile(0.99, m.REQUEST_LATENCY), "e2e p99"),
                (histogram_quantile(0.5, m.REQUEST_LATENCY), "e2e p50")], "s", 12, 0,
               "End-to-end latency of ok requests (guide target p99 < 500 ms, alert > 1000 ms)."),
        _panel(3, "TTFT P99", "timeseries",
               [(histogram_quantile(0.99, m.TTFT), "ttft p99"), (histogram_quantile(0.5, m.TTFT), "ttft p50")],
               "s", 0, 8, "Time to first token of ok requests."),
        _panel(4, "Errors", "timeseries",
               [(error_rate_expr(w), "error rate %")], "percent", 12, 8,
               "Failed requests as a share of the finished ones, ok + error (cancelled at stop is neither) "
               "(guide target < 0.1 %, alert > 1 %)."),
        _panel(5, "GPU Memory", "gauge", [(m.GPU_MEMORY, "used")], "bytes", 0, 16,
               "GPU memory used, summed over the server's GPUs (guide: llm_gpu_memory_bytes).", w=8),
        _panel(6, "Queue Size", "timeseries", [(m.QUEUE_SIZE, "waiting")], "short", 8, 16,
               "Requests waiting in the server queue (guide target < 100, alert > 500).", w=8),
        _panel(7, "GPU Utilization", "timeseries", [(m.GPU_UTILIZATION, "util %")], "percent", 16, 16,
               "Mean GPU utilization (guide target > 80 %, alert < 50 %).", w=8),
        _panel(8, "Tokens per second", "timeseries",
               [(f"sum by (kind) (rate({m.TOKENS_TOTAL}[{w}]))", "{{kind}}")], "short", 0, 24,
               "Prompt and output tokens of ok requests per second.", w=24),
    ]
    return {
        "title": "slabench LLM serving", "uid": "slabench-llm", "tags": ["slabench", "llm"],
        "timezone": "browser", "schemaVersion": 39, "version": 1, "editable": True, "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "templating": {"list": [{"name": "datasource", "label": "Prometheus", "type": "datasource",
                                 "query": "prometheus", "current": {}, "hide": 0}]},
        "annotations": {"list": []},
        "panels": panels,
    }


def main_dashboard() -> str:
    """The dashboard as the JSON text shipped in monitoring/."""
    return json.dumps(grafana_dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    sys.stdout.write(main_dashboard())
