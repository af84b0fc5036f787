"""The shipped validation set (sources, coverage, ids) and the points-file reader's one-line errors."""

import pytest

from harness.sim.catalog import SimConfigError, default_catalog
from harness.sim.cli import main
from harness.sim.validation import load_points
from harness.sim.validation.baseline import load_baseline

GOOD = """
points:
  - id: tiny-a100-ttft
    source: {name: test, url: "https://example.org/run"}
    engine: vLLM 0.0
    gpu: a100-80gb
    model: llama-3-8b
    precision: bf16
    workload: {input_tokens: 64, output_tokens: 4}
    load: {concurrency: 1, requests: 2}
    metric: ttft_ms
    value: 20
    band_pct: 50
    regime: prefill
"""


def write(tmp_path, text):
    p = tmp_path / "points.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_shipped_set_is_large_and_independent_enough():
    ps = load_points()
    assert len(ps.points) >= 20 and len(ps.sources) >= 6
    regimes = {p.regime for p in ps.points}
    assert regimes == {"decode-b1", "prefill", "mixed", "saturated"}
    assert {p.tp for p in ps.points} >= {1, 2, 4, 8}
    assert {p.precision for p in ps.points} >= {"fp16", "bf16", "fp8", "int8", "awq", "gptq"}
    # every catalog GPU (the issue: "every GPU in the catalog"; the L4 by llmbench-*-l4-*)
    assert {p.gpu for p in ps.points} == set(default_catalog().gpus)
    assert all(p.source.url.startswith("https://") for p in ps.points)


def test_baseline_names_only_shipped_points():
    ids = {p.id for p in load_points().points}
    base = load_baseline()
    assert set(base["inside"]) <= ids and set(base["quick"]) <= ids
    assert len(base["inside"]) >= 0.9 * len(ids)  # the bar: >= 90 % inside their bands


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("regime: prefill", "regime: prefill\n    colour: red"), "unknown key 'points.0.colour'"),
    (lambda t: t.replace("load: {concurrency: 1, requests: 2}", "load: {concurrency: 1, burst: 3}"),
     "set exactly one of"),
    (lambda t: t.replace("https://example.org/run", "ftp://x"), "url"),
    (lambda t: t.replace("gpu: a100-80gb", "gpu: v100"), "unknown gpu 'v100'"),
    (lambda t: t.replace("precision: bf16", "precision: nf4"), "unknown precision 'nf4'"),
    (lambda t: t + t[t.index("  - id"):], "appears twice"),
    (lambda t: t.replace("band_pct: 50", "band_pct: 0"), "band_pct"),
    (lambda t: t.replace("regime: prefill", "regime: prefill\n    server: {engine_core: v2}"), "engine_core"),
    (lambda t: t.replace("gpu: a100-80gb", "gpu: a100-80gb\n    gpu_count: 3\n    tp: 2"), "multiple of tp"),
    (lambda t: "points: []\n", "points"),
    (lambda t: "- 1\n", "must be a mapping"),
])
def test_bad_points_file_is_one_line(tmp_path, edit, message):
    with pytest.raises(SimConfigError) as exc:
        load_points(write(tmp_path, edit(GOOD)))
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_cli_validate_prints_the_table_and_exits_0(tmp_path, capsys):
    assert main(["validate", "--points", str(write(tmp_path, GOOD))]) == 0
    out = capsys.readouterr().out
    assert "tiny-a100-ttft" in out and "published" in out and "1 points from 1 sources" in out
    assert "median absolute error" in out and "worst: tiny-a100-ttft" in out


def test_cli_validate_bad_file_exits_2_with_one_line(tmp_path, capsys):
    assert main(["validate", "--points", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.yaml" in err


def test_point_that_cannot_start_is_listed_with_the_reason(tmp_path, capsys):
    text = GOOD.replace("gpu: a100-80gb", "gpu: t4").replace("model: llama-3-8b", "model: llama-3-70b") \
        .replace("precision: bf16", "precision: fp16")
    assert main(["validate", "--points", str(write(tmp_path, text))]) == 0
    assert "cannot run: weights need" in capsys.readouterr().out


def test_v0_engine_core_adds_its_cpu_time_to_every_step(tmp_path):
    """A point from vLLM before 0.8 (server.engine_core: v0) pays perfmodel.V0_STEP_OVERHEAD_S per step:
    at concurrency 1 the time per output token grows by exactly that much."""
    from harness.sim import perfmodel
    from harness.sim.validation import run_point

    text = GOOD.replace("metric: ttft_ms", "metric: tpot_ms").replace("output_tokens: 4", "output_tokens: 32")
    current = load_points(write(tmp_path, text)).points[0]
    v0 = load_points(write(tmp_path, text.replace("regime: prefill", "regime: prefill\n    server: {engine_core: v0}"))
                     ).points[0]
    gap_ms = run_point(v0).simulated - run_point(current).simulated
    assert gap_ms == pytest.approx(perfmodel.V0_STEP_OVERHEAD_S * 1000, rel=1e-6)
