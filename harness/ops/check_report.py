"""Checklist output seam: checklist dict → terminal text, checklist.json, self-contained checklist.html.

HTML uses jinja2 with autoescape and a Content-Security-Policy that forbids scripts, so server
strings (error bodies, model names) render as inert text; inline CSS, no network or external files.
"""

from __future__ import annotations

import json
from pathlib import Path

from jinja2 import Environment

from harness.scoring import json_safe

JSON_FILE, HTML_FILE = "checklist.json", "checklist.html"
MARK = {"PASS": "PASS", "WARN": "WARN", "FAIL": "FAIL", "INCONCLUSIVE": "INCONCLUSIVE", "SKIP": "skip",
        "MANUAL": "todo"}

TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>slabench check: {{ c.url }}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;width:100%;margin-bottom:1.5em}
th,td{border-bottom:1px solid #ddd;padding:.35em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4} .v{font-weight:bold;white-space:nowrap;width:6em}
.PASS{color:#11772d} .WARN{color:#a86400} .FAIL{color:#b00020} .INCONCLUSIVE{color:#6a3d9a} .SKIP,.MANUAL{color:#666}
.banner{padding:.6em 1em;border-radius:4px;background:#f4f4f4;margin-bottom:1em}
code,pre{font-family:ui-monospace,monospace;font-size:12px} pre{white-space:pre-wrap;background:#fafafa;padding:.6em}
</style></head><body>
<h1>Deployment checklist</h1>
<div class="banner">
<b class="{{ c.overall }}">Overall {{ c.overall }}</b> (exit code {{ c.exit_code }}) &mdash;
<code>{{ c.url }}</code>, checked {{ c.checked_utc }}
{% if c.server.model %}, model <code>{{ c.server.model }}</code>{% endif %};
SLA policy <code>{{ c.policy.name }}</code>.
{% for k, v in c.counts.items() %}{{ k }} {{ v }}{% if not loop.last %} · {% endif %}{% endfor %}
{% if c.usage_error %}<br><b class="FAIL">{{ c.usage_error }}</b>{% endif %}
</div>
{% for sec in c.sections %}
<h2>{{ sec.title }}</h2>
<table><tr><th>Verdict</th><th>Check</th><th>Evidence</th></tr>
{% for ln in c.lines if ln.section == sec.id %}
<tr><td class="v {{ ln.verdict }}">{{ ln.verdict }}</td><td>{{ ln.title }}</td><td>{{ ln.evidence }}</td></tr>
{% endfor %}
</table>
{% endfor %}
<h2>Probe</h2>
<p>{{ c.probe.sent }} streamed chat requests ({{ c.probe.ok }} ok) at concurrency {{ c.probe.concurrency }},
{{ c.probe.max_tokens }} output tokens each; a burst of at most {{ c.probe.burst }} one-token requests over
{{ c.probe.burst_window_s }} s. API key given: {{ 'yes' if c.probe.api_key_given else 'no' }}.</p>
{% for n in c.notes %}<p>Note: {{ n }}</p>{% endfor %}
<details><summary>checklist.json</summary><pre>{{ raw }}</pre></details>
<p><small>slabench {{ c.slabench_version }}. Verdicts: PASS, WARN, FAIL; INCONCLUSIVE = a tail percentile
from fewer probes than the policy's min_samples (never a pass; <code>slabench run</code> measures it); SKIP = not
checkable because an earlier step failed; MANUAL = a person must confirm. Exit 1 when any line FAILs.</small></p>
</body></html>
"""


def render_html(checklist: dict) -> str:
    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    raw = json.dumps(json_safe(checklist), indent=1, ensure_ascii=False)
    return env.from_string(TEMPLATE).render(c=checklist, raw=raw)


def checklist_text(checklist: dict) -> str:
    """The terminal checklist: one line per item, `[PASS] title — evidence`, grouped by section."""
    out = [f"Deployment checklist for {checklist['url']} (SLA policy '{checklist['policy']['name']}')"]
    for sec in checklist["sections"]:
        out.append(f"{sec['title']}:")
        for ln in checklist["lines"]:
            if ln["section"] == sec["id"]:
                out.append(f"  [{MARK[ln['verdict']]:>4}] {ln['title']} — {ln['evidence']}")
    c = checklist["counts"]
    out += [f"note: {n}" for n in checklist.get("notes") or []]
    out.append(f"overall {checklist['overall']}: " + ", ".join(f"{k} {v}" for k, v in c.items() if v))
    return "\n".join(out)


def write_checklist(checklist: dict, out_dir: Path) -> dict[str, Path]:
    """checklist.json and checklist.html in `out_dir` (created); returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {JSON_FILE: out_dir / JSON_FILE, HTML_FILE: out_dir / HTML_FILE}
    paths[JSON_FILE].write_text(json.dumps(json_safe(checklist), indent=1, ensure_ascii=False) + "\n",
                                encoding="utf-8")
    paths[HTML_FILE].write_text(render_html(checklist), encoding="utf-8")
    return paths
