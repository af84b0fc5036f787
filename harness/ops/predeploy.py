"""Pre-deployment checklist (guide section 8) from files the user names: a run folder (--run-dir), an
alert rules file and a dashboard (judged in monitoring_files.py). `find_run_dir(hint)` accepts a run
folder or a folder of run folders (the newest with summary.json); `pre_deployment_lines(...)` judges
what those files can show and lists the rest as MANUAL items. Nothing is read that was not named.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from harness.config import SlaPolicy
from harness.ops.checks import FAIL, MANUAL, PASS, PRE, WARN, line
from harness.ops.monitoring_files import alerts_line, monitoring_line
from harness.records import META_FILE, SCENARIO_FILE, SUMMARY_FILE

UNQUANTIZED = {None, "", "fp16", "bf16", "float16", "bfloat16", "fp32", "float32", "auto", "none"}


def find_run_dir(hint: Path | None) -> Path | None:
    if hint is None:
        return None
    hint = Path(hint)
    if hint.name == SUMMARY_FILE and hint.is_file():  # the run's summary.json itself
        return hint.parent
    if (hint / SUMMARY_FILE).is_file():
        return hint
    if hint.is_dir():
        runs = [d for d in hint.iterdir() if (d / SUMMARY_FILE).is_file()]
        if runs:
            return max(runs, key=lambda d: (d / SUMMARY_FILE).stat().st_mtime)
    return None


def _read_json(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
        return obj if isinstance(obj, dict) else {}
    except (OSError, ValueError):
        return {}


def _quantization(run_dir: Path) -> str | None:
    backend = (_read_json(run_dir / META_FILE).get("backend") or {})
    if isinstance(backend, dict) and backend.get("quantization"):
        return str(backend["quantization"])
    try:
        scen = yaml.safe_load((run_dir / SCENARIO_FILE).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    b = scen.get("backend") or {} if isinstance(scen, dict) else {}
    q = b.get("quantization") or b.get("quantize")
    return str(q) if q else None


def load_test_lines(run_dir: Path | None, hint: Path | None) -> list[dict]:
    t_q, t_load = "Model quantized and tested", "Load testing completed"
    if run_dir is None:
        msg = (f"no `slabench run` folder (with summary.json) under --run-dir {hint}" if hint else
               "no --run-dir given: pass --run-dir RUN, a `slabench run` folder (or a folder of runs), to check it")
        return [line("quantized", PRE, t_q, MANUAL, msg), line("load_test", PRE, t_load, MANUAL, msg)]
    summary = _read_json(run_dir / SUMMARY_FILE)
    sla = summary.get("sla") or {}
    overall = sla.get("overall")
    run = summary.get("run") or {}
    counts = summary.get("counts") or {}
    ev = (f"{run_dir}: scenario {run.get('scenario_name')}, SLA '{(sla.get('policy') or {}).get('name')}' "
          f"overall {overall}, {counts.get('ok', 0)} ok / {counts.get('errors', 0)} errors")
    details = {"run_dir": str(run_dir), "overall": overall, "finished_utc": run.get("finished_utc")}
    validity = summary.get("validity") if isinstance(summary.get("validity"), dict) else {}
    if validity.get("valid") is False:  # an invalid run measured nothing it claims: never a pass
        why = "; ".join(str(r) for r in validity.get("reasons") or []) or "no reason recorded"
        load = line("load_test", PRE, t_load, FAIL, ev + f" — INVALID RUN: {why}", **details)
    elif run.get("interrupted"):
        load = line("load_test", PRE, t_load, WARN, ev + " — the run was interrupted", **details)
    elif overall == "INCONCLUSIVE":  # too few samples to judge a hard tail row: not passing
        load = line("load_test", PRE, t_load, FAIL, ev + " — too few samples to judge: run it longer", **details)
    else:
        verdict = {"PASS": PASS, "WARN": WARN, "FAIL": FAIL}.get(overall, WARN)
        load = line("load_test", PRE, t_load, verdict, ev, **details)
    q = _quantization(run_dir)
    if q is None or q.lower() in UNQUANTIZED:
        quant = line("quantized", PRE, t_q, WARN, f"the load-tested model runs unquantized ({q or 'unknown'}): "
                     "the guide's checklist expects a quantized model (4-bit cuts memory 4x)", quantization=q,
                     run_dir=str(run_dir))
    else:
        quant = line("quantized", PRE, t_q, PASS if overall in ("PASS", "WARN") else WARN,
                     f"quantization {q}, load-tested in {run_dir} (SLA overall {overall})", quantization=q,
                     run_dir=str(run_dir))
    return [quant, load]


def pre_deployment_lines(run_dir_hint: Path | None, alerts_file: Path | None, dashboard_file: Path | None,
                         metrics_verdict: str, policy: SlaPolicy, served: set[str] | None = None,
                         policy_ref: str | None = None) -> list[dict]:
    """The pre-deployment section: run folder lines, then the files the user named (never defaults)."""
    run_dir = find_run_dir(run_dir_hint)
    return [*load_test_lines(run_dir, run_dir_hint),
            monitoring_line(dashboard_file, metrics_verdict, served),
            alerts_line(alerts_file, policy, served, policy_ref),
            line("rollback", PRE, "Rollback plan ready", MANUAL,
                 "cannot be checked from here: confirm the previous version can be redeployed")]
