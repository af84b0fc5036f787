"""CLI seam of harness/deploy: the `k8s` and `k8s-load` subcommands' arguments and their handlers,
added to slabench's parser by harness/cli.py (parse → run → exit code; errors are ConfigError).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable


def add_parsers(sub) -> None:
    k8s = sub.add_parser(
        "k8s", help="write Kubernetes manifests (Deployment, Service, HPA) sized from a measured capacity",
        description="Turn a matrix folder (its recommendation, or --variant), a sweep folder, or a scenario into "
                    "deployment.yaml, service.yaml, hpa.yaml (autoscaling/v2 on the engine's queue), "
                    "prometheus-adapter-rules.yaml and a README with the numbers. See docs/operations.md.")
    k8s.add_argument("source", type=Path, metavar="SOURCE",
                     help="a `slabench matrix` folder, a `slabench sweep` folder, or a scenario file (a sim "
                          "scenario's capacity is searched offline; otherwise give --capacity-rps)")
    k8s.add_argument("--target-rps", type=float, required=True, metavar="RPS",
                     help="the traffic to serve, in requests per second (> 0)")
    k8s.add_argument("--headroom", type=float, default=0.3, metavar="FRACTION",
                     help="share of each replica's capacity kept spare, in [0, 1) (default 0.3)")
    k8s.add_argument("--variant", metavar="ID",
                     help="matrix SOURCE: deploy this variant instead of the recommendation (default: the recommendation)")
    k8s.add_argument("--image-tag", metavar="TAG",
                     help="pin the engine image to this tag (default: the vLLM release slabench's flags were checked "
                          "against, or the TGI backend's image tag)")
    k8s.add_argument("--namespace", metavar="NS",
                     help="namespace written into every object (default: none, kubectl's current namespace)")
    k8s.add_argument("--name", metavar="NAME",
                     help="name of the Deployment, Service and HPA (default: llm-<variant or scenario name>)")
    k8s.add_argument("--model", metavar="HF_ID",
                     help="the model the pods serve (default: the source's; a sim variant's Hugging Face id; AWQ, "
                          "GPTQ and int8 sim variants need a pre-quantized checkpoint named here)")
    k8s.add_argument("--capacity-rps", type=float, metavar="RPS",
                     help="scenario SOURCE: one replica's capacity in req/s, when it was measured elsewhere "
                          "(default: searched offline for a sim scenario)")
    k8s.add_argument("--out", type=Path, metavar="DIR",
                     help="folder to write, new or empty (default reports/k8s-<name>-<UTC time>/)")

    load = sub.add_parser(
        "k8s-load", help="write manifests that run a scenario's load from inside a Kubernetes cluster",
        description="A Locust master Job (`slabench run SCENARIO --expect-workers N`), N workers (`slabench worker`) "
                    "as a Deployment, a headless Service, the scenario as a ConfigMap and a PVC for the run folder.")
    load.add_argument("scenario", type=Path, metavar="SCENARIO", help="scenario YAML file to run")
    load.add_argument("--workers", type=int, required=True, metavar="N", help="Locust worker pods, 1 to 1000")
    load.add_argument("--target", metavar="URL",
                      help="the server to load-test, as pods reach it (e.g. http://llm-x.default.svc:8000; "
                           "default: the scenario's external backend)")
    load.add_argument("--api-key-secret", metavar="NAME",
                      help="Secret whose key `api-key` holds the target's API key (default: none, no key)")
    load.add_argument("--image", metavar="IMAGE",
                      help="image with slabench installed (default slabench:<version>; the folder's Dockerfile builds it)")
    load.add_argument("--namespace", metavar="NS",
                      help="namespace written into every object (default: none, kubectl's current namespace)")
    load.add_argument("--out", type=Path, metavar="DIR",
                      help="folder to write, new or empty (default reports/load-<scenario>-<UTC time>/)")


def cmd_k8s(args: argparse.Namespace, say: Callable[[str], None]) -> int:
    from harness.deploy.k8s import run_k8s

    run_k8s(args.source, args.target_rps, headroom=args.headroom, variant=args.variant, image_tag=args.image_tag,
            namespace=args.namespace, out_dir=args.out, name=args.name, model=args.model,
            capacity_rps=args.capacity_rps, echo=say)
    return 0


def cmd_k8s_load(args: argparse.Namespace, say: Callable[[str], None]) -> int:
    from harness.deploy.k8sload import run_k8s_load

    run_k8s_load(args.scenario, args.workers, target=args.target, image=args.image, out_dir=args.out,
                 namespace=args.namespace, api_key_secret=args.api_key_secret, echo=say)
    return 0
