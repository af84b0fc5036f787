"""Recovery: the overload-and-recovery figures of a run whose scenario has a `recovery:` block
(RecordTable + server samples + the scenario's stages → summary.json `recovery`; docs/metrics.md).

Pure. Rolling windows over request send times judge the chosen SLA rows on a grid of window ends;
after the spike every window starts no earlier than the spike's end. Fail closed: a window where a
row has fewer than `min_samples` samples is inconclusive, and an inconclusive window never ends the
recovery clock.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import ValidationError

from harness.config.errors import format_validation_error
from harness.config.recovery import RECOVERY_METRICS, RecoveryConfig, find_spike, parse_recovery, stage_levels
from harness.records import ServerSample
from harness.scoring.metrics import Window, cancelled_mask
from harness.scoring.sla import PASS, WARN, judge
from harness.scoring.table import RecordTable

INSIDE, OUTSIDE, INCONCLUSIVE = "inside", "outside", "inconclusive"
MAX_POINTS = 600  # window ends per run (the summary keeps the series for the report's plot)
LATENCY = ("ttft_s", "tpot_s", "itl_s", "e2e_s")
PCTS = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99.9": 99.9}
RULE = ("rolling windows of window_s over request send times, ending every step_s; after the spike a window "
        "starts no earlier than the spike's end. A window is inside when every recovery row has at least "
        "min_samples samples and is within its threshold, outside when any row with enough samples is beyond "
        "it, else inconclusive. time_to_recover_s: spike end → the end of the first inside window after which "
        "no window is outside. Inconclusive windows never end the recovery clock.")


def _stat(arr: np.ndarray, stat: str) -> float | None:
    if arr.size == 0:
        return None
    if stat in PCTS:
        return float(np.percentile(arr, PCTS[stat]))
    return float({"max": arr.max, "min": arr.min}.get(stat, arr.mean)())


def _rows(policy: dict | None, metrics: list[str] | None, notes: list[str]) -> list[dict]:
    """The policy rows that define "recovered": the named metrics', else the hard latency and error rows."""
    rows = [r for r in (policy or {}).get("rows") or [] if r.get("metric") in RECOVERY_METRICS]
    if metrics:
        missing = [m for m in metrics if not any(r["metric"] == m for r in rows)]
        if missing:
            notes.append(f"recovery.metrics {', '.join(missing)}: the SLA policy has no row for "
                         f"{'them' if len(missing) > 1 else 'it'}, so they are not judged")
        return [r for r in rows if r["metric"] in metrics]
    return [r for r in rows if r.get("hard", True)]


class _Judge:
    """Each recovery row judged on the requests sent in [a, b) (sorted send times, prefix sums)."""

    def __init__(self, t: RecordTable, rows: list[dict], cfg):
        self.rows, self.cfg = rows, cfg
        order = np.argsort(t.sent_s, kind="stable")
        self.sent = t.sent_s[order]
        cancelled = cancelled_mask(t)
        finished, failed = ~cancelled, ~t.ok & ~cancelled
        self.cum_fin = np.concatenate(([0], np.cumsum(finished[order])))
        self.cum_err = np.concatenate(([0], np.cumsum(failed[order])))
        self.values: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # metric → (send times, values), sorted
        for m in {r["metric"] for r in rows} & set(LATENCY):
            if m == "itl_s":  # every gap of ok requests, stamped with its request's send time
                keep = np.repeat(t.ok, t.itl_count) & np.isfinite(t.itl)
                sent = np.repeat(t.sent_s, t.itl_count)[keep]
                o = np.argsort(sent, kind="stable")
                self.values[m] = (sent[o], t.itl[keep][o])
            else:
                v = (t.tpot() if m == "tpot_s" else getattr(t, m))[order]
                keep = t.ok[order] & np.isfinite(v)
                self.values[m] = (self.sent[keep], v[keep])

    def row(self, r: dict, a: float, b: float) -> tuple[float | None, int, str]:
        metric, stat = r["metric"], r.get("stat") or "value"
        if metric == "error_rate_pct":
            lo, hi = np.searchsorted(self.sent, [a, b], side="left")
            n = int(self.cum_fin[hi] - self.cum_fin[lo])
            value = 100.0 * int(self.cum_err[hi] - self.cum_err[lo]) / n if n else None
        else:
            sent, vals = self.values[metric]
            lo, hi = np.searchsorted(sent, [a, b], side="left")
            n, value = int(hi - lo), _stat(vals[lo:hi], stat)
        if value is None or n < self.cfg.min_samples:
            return value, n, INCONCLUSIVE
        verdict = judge(value, float(r["target"]), float(r["alert"]), "lower")
        ok = verdict == PASS or (verdict == WARN and self.cfg.threshold == "alert")
        return value, n, INSIDE if ok else OUTSIDE

    def window(self, a: float, b: float) -> tuple[str, list[float | None]]:
        """(state, each row's value) of the window [a, b)."""
        states, values = [], []
        for r in self.rows:
            value, _, state = self.row(r, a, b)
            states.append(state)
            values.append(value)
        if OUTSIDE in states:
            return OUTSIDE, values
        return (INSIDE if states and all(s == INSIDE for s in states) else INCONCLUSIVE), values


def _level_at(levels: list[tuple[float, float, float]], rel_s: float) -> float:
    """The offered level (req/s or users) the stages schedule `rel_s` seconds into the load."""
    start = 0.0
    for i, (dur, lo, hi) in enumerate(levels):
        if rel_s < start + dur or i == len(levels) - 1:
            frac = min(max((rel_s - start) / dur, 0.0), 1.0) if dur > 0 else 0.0
            return lo + (hi - lo) * frac
        start += dur
    return 0.0


def _shed(t: RecordTable, sel: np.ndarray) -> dict:
    """Requests the server shed (429/503, or an overload error inside a 200 stream) and timeouts."""
    kinds = {"http_429": 0, "http_503": 0, "in_stream": 0}
    timeouts = 0
    for k, i in enumerate(t.err_index.tolist()):
        if not sel[i]:
            continue
        etype, msg, status = t.err_type[k], (t.err_msg[k] or "").lower(), int(t.status[i])
        if etype == "timeout":
            timeouts += 1
        elif etype == "overloaded_503":
            kinds["http_503"] += 1
        elif etype == "overloaded_429":
            kinds["http_429" if status == 429 else "in_stream"] += 1
        elif etype == "stream_error" and "overloaded" in msg:  # TGI's OpenAI routes: 422 in the payload
            kinds["in_stream"] += 1
    n = int((sel & ~cancelled_mask(t)).sum())
    shed = sum(kinds.values())
    return {"requests": n, "shed": shed, "shed_pct": 100.0 * shed / n if n else None, "shed_by_kind": kinds,
            "timeouts": timeouts}


def _queue(samples: list[ServerSample], start_s: float, end_s: float, spike_end_s: float, drained_at: float) -> dict:
    """Peak queue depth over the load, the depth at the spike's end, and how long the backlog took to drain."""
    qs = sorted((s.t_s, float(s.queue_depth)) for s in samples
                if s.queue_depth is not None and math.isfinite(s.queue_depth) and start_s <= s.t_s <= end_s)
    out: dict = {"peak_queue_depth": None, "queue_depth_at_spike_end": None, "drain_time_s": None, "drained": None,
                 "queue_note": None}
    if not qs:
        out["queue_note"] = "no server queue-depth samples during the load: peak and drain not measured"
        return out
    out["peak_queue_depth"] = max(q for _, q in qs)
    before = [q for ts, q in qs if ts <= spike_end_s]
    out["queue_depth_at_spike_end"] = before[-1] if before else None
    after = [(ts, q) for ts, q in qs if ts >= spike_end_s]
    if not after:
        out["queue_note"] = "no queue-depth sample after the spike: drain not measured"
        return out
    done = next((ts for ts, q in after if q <= drained_at), None)
    out["drained"] = done is not None
    out["drain_time_s"] = None if done is None else done - spike_end_s
    if done is None:
        out["queue_note"] = f"the queue did not drain to {drained_at:g} within the run"
    return out


def recovery_summary(scenario: dict, policy: dict | None, t: RecordTable, server: list[ServerSample],
                     window: Window) -> dict | None:
    """summary.json `recovery` (None without a `recovery:` block); see RULE and docs/metrics.md."""
    block = scenario.get("recovery") if isinstance(scenario, dict) else None
    if block is None:
        return None
    out: dict = {"status": "unusable", "recovered": False, "time_to_recover_s": None, "reason": None,
                 "capacity_crossed_at": None, "shed_pct": None, "timeouts": None, "peak_queue_depth": None,
                 "drain_time_s": None, "rule": RULE, "notes": []}
    try:
        cfg = parse_recovery(block)
        unit, levels = stage_levels(scenario.get("load"))
        spike = find_spike(levels, cfg.spike_stage)
    except ValidationError as exc:
        out["reason"] = f"recovery block unusable: {format_validation_error('recovery', exc, RecoveryConfig)[:300]}"
        return out
    except ValueError as exc:
        out["reason"] = f"recovery block unusable: {str(exc).splitlines()[0][:300]}"
        return out
    rows = _rows(policy, cfg.metrics, out["notes"])
    start = window.load_start_s
    if start is None or not t.n:
        out["reason"] = "no load start or no requests: nothing to judge"
        return out
    spike_start = start + sum(d for d, _, _ in levels[:spike])
    spike_end = spike_start + levels[spike][0]
    end = start + sum(d for d, _, _ in levels)
    if window.load_end_s is not None:
        end = min(end, window.load_end_s)
    sel = (t.sent_s >= start) & (t.sent_s <= end)
    out.update(_shed(t, sel))
    out.update(_queue(server, start, window.load_end_s if window.load_end_s is not None else end, spike_end,
                      cfg.drain_queue_depth))
    step = max(min(1.0, cfg.window_s / 4), (end - start) / MAX_POINTS)
    out.update(spike={"stage": spike + 1, "level": max(levels[spike][1:]), "unit": unit,
                      "start_t_s": spike_start - start, "end_t_s": spike_end - start},
               window_s=cfg.window_s, step_s=step, min_samples=cfg.min_samples, threshold=cfg.threshold,
               drain_queue_depth=cfg.drain_queue_depth,
               capacity_unit=unit, capacity_crossed_t_s=None,
               rows=[{"label": r.get("label") or " ".join(x for x in (r["metric"], r.get("stat")) if x and x != "value"),
                      "metric": r["metric"], "stat": r.get("stat") or "value",
                      "limit": float(r[cfg.threshold])} for r in rows])
    if not rows:
        out["reason"] = "the SLA policy has no latency or error-rate row to judge recovery by"
        return out
    j = _Judge(t, rows, cfg)
    pre = [start + k * step for k in range(1, int((spike_end - start) / step + 1e-9) + 1)]
    post = [spike_end + k * step for k in range(1, int((end - spike_end) / step + 1e-9) + 1)]
    pre_w = [j.window(max(start, b - cfg.window_s), b) for b in pre]
    post_w = [j.window(max(spike_end, b - cfg.window_s), b) for b in post]
    out["series"] = {"t_s": [b - start for b in pre + post], "value": [v[0] for _, v in pre_w + post_w],
                     "state": [s for s, _ in pre_w + post_w], "metric": rows[0]["metric"],
                     "stat": rows[0].get("stat") or "value", "limit": float(rows[0][cfg.threshold])}
    errors = next((i for i, r in enumerate(rows) if r["metric"] == "error_rate_pct"), None)
    if errors:  # beside a latency row: why a window with a low latency is still outside
        out["series"]["error_rate_pct"] = [v[errors] for _, v in pre_w + post_w]
    crossed = next((b for b, (s, _) in zip(pre, pre_w) if s == OUTSIDE), None)
    if crossed is not None:
        out["capacity_crossed_at"] = _level_at(levels, crossed - start)
        out["capacity_crossed_t_s"] = crossed - start
    _verdict(out, [s for b, (s, _) in zip(pre, pre_w) if b > spike_start], [s for s, _ in post_w], post, spike_end,
             cfg.min_samples)
    return out


def _verdict(out: dict, spike_states: list[str], post: list[str], ends: list[float], spike_end: float,
             min_samples: int) -> None:
    """status, recovered, time_to_recover_s and reason from the window states during and after the spike."""
    if OUTSIDE not in spike_states + post:
        if INSIDE in spike_states + post:
            out.update(status="held", recovered=True, time_to_recover_s=0.0,
                       reason="the rolling window never left the SLA during or after the spike")
        else:
            out.update(status="inconclusive", reason=f"every window had fewer than {min_samples} samples to judge")
        return
    last_out = max((i for i, s in enumerate(post) if s == OUTSIDE), default=-1)
    k = next((i for i in range(last_out + 1, len(post)) if post[i] == INSIDE), None)
    if k is not None:
        out.update(status="recovered", recovered=True, time_to_recover_s=ends[k] - spike_end, reason=None)
    elif not post:
        out.update(status="not recovered", reason="did not recover within the run: the load ended with the spike")
    elif last_out < 0:
        out.update(status="inconclusive",
                   reason=f"did not recover within the run: no window after the spike had {min_samples} samples")
    else:
        out.update(status="not recovered", reason="did not recover within the run")
