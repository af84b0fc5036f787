"""`slabench compare RUN_DIR RUN_DIR...`: saved runs side by side, differences and which are beyond noise.

Seam: run folders (summary.json + requests.jsonl, read only) → `compare_summaries` (pure) →
OUT/comparison.{html,json}, plus warnings and a terminal table (comparetable). Noise test (numpy only): a moving-block bootstrap interval of the
percentile difference (blocks of consecutive requests keep queueing's autocorrelation), plus a
Mann-Whitney U test of the whole distribution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from harness.config import ConfigError
from harness.decide.common import REPORTS_ROOT, check_empty_out
from harness.decide.comparetable import compare_table, differences, invalid_lines, run_facts
from harness.outdirs import new_out_dir
from harness.records import REQUESTS_FILE, load_run
from harness.report.fmt import shown_overall
from harness.scoring import distributions, scoring_window, split_records, summarize

RESAMPLES = 400
SEED = 12345
MIN_SAMPLES = 30
NOISE_FLOOR_PCT = 10.0  # run-to-run variation one run cannot measure (another arrival draw moves tails and TPOT)
MIN_TAIL = 10  # samples beyond the percentile in each run: fewer and a bootstrap of the tail is not trustworthy
DIST_METRICS = (("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("e2e_s", "E2E"))
STATS = ("p50", "p90", "p99")


def block_length(n: int) -> int:
    return max(1, int(round(1.5 * n ** (1 / 3))))


def _block_resample_stat(x: np.ndarray, q: float, resamples: int, rng: np.random.Generator) -> np.ndarray:
    n = x.size
    L = block_length(n)
    nblocks = math.ceil(n / L)
    out = np.empty(resamples)
    chunk = max(1, 4_000_000 // max(n, 1))
    for s in range(0, resamples, chunk):
        m = min(chunk, resamples - s)
        starts = rng.integers(0, n - L + 1, size=(m, nblocks))
        idx = (starts[:, :, None] + np.arange(L)).reshape(m, -1)[:, :n]
        out[s:s + m] = np.percentile(x[idx], q, axis=1)
    return out


def bootstrap_diff_ci(a: list[float], b: list[float], q: float, resamples: int = RESAMPLES,
                      seed: int = SEED, level: float = 0.95) -> tuple[float, float]:
    """Interval of percentile_q(b) - percentile_q(a) by moving-block bootstrap (samples in send order)."""
    rng = np.random.default_rng(seed)
    da = _block_resample_stat(np.asarray(a, float), q, resamples, rng)
    db = _block_resample_stat(np.asarray(b, float), q, resamples, rng)
    lo, hi = np.percentile(db - da, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(lo), float(hi)


def mann_whitney_p(a: list[float], b: list[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test (normal approximation with tie correction)."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    n1, n2 = x.size, y.size
    allv = np.concatenate([x, y])
    uniq, inv, counts = np.unique(allv, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    avg_rank = ends - (counts - 1) / 2.0
    ranks = avg_rank[inv]
    u1 = ranks[:n1].sum() - n1 * (n1 + 1) / 2
    n = n1 + n2
    tie = (counts ** 3 - counts).sum() / (n * (n - 1)) if n > 1 else 0.0
    sigma = math.sqrt(n1 * n2 / 12.0 * ((n + 1) - tie))
    if sigma == 0:
        return 1.0
    z = (u1 - n1 * n2 / 2.0) / sigma
    return float(math.erfc(abs(z) / math.sqrt(2)))


def diff_cell(base: list[float], other: list[float], stat: str, seed: int = SEED) -> dict:
    q = float(stat[1:])
    v = float(np.percentile(other, q)) if other else None
    b = float(np.percentile(base, q)) if base else None
    cell = {"value": v, "diff": None, "diff_pct": None, "judged": False, "beyond_noise": False, "worse": False,
            "ci": None, "mann_whitney_p": None}
    if v is None or b is None:
        return cell
    cell["diff"] = v - b
    cell["diff_pct"] = 100.0 * (v - b) / b if b else None
    n = min(len(base), len(other))
    if n < MIN_SAMPLES or n * (1 - q / 100) < MIN_TAIL:
        cell["note"] = f"not judged: {n} samples, fewer than {MIN_TAIL} beyond {stat}"
        return cell
    lo, hi = bootstrap_diff_ci(base, other, q, seed=seed)
    big = cell["diff_pct"] is None or abs(cell["diff_pct"]) >= NOISE_FLOOR_PCT
    cell.update(judged=True, ci=[lo, hi], beyond_noise=(lo > 0 or hi < 0) and big, worse=v > b,
                mann_whitney_p=mann_whitney_p(base, other))
    return cell


def _samples(run) -> dict[str, list[float]]:
    recs = sorted(run.records, key=lambda r: r.sent_s)
    scored, _ = split_records(recs, scoring_window(run.meta or {}, run.scenario or {}, recs))
    d = distributions(scored)
    return {m: d[m] for m, _ in DIST_METRICS}


def compare_summaries(names: list[str], summaries: list[dict], samples: list[dict[str, list[float]]],
                      run_dirs: list[str]) -> dict:
    """The comparison document (pure): run rows, percentile cells with differences vs the first run, SLA rows."""
    runs = []
    for name, s, d in zip(names, summaries, run_dirs):
        b = ((s.get("run") or {}).get("backend") or {})
        rates = s.get("rates") or {}
        runs.append({"name": name, "run_dir": d, "scenario": (s.get("run") or {}).get("scenario_name"),
                     "backend": " ".join(str(x) for x in (b.get("type"), b.get("gpu"), b.get("quantization")) if x),
                     "sla_overall": shown_overall(s), "requests": (s.get("counts") or {}).get("scored"),
                     "request_rate_rps": rates.get("request_rate_rps"),
                     "output_token_rate_tps": rates.get("output_token_rate_tps"),
                     "error_rate_pct": rates.get("error_rate_pct"),
                     "cost": (s.get("cost") or {}).get("usd_per_1k_output_tokens")})
    metrics = []
    for m, title in DIST_METRICS:
        for stat in STATS:
            cells = [diff_cell(samples[0][m], samples[0][m], stat)]
            cells[0].update(diff=None, diff_pct=None, judged=False, ci=None, mann_whitney_p=None)
            cells += [diff_cell(samples[0][m], smp[m], stat) for smp in samples[1:]]
            metrics.append({"metric": m, "stat": stat, "label": f"{title} {stat}", "cells": cells})
    labels: list[str] = []
    for s in summaries:
        for r in (s.get("sla") or {}).get("rows") or []:
            if r.get("label") not in labels:
                labels.append(r.get("label"))
    sla_rows = []
    for lab in labels:
        cells, unit = [], None
        for s in summaries:
            r = next((x for x in (s.get("sla") or {}).get("rows") or [] if x.get("label") == lab), None)
            unit = unit or (r or {}).get("unit")
            cells.append({"verdict": r.get("verdict") if r else "—", "value": r.get("value") if r else None})
        sla_rows.append({"label": lab, "unit": unit, "cells": cells})
    beyond = [f"{mt['label']}: {names[i]} {c['diff_pct']:+.1f} % vs {names[0]}"
              for mt in metrics for i, c in enumerate(mt["cells"]) if c["beyond_noise"] and c["diff_pct"] is not None]
    return {"schema_version": 1, "kind": "compare", "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "baseline": names[0], "runs": runs, "metrics": metrics, "sla_rows": sla_rows, "beyond_noise": beyond,
            "method": {"min_tail": MIN_TAIL, "bootstrap": "moving-block, block length round(1.5 n^(1/3)) requests in send order",
                       "resamples": RESAMPLES, "seed": SEED, "level": 0.95, "min_samples": MIN_SAMPLES,
                       "noise_floor_pct": NOISE_FLOOR_PCT,
                       "beyond_noise": "the 95 % interval of (run - baseline) excludes 0 and the difference is at "
                                       f"least {NOISE_FLOOR_PCT:g} % (run-to-run variation a single run cannot show)",
                       "mann_whitney": "two-sided, normal approximation with tie correction"}}


@dataclass
class CompareOutcome:
    out_dir: Path
    html: Path
    json: Path
    warnings: list[str] = field(default_factory=list)  # runs not set up alike, invalid runs
    doc: dict = field(default_factory=dict)


def compare_runs(run_dirs: list[Path], out_dir: Path | None = None, root: Path = REPORTS_ROOT,
                 echo: Callable[[str], None] = print) -> CompareOutcome:
    """Compare saved run folders (the first is the baseline): echo one warning per difference in
    set-up, then the table; write OUT/comparison.{html,json}."""
    from harness.decide.render import write_compare_report

    if len(run_dirs) < 2:
        raise ConfigError("compare needs at least two run folders: slabench compare RUN_DIR RUN_DIR...")
    if out_dir:
        check_empty_out(Path(out_dir))  # before the runs are read: a taken --out fails at once
    runs, summaries = [], []
    for d in map(Path, run_dirs):
        if not (d / REQUESTS_FILE).is_file():
            raise ConfigError(f"{d}: not a run folder (no {REQUESTS_FILE}): give folders written by slabench run")
        run = load_run(d)
        runs.append(run)
        summaries.append(summarize(run))  # re-scored from the records: never trusts a stale summary.json
    names = [d.name for d in map(Path, run_dirs)]
    if len(set(names)) != len(names):
        names = [f"{i + 1}:{n}" for i, n in enumerate(names)]
    samples = [_samples(r) for r in runs]
    doc = compare_summaries(names, summaries, samples, [str(d) for d in run_dirs])
    facts = [run_facts(r.scenario or {}, r.meta or {}, s) for r, s in zip(runs, summaries)]
    warnings = differences(names, facts) + invalid_lines(names, summaries)
    doc["warnings"] = warnings
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
    else:
        out = new_out_dir(Path(root), "compare")
    html, js = write_compare_report(out, doc, dict(zip(names, samples)))
    for line in warnings:
        echo(line)
    echo(compare_table(doc))
    echo(f"comparison: {html}")
    return CompareOutcome(out, html, js, warnings, doc)
