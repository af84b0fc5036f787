"""Sizing seam of `slabench k8s`: measured capacity per replica → replica counts, HPA targets, cost.

Pure arithmetic over numbers (no files, no YAML), so every figure the manifests and their README
carry is computed once, here, and can be property-tested.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# The HPA averages a per-pod gauge over pods and the adapter's window. Below one waiting request per
# pod that average is mostly sampling noise of a gauge that is 0 or 1, so the waiting-queue target is
# never set lower: "scale out when, on average, a request waits on every pod".
MIN_WAITING_TARGET = 1.0
MIN_RUNNING_TARGET = 1.0
_EPS = 1e-9  # 50 / 10 must be 5 replicas, not 6 from a float rounding up


@dataclass(frozen=True)
class Replicas:
    target_rps: float
    capacity_rps: float  # one replica's request rate at the SLA boundary (measured)
    headroom: float  # fraction of that capacity kept spare
    at_capacity: int  # ceil(R / C): the fewest pods that serve R inside the SLA → HPA minReplicas
    with_headroom: int  # ceil(R / (C (1 - h))): pods at (1 - h) of capacity each → Deployment replicas
    max_replicas: int  # HPA maxReplicas: with_headroom, but at least one above minReplicas

    @property
    def rps_per_pod_at_start(self) -> float:
        return self.target_rps / self.with_headroom


def replicas(target_rps: float, capacity_rps: float, headroom: float) -> Replicas:
    """Replica counts for serving `target_rps` with replicas of `capacity_rps` each."""
    if not (math.isfinite(target_rps) and target_rps > 0):
        raise ValueError(f"target rate {target_rps!r} must be a number > 0")
    if not (math.isfinite(capacity_rps) and capacity_rps > 0):
        raise ValueError(f"capacity {capacity_rps!r} must be a number > 0")
    if not 0 <= headroom < 1:
        raise ValueError(f"headroom {headroom!r} must be in [0, 1)")
    at_cap = max(1, math.ceil(target_rps / capacity_rps - _EPS))
    spare = max(at_cap, math.ceil(target_rps / (capacity_rps * (1 - headroom)) - _EPS))
    # An HPA whose min equals its max cannot act: one replica more leaves it room for a burst.
    return Replicas(target_rps, capacity_rps, headroom, at_cap, spare, max(spare, at_cap + 1))


def hpa_target(at_capacity: float, headroom: float, floor: float) -> float:
    """The per-pod averageValue: the gauge's mean at the SLA boundary, less the headroom (never below floor)."""
    if not math.isfinite(at_capacity) or at_capacity < 0:
        raise ValueError(f"gauge value {at_capacity!r} must be a number >= 0")
    # Three significant digits: the gauge's mean is not known better than that from one run.
    return max(float(f"{at_capacity * (1 - headroom):.3g}"), floor)


def little_waiting(rate_rps: float, ttft_mean_s: float, ttft_light_mean_s: float) -> float:
    """Little's law for the waiting queue when the server's gauge was not measured: L = λ W, with W the
    extra mean time to first token the load added over the lightest point (queueing, not prefill)."""
    return max(0.0, rate_rps * (ttft_mean_s - ttft_light_mean_s))


def quantity(value: float) -> str:
    """A Kubernetes quantity for an HPA averageValue, in thousandths ("3470m"), or whole ("4")."""
    milli = int(round(value * 1000))
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def parse_quantity(text: str | int | float) -> float:
    """The inverse of `quantity` (plain numbers and the milli suffix only)."""
    s = str(text)
    return int(s[:-1]) / 1000 if s.endswith("m") else float(s)


@dataclass(frozen=True)
class Cost:
    price_usd_per_gpu_hour: float | None
    gpus_per_pod: int
    usd_per_hour_min: float | None  # minReplicas pods
    usd_per_hour: float | None  # Deployment replicas (with headroom)
    usd_per_1k_output_tokens: float | None  # at the target rate, Deployment replicas
    usd_per_1k_total_tokens: float | None
    output_tokens_per_request: float | None
    total_tokens_per_request: float | None


def cost(r: Replicas, gpus_per_pod: int, price_usd_per_gpu_hour: float | None,
         output_tokens_per_request: float | None, total_tokens_per_request: float | None) -> Cost:
    """Cost per hour of the pods and per 1k tokens served at the target rate (tokens per request as
    measured at capacity: the workload's mean, which the target rate is assumed to share)."""
    if price_usd_per_gpu_hour is None:
        return Cost(None, gpus_per_pod, None, None, None, None, output_tokens_per_request, total_tokens_per_request)
    per_pod = gpus_per_pod * price_usd_per_gpu_hour
    per_hour = r.with_headroom * per_pod

    def per_1k(tokens_per_request: float | None) -> float | None:
        if not tokens_per_request:
            return None
        return per_hour / (r.target_rps * tokens_per_request * 3600.0) * 1000.0

    return Cost(price_usd_per_gpu_hour, gpus_per_pod, r.at_capacity * per_pod, per_hour,
                per_1k(output_tokens_per_request), per_1k(total_tokens_per_request),
                output_tokens_per_request, total_tokens_per_request)
