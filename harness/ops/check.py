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
    judge_latency, judge_metrics, judge_rate_limit, skipped,
)
from harness.ops.predeploy import find_run_dir, pre_deployment_lines
from harness.records import META_FILE, SCENARIO_FILE
from harness.scoring.cost import price_lookup

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
SCHEMA_VERSION = 1
WRONG_KEY = "slabench-check-wrong-key"
PROBE_FILE = "probe_requests.jsonl"


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


def _overall(lines: list[dict]) -> str:
    """FAIL, else INCONCLUSIVE (a line could not be judged from the small probe: not a pass), else WARN, PASS."""
    verdicts = {ln["verdict"] for ln in lines}
    return next((v for v in (FAIL, INCONCLUSIVE, WARN) if v in verdicts), PASS)


def run_check(url: str, api_key: str | None, policy: SlaPolicy | None, out_dir: Path, probe_requests: int = 20,
              burst: int = 50, run_dir_hint: Path | None = None, *, gpu: str | None = None,
              alerts_file: Path | None = None, dashboard_file: Path | None = None, concurrency: int = 4,
              max_tokens: int = 16, burst_window_s: float = 2.0, timeout_s: float = 5.0) -> dict:
    """Probe `url`, judge the checklist, write it into `out_dir`; returns the checklist dict."""
    url = url.rstrip("/")
    notes: list[str] = []
    if policy is None:
        policy = load_sla("guide")
        notes.append("no --sla given: latency and error rate judged against the guide policy")
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
    pre = pre_deployment_lines(run_dir_hint, alerts_file, dashboard_file, metrics_verdict)
    lines = post + pre
    usage_error = None
    if unreachable:
        usage_error = f"{url} is unreachable: {res['health'].error}"
    elif res["needs_key"]:
        usage_error = f"{url} requires an API key: pass --api-key-env VAR (the variable holding the key)"
    counts = {v: sum(1 for ln in lines if ln["verdict"] == v) for v in VERDICTS}
    exit_code = EXIT_USAGE if usage_error else EXIT_FAIL if counts["FAIL"] else EXIT_OK
    if counts[INCONCLUSIVE]:
        notes.append(f"{counts[INCONCLUSIVE]} line(s) INCONCLUSIVE: the probe load is a smoke test, too small "
                     "for a tail percentile; the overall is not PASS, and `slabench run --gate` judges the tail")
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
    now = now or datetime.now(timezone.utc)
    return root / f"check-{now.strftime('%Y%m%dT%H%M%SZ')}"


def main_check(url: str, api_key_env: str | None = None, sla: str | None = None, out_dir: Path | None = None,
               probe_requests: int = 20, burst: int = 50, run_dir: Path | None = None, gpu: str | None = None,
               echo: Callable[[str], None] = print, err: Callable[[str], None] | None = None) -> int:
    """`slabench check` end to end: validate input, run the checklist, print it; returns the exit code."""
    err = err or (lambda s: print(s, file=sys.stderr))
    if not url.startswith(("http://", "https://")):
        err(f"slabench: error: URL '{url}' must start with http:// or https://")
        return EXIT_USAGE
    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            err(f"slabench: error: --api-key-env {api_key_env}: that environment variable is not set or empty")
            return EXIT_USAGE
    if probe_requests < 0 or burst < 0 or burst > 500:
        err("slabench: error: --probe-requests must be >= 0 and --burst between 0 and 500")
        return EXIT_USAGE
    try:
        policy = load_sla(sla) if sla else None
    except ConfigError as exc:
        err(f"slabench: error: {exc}")
        return EXIT_USAGE
    checklist = run_check(url, api_key, policy, Path(out_dir) if out_dir else default_out_dir(), probe_requests,
                          burst, run_dir, gpu=gpu)
    echo(checklist_text(checklist))
    for name, path in checklist["files"].items():
        echo(f"{name}: {path}")
    if checklist["usage_error"]:
        err(f"slabench: error: {checklist['usage_error']}")
    return checklist["exit_code"]
