"""Matrix page rendering: numbered Pareto points with a key, misses with units, full-width plots,
from a fabricated comparison document (no runs)."""

import base64
import re

from harness.decide.render import PAGE_WIDTH_IN, plot_numbers, write_matrix_report
from harness.report.plots import DPI


def variant(vid, cost, latency, verdict="PASS", pareto=False, misses=()):
    return {"id": vid, "label": vid.replace("-", " "), "status": "done", "mode": "offline", "verdict": verdict,
            "meets_sla": verdict == "PASS", "cost": cost, "latency": latency, "ttft_p99_s": latency,
            "tpot_p50_s": 0.01, "tpot_p99_s": 0.02, "request_rate_rps": 4.0, "output_token_rate_tps": 700.0,
            "error_rate_pct": 0.0, "gpu_util_mean_pct": 90.0, "usd_per_hour": 3.0, "pareto": pareto,
            "misses": list(misses), "report": f"runs/{vid}/report.html"}


def doc():
    miss = {"label": "Request latency (p99, TTFT)", "metric": "ttft_s", "stat": "p99", "value": 76.8, "target": 0.5,
            "unit": "s", "verdict": "FAIL"}
    variants = [
        {"id": "t4-fp16", "label": "t4 fp16", "status": "cannot_run", "reason": "weights need 16 GB", "pareto": False},
        variant("t4-awq", 0.00014, 76.8, "FAIL", pareto=True, misses=[miss]),
        # Three variants at one GPU price: the same cost and latencies a few pixels apart.
        variant("a100-fp16", 0.00116, 0.172, pareto=True), variant("a100-fp8", 0.00116, 0.230),
        variant("a100-awq", 0.00116, 0.198), variant("h100-fp8", 0.00193, 0.031, pareto=True),
    ]
    return {"name": "m", "description": "", "created_utc": "2026-01-01T00:00:00Z", "elapsed_s": 1.0,
            "interrupted": False, "sla_policy": "chat", "pass_rule": "every hard row PASS", "capacity": None,
            "latency_axis": {"metric": "ttft_s", "stat": "p99"}, "latency_target_s": 0.5, "axes": {"gpu": ["t4"]},
            "pareto": ["t4-awq", "a100-fp16", "h100-fp8"], "variants": variants,
            "recommendation": {"kind": "cheapest_passing", "variant": "a100-fp16", "text": "cheapest"}}


def test_points_are_numbered_in_table_order_and_keyed():
    assert plot_numbers(doc()["variants"]) == {"t4-awq": 1, "a100-fp16": 2, "a100-fp8": 3, "a100-awq": 4, "h100-fp8": 5}


def test_matrix_page_numbers_points_and_formats_misses(tmp_path):
    html_path, _ = write_matrix_report(tmp_path, doc())
    page = html_path.read_text()
    key = re.search(r'<p class="key" id="plot-key">(.*?)</p>', page, re.S).group(1)
    assert re.findall(r"<b>(\d+)</b> ([\w-]+)", key) == [("1", "t4-awq"), ("2", "a100-fp16"), ("3", "a100-fp8"),
                                                         ("4", "a100-awq"), ("5", "h100-fp8")]
    assert '<td class="n">3</td>\n<td><b>a100-fp8</b>' in page  # the table's # column matches the key
    assert "76.8 s vs target 500 ms (FAIL)" in page  # units, not raw seconds
    assert "★ <b>a100-fp16</b>" in page and "6 variants" in page
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1))
    width = int.from_bytes(png[16:20], "big")
    assert abs(width - PAGE_WIDTH_IN * DPI) < 0.12 * PAGE_WIDTH_IN * DPI  # about the page's content width
