"""report.html rendered in headless Chromium: loads with no console messages, shows the verdict
and every plot, keeps a server-sent `<script>` inert, and leaves a screenshot in the tmp dir.

Needs Debian's `chromium` (`.ci/run` installs it); skipped with the install command when absent.
"""

import base64
import io
import json
import re
import shutil
import subprocess
import tempfile

import pytest
from PIL import Image

from harness.config import parse_scenario, resolve_scenario, scenario_to_yaml
from harness.records import GpuSample, RequestRecord, ServerSample, write_csv
from harness.report import write_reports

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not found: apt-get install chromium")]
XSS = "<script>console.error('xss ran')</script>"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]


def make_run(d):
    scn = resolve_scenario(parse_scenario({"name": "browser", "load": {"users": 4, "duration_s": 20, "warmup_s": 2}}))
    (d / "scenario.yaml").write_text(scenario_to_yaml(scn))
    (d / "meta.json").write_text(json.dumps({"scenario_name": "browser", "load_start_s": 100.0, "load_end_s": 120.0,
                                             "load": {"mode": "closed", "users": 4, "api": "openai-chat"},
                                             "backend": {"type": "sim", "model": XSS, "gpu": "a100-80gb",
                                                         "gpu_count": 1, "simulated": True}}))
    lines = []
    for i in range(400):
        t = 100.0 + i * 0.05
        ok = i % 50 != 7
        lines.append(RequestRecord(
            request_id=f"r{i}", api="openai-chat", sent_s=t, end_s=t + 0.6, status=200 if ok else 500, ok=ok,
            first_token_s=t + 0.05 if ok else None, ttft_s=0.05 + (i % 10) * 0.002 if ok else None,
            e2e_s=0.6, itl_s=[0.01 + (k % 3) * 0.001 for k in range(40)] if ok else [],
            prompt_tokens=64, output_tokens=41 if ok else 0, output_tokens_source="usage",
            error_type=None if ok else "http_5xx", error=None if ok else f"HTTP 500: {XSS}").to_json())
    (d / "requests.jsonl").write_text("\n".join(lines) + "\n")
    write_csv(d / "gpu.csv", [GpuSample(100 + k * 0.25, 0, "NVIDIA A100-SXM4-80GB (simulated)", 90.0, 40.0,
                                        30 * 2**30, 80 * 2**30, 350.0, simulated=True) for k in range(80)], GpuSample)
    write_csv(d / "server_metrics.csv", [ServerSample(100 + k, 2.0, 4.0, 0.3, 0.0, simulated=True)
                                         for k in range(20)], ServerSample)


def chromium(*args, timeout=60):
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout)


def test_report_loads_clean_shows_verdict_and_plots(tmp_path):
    make_run(tmp_path)
    paths = write_reports(tmp_path)
    html_path = paths["report.html"]
    summary = json.loads(paths["summary.json"].read_text())
    url = html_path.resolve().as_uri()

    dom = chromium("--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-1000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console  # no script ran, nothing was blocked, nothing tried the network
    assert summary["sla"]["overall"] in dom.stdout
    assert "Request latency" in dom.stdout

    # The server-sent script stays text: escaped in the file, never an element in the DOM.
    text = html_path.read_text()
    assert "&lt;script&gt;console.error" in text and XSS not in text
    assert "xss ran" not in dom.stderr

    # Every plot is an inline PNG that decodes: no broken or external image.
    srcs = re.findall(r'<img[^>]+src="([^"]+)"', dom.stdout)
    assert len(srcs) == text.count("data:image/png;base64,") >= 5  # TTFT, TPOT, ITL, E2E, time series
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        img = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert img.size[0] > 100 and img.size[1] > 50

    shot = tmp_path / "report.png"
    res = chromium("--window-size=1280,4000", f"--screenshot={shot}", url)
    assert res.returncode == 0 and shot.exists()
    img = Image.open(shot)
    assert img.size == (1280, 4000)
    assert len(img.convert("L").resize((64, 200)).getcolors(65536)) > 20  # a rendered page, not a blank one
