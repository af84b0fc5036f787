"""Deploy: from a measured decision to Kubernetes manifests — `slabench k8s` (the engine's
Deployment, Service and an HPA sized from the measured capacity) and `slabench k8s-load` (a Locust
master Job and worker Deployment that load-test from inside the cluster). See docs/operations.md.
"""
