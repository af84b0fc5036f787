"""Client against server: what the client measured beyond the server's own timings, and the token lengths
asked for against those the server counted (records seam → summary.json `metrics.client_overhead`,
`metrics.token_lengths`). Both are absent (None) for runs whose records carry nothing to compare.

TTFT overhead = client `ttft_s` − the server's prompt time (`server_prompt_s`, llama.cpp `timings.prompt_ms`).
The client's TTFT also holds the network both ways, the HTTP handling and the time the request waited in the
server for a slot, so it is no measure of the client alone; it can never be negative (the client sent before
the server started and read the first token after it ended): a negative one is clock or parsing trouble.
Decode overhead = the client's decode time (`e2e_s − ttft_s`) − the server's generation time
(`server_decode_s`, `timings.predicted_ms`): both span first token to last, so what is left is the client's
reading and the network's jitter at the two ends. That is the figure that says whether the client set the pace.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.scoring.stats import describe
from harness.scoring.table import RecordTable

# Decode overhead p99 above which the run is noted as partly client-bound. Over one request the client adds
# two read stamps on a local socket (tens of µs); tens of ms means its event loop read late (CPU starved,
# GC pause). 10 ms is also the open-loop schedule-lag limit (scoring.SATURATION_LAG_P99_S): one client budget.
DECODE_OVERHEAD_P99_S = 0.010
# Mean actual/requested length off by more than this (either way) gets a note: the run measured other lengths.
LENGTH_MISMATCH_PCT = 5.0


def _finite(a: np.ndarray) -> np.ndarray:
    return np.isfinite(a)


def client_overhead(t: RecordTable, scored: np.ndarray) -> dict[str, Any] | None:
    """TTFT and decode overhead of the ok scored requests whose server reported its timings (None: none did)."""
    sel = scored & t.ok & _finite(t.server_prompt_s) & _finite(t.ttft_s)
    if not sel.any():
        return None
    ttft_over = t.ttft_s[sel] - t.server_prompt_s[sel]
    dsel = sel & _finite(t.server_decode_s) & _finite(t.e2e_s)
    decode_over = (t.e2e_s[dsel] - t.ttft_s[dsel]) - t.server_decode_s[dsel]
    below = int((ttft_over < 0).sum())
    out: dict[str, Any] = {
        "n": int(sel.sum()), "ttft_overhead_s": describe(ttft_over), "decode_overhead_s": describe(decode_over),
        "ttft_below_server_prompt": below, "decode_overhead_p99_limit_s": DECODE_OVERHEAD_P99_S,
        "client_bound": False, "delivery_bunched": False, "notes": []}
    p50, p99 = out["decode_overhead_s"]["p50"], out["decode_overhead_s"]["p99"]
    if p99 is not None and p99 > DECODE_OVERHEAD_P99_S:
        out["client_bound"] = True
        out["notes"].append(
            f"client decode overhead p99 {p99 * 1000:.1f} ms > {DECODE_OVERHEAD_P99_S * 1000:.0f} ms: between the first "
            "and the last token the client measured that much more than the server's own generation time, so the "
            "client (or the network), not the server, set part of the TPOT and E2E figures (use --processes or a "
            "bigger client machine)")
    if p50 is not None and p50 < -DECODE_OVERHEAD_P99_S:
        # The client's first-to-last span is shorter than the server's: the first token reached it late and
        # the rest caught up in bunches (Nagle's algorithm on a server without TCP_NODELAY, a buffering proxy).
        out["delivery_bunched"] = True
        out["notes"].append(
            f"client decode time is {-p50 * 1000:.1f} ms shorter than the server's generation time at p50: the first "
            "token reached the client late and later ones in bunches (a server socket without TCP_NODELAY, or a "
            "buffering proxy), so TTFT reads high and ITL low against the server's own timings")
    if below:
        out["notes"].append(
            f"{below} of {out['n']} requests had a client TTFT below the server's own prompt time, which a correct "
            "measurement cannot give (the client sends before the server starts): clock or stream-parsing trouble, "
            "so the overhead figures are suspect")
    return out


def _pairs(requested: np.ndarray, actual: np.ndarray) -> dict[str, Any] | None:
    """Requested against actual per request: means, and mean / p50 of the ratio and the difference."""
    keep = _finite(requested) & _finite(actual) & (requested > 0)
    if not keep.any():
        return None
    req, act = requested[keep], actual[keep]
    ratio, diff = act / req, act - req
    return {"n": int(keep.sum()), "requested_mean": float(req.mean()), "actual_mean": float(act.mean()),
            "ratio_mean": float(ratio.mean()), "ratio_p50": float(np.percentile(ratio, 50)),
            "diff_mean": float(diff.mean()), "diff_p50": float(np.percentile(diff, 50))}


def _calibration(meta: dict) -> dict[str, Any] | None:
    cal = meta.get("prompt_calibration")
    if not isinstance(cal, dict):
        return None
    return {k: cal.get(k) for k in ("status", "mode", "api", "tokens_per_word", "template_tokens", "reason",
                                    "probes", "probe_output_tokens")}


def _prompt_floor(cal: dict | None) -> float | None:
    """The fewest prompt tokens a synthetic prompt can have on this server: its fixed overhead and one word."""
    if not cal or cal.get("status") not in ("measured", "given"):
        return None
    try:
        return float(cal["template_tokens"]) + float(cal["tokens_per_word"])
    except (KeyError, TypeError, ValueError):
        return None


def token_lengths(t: RecordTable, scored: np.ndarray, meta: dict) -> dict[str, Any] | None:
    """Prompt and output lengths asked for against the server's usage, ok scored requests (None: no pairs).

    With a prompt calibration the requests that asked for fewer tokens than the chat template alone (plus one
    word) are counted apart (`below_floor`): no prompt can be that short, so `prompt_attainable` leaves them out.
    """
    ok = scored & t.ok
    req, act = t.requested_prompt_tokens[ok], t.prompt_tokens[ok]
    prompt = _pairs(req, act)
    output = _pairs(t.requested_output_tokens[ok], t.output_tokens[ok])
    if prompt is None and output is None:
        return None
    cal = _calibration(meta)
    floor = _prompt_floor(cal)
    below = int((req < floor).sum()) if floor is not None and prompt is not None else 0
    attainable = _pairs(req[req >= floor], act[req >= floor]) if below else None
    notes = []
    if below:
        what = "chat template" if (cal or {}).get("api") == "openai-chat" else "prompt framing"
        notes.append(f"{below} of {prompt['n']} prompts asked for fewer tokens than this server's {what} and one word "
                     f"({floor:.0f}): they were sent with one word, so longer than asked; prompt_attainable leaves "
                     "them out")
    judged = attainable or (None if below else prompt)
    if judged is not None and abs(judged["ratio_mean"] - 1) * 100 > LENGTH_MISMATCH_PCT:
        status = (cal or {}).get("status") or "not recorded"
        hint = ("" if status in ("measured", "given") else
                "; workload.calibrate_prompt_tokens: on sizes them in the server's tokens")
        notes.append(f"prompts were {(judged['ratio_mean'] - 1) * 100:+.0f} % off the requested length on the "
                     f"server's tokenizer (mean actual/requested {judged['ratio_mean']:.2f}, prompt calibration "
                     f"{status}): the latencies are for those lengths{hint}")
    if output is not None and abs(output["ratio_mean"] - 1) * 100 > LENGTH_MISMATCH_PCT:
        notes.append(f"outputs were {(output['ratio_mean'] - 1) * 100:+.0f} % off the requested length (mean "
                     f"actual/requested {output['ratio_mean']:.2f}): the server ended them early (EOS) or ignores "
                     "ignore_eos/min_tokens")
    return {"prompt": prompt, "prompt_attainable": attainable, "below_floor": below, "floor_tokens": floor,
            "output": output, "calibration": cal, "mismatch_limit_pct": LENGTH_MISMATCH_PCT, "notes": notes}
