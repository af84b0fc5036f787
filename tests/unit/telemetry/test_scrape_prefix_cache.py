"""The scraper reads vLLM's prefix cache counters into ServerSample; older server_metrics.csv still load."""

from __future__ import annotations

from pathlib import Path

from harness.records import ServerSample, read_csv, write_csv
from harness.telemetry import parse_server_metrics

FIXTURES = Path(__file__).parent / "fixtures"
TGI = (FIXTURES / "tgi_3.3_metrics.txt").read_text(encoding="utf-8")

TWO_ENGINES = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="1",model_name="m"} 1.0
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="m"} 4112.0
vllm:prefix_cache_queries_total{engine="1",model_name="m"} 1000.0
# HELP vllm:prefix_cache_queries_created Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_created gauge
vllm:prefix_cache_queries_created{engine="0",model_name="m"} 1.7963176638580205e+09
# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="m"} 3072.0
vllm:prefix_cache_hits_total{engine="1",model_name="m"} 0.0
"""


def test_vllm_counters_are_summed_over_engines():
    s = parse_server_metrics(TWO_ENGINES, t_s=3.0)
    assert s.prefix_cache_queries_total == 5112.0 and s.prefix_cache_hits_total == 3072.0
    assert s.running == 4.0


def test_a_vllm_without_the_counters_and_tgi_give_none():
    no_counters = TWO_ENGINES.split("# HELP vllm:prefix_cache_queries_total")[0]
    s = parse_server_metrics(no_counters, t_s=0.0)
    assert s.prefix_cache_queries_total is None and s.prefix_cache_hits_total is None
    t = parse_server_metrics(TGI, t_s=0.0)
    assert t.queue_depth is not None and t.prefix_cache_queries_total is None and t.prefix_cache_hits_total is None


def test_the_sims_own_exposition_is_read():
    from harness.sim.metrics import VllmMetrics
    from harness.sim.perfmodel import Deployment
    from harness.sim.catalog import default_catalog
    from harness.sim.engine import GpuEngine
    from harness.sim.scheduler import SchedulerConfig

    cat = default_catalog()
    dep = Deployment(cat.gpu("a100-80gb"), cat.model("llama-3-8b"), cat.quant("fp16"))
    engine = GpuEngine(dep, SchedulerConfig(8, 2048, 1000, prefix_caching=True), clock=lambda: 0.0)
    metrics = VllmMetrics("m", 4096, engine)
    engine.sched.cache.record(1000, 640, preempted=False)
    engine.sched.cache.record(500, 500, preempted=True)  # a preempted request's re-lookup: not in the metric
    s = parse_server_metrics(metrics.render()[0].decode(), t_s=1.0)
    assert (s.prefix_cache_queries_total, s.prefix_cache_hits_total) == (1000.0, 640.0)


def test_server_samples_round_trip_and_old_files_without_the_columns_load(tmp_path):
    rows = [ServerSample(1.0, 2.0, 3.0, 0.5, None, simulated=True, prefix_cache_queries_total=10.0,
                         prefix_cache_hits_total=4.0), ServerSample(2.0)]
    path = tmp_path / "server_metrics.csv"
    write_csv(path, rows, ServerSample)
    assert read_csv(path, ServerSample) == rows
    old = tmp_path / "old.csv"  # written before the prefix cache columns existed
    old.write_text("t_s,queue_depth,running,kv_usage_frac,preemptions_total,prompt_tokens_total,"
                   "output_tokens_total,simulated\n1.5,2.0,3.0,0.25,,,,False\n", encoding="utf-8")
    [s] = read_csv(old, ServerSample)
    assert s.queue_depth == 2.0 and s.prefix_cache_queries_total is None and s.prefix_cache_hits_total is None
