"""Run validity: did this run measure the server at all? (records + meta → summary `validity`).

Pure. A run is invalid when the load generator or a worker failed, the target went away, no request
was recorded, none was scored, or none succeeded (every one refused, unauthorized or unreachable).
An invalid run is never PASS: the CLI exits 2 whatever the SLA rows say.
"""

from __future__ import annotations

from collections import Counter

AUTH_STATUSES = (401, 403)
# Open loop: more than this share of the scheduled requests never sent means the offered load was
# not delivered, so whatever the SLA rows say describes a lighter test than the one asked for. A
# handful due in the last instant of the run stay below it.
MAX_NOT_SENT_FRAC = 0.01


def _top_errors(statuses, error_types, n: int = 3) -> str:
    # A request cancelled at stop had HTTP 200 and no answer in time: its class says more than its status.
    counts = Counter(f"HTTP {int(s)}" if s and t != "cancelled_at_stop" else str(t or "error")
                     for s, t in zip(statuses, error_types))
    return ", ".join(f"{k} x{v}" for k, v in counts.most_common(n))


def run_validity(meta: dict, table, scored, reader_problems: list[str] | None = None) -> dict:
    """{"valid": bool, "reasons": [one line each]} for summary.json.

    `meta["invalid_reasons"]` carries what only the runner saw (load generator failed, target gone);
    the records say the rest. `reader_problems` are files of the run folder that could not be read.
    """
    reasons = [str(r) for r in (meta.get("invalid_reasons") or []) if r]
    reasons += [str(r) for r in (reader_problems or []) if r]
    n = int(table.n)
    if n == 0:
        reasons.append("no request was recorded: nothing was measured")
    else:
        n_scored = int(scored.sum())
        ok = table.ok
        if int(ok.sum()) == 0:
            statuses = [int(s) for s in table.status.tolist()]
            error_types = list(table.err_type)  # every record is an error here, in file order
            if statuses and all(s in AUTH_STATUSES for s in statuses):
                reasons.append(f"every request ({n}) was rejected as unauthorized (HTTP {statuses[0]}): "
                               "pass the server's key with --api-key-env NAME")
            else:
                reasons.append(f"no request succeeded ({n} sent: {_top_errors(statuses, error_types)}): "
                               "nothing of the server's latency was measured")
        elif n_scored == 0:
            reasons.append(f"no request was sent inside the scored window ({n} in warm-up/cool-down): "
                           "lengthen duration_s or shorten warmup_s/cooldown_s")
    ol = meta.get("open_loop") if isinstance(meta.get("open_loop"), dict) else {}
    scheduled, not_sent = ol.get("scheduled"), ol.get("not_sent")
    if isinstance(scheduled, (int, float)) and isinstance(not_sent, (int, float)) and scheduled > 0 \
            and not_sent / scheduled > MAX_NOT_SENT_FRAC:
        reasons.append(f"the offered load was not delivered: {int(not_sent)} of {int(scheduled)} scheduled "
                       f"requests ({100 * not_sent / scheduled:.1f} %) were never sent (max_in_flight held them "
                       "or the load generator fell behind): raise max_in_flight, lower the rate, or use "
                       "--processes / a bigger client machine")
    # Keep order, drop repeats (the runner and the records may say the same thing).
    seen: list[str] = []
    for r in reasons:
        if r not in seen:
            seen.append(r)
    return {"valid": not seen, "reasons": seen}
