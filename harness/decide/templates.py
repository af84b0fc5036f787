"""Jinja2 templates of comparison.html (matrix, compare) and sweep.html, kept in Python so they ship
inside the package. Autoescaped; the CSP forbids scripts and any network fetch.
"""

_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% block title %}{% endblock %}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1200px; padding: 1em 1.5em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .5em 0; font-size: .88em; } th, td { border: 1px solid #ddd; padding: .3em .55em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.pass { background: #e8f5e9; } .warn { background: #fff8e1; } .fail { background: #ffebee; } .nm { background: #eceff1; } .inc { background: #ede7f6; } .invalid { background: #fbe9e7; }
.rec { border: 2px solid #2e7d32; background: #f1f8f1; padding: .8em 1em; font-size: 1.05em; }
.rec.closest { border-color: #f9a825; background: #fffbea; } .rec.none { border-color: #c62828; background: #fff3f3; }
.note { color: #555; font-size: .85em; } .muted { color: #888; } img { max-width: 100%; }
img.plot { display: block; width: 100%; height: auto; margin: .3em 0 .6em; } .key span { white-space: nowrap; margin-right: .9em; } td.why { min-width: 14em; }
.big { font-size: 1.6em; font-weight: 700; } .star { font-weight: 700; }
</style>
</head>
<body>
{% block body %}{% endblock %}
</body>
</html>
"""

_MATRIX = """{% extends "head" %}
{% block title %}slabench matrix: {{ d.name }}{% endblock %}
{% block body %}
<h1>Matrix: {{ d.name }}</h1>
{% if d.description %}<p>{{ d.description }}</p>{% endif %}
<p class="note">{{ d.variants | length | plural("variants") }} · SLA policy <b>{{ d.sla_policy }}</b> · created {{ d.created_utc }}
 · took {{ d.elapsed_s | num }} s{% if d.interrupted %} · <b>interrupted: partial results, continue with --resume</b>{% endif %}</p>

<h2>Recommendation</h2>
<div class="rec {{ 'closest' if d.recommendation.kind == 'closest' else 'none' if d.recommendation.kind == 'none' else '' }}" id="recommendation">
{% if d.recommendation.variant %}<span class="star">{{ d.recommendation.variant }}</span> — {% endif %}{{ d.recommendation.text }}
</div>
<p class="note">Rule: {{ d.pass_rule }}. Among those, the lowest cost per 1k output tokens{% if d.capacity %} at capacity{% endif %} wins (ties: lower {{ latency_label }}).
If none meets it, the variant with the smallest worst miss against a target is shown, with the rows it misses.
Cost = GPU-hours of the scored window × price ÷ output tokens, at the load the scenario offers{% if d.capacity %};
at capacity: the same, measured in the run at the highest {{ d.capacity.unit_text }} that still meets every hard latency,
error and queue row (found by doubling then bisecting to {{ (d.capacity.precision * 100) | num }} %, offline sim variants only){% endif %}.</p>

<h2>Variants</h2>
<table id="variants">
<tr><th title="the variant's number on the cost vs latency plot">#</th><th>variant</th><th>status</th><th>meets SLA</th><th>TTFT p99</th><th>TPOT p50</th><th>TPOT p99</th><th>req/s</th><th>output tok/s</th>
<th>errors</th><th>GPU util</th><th>$/h</th><th>$ per 1k output tokens</th>{% if d.capacity %}<th>capacity</th><th>$ per 1k output tokens at capacity</th>{% endif %}<th>why not / reason</th></tr>
{% for r in d.variants %}
<tr class="{{ (r.verdict | vclass) if r.status == 'done' else 'nm' }}" id="v-{{ r.id }}">
<td class="n">{{ plot_no[r.id] or '' }}</td>
<td>{% if r.id == d.recommendation.variant %}★ {% endif %}<b>{{ r.id }}</b>{% if r.pareto %} <span class="note">(Pareto)</span>{% endif %}<br><span class="note">{{ r.label }}</span>{% if r.status == 'done' and r.report %}<br><a href="{{ r.report }}">report</a>{% endif %}</td>
{% if r.status == 'done' %}
<td>ran ({{ r.mode }})</td><td>{{ 'yes' if r.meets_sla else 'no' }} ({{ r.verdict }})</td>
<td class="n">{{ r.ttft_p99_s | ms }}</td><td class="n">{{ r.tpot_p50_s | ms }}</td><td class="n">{{ r.tpot_p99_s | ms }}</td>
<td class="n">{{ r.request_rate_rps | num }}</td><td class="n">{{ r.output_token_rate_tps | num }}</td>
<td class="n">{{ r.error_rate_pct | num }} %</td><td class="n">{{ r.gpu_util_mean_pct | num }} %{% if r.gpu_util_simulated %} <span class="note">sim</span>{% endif %}</td>
<td class="n">{{ r.usd_per_hour | usd }}</td><td class="n"><b>{{ r.cost | usd }}</b></td>
{% if d.capacity %}<td class="n">{% if r.capacity %}{{ r.capacity | num }} {{ r.capacity_unit }}{% else %}<span class="note">{{ r.capacity_reason or '—' }}</span>{% endif %}</td>
<td class="n"><b>{{ r.cost_at_capacity | usd }}</b></td>{% endif %}
<td class="why">{% for m in r.misses %}{{ m.label }}: {{ m.value | val(m.unit) }} vs target {{ m.target | val(m.unit) }} ({{ m.verdict }})<br>{% endfor %}{{ r.reason or '' }}</td>
{% else %}
<td>{{ 'cannot run' if r.status == 'cannot_run' else r.status | replace('_', ' ') }}</td><td colspan="{{ 12 if d.capacity else 10 }}" class="muted">—</td>
<td class="why">{{ r.reason }}</td>
{% endif %}
</tr>
{% endfor %}
</table>

<h2>Cost vs latency</h2>
{% if plot %}<img class="plot" alt="cost per 1k output tokens vs {{ latency_label }}, Pareto frontier dashed" src="data:image/png;base64,{{ plot }}">
<p class="key" id="plot-key">{% for r in d.variants if r.id in plot_no %}<span><b>{{ plot_no[r.id] }}</b> {{ r.id }}{% if r.pareto %} ◆{% endif %}</span> {% endfor %}</p>
<p class="note">Each point is a variant that ran, numbered as in the # column (colour: decision verdict). Outlined points and the dashed line
are the Pareto frontier (◆: no other variant is both cheaper and faster): {{ d.pareto | join(', ') or 'none' }}.</p>
{% else %}<p class="note">No variant ran with both a cost and a latency: nothing to plot.</p>{% endif %}

<h2>Axes</h2>
<ul>{% for k, vals in d.axes.items() %}<li><b>{{ k }}</b>: {{ vals | join(', ') }}</li>{% endfor %}</ul>
<p class="note">Each variant's folder (runs/ID/) is an ordinary run folder: report.html, summary.json, requests.jsonl.
Offline variants are the simulator's model run in simulated time (no HTTP); live variants launched their server.</p>
{% endblock %}
"""

_SWEEP = """{% extends "head" %}
{% block title %}slabench sweep: {{ d.name }}{% endblock %}
{% block body %}
<h1>Sweep: {{ d.name }}</h1>
<p class="note">{{ d.axis_label }} searched from {{ d.start | num }}: doubling until the SLA fails, then bisection to
{{ (d.precision * 100) | num }} % · {{ d.repeats | plural("repeats") }} per point (a point passes only if every repeat passes) · {{ d.mode }} ·
took {{ d.elapsed_s | num }} s{% if d.interrupted %} · <b>interrupted: continue with --resume</b>{% endif %}</p>
<h2>Capacity</h2>
{% if d.capacity %}
<p id="capacity"><span class="big">{{ d.capacity | num }} {{ d.unit }}</span> per replica meets the SLA
(the next measured point, {{ d.fail_at | num }} {{ d.unit }}, does not{% if d.fail_reason %}: {{ d.fail_reason }}{% endif %}).</p>
<table>
<tr><th>at capacity</th><th>value</th></tr>
<tr><td>cost per 1k output tokens</td><td class="n">{{ d.at_capacity.cost | usd }}</td></tr>
<tr><td>TTFT p99 / TPOT p99</td><td class="n">{{ d.at_capacity.ttft_p99_s | ms }} / {{ d.at_capacity.tpot_p99_s | ms }}</td></tr>
<tr><td>completed req/s · goodput req/s</td><td class="n">{{ d.at_capacity.request_rate_rps | num }} · {{ d.at_capacity.goodput_rps | num }}</td></tr>
<tr><td>GPU utilization (mean)</td><td class="n">{{ d.at_capacity.gpu_util_mean_pct | num }} %</td></tr>
</table>
{% if d.replicas %}
<h2>Replicas for a target traffic</h2>
<table id="replicas"><tr><th>traffic (req/s)</th><th>replicas at capacity</th><th>with {{ (d.headroom * 100) | num }} % headroom</th></tr>
{% for r in d.replicas %}<tr{% if r.target %} class="pass"{% endif %}><td class="n">{{ r.rps | num }}{% if r.target %} (target){% endif %}</td><td class="n">{{ r.replicas }}</td><td class="n">{{ r.replicas_headroom }}</td></tr>{% endfor %}
</table>
<p class="note">replicas = ceil(traffic ÷ capacity{% if d.axis == "users" %}, taken as the {{ d.capacity_rps | num }} req/s the {{ d.capacity | num }}-user point completed{% endif %}); the headroom column keeps each replica at {{ ((1 - d.headroom) * 100) | num }} % of capacity —
read the HPA minReplicas off the steady traffic and maxReplicas off the peak.</p>
{% endif %}
{% else %}
<p class="rec none" id="capacity">{{ d.verdict_text }}</p>
{% endif %}
<h2>Latency and goodput vs {{ d.axis_label }}</h2>
{% if plots.latency %}<img class="plot" alt="latency vs load" src="data:image/png;base64,{{ plots.latency }}">{% endif %}
{% if plots.goodput %}<img class="plot" alt="goodput vs load" src="data:image/png;base64,{{ plots.goodput }}">{% endif %}
<h2>Points</h2>
<table id="points"><tr><th>#</th><th>{{ d.axis_label }}</th><th>repeat</th><th>passes</th><th>TTFT p99</th><th>TPOT p99</th><th>req/s</th><th>goodput</th><th>$ / 1k out</th><th>misses</th><th>run</th></tr>
{% for p in d.points %}<tr class="{{ 'pass' if p.passes else 'fail' }}"><td class="n">{{ loop.index }}</td><td class="n">{{ p.x | num }}</td><td class="n">{{ p.repeat }}</td><td>{{ 'yes' if p.passes else 'no' }}</td>
<td class="n">{{ p.ttft_p99_s | ms }}</td><td class="n">{{ p.tpot_p99_s | ms }}</td><td class="n">{{ p.request_rate_rps | num }}</td><td class="n">{{ p.goodput_rps | num }}</td>
<td class="n">{{ p.cost | usd }}</td><td>{{ p.why or '' }}</td><td>{% if p.has_report %}<a href="{{ p.report }}">report</a>{% else %}<span class="note">{{ p.run_dir }}</span>{% endif %}</td></tr>{% endfor %}
</table>
<p class="note">Each point is a run folder under points/ (summary.json, requests.jsonl); `slabench report points/X` renders its full report.</p>
{% endblock %}
"""

_COMPARE = """{% extends "head" %}
{% block title %}slabench compare{% endblock %}
{% block body %}
<h1>Compare {{ d.runs | length }} runs</h1>
<p class="note">Baseline: <b>{{ d.runs[0].name }}</b>. A difference is <b>beyond noise</b> when the 95 % interval of the
difference (moving-block bootstrap over requests in send order, {{ d.method.resamples }} resamples, seed {{ d.method.seed }})
excludes zero <i>and</i> the difference is at least {{ d.method.noise_floor_pct | num }} % — within-run resampling cannot see
run-to-run variation (another arrival draw moves tail percentiles and TPOT), so smaller differences need repeated runs; distributions are also compared with the Mann-Whitney U test. Not judged: fewer than {{ d.method.min_samples }} samples, or fewer than {{ d.method.min_tail }} beyond the percentile (a p99 needs about 1000 requests).</p>
{% if d.warnings %}<h2>Warnings</h2><ul id="warnings">{% for w in d.warnings %}<li class="warn">{{ w }}</li>{% endfor %}</ul>{% endif %}
<h2>Runs</h2>
<table id="runs"><tr><th>run</th><th>scenario</th><th>backend</th><th>SLA</th><th>requests</th><th>req/s</th><th>output tok/s</th><th>errors</th><th>$ / 1k out</th><th>folder</th></tr>
{% for r in d.runs %}<tr class="{{ r.sla_overall | vclass }}"><td><b>{{ r.name }}</b></td><td>{{ r.scenario }}</td><td>{{ r.backend }}</td><td>{{ r.sla_overall }}</td>
<td class="n">{{ r.requests }}</td><td class="n">{{ r.request_rate_rps | num }}</td><td class="n">{{ r.output_token_rate_tps | num }}</td><td class="n">{{ r.error_rate_pct | num }} %</td>
<td class="n">{{ r.cost | usd }}</td><td class="note">{{ r.run_dir }}</td></tr>{% endfor %}
</table>
<h2>Percentiles and differences</h2>
<table id="diffs"><tr><th>metric</th>{% for r in d.runs %}<th>{{ r.name }}</th>{% endfor %}</tr>
{% for m in d.metrics %}<tr><td>{{ m.label }}</td>
{% for c in m.cells %}<td class="n{% if c.beyond_noise %} {{ 'fail' if c.worse else 'pass' }}{% endif %}">{{ c.value | ms }}
{% if c.diff is not none %}<br><span class="note">{{ '%+.1f' % (c.diff_pct or 0) }} %{% if c.beyond_noise %} <b>beyond noise</b>{% elif c.judged %} (noise){% else %} (not judged){% endif %}</span>{% endif %}</td>{% endfor %}</tr>
{% endfor %}
</table>
<h2>SLA verdicts</h2>
<table id="verdicts"><tr><th>row</th>{% for r in d.runs %}<th>{{ r.name }}</th>{% endfor %}</tr>
{% for row in d.sla_rows %}<tr><td>{{ row.label }}</td>{% for v in row.cells %}<td class="{{ v.verdict | vclass }}">{{ v.verdict }} <span class="note">{{ v.value | val(row.unit) }}</span></td>{% endfor %}</tr>{% endfor %}
</table>
<h2>Distributions</h2>
{% for m, png in plots.items() %}<h3>{{ titles[m] }}</h3><img class="plot" alt="{{ titles[m] }} CDFs" src="data:image/png;base64,{{ png }}">{% endfor %}
{% endblock %}
"""

TEMPLATES = {"head": _HEAD, "matrix": _MATRIX, "sweep": _SWEEP, "compare": _COMPARE}
