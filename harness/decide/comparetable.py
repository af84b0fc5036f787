"""What `slabench compare` prints: one warning line per way the runs were not set up alike (SLA
policy, GPU, model, workload, API, load, invalid runs), then a fixed-width table of the comparison
document (compare.compare_summaries): baseline and each run's value, change in %, verdict.

Seam: run folder contents (scenario.yaml, meta.json, re-scored summary) → facts → lines. Pure.
"""

from __future__ import annotations

import json

from harness.report import fmt

# The aspects a fair comparison holds fixed; each yields one warning line when the runs differ in it.
ASPECTS = ("SLA policy", "GPU", "model", "workload", "API", "load")
NOT_SET_UP_ALIKE = "differences below include it"
# Rows from the comparison's run entries: (key, label, unit; "$" for a price).
RUN_ROWS = (("requests", "requests scored", None), ("request_rate_rps", "request rate", "req/s"),
            ("output_token_rate_tps", "output tokens", "tok/s"), ("error_rate_pct", "errors", "%"),
            ("cost", "$ per 1k output tokens", "$"))


def _d(obj, *keys) -> dict:
    """obj[k1][k2]... as a dict ({} where any level is missing or not a mapping)."""
    for k in keys:
        obj = obj.get(k) if isinstance(obj, dict) else None
    return obj if isinstance(obj, dict) else {}


def _dist_text(d) -> str | None:
    """{'dist': 'uniform', 'min': 128, 'max': 512} -> 'uniform(min=128, max=512)'."""
    if not isinstance(d, dict):
        return None if d is None else str(d)
    rest = ", ".join(f"{k}={fmt.num(v) if isinstance(v, (int, float)) else v}" for k, v in d.items() if k != "dist")
    return f"{d.get('dist', '?')}({rest})"


def _sla_fact(summary: dict) -> tuple[str, str, str] | None:
    """(identity, name, name with its rows) of the SLA policy that scored the run."""
    sla = summary.get("sla") or {}
    policy = sla.get("policy") or {}
    rows = [r for r in sla.get("rows") or [] if isinstance(r, dict)]
    if not policy and not rows:
        return None
    name = f"'{policy.get('name') or '?'}'"
    ident = [policy.get("name"), policy.get("min_samples"),
             [(r.get("metric"), r.get("stat"), r.get("target"), r.get("alert"), r.get("hard")) for r in rows]]
    limits = ", ".join(f"{r.get('label') or r.get('metric')} {fmt.threshold(r, 'target')} "
                       f"alert {fmt.threshold(r, 'alert')}" for r in rows)
    return json.dumps(ident, default=str), name, f"{name} ({limits or 'no rows'})"


def _gpu_fact(scenario: dict, meta: dict) -> str | None:
    mb, sb = _d(meta, "backend"), _d(scenario, "backend")
    gpu = mb.get("gpu") or sb.get("gpu") or _d(scenario, "cost").get("gpu")
    if not gpu:
        return None
    count = mb.get("gpu_count") or sb.get("tensor_parallel_size") or sb.get("num_shard") or \
        _d(scenario, "cost").get("gpu_count") or 1
    return f"{count}x {gpu}" if count and count != 1 else str(gpu)


def _model_fact(scenario: dict, meta: dict) -> str | None:
    mb, sb = _d(meta, "backend"), _d(scenario, "backend")
    model = mb.get("model") or sb.get("model")
    quant = mb.get("quantization") or sb.get("quantization") or sb.get("quantize")
    if not model:
        return None
    return f"{model} {quant}" if quant else str(model)


def _workload_fact(scenario: dict) -> str | None:
    wl = _d(scenario, "workload")
    if not wl:
        return None
    parts = []
    ds = wl.get("dataset")
    if ds:
        parts.append(f"dataset {_d(wl, 'dataset').get('path') or ds}")
    else:
        parts += [f"prompt {_dist_text(wl.get('prompt_tokens'))}"]
    parts.append(f"output {_dist_text(wl.get('output_tokens'))}")
    if wl.get("shared_prefix_tokens"):
        parts.append(f"shared prefix {wl['shared_prefix_tokens']} tokens")
    if (wl.get("turns") or 1) != 1:
        parts.append(f"{wl['turns']} turns")
    return ", ".join(parts)


def _load(scenario: dict, meta: dict) -> dict:
    return _d(scenario, "load") or _d(meta, "load")


def _api_fact(scenario: dict, meta: dict) -> str | None:
    return _load(scenario, meta).get("api") or _d(meta, "load").get("api")


def _load_fact(scenario: dict, meta: dict) -> str | None:
    load = _load(scenario, meta)
    mode = load.get("mode")
    if mode == "closed":
        think = load.get("think_time_s") or 0
        return f"closed loop, {fmt.plural(load.get('users'), 'users')}" + (f", think {fmt.num(think)} s" if think else "")
    if mode != "open":
        return None
    arrival = load.get("arrival") or "poisson"
    if (load.get("burstiness") or 1) != 1:
        arrival += f" (burstiness {fmt.num(load['burstiness'])})"
    stages = load.get("stages") or []
    if stages:
        rates = ", ".join(fmt.num(s.get("rate_rps")) for s in stages if isinstance(s, dict))
        return f"open loop, {arrival}, {len(stages)} stages ({rates} req/s)"
    return f"open loop, {arrival}, {fmt.num(load.get('rate_rps'))} req/s"


def run_facts(scenario: dict, meta: dict, summary: dict) -> dict[str, tuple[str, str, str] | None]:
    """aspect -> (identity, text, detailed text) for one run; None where the run folder does not say."""
    texts = {"GPU": _gpu_fact(scenario, meta), "model": _model_fact(scenario, meta),
             "workload": _workload_fact(scenario), "API": _api_fact(scenario, meta),
             "load": _load_fact(scenario, meta)}
    facts: dict[str, tuple[str, str, str] | None] = {k: (v, v, v) if v else None for k, v in texts.items()}
    facts["SLA policy"] = _sla_fact(summary)
    return facts


def differences(names: list[str], facts: list[dict]) -> list[str]:
    """One line per aspect in which the runs that record it differ ('warning: ...'). The short text
    names each variant; where two share it (one policy name, other targets) the detailed text does."""
    out = []
    for aspect in ASPECTS:
        groups: dict[str, tuple[tuple[str, str, str], list[str]]] = {}
        for name, f in zip(names, facts):
            fact = f.get(aspect)
            if fact is not None:
                groups.setdefault(fact[0], (fact, []))[1].append(name)
        if len(groups) < 2:
            continue
        short = [fact[1] for fact, _ in groups.values()]
        pick = 1 if len(set(short)) == len(short) else 2
        said = "; ".join(f"{', '.join(who)}: {fact[pick]}" for fact, who in groups.values())
        out.append(f"warning: the runs differ in {aspect} ({said}): {NOT_SET_UP_ALIKE}")
    return out


def invalid_lines(names: list[str], summaries: list[dict]) -> list[str]:
    """One line per invalid run (damaged or unfinished folder): its numbers are shown, not trusted."""
    out = []
    for name, s in zip(names, summaries):
        reasons = fmt.invalid_reasons(s)
        if reasons is not None:
            out.append(f"warning: {name} is an invalid run ({'; '.join(reasons)}): its numbers are not comparable")
    return out


def _change(base, v) -> str:
    if base is None or v is None or not base:
        return ""
    return fmt.pct(100.0 * (float(v) - float(base)) / abs(float(base)))


def _noise(cell: dict) -> str:
    if cell.get("diff_pct") is None:
        return ""
    if cell.get("beyond_noise"):
        return "worse, beyond noise" if cell.get("worse") else "better, beyond noise"
    return "noise" if cell.get("judged") else "not judged"


def _join(*parts: str) -> str:
    return "  ".join(p for p in parts if p)


def table_rows(doc: dict) -> list[tuple[str, ...]]:
    """(label, baseline cell, run cells...) for every SLA row, percentile and rate of the document."""
    runs = doc["runs"]
    rows: list[tuple[str, ...]] = [("SLA overall", *[r.get("sla_overall") or fmt.DASH for r in runs])]
    for row in doc.get("sla_rows") or []:
        cells, unit = row["cells"], row.get("unit")
        base = cells[0].get("value")
        rows.append((f"SLA {row['label']}", *[
            _join(fmt.value(c.get("value"), unit), _change(base, c.get("value")) if i else "", c.get("verdict") or "")
            if c.get("verdict") not in (None, fmt.DASH) else "not in its policy" for i, c in enumerate(cells)]))
    for m in doc.get("metrics") or []:
        rows.append((m["label"], *[
            _join(fmt.value(c.get("value"), "s"), fmt.pct(c.get("diff_pct")) if i and c.get("diff_pct") is not None
                  else "", _noise(c) if i else "")
            for i, c in enumerate(m["cells"])]))
    for key, label, unit in RUN_ROWS:
        show = fmt.usd if unit == "$" else (lambda v, u=unit: fmt.value(v, u))
        base = runs[0].get(key)
        rows.append((label, *[_join(show(r.get(key)), _change(base, r.get(key)) if i else "")
                              for i, r in enumerate(runs)]))
    return rows


def compare_table(doc: dict) -> str:
    """The comparison as a fixed-width table; changes are vs the first run (the baseline)."""
    names = [r["name"] for r in doc["runs"]]
    header = ("", f"{names[0]} (baseline)", *names[1:])
    body = table_rows(doc)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    floor = (doc.get("method") or {}).get("noise_floor_pct")
    legend = "changes are vs the baseline"
    if floor is not None:
        legend += (f"; 'beyond noise': the 95 % bootstrap interval of the difference excludes 0 and it is at least "
                   f"{fmt.num(floor)} %")
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, body), legend])
