"""Regression vs a baseline: each key metric's change against an earlier run's summary.json.

Pure. A change worse than the tolerance (default 10 %) in the metric's bad direction is a
regression, which `--gate` turns into exit 1; better by more than the tolerance is an improvement.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.config import ConfigError

BASELINE_FILE = "baseline_summary.json"  # copied into the run folder, so reports re-render alone
DEFAULT_TOLERANCE_PCT = 10.0

# (label, path in summary.json, better)
KEY_METRICS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("TTFT p50", ("metrics", "ttft_s", "p50"), "lower"),
    ("TTFT p99", ("metrics", "ttft_s", "p99"), "lower"),
    ("TPOT p50", ("metrics", "tpot_s", "p50"), "lower"),
    ("TPOT p99", ("metrics", "tpot_s", "p99"), "lower"),
    ("ITL p99", ("metrics", "itl_s", "p99"), "lower"),
    ("E2E p50", ("metrics", "e2e_s", "p50"), "lower"),
    ("E2E p99", ("metrics", "e2e_s", "p99"), "lower"),
    ("request rate", ("rates", "request_rate_rps"), "higher"),
    ("output tokens/s", ("rates", "output_token_rate_tps"), "higher"),
    ("goodput", ("rates", "goodput_rps"), "higher"),
    ("error rate %", ("rates", "error_rate_pct"), "lower"),
    ("cost per 1k output tokens", ("cost", "usd_per_1k_output_tokens"), "lower"),
)


def _get(d: Any, path: tuple[str, ...]) -> float | None:
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return float(d) if isinstance(d, (int, float)) and not isinstance(d, bool) else None


def load_baseline(ref: Path | str) -> dict:
    """A baseline from a run folder (its summary.json) or a summary.json path; one-line errors."""
    p = Path(ref)
    path = p / "summary.json" if p.is_dir() else p
    if not path.is_file():
        raise ConfigError(f"--baseline {ref}: no summary.json there (give a run folder or a summary.json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise ConfigError(f"--baseline {path}: not valid JSON") from None
    if not isinstance(data, dict) or "metrics" not in data:
        raise ConfigError(f"--baseline {path}: not a slabench summary.json (no 'metrics')")
    return data


def compare_to_baseline(current: dict, baseline: dict, tolerance_pct: float = DEFAULT_TOLERANCE_PCT) -> dict:
    """Rows of (metric, baseline, current, change %, verdict) and whether anything regressed."""
    rows = []
    for label, path, better in KEY_METRICS:
        base, cur = _get(baseline, path), _get(current, path)
        row = {"metric": label, "key": ".".join(path), "better": better, "baseline": base, "current": cur,
               "change_pct": None, "verdict": "not comparable"}
        if base is not None and cur is not None:
            if base == 0:
                change = 0.0 if cur == 0 else float("inf")
            else:
                change = (cur - base) / abs(base) * 100
            worse = change > tolerance_pct if better == "lower" else change < -tolerance_pct
            improved = change < -tolerance_pct if better == "lower" else change > tolerance_pct
            # An error rate going from 0 to anything is a regression whatever the percentage says.
            row.update(change_pct=None if change == float("inf") else change,
                       verdict="regressed" if worse else "improved" if improved else "within tolerance")
        rows.append(row)
    regressed = [r["metric"] for r in rows if r["verdict"] == "regressed"]
    return {"tolerance_pct": tolerance_pct, "baseline_run": (baseline.get("run") or {}).get("run_dir"),
            "baseline_started_utc": (baseline.get("run") or {}).get("started_utc"),
            "rows": rows, "regressed": regressed, "verdict": "REGRESSED" if regressed else "OK"}
