"""Check seam: `slabench check URL` — the guide's section 8 checklist against a running server.

`run_check(...)` probes the server (health, /metrics, auth, a small streamed probe load, a bounded
burst), judges every line, writes checklist.json / checklist.html / probe_requests.jsonl into
`out_dir` and returns the checklist dict. `main_check(...)` is the CLI body: exit 0 (no FAIL line;
overall INCONCLUSIVE, never PASS, when a tail was probed too little), 1 (a FAIL line) or 2 (usage).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import aiohttp
import yaml

import harness
from harness.config import ConfigError, SlaPolicy, load_sla
from harness.ops import probes
from harness.ops.check_report import checklist_text, write_checklist
from harness.ops.checks import (
    FAIL, INCONCLUSIVE, PASS, POST, SKIP, VERDICTS, WARN, judge_auth, judge_cost, judge_error_rate, judge_health,
    judge_latency, judge_metrics, judge_rate_limit, sample_values, skipped, with_bare_counter_names,
)
from harness.ops.monitoring_files import input_problem
from harness.ops.predeploy import find_run_dir, pre_deployment_lines
from harness.outdirs import new_out_dir
from harness.records import META_FILE, SCENARIO_FILE
from harness.scoring.cost import has_price, price_lookup, priced_gpus

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
SCHEMA_VERSION = 1
WRONG_KEY = "slabench-check-wrong-key"
PROBE_FILE = "probe_requests.jsonl"
PROBE_REQUESTS_DEFAULT, PROBE_REQUESTS_MAX = 20, 1000  # streamed chat requests of the probe load
BURST_DEFAULT, BURST_MAX = 50, 500  # one-token requests of the rate-limit burst (0 = no burst)
NO_SLA_NOTE = "no --sla given: latency and error rate judged against the guide policy"


async def _served_model(s: aiohttp.ClientSession, url: str, headers: dict, timeout_s: float) -> str | None:
    r = await probes.get(s, url + "/v1/models", headers, timeout_s)
    try:
        if r.status == 200:
            data = json.loads(r.body).get("data") or []
            if data and data[0].get("id"):
                return str(data[0]["id"])
        r = await probes.get(s, url + "/info", headers, timeout_s)
        if r.status == 200:
            return json.loads(r.body).get("model_id")
    except (ValueError, AttributeError):
        pass
    return None


async def _server_info(s: aiohttp.ClientSession, url: str, timeout_s: float) -> dict:
    """What the server says it is: vLLM /version, TGI /info, the simulator's /sim/gpu."""
    info: dict = {}
    for path, key in (("/version", "version"), ("/info", "info"), ("/sim/gpu", "sim_gpu")):
        r = await probes.get(s, url + path, None, timeout_s)
        if r.status == 200:
            try:
                info[key] = json.loads(r.body)
            except ValueError:
                continue
    return info


async def _probe(url: str, api_key: str | None, probe_requests: int, burst: int, burst_window_s: float,
                 concurrency: int, max_tokens: int, timeout_s: float) -> dict:
    headers = probes.auth_headers(api_key)
    out: dict = {}
    async with aiohttp.ClientSession() as s:
        out["health"] = await probes.get(s, url + "/health", None, timeout_s)
        if out["health"].status == 0:
            return out
        out["info"] = await _server_info(s, url, timeout_s)
        model = out["model"] = await _served_model(s, url, headers, timeout_s)
        out["metrics_before"] = await probes.get(s, url + "/metrics", None, timeout_s)
        chat = url + probes.CHAT_PATH
        out["no_key"] = await probes.post(s, chat, probes.chat_body(model, 1, False), {}, timeout_s * 2)
        if api_key:
            out["wrong_key"] = await probes.post(s, chat, probes.chat_body(model, 1, False),
                                                 probes.auth_headers(WRONG_KEY), timeout_s * 2)
            out["with_key"] = await probes.post(s, chat, probes.chat_body(model, 1, False), headers, timeout_s * 2)
        out["needs_key"] = not api_key and out["no_key"].status in (401, 403)
        runnable = not out["needs_key"]
        out["records"] = (await probes.probe_load(s, url, headers, model, probe_requests, concurrency, max_tokens)
                          if runnable else [])
        out["metrics_after"] = await probes.get(s, url + "/metrics", None, timeout_s)
        out["burst"] = (await probes.burst(s, url, headers, model, burst, burst_window_s)
                        if runnable and burst > 0 else None)
    return out


def _price(gpu: str | None, run_dir: Path | None, info: dict) -> dict:
    """GPU price: --gpu, else the run folder's scenario/meta, else the simulator's /sim/gpu names."""
    if gpu:
        return {**price_lookup({"cost": {"gpu": gpu}}, {}), "gpu_from": "--gpu"}
    if run_dir is not None:
        try:
            scen = yaml.safe_load((run_dir / SCENARIO_FILE).read_text(encoding="utf-8")) or {}
            meta = json.loads((run_dir / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError, yaml.YAMLError):
            scen, meta = {}, {}
        found = price_lookup(scen if isinstance(scen, dict) else {}, meta if isinstance(meta, dict) else {})
        if found.get("gpu"):
            return {**found, "gpu_from": f"run folder {run_dir}"}
    gpus = (info.get("sim_gpu") or {}).get("gpus") or []
    names = [g.get("name") for g in gpus if isinstance(g, dict) and g.get("name")]
    if names:
        return {**price_lookup({}, {"backend": {"gpu_count": len(names)}}, names), "gpu_from": "/sim/gpu"}
    return {**price_lookup({}, {}), "gpu_from": None}


def _served_series(res: dict) -> set[str] | None:
    """Sample names the server's /metrics exposed after the probe load (None when it gave none)."""
    r = res.get("metrics_after")
    if r is None or r.status != 200:
        return None
    try:
        return set(with_bare_counter_names(sample_values(r.text)))
    except Exception:  # malformed text: 'Metrics flowing' already says so
        return None


def _inconclusive_note(lines: list[dict]) -> str:
    need = max((ln["details"].get("needed_requests") or 0 for ln in lines if ln["verdict"] == INCONCLUSIVE),
               default=0)
    how = (f"; --probe-requests {need} would be enough here" if 0 < need <= PROBE_REQUESTS_MAX else "")
    n = sum(1 for ln in lines if ln["verdict"] == INCONCLUSIVE)
    return (f"{n} line(s) INCONCLUSIVE: the probe load is a smoke test, too small for a tail percentile; the "
            f"overall is not PASS, and `slabench run --gate` judges the tail{how}")


def _overall(lines: list[dict]) -> str:
    """FAIL, else INCONCLUSIVE (a line could not be judged from the small probe: not a pass), else WARN, PASS."""
    verdicts = {ln["verdict"] for ln in lines}
    return next((v for v in (FAIL, INCONCLUSIVE, WARN) if v in verdicts), PASS)


def run_check(url: str, api_key: str | None, policy: SlaPolicy | None, out_dir: Path,
              probe_requests: int = PROBE_REQUESTS_DEFAULT, burst: int = BURST_DEFAULT,
              run_dir_hint: Path | None = None, *, gpu: str | None = None, alerts_file: Path | None = None,
              dashboard_file: Path | None = None, policy_ref: str | None = None, notes: list[str] | None = None,
              concurrency: int = 4, max_tokens: int = 16, burst_window_s: float = 2.0,
              timeout_s: float = 5.0) -> dict:
    """Probe `url`, judge the checklist, write it into `out_dir`; returns the checklist dict. The alert
    rules and dashboard lines judge only the files passed (none → MANUAL), never files found nearby."""
    url = url.rstrip("/")
    notes = list(notes or [])
    if policy is None:
        policy = load_sla("guide")
        notes.append(NO_SLA_NOTE)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    res = asyncio.run(_probe(url, api_key, probe_requests, burst, burst_window_s, concurrency, max_tokens,
                             timeout_s))
    health = judge_health(res["health"])
    unreachable = res["health"].status == 0
    records = res.get("records") or []
    if unreachable:
        why = "server unreachable (see 'Health checks passing')"
        post = [health] + [skipped(i, t, why) for i, t in (
            ("metrics", "Metrics flowing"), ("auth", "Authentication enforced"),
            ("rate_limit", "Rate limiting present"), ("error_rate", "Error rates normal"),
            ("latency", "Latency within SLA"), ("cost", "Cost tracking enabled"))]
        metrics_verdict = SKIP
    else:
        auth = judge_auth(bool(api_key), res["no_key"], res.get("wrong_key"), res.get("with_key"))
        need = "needs an API key (see 'Authentication enforced')"
        metrics = judge_metrics(res["metrics_before"], res["metrics_after"], sum(1 for r in records if r.ok))
        if res["needs_key"]:
            load_lines = [skipped("rate_limit", "Rate limiting present", need),
                          skipped("error_rate", "Error rates normal", need),
                          skipped("latency", "Latency within SLA", need)]
        else:
            load_lines = [judge_rate_limit(res["burst"] or [], burst_window_s),
                          judge_error_rate(records, policy), *judge_latency(records, policy)]
        price = _price(gpu, find_run_dir(run_dir_hint), res["info"])
        post = [health, metrics, auth, *load_lines, judge_cost(price)]
        metrics_verdict = metrics["verdict"]
    pre = pre_deployment_lines(run_dir_hint, alerts_file, dashboard_file, metrics_verdict, policy,
                               None if unreachable else _served_series(res), policy_ref)
    lines = post + pre
    usage_error = None
    if unreachable:
        usage_error = f"{url} is unreachable: {res['health'].error}"
    elif res["needs_key"]:
        usage_error = f"{url} requires an API key: pass --api-key-env VAR (the variable holding the key)"
    counts = {v: sum(1 for ln in lines if ln["verdict"] == v) for v in VERDICTS}
    exit_code = EXIT_USAGE if usage_error else EXIT_FAIL if counts["FAIL"] else EXIT_OK
    if counts[INCONCLUSIVE]:
        notes.append(_inconclusive_note(lines))
    checklist = {
        "schema_version": SCHEMA_VERSION, "kind": "slabench-checklist", "slabench_version": harness.__version__,
        "url": url, "checked_utc": started, "overall": _overall(lines), "exit_code": exit_code,
        "usage_error": usage_error, "counts": counts,
        "server": {"model": res.get("model"), **(res.get("info") or {})},
        "policy": {"name": policy.name, "description": policy.description},
        "probe": {"requests": probe_requests, "concurrency": concurrency, "max_tokens": max_tokens,
                  "sent": len(records), "ok": sum(1 for r in records if r.ok),
                  "burst": burst, "burst_window_s": burst_window_s, "api_key_given": bool(api_key)},
        "sections": [{"id": POST, "title": "Post-deployment"}, {"id": "pre-deployment", "title": "Pre-deployment"}],
        "lines": lines, "notes": notes,
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / PROBE_FILE, "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(r.to_json() + "\n")
    checklist["files"] = {k: str(v) for k, v in write_checklist(checklist, out_dir).items()}
    checklist["files"][PROBE_FILE] = str(out_dir / PROBE_FILE)
    return checklist


def default_out_dir(now: datetime | None = None, root: Path = Path("reports")) -> Path:
    """A fresh reports/check-<UTC>[-N] folder, created now: two checks never share one."""
    return new_out_dir(root, "check", now)


def _usage_problem(api_key_env: str | None, probe_requests: int, burst: int, run_dir: Path | None,
                   gpu: str | None, alert_rules: Path | None, dashboard: Path | None) -> str | None:
    """The first bad argument, as one line naming it and the fix (None when all are usable)."""
    if not PROBE_REQUESTS_MAX >= probe_requests >= 1:
        return (f"--probe-requests {probe_requests}: give 1 to {PROBE_REQUESTS_MAX} (streamed chat requests of "
                "the probe load; `slabench run` measures more)")
    if not BURST_MAX >= burst >= 0:
        return f"--burst {burst}: give 0 (no rate-limit probe) to {BURST_MAX} requests"
    if api_key_env and not os.environ.get(api_key_env):
        return f"--api-key-env {api_key_env}: that environment variable is not set or empty"
    if gpu and not has_price(gpu):
        return f"--gpu {gpu}: no price known for it; use one of {priced_gpus()}"
    if run_dir is not None and not Path(run_dir).exists():
        return f"--run-dir {run_dir}: no such folder (give a `slabench run` folder or a folder of runs)"
    return input_problem("--alert-rules", alert_rules) or input_problem("--dashboard", dashboard)


def main_check(url: str, api_key_env: str | None = None, sla: str | None = None, out_dir: Path | None = None,
               probe_requests: int = PROBE_REQUESTS_DEFAULT, burst: int = BURST_DEFAULT,
               run_dir: Path | None = None, gpu: str | None = None, echo: Callable[[str], None] = print,
               err: Callable[[str], None] | None = None, *, alert_rules: Path | None = None,
               dashboard: Path | None = None) -> int:
    """`slabench check` end to end: validate input, run the checklist, print it; returns the exit code."""
    err = err or (lambda s: print(s, file=sys.stderr))
    try:
        base, url_note = probes.base_url(url)
    except ValueError as exc:
        err(f"slabench: error: {exc}")
        return EXIT_USAGE
    problem = _usage_problem(api_key_env, probe_requests, burst, run_dir, gpu, alert_rules, dashboard)
    if problem:
        err(f"slabench: error: {problem}")
        return EXIT_USAGE
    try:
        policy = load_sla(sla or "guide")  # before any traffic: a policy that cannot load is a usage error
    except ConfigError as exc:
        err(f"slabench: error: {str(exc).splitlines()[0]}")
        return EXIT_USAGE
    notes = [n for n in (url_note, None if sla else NO_SLA_NOTE) if n]
    api_key = os.environ.get(api_key_env) if api_key_env else None
    checklist = run_check(base, api_key, policy, Path(out_dir) if out_dir else default_out_dir(), probe_requests,
                          burst, run_dir, gpu=gpu, alerts_file=alert_rules, dashboard_file=dashboard,
                          policy_ref=sla or "guide", notes=notes)
    echo(checklist_text(checklist))
    for name, path in checklist["files"].items():
        echo(f"{name}: {path}")
    if checklist["usage_error"]:
        err(f"slabench: error: {checklist['usage_error']}")
    return checklist["exit_code"]
