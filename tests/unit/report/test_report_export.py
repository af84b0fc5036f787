"""requests.csv written while requests.jsonl is read: the same bytes as csv.writer from RequestRecords."""

import base64
import json

import numpy as np

from harness.records import RequestRecord, iter_records
from harness.report.export import RequestsCsv, sequential_sums, write_requests_csv, write_requests_csv_from_jsonl
from harness.report.plots import distribution_plot
from harness.scoring.jsonl import load_table
from harness.scoring.metrics import Window
from harness.scoring.table import ItlPool


def _lines() -> list[str]:
    recs = [
        RequestRecord("a", "openai-chat", 1.0, 1.5, 200, True, ttft_s=0.1, e2e_s=0.5, itl_s=[0.1, 0.2, 0.10000000000000003],
                      output_tokens=4, prompt_tokens=7, finish_reason="length", sent_unix_s=1.7e9, user="u, 1", turn=2),
        RequestRecord("b", "openai-chat", 2.0, 2.1, 200, True, ttft_s=0.05, e2e_s=0.1, itl_s=[0.05], output_tokens=2),
        RequestRecord("f", "openai-completions", 2.5, 2.7, 200, True, ttft_s=0.05, e2e_s=0.2, itl_s=[0.1, 0.05],
                      output_tokens=6, chunk_tokens=[1, 3, 2]),
        RequestRecord("g", "openai-completions", 2.6, 2.7, 200, True, ttft_s=0.05, e2e_s=0.1, itl_s=[],
                      output_tokens=2, chunk_tokens=[2]),
        RequestRecord("c", "openai-chat", 3.0, 3.0, 0, False, error_type="connect", error="refused, twice"),
        RequestRecord("d", "tgi-generate-stream", 9.0, 9.2, 500, False, error_type="http_5xx",
                      error='HTTP 500: {"detail": "boom"}\nline two'),  # escapes: the csv.writer path
        RequestRecord("e", "openai-chat", 4.0, 4.3, 200, True, ttft_s=0.3, e2e_s=0.3, itl_s=[], output_tokens=1),
    ]
    lines = [r.to_json() for r in recs]
    lines.insert(2, json.dumps(json.loads(lines[1]), indent=None))  # another layout: the csv.writer path
    return lines


def test_streamed_csv_is_byte_identical_to_csv_writer(tmp_path):
    jl = tmp_path / "requests.jsonl"
    jl.write_text("\n".join(_lines()) + "\n")
    window = Window(0.0, 10.0, 1.5, 2.0, 1.5, 8.0)  # a: warmup, b/c/e: scored, d: cooldown
    sink = RequestsCsv(tmp_path / "fast.csv", window)
    table = load_table(jl, [sink])
    sink.close()
    write_requests_csv(tmp_path / "ref.csv", list(iter_records(jl)), window)
    fast, ref = (tmp_path / "fast.csv").read_bytes(), (tmp_path / "ref.csv").read_bytes()
    assert fast == ref and sink.rows == table.n == 8
    assert b'"[0.1, 0.2, 0.10000000000000003]"' in fast and b",[0.05]," in fast and b'"u, 1"' in fast
    assert b',"[1, 3, 2]",' in fast and b",[2]," in fast  # chunk_tokens as json.dumps writes it
    assert write_requests_csv_from_jsonl(jl, tmp_path / "again.csv", window) == 8
    assert (tmp_path / "again.csv").read_bytes() == ref


def test_sequential_sums_add_left_to_right_like_sum():
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 40, 300)
    vals = rng.lognormal(-4, 1, counts.sum())
    starts = np.concatenate(([0], np.cumsum(counts)))
    want = [sum(vals[starts[i]:starts[i + 1]].tolist()) for i in range(counts.size)]
    assert sequential_sums(vals, counts).tolist() == want  # equal, not close: same digits in itl_mean_s


def test_large_pool_plot_sweeps_blocks(monkeypatch):
    import harness.report.plots as plots
    monkeypatch.setattr(plots, "MAX_EXACT_SAMPLES", 1000)
    monkeypatch.setattr(plots, "CDF_SAMPLE", 500)
    rng = np.random.default_rng(2)
    counts = np.full(5000, 4)
    pool = ItlPool(rng.lognormal(-4.4, 0.3, 20000), rng.random(5000) < 0.9, counts, all_finite=True)
    img = distribution_plot(pool, "itl_s")  # no stats: percentiles computed from the pool
    assert base64.b64decode(img)[:4] == b"\x89PNG"
    assert distribution_plot(ItlPool(np.full(3000, 0.01)), "itl_s") is not None  # constant: one bar
