"""`slabench matrix FILE`: run every variant of a matrix file, then compare and recommend.

Seam: matrix file → variants (matrixfile) → one run folder each under OUT/runs/ (runs.run_one:
sim offline in seconds, real backends one after the other) → rows (summary.json) → decision rules
(pareto) → OUT/comparison.json + comparison.html (render). `--resume` skips finished variants.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from harness.config import ConfigError
from harness.config.errors import read_text_file
from harness.decide.capacity import variant_capacity
from harness.decide.common import PLAN_FILE, REPORTS_ROOT, choose_out, metric_value
from harness.decide.matrixfile import MatrixFile, Variant, expand, load_matrix, plan_digest
from harness.decide.pareto import decision_rows, decision_verdict, misses, pareto_front, recommend
from harness.decide.progress import Progress, fmt_s
from harness.decide.runs import CANNOT_RUN, DONE, Interrupted, expected_s, finished, load_summary, mode_of, run_one
from harness.report.fmt import plural, shown_overall

COMPARISON_JSON, COMPARISON_HTML = "comparison.json", "comparison.html"


@dataclass
class MatrixOutcome:
    out_dir: Path
    recommendation: dict
    rows: list[dict] = field(default_factory=list)
    interrupted: bool = False
    html: Path | None = None
    json: Path | None = None


def primary_latency(policy_rows: list[dict]) -> tuple[str, str]:
    """(metric, stat) of the first hard latency row of the policy: the y axis of the chart."""
    for r in policy_rows:
        if r.get("hard", True) and r.get("metric") in ("ttft_s", "tpot_s", "itl_s", "e2e_s"):
            return r["metric"], r.get("stat") or "p99"
    return "ttft_s", "p99"


def variant_row(v: Variant, status: dict | None, summary: dict | None, accept: tuple[str, ...],
                latency: tuple[str, str], out_dir: Path) -> dict:
    b = v.scenario.backend
    row = {"id": v.id, "label": v.label, "values": {k: str(x) for k, x in v.values.items()},
           "backend": b.type, "gpu": getattr(b, "gpu", None),
           "gpu_count": getattr(b, "tensor_parallel_size", None) or getattr(b, "num_shard", None) or 1,
           "quantization": getattr(b, "quantization", None) or getattr(b, "quantize", None),
           "status": "excluded" if v.excluded else (status or {}).get("status", "not_run"),
           "mode": (status or {}).get("mode"), "reason": (status or {}).get("reason"),
           "run_dir": f"runs/{v.id}", "elapsed_s": (status or {}).get("elapsed_s")}
    if v.excluded:
        row["reason"] = "excluded by the matrix file"
    elif row["status"] == "not_run":
        row["reason"] = "not run yet (interrupted): continue with --resume"
    if row["status"] != DONE or summary is None:
        return row
    cost = summary.get("cost") or {}
    rates = summary.get("rates") or {}
    gpu_util = ((summary.get("metrics") or {}).get("gpu_utilization_pct") or {})
    row.update(
        verdict=decision_verdict(summary), sla_overall=shown_overall(summary),
        ttft_p50_s=metric_value(summary, "ttft_s", "p50"), ttft_p99_s=metric_value(summary, "ttft_s", "p99"),
        tpot_p50_s=metric_value(summary, "tpot_s", "p50"), tpot_p99_s=metric_value(summary, "tpot_s", "p99"),
        e2e_p99_s=metric_value(summary, "e2e_s", "p99"), request_rate_rps=rates.get("request_rate_rps"),
        output_token_rate_tps=rates.get("output_token_rate_tps"), goodput_rps=rates.get("goodput_rps"),
        error_rate_pct=rates.get("error_rate_pct"), gpu_util_mean_pct=gpu_util.get("mean"),
        gpu_util_simulated=bool(gpu_util.get("simulated")),
        cost=cost.get("usd_per_1k_output_tokens"), usd_per_hour=cost.get("cluster_usd_per_hour"),
        price_source=cost.get("price_source"), latency=metric_value(summary, *latency),
        misses=misses(summary, accept), decision_rows=len(decision_rows(summary)),
        report=f"runs/{v.id}/report.html")
    row["meets_sla"] = row["verdict"] in accept
    return row


def run_matrix(matrix_path: Path, out_dir: Path | None = None, resume: bool = False,
               echo: Callable[[str], None] = print, root: Path = REPORTS_ROOT, capacity: bool = False,
               precision: float = 0.05) -> MatrixOutcome:
    """Run (or resume) a matrix and write OUT/comparison.{html,json}. ConfigError on a bad matrix file.
    capacity: also search each offline variant's capacity and rank passing variants by the cost there."""
    if capacity and not 0 < precision < 1:
        raise ConfigError(f"--precision {precision:g}: give a fraction in (0, 1), e.g. 0.05 for 5 %")
    matrix_path = Path(matrix_path)
    mf: MatrixFile = load_matrix(matrix_path)
    variants = expand(mf, matrix_path)
    digest = plan_digest(variants)
    out = choose_out(mf.name, out_dir, resume, root, "matrix")
    if resume:
        old = json.loads((out / PLAN_FILE).read_text(encoding="utf-8"))
        if old.get("digest") != digest:
            raise ConfigError(f"--resume: {out} was run from a different matrix (file changed since): "
                              "run without --resume to start a new comparison")
    out.mkdir(parents=True, exist_ok=True)
    (out / "matrix.yaml").write_text(read_text_file(matrix_path, "matrix file"), encoding="utf-8")
    (out / PLAN_FILE).write_text(json.dumps(
        {"kind": "matrix", "name": mf.name, "matrix_path": str(matrix_path), "digest": digest,
         "variants": [{"id": v.id, "label": v.label, "excluded": v.excluded, "scenario": v.scenario.name}
                      for v in variants]}, indent=1), encoding="utf-8")
    modes = [mode_of(v.scenario, mf.offline)[0] for v in variants]
    expect = [None if v.excluded else expected_s(v.scenario, m) for v, m in zip(variants, modes)]
    todo = [i for i, v in enumerate(variants) if not v.excluded and not (resume and finished(out / "runs" / v.id))]
    echo(f"matrix {mf.name}: {len(variants)} variants ({len(todo)} to run, "
         f"{sum(v.excluded for v in variants)} excluded) → {out}")
    progress = Progress(len(todo), echo)
    statuses: dict[str, dict] = {}
    interrupted = False
    for n, i in enumerate(todo, 1):
        v = variants[i]
        progress.start(n, f"{v.id} ({modes[i]})", [expect[j] for j in todo[n - 1:]])
        try:
            st = run_one(v.scenario, out / "runs" / v.id, out / "scenarios" / f"{v.id}.yaml", mf.offline, echo)
        except Interrupted:
            interrupted = True
            echo(f"interrupted: {plural(n - 1, 'variants')} finished this time are kept; continue with --resume")
            break
        took = progress.finish(count=st["status"] == DONE)
        statuses[v.id] = st
        if st["status"] == CANNOT_RUN:
            echo(f"    cannot run: {st['reason']}")
        else:
            s = load_summary(out / "runs" / v.id) or {}
            echo(f"    {decision_verdict(s)} in {fmt_s(took)}")
    policy_rows = list(variants[0].scenario.sla.rows) if variants else []
    latency = primary_latency([r.model_dump() for r in policy_rows])
    accept = tuple(mf.accept)
    rows = []
    for v in variants:
        st = statuses.get(v.id) or finished(out / "runs" / v.id)
        summary = load_summary(out / "runs" / v.id) if st and st.get("status") == DONE else None
        rows.append(variant_row(v, st, summary, accept, latency, out))
    if capacity and not interrupted:
        interrupted = _capacities(variants, rows, out, precision, resume, echo)
    rec = recommend(rows, accept, "cost_at_capacity" if capacity else "cost")
    if interrupted:
        rec = {**rec, "text": f"(partial: interrupted) {rec['text']}", "partial": True}
    ran = [r for r in rows if r["status"] == DONE]
    front = pareto_front([(r.get("cost"), r.get("latency")) for r in ran])
    for r in rows:
        r["pareto"] = False
    for i in front:
        ran[i]["pareto"] = True
    doc = {"schema_version": 1, "kind": "matrix", "name": mf.name, "description": mf.description,
           "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "matrix_path": str(matrix_path), "axes": {k: [str(x) for x in vals] for k, vals in mf.axes.items()},
           "accept": list(accept), "latency_axis": {"metric": latency[0], "stat": latency[1]},
           "cost_axis": "usd_per_1k_output_tokens", "sla_policy": variants[0].scenario.sla.name if variants else None,
           "pass_rule": ("a variant meets the SLA when every hard, measured SLA row is in " + "/".join(accept) +
                         "; throughput rows limited by the offered load are not counted"),
           "interrupted": interrupted, "elapsed_s": round(progress.elapsed_s, 2),
           "capacity": {"precision": precision, "unit_text": "request rate (users in closed loop)"} if capacity else None,
           "recommendation": rec, "pareto": [ran[i]["id"] for i in front], "variants": rows}
    from harness.decide.render import write_matrix_report

    html, js = write_matrix_report(out, doc)
    echo(f"recommendation: {rec['text']}")
    echo(f"comparison: {html}")
    return MatrixOutcome(out, rec, rows, interrupted, html, js)


def _capacities(variants: list[Variant], rows: list[dict], out: Path, precision: float, resume: bool,
                echo: Callable[[str], None]) -> bool:
    """Fill capacity, capacity_unit, cost_at_capacity on the rows of variants that ran; True if interrupted."""
    for v, r in zip(variants, rows):
        if r["status"] != DONE:
            continue
        try:
            c = variant_capacity(v.scenario, out / "capacity" / v.id, precision, resume, echo=lambda s: None)
        except Interrupted:
            echo("interrupted during the capacity search: variants keep their results at the offered load")
            return True
        r.update(capacity=c.get("capacity"), capacity_unit=c.get("unit"), capacity_fail_at=c.get("fail_at"),
                 cost_at_capacity=c.get("cost_at_capacity"), capacity_reason=c.get("reason") or c.get("note"),
                 capacity_points=c.get("points"))
        if c.get("capacity"):
            price = c.get("cost_at_capacity")
            there = "no price" if price is None else f"${price:.5f} per 1k output tokens there"
            echo(f"    capacity {v.id}: {c['capacity']:.4g} {c['unit']}, {there} ({c['points']} points)")
        else:
            echo(f"    capacity {v.id}: {c.get('reason')}")
    return False
