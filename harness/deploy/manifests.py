"""Manifest seam of `slabench k8s`: Engine + sizing → Kubernetes objects as plain dicts, and YAML text.

Objects are dicts dumped with yaml.safe_dump (no templates), so tests parse them back and validate
them against the Kubernetes schemas; comments are only ever prepended or appended as whole lines.
"""

from __future__ import annotations

import yaml

from harness.deploy.engine import PERIOD_S, PORT, Engine
from harness.deploy.sizing import Replicas, quantity

API_KEY_FIELD, HF_TOKEN_FIELD = "api-key", "token"


def labels(name: str, component: str) -> dict:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": component}


def meta(name: str, namespace: str | None, lbl: dict, annotations: dict | None = None) -> dict:
    m: dict = {"name": name}
    if namespace:
        m["namespace"] = namespace
    m["labels"] = dict(lbl)
    if annotations:
        m["annotations"] = dict(annotations)
    return m


def secret_ref(var: str, secret: str, key: str, optional: bool = False) -> dict:
    ref = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": var, "valueFrom": {"secretKeyRef": ref}}


def _probe(period_s: int, timeout_s: int, failures: int) -> dict:
    return {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": period_s,
            "timeoutSeconds": timeout_s, "failureThreshold": failures}


def gpu_product_label(nvml_name: str | None) -> str | None:
    """NVIDIA GPU feature discovery's `nvidia.com/gpu.product` value for an NVML name ('Tesla T4' → 'Tesla-T4')."""
    return nvml_name.replace(" ", "-") if nvml_name else None


def deployment(name: str, namespace: str | None, eng: Engine, replicas: int, gpu_product: str | None,
               annotations: dict) -> dict:
    lbl = labels(name, "llm-server")
    container = {
        "name": eng.kind, "image": eng.image, "command": list(eng.command),
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "env": [secret_ref(eng.key_env, f"{name}-api-key", API_KEY_FIELD),
                # Gated models (Llama) need a Hugging Face token; optional so open models need no Secret.
                secret_ref("HF_TOKEN", f"{name}-hf-token", HF_TOKEN_FIELD, optional=True)],
        "resources": {"limits": {"nvidia.com/gpu": eng.gpus}},
        # Weights download and load (and CUDA graph capture) take minutes: the startup probe allows
        # the backend's startup_timeout_s before liveness may restart the container.
        "startupProbe": _probe(PERIOD_S, 5, eng.startup_failure_threshold),
        "readinessProbe": _probe(5, 5, 3),
        "livenessProbe": _probe(15, 10, 4),
        "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"},
                         {"name": "model-cache", "mountPath": eng.cache_path}],
    }
    pod_spec: dict = {
        "terminationGracePeriodSeconds": 90,
        "containers": [container],
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": eng.shm_size}},
                    {"name": "model-cache", "emptyDir": {}}],
    }
    if gpu_product:
        pod_spec["nodeSelector"] = {"nvidia.com/gpu.product": gpu_product}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": meta(name, namespace, lbl, annotations),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            # A new pod needs minutes to load: surge one before taking one away, so capacity never dips.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": lbl, "annotations": {"prometheus.io/scrape": "true",
                                                            "prometheus.io/path": "/metrics",
                                                            "prometheus.io/port": str(PORT)}},
                "spec": pod_spec,
            },
        },
    }


def service(name: str, namespace: str | None) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(name, namespace, labels(name, "llm-server")),
            "spec": {"type": "ClusterIP", "selector": {"app.kubernetes.io/name": name},
                     "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}]}}


def adapter_name(series: str) -> str:
    """The custom-metrics name the adapter exposes a series as (':' is not allowed there)."""
    return series.replace(":", "_")


def pods_metric(series: str, target: float) -> dict:
    return {"type": "Pods", "pods": {"metric": {"name": adapter_name(series)},
                                     "target": {"type": "AverageValue", "averageValue": quantity(target)}}}


def hpa(name: str, namespace: str | None, r: Replicas, metrics: list[dict]) -> dict:
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": meta(name, namespace, labels(name, "llm-server")),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": r.at_capacity, "maxReplicas": r.max_replicas, "metrics": metrics,
            # Up at once (a queue means the SLA is about to break); down slowly, one pod per 5 minutes
            # after 10 quiet minutes: a pod given back costs minutes of model load to get again.
            "behavior": {
                "scaleUp": {"stabilizationWindowSeconds": 0,
                            "policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]},
                "scaleDown": {"stabilizationWindowSeconds": 600,
                              "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}]},
            },
        },
    }


def guide_cpu_hpa(name: str, namespace: str | None, r: Replicas) -> dict:
    """The guide's section 3 autoscaler (CPU at 70 %), with this deployment's names and replica range."""
    doc = hpa(name, namespace, r, [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}])
    del doc["spec"]["behavior"]
    return doc


def adapter_rules(series: list[str]) -> dict:
    """prometheus-adapter rules (Helm values of prometheus-community/prometheus-adapter) exposing each
    series per pod, averaged over one minute like the sweep's per-run mean."""
    return {"rules": {"custom": [{
        "seriesQuery": f'{{__name__="{s}",namespace!="",pod!=""}}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
        "name": {"matches": f"^{s}$", "as": adapter_name(s)},
        "metricsQuery": "sum by (<<.GroupBy>>) (avg_over_time(<<.Series>>{<<.LabelMatchers>>}[1m]))",
    } for s in series]}}


class _Dumper(yaml.SafeDumper):
    """Safe YAML without anchors (objects share sub-dicts) and with multi-line strings as `|` blocks."""

    def ignore_aliases(self, data) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, text: str):
    style = "|" if "\n" in text and not any(ln != ln.rstrip() for ln in text.splitlines()) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _str)


def dump(doc: dict, header: str = "", footer: str = "") -> str:
    """YAML text of one object, with `#` comment lines before and after."""
    body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120, allow_unicode=True)
    return comment(header) + body + comment(footer)


def comment(text: str) -> str:
    return "".join(f"# {ln}".rstrip() + "\n" for ln in text.splitlines()) if text else ""
