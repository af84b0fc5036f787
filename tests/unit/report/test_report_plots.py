import base64

import numpy as np

from harness.report.plots import (
    DPI, WIDTH_IN, distribution_figure, distribution_plot, line_boxes, place_labels, png_b64, timeseries_figure,
    timeseries_plot,
)

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


def _png_width(b64: str) -> int:
    return int.from_bytes(base64.b64decode(b64)[16:20], "big")  # IHDR width


def test_distribution_axes_use_metric_labels_and_legends_sit_above_the_data():
    fig = distribution_figure([0.01 * i for i in range(1, 200)], "ttft_s")
    cdf, hist = fig.axes
    assert cdf.get_xlabel() == "TTFT (ms)" and hist.get_xlabel().startswith("TTFT (ms)")
    assert fig._suptitle.get_text() == "TTFT: n = 199"
    png_b64(fig)  # draws: legend and axes boxes are final
    legend = cdf.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["p50 = 1,000 ms", "p99 = 1,970 ms"]
    assert legend.get_window_extent().y0 >= cdf.get_window_extent().y1 - 1  # above the plot area
    assert _png_width(distribution_plot([0.2, 0.3], "itl_s")) == round(WIDTH_IN * DPI)  # the page's content width


def test_timeseries_legends_never_cover_data_and_empty_errors_say_so():
    ts = {"t_s": [0.0, 1.0, 2.0], "bucket_s": 1.0, "offered_rps": [1, 2, 3], "achieved_rps": [1, 2, 2],
          "errors": [0, 0, 0], "ttft_p99_s": [None, None, None], "in_flight": [1, 2, 1]}
    fig = timeseries_figure(ts)
    png_b64(fig)
    axes = {ax.get_ylabel(): ax for ax in fig.axes}
    assert set(axes) == {"requests/s", "in flight", "TTFT (ms)", "errors"}
    for ax in fig.axes:
        assert ax.get_legend().get_window_extent().y0 >= ax.get_window_extent().y1 - 1
        assert ax.get_ylim()[0] == 0  # every quantity is >= 0: axes start at zero
    errors = axes["errors"]
    assert errors.get_ylim() == (0, 1) and [t.get_text() for t in errors.texts] == ["no errors"]
    assert [t.get_text() for t in axes["TTFT (ms)"].texts] == ["no data in any bucket"]
    assert len(axes["requests/s"].texts) == 0 and axes["requests/s"].get_ylim()[1] > 3


def test_place_labels_keeps_clustered_numbers_apart_and_off_markers():
    pts = [(100.0, 100.0), (100.0, 104.0), (101.0, 108.0), (100.0, 100.0), (300.0, 100.0)]  # one pair coincides
    sizes = [(14.0, 12.0)] * len(pts)
    offs = place_labels(pts, sizes, marker_px=6.0, bounds=(0, 0, 400, 300))
    boxes = [(x + dx - w / 2, y + dy - h / 2, x + dx + w / 2, y + dy + h / 2)
             for (x, y), (dx, dy), (w, h) in zip(pts, offs, sizes)]
    overlap = lambda a, b: min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])  # noqa: E731
    for i, a in enumerate(boxes):
        assert not any(overlap(a, b) for b in boxes[i + 1:]), (i, boxes)
        assert not any(overlap(a, (x - 6, y - 6, x + 6, y + 6)) for x, y in pts)
        assert 0 <= a[0] and a[2] <= 400 and 0 <= a[1] and a[3] <= 300
    assert offs[4] == (6.0 + 5.0 + 7.0, 0.0)  # a lone point gets the first spot: just right of it
    line = line_boxes(np.array([(300.0, 100.0), (360.0, 100.0)]))  # a line running right from it
    (dx, dy), = place_labels([pts[4]], [sizes[4]], obstacles=line)
    box = (300 + dx - 7, 100 + dy - 6, 300 + dx + 7, 100 + dy + 6)
    assert dy != 0 and not any(overlap(box, b) for b in line)  # the number moves off the line
