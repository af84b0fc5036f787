"""sweep_passes: an open-loop point that did not offer its rate never passes (harness/decide/search.py)."""

from harness.decide.pareto import miss_text
from harness.decide.search import sweep_passes


def summary(**lg) -> dict:
    row = {"metric": "ttft_s", "stat": "p99", "hard": True, "better": "lower", "verdict": "PASS", "value": 0.1,
           "target": 0.5, "label": "TTFT p99"}
    base = {"cap_limited": False, "saturated": False, "scheduled": 1000, "not_sent": 0}
    return {"sla": {"rows": [row], "verdict": "PASS"}, "load_generator": {**base, **lg}, "validity": {"valid": True}}


def test_a_point_whose_latency_passes_passes():
    ok, ms = sweep_passes(summary())
    assert ok and ms == []


def test_requests_held_by_max_in_flight_fail_the_point_with_the_reason():
    ok, ms = sweep_passes(summary(cap_limited=True))
    assert not ok
    assert "max_in_flight held requests back" in miss_text(ms[-1])


def test_unsent_requests_over_one_percent_fail_the_point():
    assert sweep_passes(summary(not_sent=5))[0]  # 0.5 %: Poisson tail at the end of the window
    ok, ms = sweep_passes(summary(not_sent=50))
    assert not ok and ms[-1]["metric"] == "offered_rate"


def test_a_saturated_client_fails_the_point():
    ok, ms = sweep_passes(summary(saturated=True))
    assert not ok and "fell behind its schedule" in miss_text(ms[-1])
