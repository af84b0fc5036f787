"""Text: the plain-text SLA table the CLI prints after a run (summary dict → str).

Columns: metric, value, target, alert, verdict; notes follow the table, one per line. An invalid
run says so on its first line, and its overall shows as INVALID.
"""

from __future__ import annotations

from harness.report import fmt
from harness.report.markdown import calibration_line
from harness.report.recovery import recovery_lines
from harness.report.replay import replay_lines


def sla_table_text(summary: dict) -> str:
    """A fixed-width SLA table plus the overall verdict and row notes."""
    sla = summary.get("sla") or {}
    rows = sla.get("rows") or []
    header = ("metric", "value", "target", "alert", "verdict")
    body = []
    for r in rows:
        verdict = r.get("verdict", "")
        if not r.get("hard", True):
            verdict += " (advisory)"
        body.append((r.get("label") or r.get("metric", ""), fmt.value(r.get("value"), r.get("unit")),
                     fmt.threshold(r, "target"), fmt.threshold(r, "alert"), verdict))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)] if body else [len(h) for h in header]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [line(header), line(["-" * w for w in widths])] + [line(b) for b in body]
    policy = (sla.get("policy") or {}).get("name") or "?"
    out.append("")
    overall = fmt.shown_overall(summary)
    measured = sla.get("overall", "NOT MEASURED")
    out.append(f"SLA '{policy}': {overall}" + (f" (rows as measured: {measured})" if overall != measured else ""))
    if sla.get("inconclusive_hard"):
        out.append(f"  INCONCLUSIVE (too few samples to judge): {', '.join(map(str, sla['inconclusive_hard']))}")
    for r in rows:
        if r.get("note"):
            out.append(f"  {r.get('label') or r.get('metric')}: {r['note']}")
    for n in sla.get("notes") or []:
        out.append(f"  {n}")
    if not rows:
        out.insert(2, "(no SLA rows)")
    out += server_side_lines(summary.get("metrics") or {})
    rec = recovery_lines(summary.get("recovery"))
    out += [""] + rec if rec else []
    rp = replay_lines(summary.get("replay"))
    out += [""] + rp if rp else []
    out += regression_lines(summary.get("regression"))
    reasons = fmt.invalid_reasons(summary)
    if reasons is not None:
        out.insert(0, f"INVALID RUN — {'; '.join(reasons)}")
    return "\n".join(out)


def regression_lines(reg: dict | None) -> list[str]:
    """The baseline comparison in a few lines (empty without --baseline)."""
    if not reg:
        return []
    out = ["", f"vs baseline (tolerance {reg['tolerance_pct']:g} %): {reg['verdict']}"]
    for r in reg["rows"]:
        if r["verdict"] in ("regressed", "improved"):
            base, cur, change = fmt.regression_cells(r)
            out.append(f"  {r['verdict']}: {r['metric']} {change} ({base} -> {cur})")
    return out


def server_side_lines(metrics: dict) -> list[str]:
    """One line for the client overhead (where the server reported timings), one for a prompt calibration."""
    out = []
    co = metrics.get("client_overhead")
    if co:
        d, t = co.get("decode_overhead_s") or {}, co.get("ttft_overhead_s") or {}
        out.append(f"client overhead vs server timings ({fmt.plural(co.get('n'), 'requests')}): decode p99 "
                   f"{fmt.value(d.get('p99'), 's')}, TTFT p50 {fmt.value(t.get('p50'), 's')} (with network and queueing)"
                   + (f"; {co['ttft_below_server_prompt']} TTFT below the server's prompt time"
                      if co.get("ttft_below_server_prompt") else ""))
    tl = metrics.get("token_lengths") or {}
    cal, prompt = tl.get("calibration") or {}, tl.get("prompt")
    if cal.get("status") in ("measured", "given", "failed"):
        ratio = f"; prompt tokens actual/requested {fmt.num(prompt['ratio_mean'])}" if prompt else ""
        out.append(calibration_line(cal).rstrip(".") + ratio)
    return [""] + out if out else []
