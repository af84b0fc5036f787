"""Monitoring-files seam: the user's Prometheus rules file (`check --alert-rules`) and Grafana dashboard
JSON (`check --dashboard`) → the checklist's "Alerts set up" and "Monitoring configured" lines.
Rules are compared with what `slabench alerts` writes for the check's SLA policy, and every query with
the series the server's /metrics exposes. Only files the user named are read: none → MANUAL.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from harness.config import SlaPolicy
from harness.ops.alerts import alert_rules
from harness.ops.checks import FAIL, MANUAL, PASS, PRE, SKIP, WARN, line

ALERTS_TITLE, MONITORING_TITLE = "Alerts set up", "Monitoring configured"
MAX_FILE_BYTES = 20 * 1024 * 1024  # a rules file or dashboard is kilobytes; refuse to slurp a wrong file
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without", "on", "ignoring",
                   "group_left", "group_right"}
PROMETHEUS_OWN = {"up", "ALERTS", "ALERTS_FOR_STATE"}  # series Prometheus makes itself, not the server


class FileProblem(ValueError):
    """A named file that cannot be used: the message is one line naming the problem."""


def promql_series(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (functions, keywords, labels, durations and Grafana
    variables left out). Good enough for comparing names, not a PromQL parser."""
    s = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', "", expr)  # string literals
    s = re.sub(r"\$\{[^}]*\}|\$\w+", "", s)  # Grafana variables: ${ds}, $__rate_interval
    s = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", s)  # label matchers, ranges
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", s)  # label lists
    names = re.findall(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()", s)
    return {n for n in names if n.lower() not in PROMQL_KEYWORDS}


def _read_text(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise FileProblem(f"{path} is over {MAX_FILE_BYTES // (1024 * 1024)} MiB: not a rules file or dashboard")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FileProblem(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise FileProblem(f"cannot read {path}: {exc.strerror or exc}") from None


def read_rules(path: Path) -> list[dict]:
    """Every rule of a Prometheus rules file (also a prometheus-operator PrometheusRule); FileProblem
    names what is wrong, e.g. `groups[0].rules[2] has no 'expr'`."""
    try:
        data = yaml.safe_load(_read_text(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        why = getattr(exc, "problem", None) or type(exc).__name__
        raise FileProblem(f"{path} is not valid YAML{where}: {why}") from None
    if isinstance(data, dict) and data.get("kind") == "PrometheusRule" and isinstance(data.get("spec"), dict):
        data = data["spec"]
    if not isinstance(data, dict) or not isinstance(data.get("groups"), list):
        raise FileProblem(f"{path} is not a Prometheus rules file: it needs a top-level 'groups:' list "
                          "(generate one with `slabench alerts POLICY > rules.yaml`)")
    rules: list[dict] = []
    for i, g in enumerate(data["groups"]):
        if not isinstance(g, dict) or not isinstance(g.get("rules"), list):
            raise FileProblem(f"{path}: groups[{i}] needs a 'rules:' list")
        for j, r in enumerate(g["rules"]):
            where = f"{path}: groups[{i}].rules[{j}]"
            if not isinstance(r, dict):
                raise FileProblem(f"{where} is not a mapping")
            if not isinstance(r.get("expr"), str) or not r["expr"].strip():
                raise FileProblem(f"{where} has no 'expr'")
            if not (isinstance(r.get("alert"), str) or isinstance(r.get("record"), str)):
                raise FileProblem(f"{where} needs an 'alert:' or 'record:' name")
            rules.append(r)
    return rules


def _panels(obj: dict) -> list[dict]:
    """Panels of a dashboard, rows' nested panels included (also the legacy `rows[].panels` form)."""
    out: list[dict] = []
    stack = list(obj.get("panels") or []) + [p for r in obj.get("rows") or [] if isinstance(r, dict)
                                             for p in r.get("panels") or []]
    while stack:
        p = stack.pop(0)
        if isinstance(p, dict):
            out.append(p)
            stack += list(p.get("panels") or [])
    return out


def read_dashboard(path: Path) -> list[tuple[str, list[str]]]:
    """(title, PromQL queries) for every panel with a Prometheus query; FileProblem otherwise."""
    try:
        data = json.loads(_read_text(path))
    except ValueError as exc:
        where = f" at line {exc.lineno}" if hasattr(exc, "lineno") else ""
        raise FileProblem(f"{path} is not valid JSON{where}: {getattr(exc, 'msg', exc)}") from None
    if isinstance(data, dict) and isinstance(data.get("dashboard"), dict):  # API / provisioning export
        data = data["dashboard"]
    if not isinstance(data, dict):
        raise FileProblem(f"{path} is not a Grafana dashboard: expected a JSON object with 'panels'")
    panels = _panels(data)
    if not panels:
        raise FileProblem(f"{path} is not a Grafana dashboard: it has no panels")
    queried = []
    for p in panels:
        exprs = [t["expr"] for t in p.get("targets") or [] if isinstance(t, dict) and isinstance(t.get("expr"), str)
                 and t["expr"].strip()]
        if exprs:
            queried.append((str(p.get("title") or f"panel {p.get('id', '?')}"), exprs))
    if not queried:
        raise FileProblem(f"{path}: none of its {len(panels)} panels has a Prometheus query (targets[].expr)")
    return queried


def _listed(items: list[str], n: int = 4) -> str:
    return ", ".join(items[:n]) + (f" +{len(items) - n} more" if len(items) > n else "")


def _prefix(names: set[str]) -> str:
    """'vllm:*' style summary of a set of series names."""
    heads = sorted({(n.split(":")[0] + ":*") if ":" in n else (n.split("_")[0] + "_*") for n in names})
    return ", ".join(heads[:3]) or "nothing"


def _unserved(series: set[str], served: set[str]) -> set[str]:
    return {s for s in series if s not in served and s not in PROMETHEUS_OWN and not s.startswith("scrape_")}


def alerts_line(path: Path | None, policy: SlaPolicy, served: set[str] | None = None,
                policy_ref: str | None = None) -> dict:
    """Judge the rules file the user named against the alerts `slabench alerts` writes for `policy`
    and (when known) the series the server exposes."""
    ref = policy_ref or policy.name
    gen = f"`slabench alerts {ref} > rules.yaml`"
    if path is None:
        return line("alerts", PRE, ALERTS_TITLE, MANUAL, f"no --alert-rules FILE given: generate rules with {gen}, "
                    "load them into Prometheus, then pass --alert-rules rules.yaml to check them")
    try:
        rules = read_rules(Path(path))
    except FileProblem as exc:
        return line("alerts", PRE, ALERTS_TITLE, FAIL, str(exc), file=str(path))
    found = {r["alert"]: r["expr"] for r in rules if isinstance(r.get("alert"), str)}
    if not found:
        return line("alerts", PRE, ALERTS_TITLE, FAIL, f"{path} holds no alerting rules (only recording rules "
                    f"or empty groups): generate them with {gen}", file=str(path))
    expected = {r["alert"]: r["expr"] for g in alert_rules(policy)["groups"] for r in g["rules"]}
    flat = lambda e: "".join(e.split())  # noqa: E731
    missing = [n for n in expected if n not in found]
    differ = [n for n in expected if n in found and flat(found[n]) != flat(expected[n])]
    details = {"file": str(path), "rules": len(found), "expected": len(expected), "missing": missing,
               "differ": differ}
    ev = f"{len(found)} alerting rules in {path}"
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} of the {len(expected)} alerts {gen} writes for SLA policy "
                        f"'{policy.name}': {_listed(missing)}")
    if differ:
        problems.append(f"expression or threshold differs from the policy's for {_listed(differ)}")
    if problems:
        return line("alerts", PRE, ALERTS_TITLE, WARN, f"{ev}; " + "; ".join(problems) + f" (regenerate with {gen})",
                    **details)
    ev += (f", covering the {len(expected)} alerts of SLA policy '{policy.name}'" if expected else
           f" (SLA policy '{policy.name}' has no row a Prometheus rule can express: nothing to compare)")
    if served:
        series = set().union(*(promql_series(e) for e in found.values()))
        live = series & served
        details["series_not_on_server"] = sorted(_unserved(series, served))
        if not live:
            return line("alerts", PRE, ALERTS_TITLE, WARN, f"{ev}; but they query {_prefix(series)} series and this "
                        f"server exposes {_prefix(served)}: they can fire only where Prometheus scrapes those "
                        "series (a guide-style server, or `slabench run --prometheus-port`)", **details)
    return line("alerts", PRE, ALERTS_TITLE, PASS, ev + "; confirm Prometheus loads them and Alertmanager routes "
                "them", **details)


def monitoring_line(path: Path | None, metrics_verdict: str, served: set[str] | None = None) -> dict:
    """Judge the dashboard the user named: valid, and its panels chart series the server exposes."""
    if path is not None:
        try:
            panels = read_dashboard(Path(path))
        except FileProblem as exc:
            return line("monitoring", PRE, MONITORING_TITLE, FAIL, str(exc), file=str(path))
    if metrics_verdict == SKIP:
        return line("monitoring", PRE, MONITORING_TITLE, MANUAL, "server unreachable: confirm Prometheus scrapes it "
                    "once it is up" + ("" if path else ", and pass --dashboard FILE to check your Grafana dashboard"))
    if metrics_verdict not in (PASS, WARN):
        return line("monitoring", PRE, MONITORING_TITLE, FAIL, "the server's /metrics is not usable "
                    "(see 'Metrics flowing')")
    if path is None:
        return line("monitoring", PRE, MONITORING_TITLE, MANUAL, "server /metrics answers; no --dashboard FILE "
                    "given: export your Grafana dashboard as JSON and pass --dashboard FILE to check that its "
                    "panels chart this server's series")
    served = served or set()
    per_panel = [(title, set().union(*map(promql_series, exprs))) for title, exprs in panels]
    live = [(title, s & served) for title, s in per_panel if s & served]
    absent = [title for title, s in per_panel if not s & served and _unserved(s, served)]
    details = {"file": str(path), "panels": len(panels), "panels_on_server": len(live), "panels_not_on_server": absent}
    if not live:
        queried = set().union(*(s for _, s in per_panel))
        return line("monitoring", PRE, MONITORING_TITLE, WARN, f"{path}: none of its {len(panels)} panels queries a "
                    f"series this server exposes (they query {_prefix(queried)}; the server exposes "
                    f"{_prefix(served)}): the dashboard would stay empty", **details)
    names = sorted(set().union(*(s for _, s in live)))
    ev = (f"{path}: {len(live)} of {len(panels)} panels chart series this server exposes ({_listed(names, 3)})")
    if absent:
        ev += f"; not on this server: {_listed(absent)}"
    return line("monitoring", PRE, MONITORING_TITLE, PASS, ev + "; confirm Prometheus scrapes the server",
                **details)


def input_problem(flag: str, path: Path | None) -> str | None:
    """One-line usage error for a named path that does not exist or is a folder (else None)."""
    if path is None:
        return None
    p = Path(path)
    if not p.exists():
        what = ("Prometheus rules file, e.g. from `slabench alerts POLICY > rules.yaml`" if "alert" in flag
                else "Grafana dashboard JSON export")
        return f"{flag} {p}: no such file (give the path of your {what})"
    if p.is_dir():
        return f"{flag} {p}: is a folder, not a file"
    return None
