import base64

from harness.report.plots import distribution_plot, timeseries_plot

PNG_MAGIC = b"\x89PNG"


def test_distribution_plot_edge_cases():
    assert distribution_plot([], "ttft_s") is None
    assert distribution_plot([float("nan")], "ttft_s") is None
    for samples in ([0.2], [0.02] * 50, [0.1 + 1e-15 * i for i in range(30)], [0.01 * i for i in range(5000)]):
        assert base64.b64decode(distribution_plot(samples, "itl_s"))[:4] == PNG_MAGIC


def test_timeseries_plot_needs_columns():
    assert timeseries_plot({}) is None
    assert timeseries_plot({"t_s": []}) is None
    ts = {"t_s": [0.0, 1.0, 2.0], "bucket_s": 1.0, "offered_rps": [1, 2, 3], "achieved_rps": [1, 2, 2],
          "ttft_p99_s": [None, 0.2, 0.3], "queue_depth": [0, 1, None], "server_simulated": True,
          "window_start_t_s": 0.5, "window_end_t_s": 2.5}
    assert base64.b64decode(timeseries_plot(ts))[:4] == PNG_MAGIC
