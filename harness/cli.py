"""Command line: parse → run → exit code. Nothing else lives here.

Exit codes: 0 a valid run (and with --gate every hard row passes); 1 a valid run whose gate fails
(a hard row FAIL, or INCONCLUSIVE without --allow-inconclusive, or a regression); 2 usage, scenario
or harness error, or an invalid run (one line on stderr; partial results are still scored and
reported); 130 interrupted (reports still written). No traceback ever reaches the user.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

EXIT_OK, EXIT_GATE_FAIL, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


def _parser() -> argparse.ArgumentParser:
    import harness

    p = argparse.ArgumentParser(prog="slabench", description="Load-test an LLM server and score it against an SLA.")
    p.add_argument("--version", action="version", version=f"slabench {harness.__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a scenario end to end and write its reports")
    run.add_argument("scenario", type=Path, help="scenario YAML file (see scenarios/)")
    run.add_argument("--out", type=Path, help="run folder to write (default reports/<scenario>-<UTC time>/)")
    run.add_argument("--sla", metavar="POLICY", help="SLA policy file or name in scenarios/sla/ (replaces the scenario's)")
    run.add_argument("--gate", action="store_true",
                     help="exit 1 when any hard SLA row is FAIL (or, with --baseline, a metric regressed)")
    run.add_argument("--baseline", metavar="RUN_DIR_OR_SUMMARY", help="add a regression section against this run")
    run.add_argument("--tolerance-pct", type=float, default=10.0, metavar="PCT",
                     help="change allowed before a metric counts as regressed (default 10)")
    run.add_argument("--target", metavar="URL", help="use this running OpenAI/TGI-compatible server instead of launching one")
    run.add_argument("--api-key-env", metavar="VAR",
                     help="environment variable holding the --target server's API key (never the key itself)")
    run.add_argument("--allow-inconclusive", action="store_true",
                     help="--gate: do not fail on a hard row with too few samples to judge (INCONCLUSIVE)")
    run.add_argument("--gpu", metavar="ID",
                     help="GPU the server runs on, for cost per 1k tokens (t4, l4, a10g, a100-80gb, h100-sxm, h200; "
                          "default: the scenario's cost.gpu or backend.gpu, kept with --target)")
    run.add_argument("--gpu-count", type=int, metavar="N",
                     help="GPUs the server uses, for cost (default: cost.gpu_count, else the backend's parallelism, else 1)")
    run.add_argument("--processes", type=int, metavar="N",
                     help="Locust worker processes on this machine (default: the scenario's load.processes, 1)")
    run.add_argument("--expect-workers", type=int, metavar="N",
                     help="run Locust as a master and wait for N `slabench worker`s (other machines)")
    run.add_argument("--master-bind-port", type=int, default=5557, metavar="PORT",
                     help="--expect-workers: port the master listens on for workers (default 5557)")
    run.add_argument("--master-bind-host", default="*", metavar="HOST",
                     help="--expect-workers: interface the master listens on (default: all)")

    run.add_argument("--prometheus-port", type=int, metavar="PORT",
                     help="serve the guide's llm_* metrics live on this port during the run")

    chk = sub.add_parser(
        "check", help="run the guide's deployment checklist against a running server",
        description="Probe a running vLLM, TGI or guide-style server (health, /metrics, auth, a small streamed "
                    "probe load, a rate-limit burst) and list the guide's deployment checklist. Exit 0 no FAIL "
                    "line, 1 a FAIL line, 2 bad arguments / server unreachable / key needed.")
    chk.add_argument("url", metavar="URL",
                     help="the server's base URL, e.g. http://127.0.0.1:8000 (a trailing /v1 is trimmed)")
    chk.add_argument("--api-key-env", metavar="VAR",
                     help="environment variable holding the server's API key (never the key itself)")
    chk.add_argument("--sla", metavar="POLICY",
                     help="SLA policy file or shipped name judging the probe load and the alert rules (default guide)")
    chk.add_argument("--out", type=Path, metavar="DIR",
                     help="folder for checklist.html, checklist.json, probe_requests.jsonl "
                          "(default: a new reports/check-<UTC time>/)")
    chk.add_argument("--run-dir", type=Path, metavar="RUN",
                     help="a `slabench run` folder (or a folder of runs: the newest) as load-test evidence")
    chk.add_argument("--gpu", metavar="ID", help="GPU id priced on the cost-tracking line (t4, l4, a10g, a100-40gb, "
                                                 "a100-80gb, h100, h100-sxm, h100-pcie, h200)")
    chk.add_argument("--alert-rules", type=Path, metavar="FILE",
                     help="your Prometheus rules file, checked for the alerts `slabench alerts POLICY` writes for "
                          "--sla (without it: a todo line)")
    chk.add_argument("--dashboard", type=Path, metavar="FILE",
                     help="your Grafana dashboard JSON export, checked for panels querying the server's /metrics "
                          "series (without it: a todo line)")
    chk.add_argument("--probe-requests", type=int, default=20, metavar="N",
                     help="streamed chat requests of the probe load, 4 at a time, 1..1000 (default 20). A p99 from "
                          "fewer than the policy's min_samples (guide: 100) is an INCONCLUSIVE line, not a PASS")
    chk.add_argument("--burst", type=int, default=50, metavar="N",
                     help="one-token requests fired over 2 s to find a rate limit (a 429), 0..500 (default 50; "
                          "0 skips the rate-limit line)")

    alr = sub.add_parser("alerts", help="print Prometheus alerting rules generated from an SLA policy",
                         description="Print Prometheus alerting rules (YAML, to stdout) for an SLA policy: per row "
                                     "a warning when the target is breached and a critical alert at the alert "
                                     "threshold, over the llm_* series. Save them: "
                                     "slabench alerts guide > rules.yaml")
    alr.add_argument("policy", metavar="POLICY",
                     help="SLA policy file or shipped name (guide, or e.g. scenarios/sla/guide.yaml)")

    mat = sub.add_parser("matrix", help="run every GPU x quantization x ... variant and recommend the cheapest passing")
    mat.add_argument("matrix_file", type=Path, metavar="MATRIX_FILE",
                     help="matrix YAML: a base scenario and the axes to vary (e.g. scenarios/matrix-gpus.yaml)")
    mat.add_argument("--out", type=Path, metavar="DIR",
                     help="folder for runs/ and comparison.html/json (default reports/<matrix name>-<UTC time>/; "
                          "must be new or empty unless --resume)")
    mat.add_argument("--resume", action="store_true",
                     help="continue an interrupted matrix, skipping finished variants (default: the newest "
                          "reports/<matrix name>-*/, or --out DIR); off by default")
    mat.add_argument("--capacity", action="store_true",
                     help="also search each offline sim variant's capacity and rank by the cost per 1k tokens there "
                          "(off by default)")
    mat.add_argument("--precision", type=float, metavar="FRACTION",
                     help="--capacity: stop the search when the bracket is this fraction of the capacity wide "
                          "(default 0.05)")

    swp = sub.add_parser("sweep", help="find the highest rate (or concurrency) at which the SLA still passes")
    swp.add_argument("scenario", type=Path, metavar="SCENARIO",
                     help="scenario YAML; open loop: its rate_rps is the starting rate (--concurrency: its users)")
    swp.add_argument("--out", type=Path, metavar="DIR",
                     help="folder for points/ and sweep.html/json (default reports/sweep-<scenario name>-<UTC time>/; "
                          "must be new or empty unless --resume)")
    swp.add_argument("--resume", action="store_true",
                     help="continue an interrupted sweep, reusing measured points (default: the newest "
                          "reports/sweep-<scenario name>-*/, or --out DIR); off by default")
    swp.add_argument("--precision", type=float, default=0.05, metavar="FRACTION",
                     help="stop bisecting when the pass/fail bracket is this fraction of the capacity wide "
                          "(default 0.05)")
    swp.add_argument("--repeats", type=int, default=1, metavar="N",
                     help="runs per point, other workload seeds; a point passes only if all pass (default 1)")
    swp.add_argument("--target-rps", type=float, metavar="RPS",
                     help="traffic to serve in req/s: prints the replicas needed (default: none)")
    swp.add_argument("--concurrency", action="store_true",
                     help="search closed-loop users instead of the request rate (off by default)")
    swp.add_argument("--headroom", type=float, default=0.2, metavar="FRACTION",
                     help="spare capacity kept per replica when counting replicas (default 0.2)")
    swp.add_argument("--live", action="store_true",
                     help="run sim points live through HTTP instead of offline through the model (off by default; "
                          "real and --target servers always run live)")
    swp.add_argument("--target", metavar="URL",
                     help="sweep this running OpenAI/TGI-compatible server instead of the scenario's backend "
                          "(default: the scenario's backend)")
    swp.add_argument("--api-key-env", metavar="VAR",
                     help="environment variable holding the --target (or backend.type: external) server's API key; "
                          "only the name is saved (default: none)")

    cmp_ = sub.add_parser("compare", help="side-by-side of saved runs (the first is the baseline)")
    cmp_.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR",
                      help="run folders written by `slabench run`, `matrix` or `sweep`; the first is the baseline "
                           "(at least two)")
    cmp_.add_argument("--out", type=Path, metavar="DIR",
                      help="folder for comparison.html/json (default reports/compare-<UTC time>/; must be new or empty)")

    wrk = sub.add_parser("worker", help="a Locust worker for a `slabench run --expect-workers N` master")
    wrk.add_argument("--master-host", required=True,
                     help="address (name or IP) of the machine running `slabench run --expect-workers N`")
    wrk.add_argument("--master-port", type=int, default=5557, help="the master's --master-bind-port (default 5557)")
    wrk.add_argument("--api", default=None, choices=["openai-chat", "openai-completions", "tgi-generate-stream"],
                     help="load only this API's user class (default: all; the master's scenario picks)")

    rep = sub.add_parser("report", help="re-render every report of a saved run folder")
    rep.add_argument("run_dir", type=Path, help="a folder written by `slabench run` (scored again from its records)")
    rep.add_argument("--gate", action="store_true",
                     help="exit 1 when any hard SLA row is FAIL (or, with a baseline, a metric regressed)")
    rep.add_argument("--baseline", metavar="RUN_DIR_OR_SUMMARY", help="add (or replace) the regression section")
    rep.add_argument("--tolerance-pct", type=float, default=10.0, metavar="PCT",
                     help="change allowed before a metric counts as regressed (default 10)")
    rep.add_argument("--allow-inconclusive", action="store_true",
                     help="--gate: do not fail on a hard row with too few samples to judge (INCONCLUSIVE)")

    sub.add_parser("schema", help="print the JSON Schema of scenario files (scenarios/scenario.schema.json)")
    ini = sub.add_parser("init", help="write a starter scenario.yaml, sla.yaml and the schema into a folder")
    ini.add_argument("dir", metavar="DIR", type=Path, nargs="?", default=Path("."),
                     help="folder to write (default: this one)")

    from harness.deploy.cli import add_parsers as add_deploy_parsers

    add_deploy_parsers(sub)  # k8s, k8s-load

    sim = sub.add_parser("sim", help="the simulated vLLM/TGI server (`slabench sim serve --help`)", add_help=False)
    sim.add_argument("sim_args", nargs=argparse.REMAINDER)
    return p


def _verdict_code(summary: dict, gate: bool, allow_inconclusive: bool = False) -> int:
    """Exit code of a finished run: invalid → 2; with --gate, FAIL / INCONCLUSIVE / regression → 1."""
    validity = summary.get("validity") or {"valid": True}
    if not validity.get("valid", True):
        reasons = "; ".join(validity.get("reasons") or ["unknown reason"])
        _err(f"invalid run: {reasons} (the reports say so; no verdict was given)")
        return EXIT_ERROR
    if not gate:
        return EXIT_OK
    sla = summary.get("sla") or {}
    if sla.get("overall") == "FAIL" or (summary.get("regression") or {}).get("verdict") == "REGRESSED":
        return EXIT_GATE_FAIL
    if sla.get("overall") == "INCONCLUSIVE" and not allow_inconclusive:
        inconclusive = sla.get("inconclusive_hard") or []
        needed = [r.get("needed_requests") for r in sla.get("rows") or [] if r.get("verdict") == "INCONCLUSIVE"]
        more = max((int(x) for x in needed if x), default=None)
        hint = f"a run of about {more} requests" if more else "a longer run"
        from harness.report.fmt import plural

        what = (f"{plural(len(inconclusive), 'hard SLA rows')} INCONCLUSIVE (too few samples): needs {hint}"
                if inconclusive else "no hard SLA row could be judged (none was measured)")
        _err(f"gate: {what}, or pass --allow-inconclusive")
        return EXIT_GATE_FAIL
    return EXIT_OK


def _err(line: str) -> None:
    _say(f"slabench: error: {line}", sys.stderr)


def _say(line: str, stream=None) -> None:
    """Print, surviving a terminal that went away (SIGHUP after an SSH drop: writes fail with EIO)."""
    try:
        print(line, file=stream or sys.stdout, flush=True)
    except (OSError, ValueError):
        pass


def _signal_as_interrupt(*_a) -> None:
    raise KeyboardInterrupt


def cmd_run(args) -> int:
    from harness.report import sla_table_text
    from harness.runner import execute

    outcome = execute(args.scenario, out=args.out, sla=args.sla, target=args.target,
                      api_key_env=args.api_key_env, echo=_say, processes=args.processes,
                      expect_workers=args.expect_workers, master_bind_port=args.master_bind_port,
                      master_bind_host=args.master_bind_host, prometheus_port=args.prometheus_port,
                      baseline=args.baseline, tolerance_pct=args.tolerance_pct, gpu=args.gpu,
                      gpu_count=args.gpu_count)
    _say(sla_table_text(outcome.summary))
    for note in outcome.summary.get("notes") or []:
        _say(f"note: {note}")
    _say(f"run folder: {outcome.run_dir}")
    _say(f"report: {outcome.reports.get('report.html', outcome.run_dir / 'report.html')}")
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    if outcome.load_reason != "completed":
        # The backend died or Locust failed: the partial results are saved and scored, but the
        # run did not do what was asked, so no verdict is given in the exit code.
        _err(f"load ended early ({outcome.load_reason}); partial results were saved and scored")
        return EXIT_ERROR
    return _verdict_code(outcome.summary, args.gate, args.allow_inconclusive)


def cmd_worker(args) -> int:
    import subprocess

    from harness.load.locust_runner import worker_argv

    # The worker gets its scenario (api, model, workload, load) from the master when the run starts.
    _say(f"worker: waiting for the master at {args.master_host}:{args.master_port} "
         "(`slabench run SCENARIO --expect-workers N` there sends the scenario and starts the load; "
         "Ctrl-C to stop)")
    return subprocess.call(worker_argv(args.api, args.master_host, args.master_port))


def cmd_check(args) -> int:
    from harness.ops.check import main_check

    return main_check(args.url, args.api_key_env, args.sla, args.out, args.probe_requests, args.burst,
                      args.run_dir, args.gpu, alert_rules=args.alert_rules, dashboard=args.dashboard)


def cmd_alerts(args) -> int:
    from harness.ops.alerts import main_alerts

    sys.stdout.write(main_alerts(args.policy))
    return EXIT_OK


def cmd_matrix(args) -> int:
    from harness.config import ConfigError
    from harness.decide import run_matrix

    if args.precision is not None and not args.capacity:
        raise ConfigError("--precision sets the capacity search: add --capacity, or drop --precision")
    out = run_matrix(args.matrix_file, out_dir=args.out, resume=args.resume, echo=_say,
                     capacity=args.capacity, precision=0.05 if args.precision is None else args.precision)
    return EXIT_INTERRUPTED if out.interrupted else EXIT_OK


def cmd_sweep(args) -> int:
    from harness.decide import run_sweep

    out = run_sweep(args.scenario, out_dir=args.out, resume=args.resume, echo=_say,
                    precision=args.precision, repeats=args.repeats, target_rps=args.target_rps,
                    concurrency=args.concurrency, headroom=args.headroom, offline=not args.live,
                    target=args.target, api_key_env=args.api_key_env)
    return EXIT_INTERRUPTED if out.interrupted else EXIT_OK


def cmd_compare(args) -> int:
    from harness.decide import compare_runs

    compare_runs(args.run_dirs, out_dir=args.out, echo=_say)  # warnings, the table, the comparison.html path
    return EXIT_OK


def cmd_report(args) -> int:
    import json

    from harness.report import attach_baseline, sla_table_text, write_reports

    if args.baseline:
        attach_baseline(args.run_dir, args.baseline, args.tolerance_pct)
    paths = write_reports(args.run_dir)
    summary = json.loads(Path(paths["summary.json"]).read_text(encoding="utf-8"))
    _say(sla_table_text(summary))
    for note in summary.get("notes") or []:
        _say(f"note: {note}")
    for name, path in paths.items():
        _say(f"{name}: {path}")
    return _verdict_code(summary, args.gate, args.allow_inconclusive)


def cmd_schema(args) -> int:
    from harness.starter import schema_text

    sys.stdout.write(schema_text())
    return EXIT_OK


def cmd_k8s(args) -> int:
    from harness.deploy.cli import cmd_k8s as run

    return run(args, _say)


def cmd_k8s_load(args) -> int:
    from harness.deploy.cli import cmd_k8s_load as run

    return run(args, _say)


def cmd_init(args) -> int:
    from harness.starter import init

    written = init(args.dir)
    _say(f"wrote {', '.join(str(p) for p in written)}")
    _say(f"next: slabench run {written[0]}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "sim":  # delegate untouched, so `slabench sim serve --help` is the sim's own
        from harness.sim.cli import main as sim_main

        return sim_main(argv[1:], prog="slabench sim")
    args = _parser().parse_args(argv)
    from harness.backends import BackendError
    from harness.config import ConfigError
    from harness.runner import HarnessError

    # SIGTERM and SIGHUP (a closed SSH session) stop a run like Ctrl-C: children torn down, reports written.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _signal_as_interrupt)
    try:
        commands = {"run": cmd_run, "report": cmd_report, "worker": cmd_worker, "check": cmd_check,
                    "alerts": cmd_alerts, "matrix": cmd_matrix, "sweep": cmd_sweep, "compare": cmd_compare,
                    "schema": cmd_schema, "init": cmd_init, "k8s": cmd_k8s, "k8s-load": cmd_k8s_load}
        return commands[args.command](args)
    except (ConfigError, HarnessError) as exc:
        _err(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return EXIT_ERROR
    except BackendError as exc:
        first, _, rest = str(exc).partition("\n")
        _err(first)
        if rest:
            _say(rest.rstrip(), sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        _say("slabench: interrupted", sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:  # a file or folder we could not read or write: the OS says which and why
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        _err(f"{exc.strerror or exc}:{where}" if exc.strerror else str(exc))
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001  (a bug: one line and a file with the details, never a traceback)
        return _internal_error(exc)


def _internal_error(exc: BaseException) -> int:
    path = Path(tempfile.gettempdir()) / f"slabench-crash-{time.strftime('%Y%m%dT%H%M%S')}-{id(exc):x}.txt"
    try:
        path.write_text("".join(traceback.format_exception(exc)) + f"\nargv: {sys.argv}\n", encoding="utf-8")
        where = f"details in {path}"
    except OSError:
        where = "no details could be saved"
    first = (str(exc).splitlines() or [""])[0][:200]
    _err(f"internal error ({type(exc).__name__}: {first}); this is a slabench bug: please report it with "
         f"the command line and {where}")
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
