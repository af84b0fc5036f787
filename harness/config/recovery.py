"""Config: a scenario's `recovery:` block (overload and recovery; docs/operations.md) and the spike it names.

`RecoveryConfig` says which load stage is the spike, the rolling window that judges the SLA after it,
and which metrics define "recovered". `stage_levels` and `find_spike` work on the load as a plain dict,
so scoring reads a saved scenario.yaml the same way; `RecoveryField` checks the block against the load.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

# Per-request metrics a rolling window can judge (rates and gauges need the whole run).
RECOVERY_METRICS = ("ttft_s", "tpot_s", "itl_s", "e2e_s", "error_rate_pct")
RecoveryMetric = Literal["ttft_s", "tpot_s", "itl_s", "e2e_s", "error_rate_pct"]
MAX_WINDOW_S = 3600.0  # an hour-long window judges a soak, not a recovery
MAX_STAGES = 10_000


class RecoveryConfig(BaseModel):
    """What "recovered" means after the spike (every field has a default: `recovery: {}` is enough)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # 1-based position of the spike in load.stages (open loop) or load.user_stages (closed loop).
    # Default: the highest stage that a lower one follows (the last such, on a tie).
    spike_stage: int | None = Field(None, ge=1, le=MAX_STAGES)
    # Rolling window over request send times. After the spike it starts no earlier than the spike's end,
    # so a window never mixes spike traffic into the recovery verdict.
    window_s: float = Field(10.0, gt=0, le=MAX_WINDOW_S)
    # The SLA policy's rows for these metrics define "inside the SLA"; default: its hard latency and
    # error-rate rows.
    metrics: list[RecoveryMetric] | None = Field(None, min_length=1)
    # Inside = the row would not FAIL (value within the alert), or, with `target`, would PASS.
    threshold: Literal["alert", "target"] = "alert"
    # A window with fewer samples than this for a row cannot say "inside" (fail closed).
    min_samples: int = Field(20, ge=1, le=10_000_000)
    # The queue counts as drained at this depth or below (one request waiting is no backlog).
    drain_queue_depth: float = Field(1.0, ge=0, le=1e9)


def stage_levels(load: dict) -> tuple[str, list[tuple[float, float, float]]]:
    """(unit, [(duration_s, level at start, level at end)]) of the load's stages: req/s for open loop
    `stages`, users for closed-loop `user_stages`. No stages (one constant load, a replay): ("", [])."""
    load = load if isinstance(load, dict) else {}
    mode = load.get("mode") or "closed"
    out: list[tuple[float, float, float]] = []
    if mode == "open" and isinstance(load.get("stages"), list):
        for st in load["stages"]:
            if isinstance(st, dict):
                start = float(st.get("rate_rps") or 0.0)
                end = st.get("end_rate_rps")
                out.append((float(st.get("duration_s") or 0.0), start, start if end is None else float(end)))
        return "req/s", out
    if mode == "closed" and isinstance(load.get("user_stages"), list):
        for st in load["user_stages"]:
            if isinstance(st, dict):
                users = float(st.get("users") or 0)
                out.append((float(st.get("duration_s") or 0.0), users, users))
        return "users", out
    return "", out


def find_spike(levels: list[tuple[float, float, float]], spike_stage: int | None) -> int:
    """0-based index of the spike stage; ValueError (one line, with the fix) when there is none."""
    if len(levels) < 2:
        raise ValueError("needs a staged load: load.stages (mode: open) or load.user_stages (mode: closed) "
                         "with the spike and at least one stage after it")
    if spike_stage is not None:
        i = spike_stage - 1
        if i >= len(levels):
            raise ValueError(f"spike_stage {spike_stage}: the load has only {len(levels)} stages "
                             "(counted from 1)")
        if i == len(levels) - 1:
            raise ValueError(f"spike_stage {spike_stage} is the last stage: add a stage after it, so the "
                             "recovery can be observed")
        return i
    peak = lambda k: max(levels[k][1], levels[k][2])  # noqa: E731
    candidates = [k for k in range(len(levels) - 1) if levels[k + 1][1] < peak(k)]
    if not candidates:
        raise ValueError("no stage is followed by a lower one, so there is no spike to recover from: "
                         "add a lower stage after the spike, or name it with spike_stage")
    top = max(peak(k) for k in candidates)
    return max(k for k in candidates if peak(k) == top)


def _check_against_load(value: RecoveryConfig | None, info: ValidationInfo) -> RecoveryConfig | None:
    load = info.data.get("load")
    if value is None or load is None:  # no block, or the load itself failed (reported on its own)
        return value
    data = load.model_dump() if hasattr(load, "model_dump") else load
    if data.get("mode") not in ("open", "closed"):
        raise ValueError(f"applies to a staged open or closed load, not load.mode: {data.get('mode')}")
    find_spike(stage_levels(data)[1], value.spike_stage)
    return value


# The Scenario field's type: the block, checked against the scenario's load (declared before it).
RecoveryField = Annotated[RecoveryConfig | None, AfterValidator(_check_against_load)]


def parse_recovery(block: Any) -> RecoveryConfig | None:
    """The block of a saved scenario (dict) as a model; None when absent. ValueError when unusable."""
    if block is None:
        return None
    if not isinstance(block, dict):
        raise ValueError("recovery must be a mapping")
    return RecoveryConfig.model_validate(block)
