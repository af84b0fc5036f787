"""Cost: GPU-hours of the scored window × price → cost per token / request, goodput per dollar.

Default prices are the deployment guide's GPU table (section 5, undated); GPUs not in the guide use
the observed 2025-2026 prices in shared/reference/hardware.md. `cost.gpu_price_usd_per_hour`
(with `cost.price_set_on`) overrides both. Energy per token comes from GPU power readings.
"""

from __future__ import annotations

import re

from harness.scoring.stats import safe_div

GUIDE_SOURCE = "deployment guide, section 5 'GPU Selection' table (undated)"
HARDWARE_SOURCE = "shared/reference/hardware.md observed on-demand price 2025-2026 (GPU not in the guide's table)"

# gpu id → (USD per GPU-hour, source, date)
GPU_PRICES_USD_PER_HOUR: dict[str, tuple[float, str, str | None]] = {
    "t4": (0.35, GUIDE_SOURCE, None),
    "a10g": (1.00, GUIDE_SOURCE, None),
    "a100-40gb": (3.00, GUIDE_SOURCE, None),
    "a100-80gb": (4.00, GUIDE_SOURCE, None),
    "h100": (5.00, GUIDE_SOURCE, None),
    "h100-sxm": (5.00, GUIDE_SOURCE, None),
    "h100-pcie": (5.00, GUIDE_SOURCE, None),
    "l4": (0.79, HARDWARE_SOURCE + ": L4 ~$0.78-0.80, midpoint", "2025-2026"),
    "h200": (4.75, HARDWARE_SOURCE + ": H200 ~$4-5.5, midpoint", "2025-2026"),
}


def normalize_gpu(name: str | None) -> str | None:
    """Map a scenario id or an NVML name ('NVIDIA A100-SXM4-80GB', 'Tesla T4') to a price-table id."""
    if not name:
        return None
    s = re.sub(r"\b(nvidia|tesla|geforce)\b", " ", str(name).lower())
    s = re.sub(r"[\s_]+", "-", s.strip()).strip("-")
    if s in GPU_PRICES_USD_PER_HOUR:
        return s
    if "h200" in s:
        return "h200"
    if "h100" in s:
        return "h100-pcie" if "pcie" in s else "h100-sxm" if "sxm" in s else "h100"
    if "a100" in s:
        return "a100-80gb" if "80" in s else "a100-40gb"
    if "a10g" in s:
        return "a10g"
    if re.search(r"(^|-)l4($|-)", s):
        return "l4"
    if re.search(r"(^|-)t4($|-)", s):
        return "t4"
    return s


def has_price(gpu: str) -> bool:
    """Whether `gpu` (any spelling normalize_gpu reads) has a built-in price per GPU-hour."""
    return normalize_gpu(gpu) in GPU_PRICES_USD_PER_HOUR


def priced_gpus() -> str:
    """The GPU ids with a built-in price, for messages that ask for one."""
    return ", ".join(GPU_PRICES_USD_PER_HOUR)


def _gpu_count(scenario: dict, meta: dict) -> tuple[int, str]:
    cost = scenario.get("cost") or {}
    backend = scenario.get("backend") or {}
    mb = meta.get("backend") if isinstance(meta.get("backend"), dict) else {}
    for value, src in ((cost.get("gpu_count"), "scenario cost.gpu_count"),
                       (mb.get("gpu_count"), "meta backend.gpu_count"),
                       (backend.get("tensor_parallel_size"), "scenario backend.tensor_parallel_size"),
                       (backend.get("num_shard"), "scenario backend.num_shard")):
        try:
            if value is not None and int(value) >= 1:
                return int(value), src
        except (TypeError, ValueError):
            continue
    return 1, "default (1)"


def price_lookup(scenario: dict, meta: dict, gpu_names_seen: list[str] | None = None) -> dict:
    """The GPU price per hour, the GPU id it was looked up by, its source and date."""
    cost = scenario.get("cost") or {}
    backend = scenario.get("backend") or {}
    mb = meta.get("backend") if isinstance(meta.get("backend"), dict) else {}
    raw = cost.get("gpu") or backend.get("gpu") or mb.get("gpu") or next(iter(gpu_names_seen or []), None)
    gpu = normalize_gpu(raw)
    count, count_src = _gpu_count(scenario, meta)
    out = {"gpu": gpu, "gpu_name": raw, "gpu_count": count, "gpu_count_source": count_src}
    override = cost.get("gpu_price_usd_per_hour")
    if override is not None:
        date = cost.get("price_set_on")
        return {**out, "price_usd_per_gpu_hour": float(override), "price_source": "scenario cost.gpu_price_usd_per_hour",
                "price_date": str(date) if date else None}
    if gpu in GPU_PRICES_USD_PER_HOUR:
        price, src, date = GPU_PRICES_USD_PER_HOUR[gpu]
        return {**out, "price_usd_per_gpu_hour": price, "price_source": src, "price_date": date}
    why = f"GPU '{raw}' has no price in the guide or hardware.md" if raw else "GPU unknown"
    return {**out, "price_usd_per_gpu_hour": None, "price_source": None, "price_date": None,
            "reason": f"{why}: set cost.gpu_price_usd_per_hour in the scenario"}


def cost_metrics(price: dict, duration_s: float, tokens: dict, ok_requests: int, good_requests: int,
                 energy: dict | None = None) -> dict:
    """Cost of the scored window and per-unit costs; energy per token when energy is known."""
    per_hour = price.get("price_usd_per_gpu_hour")
    gpu_hours = duration_s / 3600.0 * price["gpu_count"]
    cost_usd = None if per_hour is None else gpu_hours * per_hour
    out_tok, tot_tok = tokens.get("output_tokens", 0), tokens.get("total_tokens", 0)

    def per(units: float, scale: float) -> float | None:
        return None if cost_usd is None else safe_div(cost_usd * scale, units)

    res = {**price,
           "cluster_usd_per_hour": None if per_hour is None else per_hour * price["gpu_count"],
           "window_s": duration_s, "gpu_hours": gpu_hours, "cost_usd": cost_usd,
           "output_tokens": out_tok, "total_tokens": tot_tok, "ok_requests": ok_requests,
           "usd_per_1k_output_tokens": per(out_tok, 1e3), "usd_per_1k_total_tokens": per(tot_tok, 1e3),
           "usd_per_1m_total_tokens": per(tot_tok, 1e6), "usd_per_1m_output_tokens": per(out_tok, 1e6),
           "usd_per_1k_requests": per(ok_requests, 1e3),
           "good_requests_per_usd": None if cost_usd is None else safe_div(good_requests, cost_usd)}
    e = energy or {}
    ej = e.get("energy_j")
    res["energy"] = {**e, "j_per_output_token": None if ej is None else safe_div(ej, out_tok),
                     "j_per_total_token": None if ej is None else safe_div(ej, tot_tok)}
    return res
