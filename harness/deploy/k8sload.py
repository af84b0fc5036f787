"""`slabench k8s-load SCENARIO --workers N`: manifests that run a scenario's load from inside a cluster.

Seam: scenario (read as `slabench run` reads it) → a ConfigMap (the scenario, SLA inlined, and its
dataset or trace file), a Locust master Job (`slabench run ... --expect-workers N`), a headless
Service for it, N workers (`slabench worker`) as a Deployment, a PVC for the run folder and a pod
to copy it out → OUT/*.yaml, Dockerfile, README.md. Every command is built as an argv list.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import harness
from harness.config import OPEN_LOOP_MODES, ConfigError, ExternalBackend, load_scenario, resolve_scenario, scenario_to_yaml
from harness.config.errors import clip, read_text_file
from harness.deploy.manifests import dump, labels, meta, secret_ref

MASTER_PORT = 5557  # `slabench run --master-bind-port` default
KEY_VAR = "SLABENCH_API_KEY"
MAX_WORKERS = 1000
CONFIGMAP_MAX_BYTES = 1024 * 1024 - 16 * 1024  # Kubernetes caps a ConfigMap at 1 MiB; room for the scenario
WORKER_APIS = ("openai-chat", "openai-completions", "tgi-generate-stream")  # `slabench worker --api` choices
SCENARIO_DIR, RESULTS_DIR = "/scenario", "/results"
FILES = ("configmap.yaml", "master-job.yaml", "master-service.yaml", "workers.yaml", "results-pvc.yaml",
         "results-reader.yaml", "Dockerfile", "README.md")


@dataclass
class LoadOutcome:
    out_dir: Path
    name: str
    master_argv: list[str]
    worker_argv: list[str]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40].rstrip("-") or "load"


def _data_files(scn, base_dir: Path) -> tuple[object, dict[str, tuple[str, str]]]:
    """The workload with its dataset / trace paths moved next to the scenario in the ConfigMap, and
    key → (path in the mount, text) for each such file."""
    files: dict[str, tuple[str, str]] = {}
    workload = scn.workload
    for field in ("dataset", "trace"):
        ref = getattr(workload, field, None)
        if ref is None or not getattr(ref, "path", None):
            continue
        src = Path(ref.path) if Path(ref.path).is_absolute() else base_dir / ref.path
        text = read_text_file(src, f"workload.{field} file", CONFIGMAP_MAX_BYTES)
        suffix = re.sub(r"[^A-Za-z0-9.]", "", Path(ref.path).suffix)[:16]
        key = f"{field}{suffix}"
        files[key] = (key, text)
        workload = workload.model_copy(update={field: ref.model_copy(update={"path": key})})
    if sum(len(t.encode()) for _, t in files.values()) > CONFIGMAP_MAX_BYTES:
        raise ConfigError("the scenario's dataset and trace files exceed the 1 MiB a ConfigMap holds: sample them "
                          "down, or build them into the --image and point the scenario at that path")
    return workload, files


def check_workers(workers: int) -> None:
    if not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"--workers {workers}: give the number of Locust worker pods, 1 to {MAX_WORKERS}")


def run_k8s_load(scenario: Path, workers: int, target: str | None = None, image: str | None = None,
                 out_dir: Path | None = None, namespace: str | None = None, api_key_secret: str | None = None,
                 echo: Callable[[str], None] = print, root: Path = Path("reports")) -> LoadOutcome:
    from harness.deploy.k8s import check_name, out_folder
    from harness.runner import prepare

    check_workers(workers)
    if namespace is not None:
        check_name(namespace, "--namespace")
    if api_key_secret is not None:
        check_name(api_key_secret, "--api-key-secret")
    image = image or f"slabench:{harness.__version__}"
    if any(c.isspace() for c in image) or not image:
        raise ConfigError(f"--image '{clip(image)}' has a space: give an image reference such as "
                          "registry.example.com/slabench:0.1.0")
    scenario = Path(scenario)
    checked = prepare(scenario, None, target)  # the scenario and --target exactly as `slabench run` reads them
    backend = checked.backend
    if checked.load.mode in OPEN_LOOP_MODES:
        raise ConfigError(f"{scenario} is load.mode: {checked.load.mode}, sent by one dispatcher process: worker pods "
                          "scale out closed-loop users; run it with `slabench run --target URL` from one pod or machine")
    if not isinstance(backend, ExternalBackend):
        raise ConfigError(f"{scenario} launches its own {backend.type} server, which worker pods cannot reach: "
                          "give --target URL (e.g. the Service `slabench k8s` wrote: http://NAME.NAMESPACE.svc:8000)")
    if backend.api_key_env and not api_key_secret:
        raise ConfigError(f"the target needs its API key (${backend.api_key_env}): give --api-key-secret NAME, a "
                          "Secret whose key `api-key` holds it")
    scn = resolve_scenario(load_scenario(scenario), base_dir=scenario.parent)  # SLA inlined: no file to follow
    workload, files = _data_files(scn, scenario.parent)
    scn = scn.model_copy(update={"workload": workload})
    name = f"load-{_slug(scn.name)}"
    out = out_folder(out_dir, root, name)
    master = ["slabench", "run", f"{SCENARIO_DIR}/scenario.yaml", "--expect-workers", str(workers),
              "--master-bind-port", str(MASTER_PORT)]
    if target:
        master += ["--target", target]
    if api_key_secret:
        master += ["--api-key-env", KEY_VAR]
    worker = ["slabench", "worker", "--master-host", f"{name}-master", "--master-port", str(MASTER_PORT)]
    if scn.load.api in WORKER_APIS:
        worker += ["--api", scn.load.api]
    env = [secret_ref(KEY_VAR, api_key_secret, "api-key")] if api_key_secret else []
    docs = _objects(name, namespace, image, workers, master, worker, env, scenario_to_yaml(scn), files)
    for fname, (doc, head) in docs.items():
        (out / fname).write_text(dump(doc, head), encoding="utf-8")
    (out / "Dockerfile").write_text(DOCKERFILE.format(version=harness.__version__), encoding="utf-8")
    (out / "README.md").write_text(_readme(name, namespace, image, workers, master, worker, target, scn.name),
                                   encoding="utf-8")
    echo(f"load manifests: 1 master Job + {workers} worker(s) for {scn.name} → {out}")
    return LoadOutcome(out, name, master, worker)


def _container(name: str, image: str, argv: list[str], env: list[dict], mounts: list[dict]) -> dict:
    c = {"name": name, "image": image, "command": list(argv), "workingDir": RESULTS_DIR,
         "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}, "volumeMounts": mounts}
    if env:
        c["env"] = env
    return c


def _objects(name, ns, image, workers, master, worker, env, scenario_text, files) -> dict[str, tuple[dict, str]]:
    scen_vol = {"name": "scenario", "configMap": {"name": f"{name}-scenario", "items": [
        {"key": "scenario.yaml", "path": "scenario.yaml"}, *({"key": k, "path": p} for k, (p, _) in files.items())]}}
    scen_mount = {"name": "scenario", "mountPath": SCENARIO_DIR, "readOnly": True}
    results = {"name": "results", "persistentVolumeClaim": {"claimName": f"{name}-results"}}
    res_mount = {"name": "results", "mountPath": RESULTS_DIR}
    m_lbl, w_lbl = labels(name, "locust-master"), labels(name, "locust-worker")
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(f"{name}-scenario", ns, labels(name, "scenario")),
          "data": {"scenario.yaml": scenario_text, **{k: t for k, (_, t) in files.items()}}}
    mc = _container("master", image, master, env, [scen_mount, res_mount])
    mc["ports"] = [{"name": "locust", "containerPort": MASTER_PORT, "protocol": "TCP"}]
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta(f"{name}-master", ns, m_lbl),
           # One attempt: a second would start a second run while the workers still serve the first.
           "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": m_lbl}, "spec": {
               "restartPolicy": "Never", "containers": [mc], "volumes": [scen_vol, results]}}}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": meta(f"{name}-master", ns, m_lbl),
           "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": m_lbl,
                    "ports": [{"name": "locust", "port": MASTER_PORT, "targetPort": MASTER_PORT, "protocol": "TCP"}]}}
    wk = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(f"{name}-worker", ns, w_lbl),
          "spec": {"replicas": workers, "selector": {"matchLabels": w_lbl}, "template": {
              "metadata": {"labels": w_lbl},
              "spec": {"containers": [_container("worker", image, worker, env, [scen_mount])], "volumes": [scen_vol]}}}}
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta(f"{name}-results", ns, labels(name, "results")),
           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    reader = {"apiVersion": "v1", "kind": "Pod", "metadata": meta(f"{name}-results", ns, labels(name, "results")),
              "spec": {"restartPolicy": "Never", "containers": [{
                  "name": "reader", "image": image, "command": ["sleep", "3600"], "workingDir": RESULTS_DIR,
                  "volumeMounts": [res_mount]}], "volumes": [results]}}
    return {
        "configmap.yaml": (cm, "The scenario (SLA inlined) and its data files, mounted at /scenario in every pod."),
        "master-job.yaml": (job, "The Locust master: one `slabench run`, which waits for the workers, then writes\n"
                                 "its run folder under /results/reports/ on the PVC (results-pvc.yaml)."),
        "master-service.yaml": (svc, "Headless: the workers reach the master pod itself by this name."),
        "workers.yaml": (wk, f"{workers} Locust workers; each gets the scenario from the master when the run starts."),
        "results-pvc.yaml": (pvc, "Keeps the run folder after the master pod is gone."),
        "results-reader.yaml": (reader, "Apply after the Job finished, to copy the run folder out (README.md)."),
    }


DOCKERFILE = """\
# The image the manifests run (pass its name with --image): slabench and Locust, nothing else.
# Build it from a clone of slabench, e.g.
#   docker build -f THIS_FOLDER/Dockerfile -t registry.example.com/slabench:{version} .
FROM python:3.11-slim
COPY . /src
RUN pip install --no-cache-dir /src && rm -rf /src
WORKDIR /results
"""


def _readme(name, ns, image, workers, master, worker, target, scenario_name) -> str:
    nsf = f" -n {ns}" if ns else ""
    return f"""# Load test `{scenario_name}` from inside the cluster

Written by `slabench k8s-load`. One Locust master (a Job) and {workers} workers (a Deployment) run the
scenario against {f'`{target}`' if target else "the scenario's external server"}, so the load can outgrow one machine
and comes from the network the users' traffic comes from. The same scale-out as
`slabench run --expect-workers N` plus `slabench worker` on several machines.

Master: `{shlex.join(master)}`

Workers: `{shlex.join(worker)}`

## Run

```
docker build -f Dockerfile -t {image} /path/to/slabench && docker push {image}
kubectl apply{nsf} -f configmap.yaml -f results-pvc.yaml -f master-service.yaml -f master-job.yaml -f workers.yaml
kubectl logs{nsf} -f job/{name}-master
kubectl wait{nsf} --for=condition=complete --timeout=24h job/{name}-master
kubectl delete{nsf} -f workers.yaml
```

The Job's pod fails (exit 2) when the run is invalid, as `slabench run` does; the SLA table and
the run folder's path are at the end of its log.

## Copy the run folder out

```
kubectl apply{nsf} -f results-reader.yaml
kubectl wait{nsf} --for=condition=Ready pod/{name}-results
kubectl cp{nsf} {name}-results:{RESULTS_DIR}/reports ./reports
kubectl delete{nsf} -f results-reader.yaml -f master-job.yaml -f master-service.yaml -f configmap.yaml
slabench report reports/RUN_FOLDER
```

Delete `results-pvc.yaml` when the runs on it are copied. Each worker asks for one CPU: Locust
runs one process per pod, so add workers (not CPUs) for more load.
"""
