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
    run.add_argument("--sla", help="SLA policy file or name in scenarios/sla/ (replaces the scenario's)")
    run.add_argument("--gate", action="store_true",
                     help="exit 1 when any hard SLA row is FAIL (or, with --baseline, a metric regressed)")
    run.add_argument("--baseline", metavar="RUN_DIR_OR_SUMMARY", help="add a regression section against this run")
    run.add_argument("--tolerance-pct", type=float, default=10.0,
                     help="change allowed before a metric counts as regressed (default 10)")
    run.add_argument("--target", help="use this running OpenAI/TGI-compatible server instead of launching one")
    run.add_argument("--api-key-env", metavar="VAR",
                     help="environment variable holding the --target server's API key (never the key itself)")
    run.add_argument("--allow-inconclusive", action="store_true",
                     help="--gate: do not fail on a hard row with too few samples to judge (INCONCLUSIVE)")
    run.add_argument("--processes", type=int, metavar="N", help="Locust worker processes on this machine")
    run.add_argument("--expect-workers", type=int, metavar="N",
                     help="run Locust as a master and wait for N `slabench worker`s (other machines)")
    run.add_argument("--master-bind-port", type=int, default=5557, metavar="PORT")
    run.add_argument("--master-bind-host", default="*", metavar="HOST", help="interface the master listens on")

    run.add_argument("--prometheus-port", type=int, metavar="PORT",
                     help="serve the guide's llm_* metrics live on this port during the run")

    chk = sub.add_parser("check", help="run the guide's deployment checklist against a running server")
    chk.add_argument("url")
    chk.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the API key")
    chk.add_argument("--sla", help="SLA policy for the probe load (default: guide)")
    chk.add_argument("--out", type=Path, help="folder for checklist.html/json (default reports/check-<UTC>/)")
    chk.add_argument("--run-dir", type=Path, help="a run folder (or a folder of runs) as load-test evidence")
    chk.add_argument("--gpu", help="GPU id for the cost-tracking line (t4, a10g, a100-80gb, h100-sxm, ...)")
    chk.add_argument("--probe-requests", type=int, default=20)
    chk.add_argument("--burst", type=int, default=50)

    alr = sub.add_parser("alerts", help="print Prometheus alerting rules generated from an SLA policy")
    alr.add_argument("policy", help="SLA policy file or name (e.g. scenarios/sla/guide.yaml)")

    mat = sub.add_parser("matrix", help="run every GPU x quantization x ... variant and recommend the cheapest passing")
    mat.add_argument("matrix_file", type=Path)
    mat.add_argument("--out", type=Path, help="comparison folder (default reports/matrix-<name>-<UTC time>/)")
    mat.add_argument("--resume", action="store_true", help="continue an interrupted matrix, skipping finished variants")
    mat.add_argument("--capacity", action="store_true",
                     help="also search each offline sim variant's capacity and rank by the cost per 1k tokens there")
    mat.add_argument("--precision", type=float, help="--capacity: relative precision (default 0.05)")

    swp = sub.add_parser("sweep", help="find the highest rate (or concurrency) at which the SLA still passes")
    swp.add_argument("scenario", type=Path)
    swp.add_argument("--out", type=Path)
    swp.add_argument("--resume", action="store_true")
    swp.add_argument("--precision", type=float, default=0.05, help="relative width at which bisection stops")
    swp.add_argument("--repeats", type=int, default=1, help="runs per point; a point passes only if all pass")
    swp.add_argument("--target-rps", type=float, help="traffic to serve: prints the replicas needed")
    swp.add_argument("--concurrency", action="store_true", help="sweep closed-loop users instead of the rate")
    swp.add_argument("--headroom", type=float, default=0.2, help="spare capacity kept per replica")
    swp.add_argument("--live", action="store_true", help="run sim points live instead of offline through the model")

    cmp_ = sub.add_parser("compare", help="side-by-side of saved runs (the first is the baseline)")
    cmp_.add_argument("run_dirs", type=Path, nargs="+")
    cmp_.add_argument("--out", type=Path)

    wrk = sub.add_parser("worker", help="a Locust worker for a `slabench run --expect-workers N` master")
    wrk.add_argument("--master-host", required=True, help="address of the `slabench run --expect-workers N` machine")
    wrk.add_argument("--master-port", type=int, default=5557, help="the master's --master-bind-port (default 5557)")
    wrk.add_argument("--api", default=None, choices=["openai-chat", "openai-completions", "tgi-generate-stream"],
                     help="load only this API's user class (default: all; the master's scenario picks)")

    rep = sub.add_parser("report", help="re-render every report of a saved run folder")
    rep.add_argument("run_dir", type=Path)
    rep.add_argument("--gate", action="store_true",
                     help="exit 1 when any hard SLA row is FAIL (or, with a baseline, a metric regressed)")
    rep.add_argument("--baseline", metavar="RUN_DIR_OR_SUMMARY", help="add (or replace) the regression section")
    rep.add_argument("--tolerance-pct", type=float, default=10.0,
                     help="change allowed before a metric counts as regressed (default 10)")
    rep.add_argument("--allow-inconclusive", action="store_true",
                     help="--gate: do not fail on a hard row with too few samples to judge (INCONCLUSIVE)")

    sub.add_parser("schema", help="print the JSON Schema of scenario files (scenarios/scenario.schema.json)")
    ini = sub.add_parser("init", help="write a starter scenario.yaml, sla.yaml and the schema into a folder")
    ini.add_argument("dir", metavar="DIR", type=Path, nargs="?", default=Path("."),
                     help="folder to write (default: this one)")

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
        what = (f"{len(inconclusive)} hard SLA row(s) INCONCLUSIVE (too few samples): run {hint}"
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
                      baseline=args.baseline, tolerance_pct=args.tolerance_pct)
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
    return subprocess.call(worker_argv(args.api, args.master_host, args.master_port))


def cmd_check(args) -> int:
    from harness.ops.check import main_check

    return main_check(args.url, args.api_key_env, args.sla, args.out, args.probe_requests, args.burst,
                      args.run_dir, args.gpu)


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
                    concurrency=args.concurrency, headroom=args.headroom, offline=not args.live)
    print(f"sweep: {out.html}")
    return EXIT_INTERRUPTED if out.interrupted else EXIT_OK


def cmd_compare(args) -> int:
    from harness.decide import compare_runs

    print(f"comparison: {compare_runs(args.run_dirs, out_dir=args.out)}")
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

        return sim_main(argv[1:])
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
                    "schema": cmd_schema, "init": cmd_init}
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
