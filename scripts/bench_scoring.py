"""Scoring benchmark helpers for scripts/bench.py: a synthetic run folder and a timed child.

`build_run_folder(dir, n)` writes scenario.yaml (guide policy inline), meta.json, gpu.csv,
server_metrics.csv and requests.jsonl with `n` realistic RequestRecords (64-token outputs, so 64
itl_s values each, ~0.5 % errors), fast: each line is one `%` substitution into a pre-serialised
template. Run as a script (`python scripts/bench_scoring.py RUN_DIR [--profile N]`) it times
`harness.report.write_reports(RUN_DIR)` in this fresh process and prints one JSON line with the
total, the split per stage and its own peak RSS.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

RATE_RPS = 1000.0  # records are spread over n / RATE_RPS seconds of load (1M → ~17 minutes)
OUTPUT_TOKENS = 65  # 65 text chunks → 64 inter-token gaps per ok request
ERROR_EVERY = 200  # one failed request in 200 (0.5 %)
VARIANTS = 509  # distinct ITL lists (prime, so they do not line up with the error pattern)
WARMUP_S = 10.0


def _scenario_yaml(duration_s: float) -> str:
    from harness.config import LoadConfig, Scenario, WorkloadConfig, resolve_scenario, scenario_to_yaml

    scn = Scenario(name="bench-scoring", load=LoadConfig(api="openai-chat", users=700, duration_s=duration_s,
                                                          warmup_s=WARMUP_S),
                   workload=WorkloadConfig(prompt_tokens={"dist": "uniform", "min": 64, "max": 512},
                                           output_tokens=OUTPUT_TOKENS, seed=1))
    return scenario_to_yaml(resolve_scenario(scn))


def _templates(rng: random.Random) -> tuple[list[str], list[float]]:
    """VARIANTS pre-serialised ok-record templates (itl_s baked in) and their ITL sums."""
    head = ('{"request_id":"bench-%d","api":"openai-chat","sent_s":%.6f,"end_s":%.6f,"status":200,"ok":true,'
            '"scheduled_s":null,"first_token_s":%.6f,"ttft_s":%.6f,"e2e_s":%.6f,"itl_s":[')
    tail = ('],"prompt_tokens":%d,"output_tokens":' + str(OUTPUT_TOKENS) + ',"output_tokens_source":"usage",'
            '"requested_output_tokens":' + str(OUTPUT_TOKENS) + ',"finish_reason":"length","error_type":null,'
            '"error":null,"sent_unix_s":%.6f,"user":"bench-u%d"}\n')
    out, sums = [], []
    for _ in range(VARIANTS):
        # Decode gaps around 12 ms with a tail (batching hiccups), 6 decimals like a µs clock.
        gaps = [round(rng.lognormvariate(-4.45, 0.35), 6) for _ in range(OUTPUT_TOKENS - 1)]
        body = ",".join(f"{g:.6f}" for g in gaps)
        out.append(head + body + tail)
        sums.append(sum(gaps))
    return out, sums


ERROR_LINE = ('{"request_id":"bench-%d","api":"openai-chat","sent_s":%.6f,"end_s":%.6f,"status":500,"ok":false,'
              '"scheduled_s":null,"first_token_s":null,"ttft_s":null,"e2e_s":%.6f,"itl_s":[],"prompt_tokens":null,'
              '"output_tokens":0,"output_tokens_source":"chunks","requested_output_tokens":' + str(OUTPUT_TOKENS) + ','
              '"finish_reason":null,"error_type":"http_5xx","error":"HTTP 500: Simulated engine failure (fault '
              'injection).","sent_unix_s":%.6f,"user":"bench-u%d"}\n')


def build_run_folder(run_dir: Path, n: int, seed: int = 1) -> dict:
    """Write a complete run folder with n request records; returns sizes and the time it took."""
    from harness.records import GpuSample, ServerSample, write_csv

    t0 = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    duration_s = max(n / RATE_RPS, WARMUP_S + 1.0)
    start_s, unix0 = 1000.0, 1.7e9
    (run_dir / "scenario.yaml").write_text(_scenario_yaml(duration_s), encoding="utf-8")
    meta = {"schema_version": 1, "scenario_name": "bench-scoring", "interrupted": False,
            "planned_duration_s": duration_s, "load_start_s": start_s, "load_end_s": start_s + duration_s,
            "load_start_unix_s": unix0, "load_outcome": "completed",
            "load": {"mode": "closed", "api": "openai-chat", "users": 700},
            "backend": {"type": "sim", "model": "llama-3-8b", "gpu": "a100-80gb", "tensor_parallel_size": 1},
            "notes": []}
    (run_dir / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    secs = int(duration_s) + 1
    write_csv(run_dir / "gpu.csv", (GpuSample(start_s + i, 0, "NVIDIA A100-SXM4-80GB", 90.0, 60.0, 70 << 30, 80 << 30,
                                              350.0, 350.0 * i, 60.0, 1410.0, True) for i in range(secs)), GpuSample)
    write_csv(run_dir / "server_metrics.csv", (ServerSample(start_s + i, 3.0, 200.0, 0.6, 0.0, True)
                                               for i in range(secs)), ServerSample)
    templates, sums = _templates(rng)
    # Per-record randomness drawn once, in bulk (TTFT, prompt length, send jitter): cheap per line.
    ttfts = [rng.lognormvariate(-2.3, 0.5) for _ in range(4096)]
    prompts = [rng.randint(64, 512) for _ in range(4096)]
    step = duration_s / n
    with open(run_dir / "requests.jsonl", "w", encoding="utf-8", buffering=1 << 20) as fh:
        buf = []
        for i in range(n):
            sent = start_s + i * step
            user = i % 700
            if i % ERROR_EVERY == ERROR_EVERY - 1:
                e2e = 0.004
                buf.append(ERROR_LINE % (i, sent, sent + e2e, e2e, unix0 + (sent - start_s), user))
            else:
                k = i % VARIANTS
                ttft = ttfts[i & 4095]
                e2e = ttft + sums[k]
                buf.append(templates[k] % (i, sent, sent + e2e, sent + ttft, ttft, e2e, prompts[i & 4095],
                                           unix0 + (sent - start_s), user))
            if len(buf) >= 10000:
                fh.write("".join(buf))
                buf.clear()
        fh.write("".join(buf))
    size = (run_dir / "requests.jsonl").stat().st_size
    return {"records": n, "jsonl_bytes": size, "build_s": time.perf_counter() - t0}


def timed_write_reports(run_dir: Path, profile_top: int = 0) -> dict:
    """Time write_reports(run_dir) once, with a split per stage taken by wrapping the stage functions.

    The wrappers replace module attributes that write_reports / render_html look up at call time
    (they cost a few microseconds each, called once), so the split and the total come from the
    same single run. What is not inside a wrapped stage (summary.json's json.dumps and the file
    writes) is reported as "other".
    """
    import resource

    import harness.report as report
    import harness.report.export as export
    import harness.report.html as html
    import harness.report.junit as junit
    import harness.report.markdown as markdown
    import harness.scoring as scoring

    split: dict[str, float] = {}

    def wrap(mod, name: str, label: str) -> None:
        fn = getattr(mod, name)

        def timed(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                split[label] = split.get(label, 0.0) + time.perf_counter() - t
        setattr(mod, name, timed)

    wrap(report, "load_run", "load_run")
    wrap(scoring, "summarize", "summarize")
    wrap(junit, "junit_xml", "junit.xml")
    wrap(markdown, "summary_markdown", "summary.md")
    wrap(export, "write_requests_csv", "requests.csv")
    wrap(html, "build_plots", "report.html: plots")
    wrap(html, "render_html", "report.html (total)")

    prof = None
    if profile_top:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    t0 = time.perf_counter()
    report.write_reports(run_dir)
    total = time.perf_counter() - t0
    hot = []
    if prof is not None:
        import pstats

        prof.disable()
        st = pstats.Stats(prof)
        rows = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:profile_top]  # by own time
        hot = [{"function": f"{Path(fn).name}:{line}({name})", "calls": nc, "own_s": round(tt, 2),
                "cum_s": round(ct, 2)} for (fn, line, name), (cc, nc, tt, ct, _) in rows]
    split["other (summary.json dumps, file writes)"] = total - sum(
        v for k, v in split.items() if k != "report.html: plots")
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"total_s": total, "split_s": split, "maxrss_kib": ru.ru_maxrss, "hotspots": hot}


def main(argv: list[str]) -> int:
    run_dir = Path(argv[0])
    top = int(argv[argv.index("--profile") + 1]) if "--profile" in argv else 0
    print(json.dumps(timed_write_reports(run_dir, top)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
