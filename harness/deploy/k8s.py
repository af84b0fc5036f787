"""`slabench k8s SOURCE --target-rps R`: a measured decision → Deployment, Service, HPA and their README.

Seam: SOURCE (source.read_source) → engine container (engine.engine_for) → capacity per replica
(searched offline if the source has none) → replicas, HPA targets, cost (sizing) → objects
(manifests) → OUT/{deployment,service,hpa,prometheus-adapter-rules}.yaml, k8s.json, README.md.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from harness.config import ConfigError
from harness.config.errors import clip
from harness.deploy import manifests as mf
from harness.deploy.engine import Engine, engine_for
from harness.deploy.readme import deploy_readme
from harness.deploy.sizing import (MIN_RUNNING_TARGET, MIN_WAITING_TARGET, Replicas, cost, hpa_target,
                                   little_waiting, replicas)
from harness.deploy.source import Measured, read_source, search_capacity

REPORTS_ROOT = Path("reports")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME = 50  # Service names are DNS labels (63); the Secrets add "-hf-token"
FILES = ("deployment.yaml", "service.yaml", "hpa.yaml", "prometheus-adapter-rules.yaml", "k8s.json", "README.md")


@dataclass
class Gauge:
    role: str  # waiting | running
    series: str  # the engine's /metrics series
    at_capacity: float | None  # mean per pod at the capacity point
    target: float  # the HPA's averageValue
    how: str  # how at_capacity was obtained
    at_fail: float | None = None  # the same gauge in the first run past capacity (where the SLA broke)

    @property
    def metric(self) -> str:
        return mf.adapter_name(self.series)


@dataclass
class K8sOutcome:
    out_dir: Path
    name: str
    replicas: Replicas
    gauges: list[Gauge]
    numbers: dict = field(default_factory=dict)


def check_name(value: str, flag: str) -> str:
    if len(value) > MAX_NAME or not DNS_LABEL.match(value):
        raise ConfigError(f"{flag} '{clip(value)}' is not a Kubernetes name: lower-case letters, digits and '-', "
                          f"starting and ending with a letter or digit, at most {MAX_NAME} characters")
    return value


def default_name(m: Measured) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", f"llm-{m.variant or m.scenario.name}".lower()).strip("-")
    return slug[:MAX_NAME].rstrip("-")


def _mean(summary: dict | None, metric: str) -> float | None:
    s = ((summary or {}).get("metrics") or {}).get(metric) or {}
    v = s.get("mean")
    return float(v) if s.get("n") and v is not None and math.isfinite(v) else None


def gauges(m: Measured, eng: Engine, headroom: float) -> list[Gauge]:
    """The HPA's per-pod gauges at capacity: the server's own readings where scraped, else Little's law."""
    at = m.at_capacity
    waiting, running = _mean(at, "queue_depth"), _mean(at, "server_running")
    w_how = r_how = "measured: the mean of the server's gauge over the scored window of the run at capacity"
    if at is None:
        w_how = "no run at capacity to read it from (--capacity-rps): the floor of one waiting request per pod"
    elif waiting is None:
        ttft, light = _mean(at, "ttft_s"), _mean(m.lightest, "ttft_s")
        if ttft is not None and light is not None and m.capacity_rps:
            waiting = little_waiting(m.capacity_rps, ttft, light)
            w_how = (f"derived (no /metrics gauge was scraped): Little's law, {m.capacity_rps:.4g} req/s x the mean "
                     f"TTFT the load added over the lightest point ({ttft:.3g} s - {light:.3g} s)")
        else:
            w_how = "not measured and not derivable (no TTFT at two loads): the floor of one waiting request per pod"
    if running is None and at is not None:
        in_flight = _mean(at, "concurrency")
        if in_flight is not None:
            running = max(0.0, in_flight - (waiting or 0.0))
            r_how = "derived (no /metrics gauge was scraped): the client's mean requests in flight less the waiting ones"
    out = [Gauge("waiting", eng.waiting_series, waiting, hpa_target(waiting or 0.0, headroom, MIN_WAITING_TARGET), w_how,
                 _mean(m.at_fail, "queue_depth"))]
    if running is not None:
        out.append(Gauge("running", eng.running_series, running, hpa_target(running, headroom, MIN_RUNNING_TARGET), r_how,
                         _mean(m.at_fail, "server_running")))
    return out


def hpa_note(gs: list[Gauge]) -> str | None:
    """Why the running-requests metric matters when the queue stayed empty up to the SLA boundary."""
    w = gs[0]
    if w.at_capacity is not None and w.at_capacity < MIN_WAITING_TARGET and len(gs) > 1:
        return (f"The waiting queue stayed nearly empty up to the SLA boundary ({w.at_capacity:.2g} on average at "
                "capacity): this SLA broke as the batch grew (slower tokens), before requests had to wait. The "
                f"running-requests target ({gs[1].target:.3g} per pod) scales ahead of that; the waiting queue is "
                "the backstop.")
    return None


def _tokens_per_request(summary: dict | None) -> tuple[float | None, float | None]:
    t = ((summary or {}).get("rates") or {}).get("tokens") or {}
    ok = t.get("ok_requests")
    if not ok:
        return None, None
    return t.get("output_tokens", 0) / ok, t.get("total_tokens", 0) / ok


def _gpu_product(gpu: str | None) -> str | None:
    from harness.sim.catalog import SimConfigError, default_catalog

    if not gpu:
        return None
    try:
        return mf.gpu_product_label(default_catalog().gpu(gpu).name)
    except SimConfigError:
        return None


def out_folder(out_dir: Path | None, root: Path, name: str) -> Path:
    from harness.decide.common import check_empty_out
    from harness.outdirs import new_out_dir

    if out_dir is None:
        return new_out_dir(Path(root), f"k8s-{name}")
    out = Path(out_dir)
    check_empty_out(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def check_numbers(target_rps: float, headroom: float, capacity_rps: float | None) -> None:
    if not (math.isfinite(target_rps) and target_rps > 0):
        raise ConfigError(f"--target-rps {target_rps:g}: give the traffic to serve in requests per second, a number > 0")
    if not (math.isfinite(headroom) and 0 <= headroom < 1):
        raise ConfigError(f"--headroom {headroom:g}: give the spare fraction of each replica's capacity in [0, 1), "
                          "e.g. 0.3")
    if capacity_rps is not None and not (math.isfinite(capacity_rps) and capacity_rps > 0):
        raise ConfigError(f"--capacity-rps {capacity_rps:g}: give one replica's capacity in req/s, a number > 0")


def run_k8s(source: Path, target_rps: float, headroom: float = 0.3, variant: str | None = None,
            image_tag: str | None = None, namespace: str | None = None, out_dir: Path | None = None,
            name: str | None = None, model: str | None = None, capacity_rps: float | None = None,
            echo: Callable[[str], None] = print, root: Path = REPORTS_ROOT) -> K8sOutcome:
    """Write the manifests for serving `target_rps` with the engine and capacity SOURCE measured."""
    check_numbers(target_rps, headroom, capacity_rps)
    if namespace is not None:
        check_name(namespace, "--namespace")
    if name is not None:
        check_name(name, "--name")
    m = read_source(Path(source), variant, capacity_rps)
    eng = engine_for(m.scenario.backend, image_tag, model)  # refusals before any folder is made
    name = name or default_name(m)
    out = out_folder(out_dir, root, name)
    if m.needs_search:
        search_capacity(m, out, echo)
    r = replicas(target_rps, m.capacity_rps, headroom)
    gs = gauges(m, eng, headroom)
    from harness.scoring.cost import price_lookup

    price = price_lookup(m.scenario.model_dump(mode="json"), {"backend": {"gpu": eng.gpu}})
    c = cost(r, eng.gpus, price.get("price_usd_per_gpu_hour"), *_tokens_per_request(m.at_capacity))
    numbers = {
        "schema_version": 1, "kind": "k8s", "name": name, "namespace": namespace,
        "source": {"kind": m.kind, "path": str(m.path), "variant": m.variant, "label": m.label,
                   "evidence": m.evidence, "notes": m.notes,
                   "simulated": m.scenario.backend.type == "sim"},
        "capacity": {"value": m.capacity, "unit": m.unit, "rps_per_replica": m.capacity_rps, "fail_at": m.fail_at,
                     "given": capacity_rps is not None},
        "target_rps": target_rps, "headroom": headroom,
        "replicas": {"min": r.at_capacity, "deployment": r.with_headroom, "max": r.max_replicas},
        "hpa": [{"role": g.role, "metric": g.metric, "series": g.series, "at_capacity": g.at_capacity,
                 "at_fail": g.at_fail, "target": g.target, "how": g.how} for g in gs],
        "cost": {**c.__dict__, "gpu": price.get("gpu"), "price_source": price.get("price_source"),
                 "reason": price.get("reason")},
        "hpa_note": hpa_note(gs),
        "engine": {"kind": eng.kind, "image": eng.image, "model": eng.model, "gpus_per_pod": eng.gpus,
                   "command": eng.command, "startup_s": eng.startup_s, "notes": eng.notes},
    }
    _write(out, name, namespace, m, eng, r, gs, numbers)
    echo(f"capacity per replica: {m.capacity_rps:.4g} req/s"
         + (f" ({m.capacity:g} users)" if m.unit == "users" else "") + f" — {m.label}")
    echo(f"replicas for {target_rps:g} req/s: min {r.at_capacity} (at capacity), {r.with_headroom} with "
         f"{headroom:.0%} headroom, max {r.max_replicas}")
    for g in gs:
        at = "not measured" if g.at_capacity is None else f"{g.at_capacity:.3g} at capacity"
        echo(f"HPA {g.metric}: average {g.target:.3g} per pod ({at})")
    if c.usd_per_hour is not None:
        per_1k = "" if c.usd_per_1k_output_tokens is None else f", ${c.usd_per_1k_output_tokens:.5f} per 1k output tokens"
        echo(f"cost: ${c.usd_per_hour:.2f}/hour{per_1k} at {target_rps:g} req/s")
    echo(f"manifests: {out}")
    return K8sOutcome(out, name, r, gs, numbers)


def _write(out: Path, name: str, ns: str | None, m: Measured, eng: Engine, r: Replicas, gs: list[Gauge],
           numbers: dict) -> None:
    notes = {"slabench/source": str(m.path)[:200], "slabench/capacity-rps-per-replica": f"{m.capacity_rps:.6g}",
             "slabench/target-rps": f"{r.target_rps:g}"}
    dep = mf.deployment(name, ns, eng, r.with_headroom, _gpu_product(eng.gpu), notes)
    head = (f"Written by `slabench k8s` from {m.label}.\nThe HPA below owns the replica count once applied; "
            f"{r.with_headroom} is where it starts (README.md says why).")
    (out / "deployment.yaml").write_text(mf.dump(dep, head), encoding="utf-8")
    (out / "service.yaml").write_text(mf.dump(mf.service(name, ns), "The engine's HTTP port inside the cluster: "
                                              f"http://{name}.{ns or 'NAMESPACE'}.svc:8000"), encoding="utf-8")
    metrics = [mf.pods_metric(g.series, g.target) for g in gs]
    lines = ["Scales on what the capacity search saw break the SLA, per pod, through the Prometheus adapter",
             "(prometheus-adapter-rules.yaml):"]
    for g in gs:
        at = "not measured" if g.at_capacity is None else f"{g.at_capacity:.3g} at capacity"
        floor = MIN_WAITING_TARGET if g.role == "waiting" else MIN_RUNNING_TARGET
        lines += textwrap.wrap(f"- {g.metric} ({g.series}): target {g.target:.3g} = max({at} x (1 - headroom "
                               f"{r.headroom:g}), {floor:g}); {g.how}", 110, subsequent_indent="  ")
    lines += textwrap.wrap(f"minReplicas {r.at_capacity} = ceil({r.target_rps:g} / {r.capacity_rps:.4g}); maxReplicas "
                           f"{r.max_replicas} = ceil({r.target_rps:g} / ({r.capacity_rps:.4g} x (1 - {r.headroom:g}))), "
                           "at least minReplicas + 1. With several metrics the HPA follows the one asking for most "
                           "pods.", 110)
    if numbers.get("hpa_note"):
        lines += textwrap.wrap(numbers["hpa_note"], 110)
    cpu = mf.dump(mf.guide_cpu_hpa(name, ns, r))
    footer = (f"{WHY_NOT_CPU}\n\nThe guide's autoscaler, for comparison (do not apply it beside the one above):\n"
              + "\n".join(f"  {ln}" for ln in cpu.splitlines()))
    (out / "hpa.yaml").write_text(mf.dump(mf.hpa(name, ns, r, metrics), "\n".join(lines), footer), encoding="utf-8")
    adapter = ("Helm values for prometheus-community/prometheus-adapter (`-f` this file): exposes the engine's\n"
               "gauges as per-pod custom metrics for hpa.yaml. Prometheus must scrape the pods with `namespace`\n"
               "and `pod` labels (the pod annotations in deployment.yaml, or a PodMonitor).\n"
               "Without Helm: the list under rules.custom is the adapter's own config file `rules:`.")
    (out / "prometheus-adapter-rules.yaml").write_text(mf.dump(mf.adapter_rules([g.series for g in gs]), adapter),
                                                       encoding="utf-8")
    (out / "k8s.json").write_text(json.dumps(numbers, indent=1, default=str), encoding="utf-8")
    (out / "README.md").write_text(deploy_readme(numbers), encoding="utf-8")


WHY_NOT_CPU = (
    "Why not CPU at 70 % (the guide's section 3): an LLM server's CPU runs the HTTP front end, tokenization and the\n"
    "scheduler loop; what fills up is on the GPU, the decode batch and the KV cache. CPU use hardly moves between a\n"
    "batch of ten and a full batch with requests queueing behind it, so the SLA breaks (TTFT from queueing, time per\n"
    "token from a bigger batch) while CPU stays far below 70 % and nothing scales. A Utilization target also needs a\n"
    "CPU request on the container, which a pod sized by its GPUs (this one) does not set: that HPA reports\n"
    "FailedGetResourceMetric and never acts. The queue and batch gauges above are what the sweep saw cross the SLA.")
