"""Markdown: a compact summary.md for a PR comment (summary dict → str).

Verdict line (INVALID first for an invalid run), SLA table, key latency percentiles, throughput and
cost; table cells are escaped.
"""

from __future__ import annotations

from harness.report import fmt
from harness.report.recovery import recovery_rows
from harness.report.replay import replay_rows

ICON = {"PASS": "✅", "WARN": "⚠️", "FAIL": "❌", "INCONCLUSIVE": "❔", "INVALID": "⛔"}


def _cell(s: object) -> str:
    """A Markdown-table-safe cell: no pipes, no newlines, no raw HTML."""
    return (str(s).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("\r", " ")
            .replace("<", "&lt;").replace(">", "&gt;"))


def summary_markdown(summary: dict) -> str:
    run, sla = summary.get("run") or {}, summary.get("sla") or {}
    counts, rates, cost = summary.get("counts") or {}, summary.get("rates") or {}, summary.get("cost") or {}
    overall = fmt.shown_overall(summary)
    lines = [f"### slabench `{_cell(run.get('scenario_name') or 'run')}`: {ICON.get(overall, '')} **{overall}**", ""]
    reasons = fmt.invalid_reasons(summary)
    if reasons is not None:
        lines += [f"> **INVALID RUN — {_cell('; '.join(reasons))}** (no verdict: the SLA rows below are as "
                  f"measured, overall {_cell(sla.get('overall', 'NOT MEASURED'))})", ""]
    if sla.get("inconclusive_hard"):
        lines += [f"> **INCONCLUSIVE**: too few samples to judge {_cell(', '.join(map(str, sla['inconclusive_hard'])))}"
                  " (see the row notes for the run length needed)", ""]
    lines.append(f"Policy `{_cell((sla.get('policy') or {}).get('name'))}` · "
                 f"{fmt.plural(counts.get('total', 0), 'requests')} in all, {counts.get('scored', 0)} scored, "
                 f"{fmt.plural(counts.get('scored_errors', 0), 'errors')} · "
                 f"window {fmt.num((summary.get('window') or {}).get('duration_s'))} s")
    if run.get("interrupted"):
        lines.append("")
        lines.append("> run was interrupted: partial results")
    lines += ["", "| SLA row | value | target | alert | verdict | margin vs target |", "|---|---|---|---|---|---|"]
    for r in sla.get("rows") or []:
        m = r.get("margins") or {}
        verdict = f"{ICON.get(r.get('verdict'), '')} {r.get('verdict')}".strip()
        if r.get("note"):
            verdict += f" ({_cell(r['note'])})"
        lines.append(f"| {_cell(r.get('label') or r.get('metric'))} | {fmt.value(r.get('value'), r.get('unit'))} | "
                     f"{_cell(fmt.threshold(r, 'target'))} | {_cell(fmt.threshold(r, 'alert'))} | {verdict} | "
                     f"{fmt.pct(m.get('vs_target_pct'))} |")
    lines += ["", "| latency | n | p50 | p90 | p99 | max |", "|---|---|---|---|---|---|"]
    for key in ("ttft_s", "tpot_s", "itl_s", "e2e_s", "ttft_from_schedule_s", "e2e_from_schedule_s"):
        if key.endswith("from_schedule_s") and key not in (summary.get("metrics") or {}):
            continue  # closed loop: no schedule
        d = (summary.get("metrics") or {}).get(key) or {}
        lines.append(f"| {fmt.metric_label(key)} | {d.get('n', 0)} | " + " | ".join(fmt.value(d.get(p), "s") for p in ("p50", "p90", "p99", "max")) + " |")
    lines += server_side_markdown(summary.get("metrics") or {})
    lines += ["", f"Throughput: {fmt.num(rates.get('request_rate_rps'))} req/s, "
                  f"{fmt.num(rates.get('output_token_rate_tps'))} output tok/s, goodput {fmt.num(rates.get('goodput_rps'))} req/s "
                  f"({fmt.num(rates.get('slo_attainment_pct'))} % within SLO)."]
    if cost.get("cost_usd") is not None:
        lines.append(f"Cost: {fmt.usd(cost.get('usd_per_1k_output_tokens'))} per 1k output tokens, "
                     f"{fmt.usd(cost.get('usd_per_1m_total_tokens'))} per 1M tokens "
                     f"({cost.get('gpu_count')}× {_cell(cost.get('gpu'))} at {fmt.usd(cost.get('price_usd_per_gpu_hour'))}/h, "
                     f"{_cell(cost.get('price_source'))}).")
    else:
        lines.append(f"Cost: not computed ({_cell(cost.get('reason') or 'no price')}).")
    lines += recovery_markdown(summary.get("recovery"))
    lines += replay_markdown(summary.get("replay"))
    notes = [str(n) for n in summary.get("notes") or [] if n]
    if notes:
        lines += [""] + [f"- note: {_cell(n)}" for n in notes]
    reg = summary.get("regression")
    if reg:
        lines += ["", f"**vs baseline** (tolerance {reg['tolerance_pct']:g} %): **{reg['verdict']}**", "",
                  "| metric | baseline | this run | change | |", "|---|---|---|---|---|"]
        for r in reg["rows"]:
            base, cur, change = fmt.regression_cells(r)
            lines.append(f"| {r['metric']} | {base} | {cur} | {change} | {r['verdict']} |")
    return "\n".join(lines) + "\n"


def recovery_markdown(rec: dict | None) -> list[str]:
    """The "Overload and recovery" figures as a small table (nothing without a recovery block)."""
    if not rec:
        return []
    rows = recovery_rows(rec)
    if not rows:
        return ["", f"Overload and recovery: not judged ({_cell(rec.get('reason') or 'no usable recovery block')})."]
    out = ["", "| overload and recovery | | |", "|---|---|---|"]
    return out + [f"| {_cell(name)} | {_cell(value)} | {_cell(detail)} |" for name, value, detail in rows]


def replay_markdown(rp: dict | None) -> list[str]:
    """A replay's trace, expected reuse and hit rate (nothing for other runs)."""
    rows = replay_rows(rp)
    if not rows:
        return []
    out = ["", "| trace replay | | |", "|---|---|---|"]
    return out + [f"| {_cell(name)} | {_cell(value)} | {_cell(detail)} |" for name, value, detail in rows]


def server_side_markdown(metrics: dict) -> list[str]:
    """Client overhead against the server's own timings and requested vs actual lengths, when present."""
    lines: list[str] = []
    co = metrics.get("client_overhead")
    if co:
        lines += ["", "| client overhead | n | p50 | p90 | p99 | max |", "|---|---|---|---|---|---|"]
        for key, title in (("ttft_overhead_s", "TTFT − server prompt time"),
                           ("decode_overhead_s", "decode − server generation")):
            d = co.get(key) or {}
            lines.append(f"| {title} | {d.get('n', 0)} | " + " | ".join(fmt.value(d.get(p), "s") for p in
                                                                     ("p50", "p90", "p99", "max")) + " |")
        lines += ["", f"Client TTFT below the server's prompt time: "
                      f"{fmt.plural(co.get('ttft_below_server_prompt', 0), 'requests')} (should be none)."]
    tl = metrics.get("token_lengths")
    if tl:
        lines += ["", "| tokens | n | requested (mean) | actual (mean) | actual ÷ requested (mean / p50) |",
                  "|---|---|---|---|---|"]
        for key, title in (("prompt", "prompt"), ("prompt_attainable", "prompt, attainable"), ("output", "output")):
            d = tl.get(key)
            if d:
                lines.append(f"| {title} | {d['n']} | {fmt.num(d['requested_mean'])} | {fmt.num(d['actual_mean'])} | "
                             f"{fmt.num(d['ratio_mean'])} / {fmt.num(d['ratio_p50'])} |")
        line = calibration_line(tl.get("calibration"))
        if line:
            lines += ["", _cell(line)]
    return lines


def calibration_line(cal: dict | None) -> str | None:
    """'Prompt calibration (measured): 1.06 server tokens per word; the chat template adds 9 tokens.'"""
    if not cal:
        return None
    if cal.get("status") in ("measured", "given"):
        what = "chat template" if cal.get("api") == "openai-chat" else "prompt framing"
        return (f"Prompt calibration ({cal['status']}): {fmt.num(cal.get('tokens_per_word'))} server tokens per word; "
                f"the {what} adds {fmt.plural(cal.get('template_tokens'), 'tokens')}.")
    return f"Prompt calibration: {cal.get('status')}" + (f" ({cal['reason']})." if cal.get("reason") else ".")
