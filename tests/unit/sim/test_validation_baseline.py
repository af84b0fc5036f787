"""A point recorded inside its band (baseline.json) must stay inside: the quick subset runs here in a
few seconds; `slabench sim validate` (and `make bench`) run the whole set."""

import pytest

from harness.sim.validation import load_points, run_point, summarize
from harness.sim.validation.baseline import load_baseline

POINTS = {p.id: p for p in load_points().points}
BASE = load_baseline()
QUICK_INSIDE = [i for i in BASE["quick"] if i in BASE["inside"]]


def test_quick_subset_covers_every_regime():
    assert {POINTS[i].regime for i in QUICK_INSIDE} == {"decode-b1", "prefill", "mixed", "saturated"}


@pytest.fixture(scope="module")
def results():
    return {i: run_point(POINTS[i]) for i in QUICK_INSIDE}


@pytest.mark.parametrize("pid", QUICK_INSIDE)
def test_point_stays_inside_its_band(results, pid):
    r = results[pid]
    assert r.simulated is not None, r.reason
    assert r.inside, (f"{pid} left its band: published {r.point.value:g}, simulated {r.simulated:.4g} "
                      f"({r.error * 100:+.0f} % against ±{r.point.band_pct:g} %)")


def test_summary_counts(results):
    s = summarize(list(results.values()))
    assert s.points == s.ran == s.inside == len(QUICK_INSIDE) and s.median_abs_error < 0.15
