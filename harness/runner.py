"""The run pipeline: scenario → backend → load → records on disk → scoring → reports.

`execute` is what `slabench run` does. Every stage writes into the run folder before the next
starts, so an interrupted or crashed run still leaves records that `slabench report` can score.
"""

from __future__ import annotations

import json
import platform
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import harness
from harness.backends import BackendError, make_backend
from harness.config import (OPEN_LOOP_MODES, ConfigError, CostConfig, ExternalBackend, LoadConfig, Scenario, SimBackend, load_scenario,
                            resolve_scenario, scenario_to_yaml)
from harness.config.errors import validation_message
from harness.load.arrivals import rate_profile
from harness.load.calibrate import calibrate_scenario
from harness.load.locust_runner import Distribution, run_load
from harness.outdirs import new_out_dir
from harness.records import META_FILE, SCENARIO_FILE, SUMMARY_FILE, BACKEND_LOG
from harness.telemetry.session import TelemetrySession

SCHEMA_VERSION = 1


class HarnessError(Exception):
    """The run could not be carried out (bad folder, backend never ready); one line for the user."""


@dataclass
class RunOutcome:
    run_dir: Path
    summary: dict
    reports: dict = field(default_factory=dict)
    interrupted: bool = False
    load_reason: str = "completed"


def _priced_gpu(backend) -> tuple[str | None, int | None]:
    """The GPU id and count a scenario's own backend names (kept for cost when --target replaces it)."""
    count = getattr(backend, "tensor_parallel_size", None) or getattr(backend, "num_shard", None)
    return getattr(backend, "gpu", None), count


def _with_cost(scn: Scenario, gpu: str | None, gpu_count: int | None) -> Scenario:
    """`--gpu`/`--gpu-count` set what the run is priced as (scenario `cost.gpu`, `cost.gpu_count`)."""
    if gpu is None and gpu_count is None:
        return scn
    fields = scn.cost.model_dump(exclude_unset=True)
    if gpu is not None:
        from harness.scoring.cost import has_price, priced_gpus

        if not has_price(gpu) and scn.cost.gpu_price_usd_per_hour is None:
            raise ConfigError(f"--gpu {gpu}: no price known for this GPU: use one of {priced_gpus()}, "
                              "or set cost.gpu_price_usd_per_hour in the scenario")
        fields["gpu"] = gpu
    if gpu_count is not None:
        fields["gpu_count"] = gpu_count
    try:
        cost = CostConfig.model_validate(fields)
    except ValueError as exc:
        raise ConfigError(f"--gpu-count: {validation_message(exc)}") from None
    return scn.model_copy(update={"cost": cost})


def _check_sim_ids(scn: Scenario, scenario_path: Path) -> None:
    """A sim backend's GPU, model and quantization ids are checked before anything launches."""
    if not isinstance(scn.backend, SimBackend) or "--catalog" in scn.backend.extra_args:
        return  # a user catalog is read by the sim itself, which names a bad id in one line
    from harness.sim.catalog import SimConfigError, default_catalog

    catalog, b = default_catalog(), scn.backend
    try:
        catalog.gpu(b.gpu), catalog.model(b.model), catalog.quant(b.quantization)
    except SimConfigError as exc:
        msg = str(exc).replace("use --gpu", "set backend.gpu").replace("use --model", "set backend.model")
        msg = msg.replace("use --quantization", "set backend.quantization")
        raise ConfigError(f"{scenario_path}: {msg}") from None


def prepare(scenario_path: Path, sla: str | None, target: str | None, processes: int | None = None,
            api_key_env: str | None = None, gpu: str | None = None, gpu_count: int | None = None) -> Scenario:
    scn = load_scenario(scenario_path)
    if api_key_env is not None and not target and not isinstance(scn.backend, ExternalBackend):
        raise ConfigError("--api-key-env gives the key of a server you run (--target or backend.type: external); "
                          "a launched backend takes backend.api_key_env in the scenario")
    if processes is not None:
        try:
            load = LoadConfig.model_validate({**scn.load.model_dump(exclude_unset=True), "processes": processes})
        except ValueError as exc:
            raise ConfigError(f"--processes: {validation_message(exc)}") from None
        scn = scn.model_copy(update={"load": load})
    if target or api_key_env is not None:
        old = scn.backend if isinstance(scn.backend, ExternalBackend) else None
        if old is None and (scn.cost.gpu is None or scn.cost.gpu_count is None):
            # The scenario's backend said which GPU the server runs on: --target keeps it for cost.
            own_gpu, own_count = _priced_gpu(scn.backend)
            kept = {"gpu": scn.cost.gpu or own_gpu, "gpu_count": scn.cost.gpu_count or own_count}
            scn = scn.model_copy(update={"cost": scn.cost.model_copy(update=kept)})
        fields = {"url": target or (old.url if old else ""),
                  "api_key_env": api_key_env if api_key_env is not None else (old.api_key_env if old else None)}
        if old is not None and not target:
            fields.update(model=old.model, startup_timeout_s=old.startup_timeout_s)
        try:
            backend = ExternalBackend(**fields)
        except ValueError as exc:
            flag = "--target" if target else "--api-key-env"
            raise ConfigError(f"{flag}: {validation_message(exc)}") from None
        scn = scn.model_copy(update={"backend": backend})
    scn = _with_cost(scn, gpu, gpu_count)
    _check_sim_ids(scn, scenario_path)
    # The SLA inlined, and dataset and trace paths made absolute (relative to the scenario file, so the
    # saved copy still finds them); a bad dataset or trace then fails here, in one line, before anything starts.
    scn = resolve_scenario(scn, sla_override=sla, base_dir=Path(scenario_path).parent)
    if scn.workload.dataset is not None:
        from harness.load.workload import load_dataset

        load_dataset(scn.workload.dataset)
    if scn.workload.trace is not None:
        from harness.load.trace import check_trace

        check_trace(scn.workload.trace, scn.workload.seed)
    return scn


def load_meta(scn: Scenario) -> dict:
    """What load was offered, for the report and for judging throughput rows."""
    load = scn.load
    out = {"mode": load.mode, "api": load.api, "max_requests": load.max_requests, "processes": load.processes}
    if load.mode == "closed":
        out.update(users=load.users, spawn_rate=load.spawn_rate, think_time_s=load.think_time_s)
    elif load.mode == "replay":  # the trace sets the rate: the offered rate is known once it was sent
        tr = scn.workload.trace
        out.update(max_in_flight=load.max_in_flight, trace_format=tr.format if tr else None,
                   time_scale=tr.time_scale if tr else None)
    else:
        profile = rate_profile(load)
        out.update(arrival=load.arrival, burstiness=load.burstiness, max_in_flight=load.max_in_flight,
                   rate_rps=load.rate_rps, stages=[s.model_dump() for s in load.rate_stages()],
                   offered_rate_rps=profile.total_expected / profile.duration_s)
    return out


def _start_exporter(port: int | None, run_dir: Path, echo: Callable[[str], None]):
    """The live Prometheus endpoint (`--prometheus-port`), or None."""
    if port is None:
        return None
    from harness.ops.exporter import LiveExporter

    exporter = LiveExporter(port, run_dir)
    try:
        exporter.start()
    except OSError as exc:
        raise HarnessError(f"--prometheus-port {port}: cannot listen ({exc.strerror}): choose a free port") from None
    echo(f"live metrics: {exporter.url}")
    return exporter


def _host_versions() -> dict:
    # importlib.metadata, not `import locust`: importing locust monkey-patches this process with gevent.
    from importlib.metadata import PackageNotFoundError, version

    try:
        locust_version = version("locust")
    except PackageNotFoundError:
        locust_version = None
    return {"python": platform.python_version(), "platform": platform.platform(),
            "locust": locust_version, "slabench": harness.__version__}


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str), encoding="utf-8")
    tmp.replace(path)


def execute(scenario_path: Path, out: Path | None = None, sla: str | None = None, target: str | None = None,
            echo: Callable[[str], None] = print, processes: int | None = None, api_key_env: str | None = None,
            expect_workers: int | None = None, master_bind_port: int = 5557,
            master_bind_host: str = "*", prometheus_port: int | None = None,
            baseline: str | None = None, tolerance_pct: float = 10.0, gpu: str | None = None,
            gpu_count: int | None = None) -> RunOutcome:
    scn = prepare(Path(scenario_path), sla, target, processes, api_key_env, gpu, gpu_count)
    if baseline:
        from harness.scoring.regression import load_baseline

        load_baseline(baseline)  # a bad --baseline fails now, in one line, not after the run
    if expect_workers and scn.load.mode in OPEN_LOOP_MODES:
        raise ConfigError(f"--expect-workers: load.mode {scn.load.mode} is sent by one dispatcher process (thousands "
                          "of req/s from one core); workers scale out closed-loop users: drop --expect-workers")
    dist = Distribution(processes=scn.load.processes, expect_workers=expect_workers,
                        master_bind_port=master_bind_port, master_bind_host=master_bind_host)
    if out:
        run_dir = Path(out)
        if run_dir.exists() and any(run_dir.iterdir()):
            raise HarnessError(f"--out {run_dir} already holds files: choose a new folder or remove it")
        run_dir.mkdir(parents=True, exist_ok=True)
    else:
        run_dir = new_out_dir(Path("reports"), scn.name)  # never a folder another run started in
    (run_dir / SCENARIO_FILE).write_text(scenario_to_yaml(scn), encoding="utf-8")
    meta: dict = {"schema_version": SCHEMA_VERSION, "slabench_version": harness.__version__,
                  "scenario_name": scn.name, "scenario_path": str(scenario_path),
                  "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "planned_duration_s": scn.load.duration_s, "interrupted": False,
                  "load": load_meta(scn),
                  "host": _host_versions(), "notes": []}
    meta_path = run_dir / META_FILE
    _write_json(meta_path, meta)

    outcome_reason = "not started"
    try:
        backend = make_backend(scn.backend, run_dir / BACKEND_LOG)
        with backend:
            meta["backend"] = backend.describe()
            _write_json(meta_path, meta)
            echo(f"backend ready: {backend.url} serving {backend.model}")
            # Before the load (and its telemetry): synthetic prompts sized in the server's own tokens.
            scn, meta["prompt_calibration"] = calibrate_scenario(scn, backend.url, backend.model, echo=echo)
            _write_json(meta_path, meta)
            exporter = _start_exporter(prometheus_port, run_dir, echo)
            telemetry = TelemetrySession(meta["backend"], backend.url, echo=echo)
            telemetry.start()
            try:
                tick = (lambda: (exporter.poll(), exporter.update_from_telemetry(telemetry))) if exporter else None
                load = run_load(scn, backend.url, backend.model, run_dir,
                                api_key_env=getattr(scn.backend, "api_key_env", None),
                                crashed=backend.poll_crash, echo=echo, dist=dist, on_tick=tick)
            finally:
                if exporter is not None:
                    exporter.poll()
                    exporter.stop()
                meta["telemetry"] = telemetry.stop(run_dir)
            outcome_reason = load.reason
            meta["backend"] = backend.describe()
    except BackendError as exc:
        meta["notes"].append(f"backend error: {exc}")
        meta["error"] = str(exc)
        _write_json(meta_path, meta)
        raise
    except KeyboardInterrupt:
        outcome_reason = "interrupted"
        load = None
    meta["load_start_s"] = (load.locust_meta.get("load_start_s") if load else None)
    meta["load_end_s"] = (load.locust_meta.get("load_end_s") if load else None) or time.perf_counter()
    meta["load_start_unix_s"] = load.locust_meta.get("load_start_unix_s") if load else None
    meta["load_outcome"] = outcome_reason
    if load and load.locust_meta.get("open_loop"):
        meta["open_loop"] = load.locust_meta["open_loop"]
    if load and load.locust_meta.get("replay"):
        meta["replay"] = load.locust_meta["replay"]
    meta["interrupted"] = outcome_reason == "interrupted"
    if outcome_reason != "completed":
        meta["notes"].append(f"load ended early: {outcome_reason}")
    if outcome_reason not in ("completed", "interrupted"):
        # The server died, the target went away or the load generator failed: whatever was
        # recorded is scored and reported, but the run did not measure what it was asked to.
        meta["invalid_reasons"] = [f"load ended early: {outcome_reason}"]
    meta["finished_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    _write_json(meta_path, meta)

    from harness.report import attach_baseline, write_reports

    with held_interrupts() as held:  # a Ctrl-C now would lose the reports of a finished run
        if baseline:
            attach_baseline(run_dir, baseline, tolerance_pct)
        reports = write_reports(run_dir)
    if held:
        echo("interrupted while writing the reports: they were finished first")
    summary = json.loads((run_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    return RunOutcome(run_dir, summary, reports, meta["interrupted"] or bool(held), outcome_reason)


@contextmanager
def held_interrupts():
    """Defer SIGINT/SIGTERM/SIGHUP until the block ends; yields the list of signals that came."""
    came: list[int] = []
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    if threading.current_thread() is not threading.main_thread():
        yield came  # handlers can only be set from the main thread; nothing to hold elsewhere
        return
    old = {s: signal.signal(s, lambda num, _f: came.append(num)) for s in sigs}
    try:
        yield came
    finally:
        for s, h in old.items():
            signal.signal(s, h)
