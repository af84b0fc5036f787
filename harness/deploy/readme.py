"""README seam of `slabench k8s`: the numbers k8s.json holds → the folder's README.md (how each was
derived, what it costs, how to apply and check it). Text only: no files are read here.
"""

from __future__ import annotations

from harness.report.fmt import usd


def _n(v, digits: int = 4) -> str:
    return "—" if v is None else f"{v:.{digits}g}"


def deploy_readme(d: dict) -> str:
    name, ns, src, cap, rep = d["name"], d.get("namespace"), d["source"], d["capacity"], d["replicas"]
    eng, c, r_tps, h = d["engine"], d["cost"], d["target_rps"], d["headroom"]
    nsf = f" -n {ns}" if ns else ""
    host = f"{name}.{ns}.svc" if ns else f"{name}.NAMESPACE.svc"
    crps = cap["rps_per_replica"]
    if cap["unit"] == "users":
        how_cap = (f"the most closed-loop users one replica served inside the SLA was {cap['value']:g} "
                   f"(fails at {_n(cap['fail_at'])}); the request rate measured there is the capacity")
    elif cap.get("given"):
        how_cap = "given with --capacity-rps (not measured by slabench here)"
    else:
        how_cap = (f"the highest request rate one replica served inside the SLA (fails at {_n(cap['fail_at'])} req/s)")
    gpus, price = eng["gpus_per_pod"], c.get("price_usd_per_gpu_hour")
    price_txt = (f"{gpus} x {c.get('gpu')} at {usd(price)} per GPU-hour ({c.get('price_source')})" if price is not None
                 else f"{gpus} GPU(s), no price: {c.get('reason') or 'unknown GPU'}")
    rows = [
        ("Capacity per replica", f"{_n(crps)} req/s", f"{how_cap}; evidence: `{src.get('evidence') or '—'}`"),
        ("Target rate", f"{r_tps:g} req/s", "`--target-rps`"),
        ("Headroom", f"{h:.0%}", "`--headroom`: the share of each replica's capacity kept spare"),
        ("HPA minReplicas", str(rep["min"]), f"ceil({r_tps:g} / {_n(crps)}): the fewest replicas serving the "
                                             "target inside the SLA, each at its capacity"),
        ("Deployment replicas", str(rep["deployment"]), f"ceil({r_tps:g} / ({_n(crps)} x (1 - {h:g}))): the target "
                                                        "with the headroom spare; where the HPA starts"),
        ("HPA maxReplicas", str(rep["max"]), "the Deployment replicas, at least minReplicas + 1 so the HPA can act"),
    ]
    for g in d["hpa"]:
        rows.append((f"HPA `{g['metric']}`", f"{_n(g['target'], 3)} per pod",
                     f"`{g['series']}` at capacity: {_n(g['at_capacity'], 3)} (past it, where the SLA broke: "
                     f"{_n(g.get('at_fail'), 3)}), x (1 - {h:g}), at least 1; {g['how']}"))
    rows += [
        ("GPUs per pod", str(gpus), f"tensor parallel size = `nvidia.com/gpu` limit; {price_txt}"),
        ("Cost per hour", usd(c.get("usd_per_hour")), f"{rep['deployment']} pods x {gpus} GPU(s) "
                                                      f"({usd(c.get('usd_per_hour_min'))} at minReplicas)"),
        ("Cost per 1k output tokens", usd(c.get("usd_per_1k_output_tokens")),
         f"at {r_tps:g} req/s on {rep['deployment']} pods, {_n(c.get('output_tokens_per_request'))} output tokens "
         "per request as measured at capacity"),
        ("Cost per 1k tokens (prompt + output)", usd(c.get("usd_per_1k_total_tokens")),
         f"{_n(c.get('total_tokens_per_request'))} tokens per request"),
    ]
    table = "\n".join(f"| {a} | {b} | {x} |" for a, b, x in rows)
    notes = "".join(f"- {n}\n" for n in [*src.get("notes", []), *eng.get("notes", [])])
    waiting = d["hpa"][0]["metric"]
    simulated = src.get("simulated")
    single = ("- minReplicas is 1: a crash leaves no replica until a new one has loaded; raise it to 2 where that "
              "matters.\n" if rep["min"] < 2 else "")
    hpa_note = f"\n{d['hpa_note']}\n" if d.get("hpa_note") else ""
    return f"""# Deploying `{name}` on Kubernetes

Written by `slabench k8s` from {src['label']} (`{src['path']}`).

| | value | how it was derived |
|---|---|---|
{table}

{notes}{hpa_note}
## What is in this folder

| file | what |
|---|---|
| `deployment.yaml` | {eng['kind']} (`{eng['image']}`) serving `{eng['model']}` with the measured flags; `nvidia.com/gpu: {gpus}`; startup, readiness and liveness probes on `/health` (startup allows {eng['startup_s']:g} s for the weights to load); the API key from the Secret `{name}-api-key`; Prometheus scrape annotations for `/metrics` on port 8000 |
| `service.yaml` | ClusterIP Service on port 8000: `http://{host}:8000` |
| `hpa.yaml` | autoscaling/v2 HPA on the engine's waiting queue and batch (custom Pods metrics), and, commented, the guide's CPU 70 % autoscaler with why it tracks nothing that limits an LLM server |
| `prometheus-adapter-rules.yaml` | Helm values for prometheus-adapter that expose those gauges per pod |
| `k8s.json` | every number above, machine-readable |

The engine's command line (the flags slabench launched it with, listening on all interfaces):

```
{' '.join(eng['command'])}
```

## Apply

```
kubectl create secret generic {name}-api-key{nsf} --from-literal=api-key="$(openssl rand -hex 32)"
kubectl create secret generic {name}-hf-token{nsf} --from-literal=token="$HF_TOKEN"   # gated models only
helm upgrade --install prometheus-adapter prometheus-community/prometheus-adapter -n monitoring \\
  -f prometheus-adapter-rules.yaml --set prometheus.url=http://prometheus-server.monitoring.svc
kubectl apply{nsf} -f deployment.yaml -f service.yaml -f hpa.yaml
kubectl rollout status{nsf} deployment/{name} --timeout={int(eng['startup_s']) + 300}s
kubectl get --raw "/apis/custom.metrics.k8s.io/v1beta1/namespaces/{ns or 'default'}/pods/*/{waiting}"
```

Apply the three files by name: the adapter file is Helm values, not a Kubernetes object. The
Secret must exist before the pods start (the key is required; the Hugging Face token is optional).
`kubectl describe hpa {name}` should show the metrics' current values within a minute of the
pods being ready; `<unknown>` means Prometheus does not scrape the pods with `namespace` and `pod`
labels or the adapter rules are not loaded.

## Check it

```
kubectl port-forward{nsf} service/{name} 8000:8000 &
export LLM_API_KEY="$(kubectl get secret{nsf} {name}-api-key -o jsonpath='{{.data.api-key}}' | base64 -d)"
slabench check http://127.0.0.1:8000 --api-key-env LLM_API_KEY
slabench k8s-load SCENARIO --workers 4 --target http://{host}:8000 --api-key-secret {name}-api-key
```

The last line writes the manifests for a load test from inside the cluster against the Service.

## Caveats

- {"The capacity comes from the simulator's performance model: confirm it on one real pod (`slabench sweep SCENARIO --target URL` against a single replica) before trusting the replica counts." if simulated else "The capacity was measured on the server the sweep targeted: on other hardware, sweep again."}
- `kubectl apply` of `deployment.yaml` resets the replica count to {rep['deployment']} until the HPA acts
  again; drop `spec.replicas` from it after the first apply if that matters.
- The node selector `nvidia.com/gpu.product` (NVIDIA GPU feature discovery) pins the GPU the numbers were
  measured on; remove it where nodes lack that label.
- The model cache is an emptyDir: every new pod downloads the weights again. A shared ReadOnlyMany
  volume shortens the startup (and the time the HPA waits for a new replica).
{single}"""
