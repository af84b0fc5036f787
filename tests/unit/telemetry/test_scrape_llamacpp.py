"""parse_server_metrics on llama.cpp's llama-server expositions (`--metrics`): queue depth is measured.

The exposition follows llama-server's documented series (tools/server/README.md, "Available metrics"):
no labels, HELP/TYPE lines, counters ending in _total, a gauge that reads `nan` before the first decode.
"""

from __future__ import annotations


import pytest

from harness.telemetry import detect_server, parse_server_metrics

LLAMACPP = """\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 1536
# HELP llamacpp:prompt_seconds_total Prompt process time
# TYPE llamacpp:prompt_seconds_total counter
llamacpp:prompt_seconds_total 2.25
# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 4096
# HELP llamacpp:tokens_predicted_seconds_total Predict process time
# TYPE llamacpp:tokens_predicted_seconds_total counter
llamacpp:tokens_predicted_seconds_total 31.5
# HELP llamacpp:n_decode_total Total number of llama_decode() calls
# TYPE llamacpp:n_decode_total counter
llamacpp:n_decode_total 1100
# HELP llamacpp:n_tokens_max Largest observed n_tokens.
# TYPE llamacpp:n_tokens_max counter
llamacpp:n_tokens_max 412
# HELP llamacpp:n_busy_slots_per_decode Average number of busy slots per llama_decode() call
# TYPE llamacpp:n_busy_slots_per_decode gauge
llamacpp:n_busy_slots_per_decode 3.7
# HELP llamacpp:prompt_tokens_seconds Average prompt throughput in tokens/s.
# TYPE llamacpp:prompt_tokens_seconds gauge
llamacpp:prompt_tokens_seconds 682.7
# HELP llamacpp:predicted_tokens_seconds Average generation throughput in tokens/s.
# TYPE llamacpp:predicted_tokens_seconds gauge
llamacpp:predicted_tokens_seconds 130.0
# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 4
# HELP llamacpp:requests_deferred Number of requests deferred.
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 6
"""

# Before any request: the per-decode average is 0/0 (nan); every count is zero, which is measured, not missing.
IDLE = """\
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 0
# TYPE llamacpp:n_busy_slots_per_decode gauge
llamacpp:n_busy_slots_per_decode nan
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 0
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 0
"""

# Older builds also exported the KV cache fill as a ratio.
OLD_BUILD = """\
# TYPE llamacpp:kv_cache_usage_ratio gauge
llamacpp:kv_cache_usage_ratio 0.375
# TYPE llamacpp:kv_cache_tokens gauge
llamacpp:kv_cache_tokens 3072
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 2
"""



def test_deferred_is_the_queue_and_processing_is_running():
    s = parse_server_metrics(LLAMACPP, t_s=7.5)
    assert detect_server(LLAMACPP) == "llamacpp"
    assert (s.t_s, s.queue_depth, s.running) == (7.5, 6.0, 4.0)
    assert s.kv_usage_frac is None and s.preemptions_total is None  # current builds export neither
    assert s.simulated is False


def test_an_idle_server_reads_as_measured_zeros_not_missing():
    s = parse_server_metrics(IDLE, t_s=0.0)
    assert (s.queue_depth, s.running) == (0.0, 0.0)


def test_older_builds_kv_ratio_is_the_kv_fraction():
    s = parse_server_metrics(OLD_BUILD, t_s=0.0)
    assert s.kv_usage_frac == pytest.approx(0.375) and s.running == 2.0
    assert s.queue_depth is None  # not exported: not measured, never a made-up zero


def test_token_counters_map_onto_the_schema():
    s = parse_server_metrics(LLAMACPP, t_s=0.0)
    assert (s.prompt_tokens_total, s.output_tokens_total) == (1536.0, 4096.0)


def test_other_servers_are_not_taken_for_llamacpp():
    assert detect_server("# TYPE tgi_queue_size gauge\ntgi_queue_size 1\nllamacpp:requests_deferred 2\n") == "tgi"
    assert detect_server("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1\n") is None
