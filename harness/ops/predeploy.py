"""Pre-deployment checklist (guide section 8) from files: a run folder, an alert rules file, a dashboard.

`find_run_dir(hint)` accepts a run folder or a folder of run folders (the newest with summary.json);
`pre_deployment_lines(...)` judges what files can show and lists the rest as MANUAL items.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from harness.ops.checks import FAIL, MANUAL, PASS, PRE, SKIP, WARN, line
from harness.records import META_FILE, SCENARIO_FILE, SUMMARY_FILE

UNQUANTIZED = {None, "", "fp16", "bf16", "float16", "bfloat16", "fp32", "float32", "auto", "none"}
DEFAULT_ALERTS_FILE = Path("monitoring") / "alerts.yaml"
DEFAULT_DASHBOARD_FILE = Path("monitoring") / "grafana-dashboard.json"


def find_run_dir(hint: Path | None) -> Path | None:
    if hint is None:
        return None
    hint = Path(hint)
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
        where = f" (nothing usable under {hint})" if hint else ""
        msg = f"no run folder given{where}: pass a `slabench run` folder to check it"
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


def alerts_line(path: Path) -> dict:
    title = "Alerts set up"
    if not path.is_file():
        return line("alerts", PRE, title, MANUAL, f"no alert rules file at {path}: generate one with "
                    "`slabench alerts scenarios/sla/guide.yaml > monitoring/alerts.yaml` and load it into Prometheus")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        names = [r["alert"] for g in data["groups"] for r in g["rules"] if "alert" in r]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        return line("alerts", PRE, title, FAIL, f"{path} is not a Prometheus rules file ({type(exc).__name__})")
    if not names:
        return line("alerts", PRE, title, FAIL, f"{path} holds no alerting rules")
    shown = ", ".join(names[:4]) + (f" +{len(names) - 4} more" if len(names) > 4 else "")
    return line("alerts", PRE, title, PASS, f"{len(names)} alerting rules in {path} ({shown}); confirm Prometheus "
                "loads them and Alertmanager routes them", rules=len(names), file=str(path))


def monitoring_line(dashboard: Path, metrics_verdict: str) -> dict:
    title = "Monitoring configured"
    if metrics_verdict == SKIP:
        return line("monitoring", PRE, title, MANUAL, "server unreachable: confirm Prometheus scrapes it once it is up")
    if metrics_verdict not in (PASS, WARN):
        return line("monitoring", PRE, title, FAIL, "the server's /metrics is not usable (see 'Metrics flowing')")
    if dashboard.is_file():
        try:
            panels = len(json.loads(dashboard.read_text(encoding="utf-8")).get("panels") or [])
        except (OSError, ValueError, AttributeError):
            return line("monitoring", PRE, title, FAIL, f"{dashboard} is not valid dashboard JSON")
        return line("monitoring", PRE, title, PASS, f"server /metrics answers; Grafana dashboard {dashboard} "
                    f"({panels} panels); confirm Prometheus scrapes the server", file=str(dashboard))
    return line("monitoring", PRE, title, MANUAL, f"server /metrics answers, but no dashboard at {dashboard}: "
                "import monitoring/grafana-dashboard.json and confirm Prometheus scrapes the server")


def pre_deployment_lines(run_dir_hint: Path | None, alerts_file: Path | None, dashboard_file: Path | None,
                         metrics_verdict: str) -> list[dict]:
    run_dir = find_run_dir(run_dir_hint)
    return [*load_test_lines(run_dir, run_dir_hint),
            monitoring_line(Path(dashboard_file or DEFAULT_DASHBOARD_FILE), metrics_verdict),
            alerts_line(Path(alerts_file or DEFAULT_ALERTS_FILE)),
            line("rollback", PRE, "Rollback plan ready", MANUAL,
                 "cannot be checked from here: confirm the previous version can be redeployed")]
