"""Decision rules: pass rule, Pareto frontier, recommendation (cheapest passing, else closest)."""

from harness.decide.pareto import decision_verdict, misses, pareto_front, recommend


def row(metric, verdict, value, target, better="lower", hard=True, offered_limited=False, unit="s"):
    return {"metric": metric, "label": metric, "verdict": verdict, "value": value, "target": target, "alert": target * 2,
            "better": better, "hard": hard, "offered_limited": offered_limited, "unit": unit, "stat": "p99"}


def test_decision_ignores_advisory_and_offered_limited_rows():
    s = {"sla": {"rows": [row("ttft_s", "PASS", 0.2, 0.5), row("gpu_utilization_pct", "FAIL", 10, 80, "higher", hard=False),
                          row("request_rate_rps", "WARN", 4, 100, "higher", offered_limited=True)]}}
    assert decision_verdict(s) == "PASS"
    s["sla"]["rows"].append(row("tpot_s", "WARN", 0.06, 0.05))
    assert decision_verdict(s) == "WARN"
    m = misses(s)
    assert [x["metric"] for x in m] == ["tpot_s"] and abs(m[0]["miss"] - 0.2) < 1e-9


def test_pareto_front():
    pts = [(1.0, 5.0), (2.0, 3.0), (3.0, 3.0), (2.5, 1.0), (None, 0.1), (4.0, 0.5)]
    assert pareto_front(pts) == [0, 1, 3, 5]


def test_recommend_cheapest_passing_and_tie_on_latency():
    rows = [{"id": "a", "label": "a", "status": "done", "verdict": "FAIL", "cost": 0.1, "latency": 9},
            {"id": "b", "label": "b", "status": "done", "verdict": "PASS", "cost": 0.5, "latency": 0.3},
            {"id": "c", "label": "c", "status": "done", "verdict": "PASS", "cost": 0.5, "latency": 0.2},
            {"id": "d", "label": "d", "status": "done", "verdict": "PASS", "cost": 0.9, "latency": 0.1},
            {"id": "e", "label": "e", "status": "cannot_run"}]
    rec = recommend(rows)
    assert rec["kind"] == "cheapest_passing" and rec["variant"] == "c" and set(rec["passing"]) == {"b", "c", "d"}


def test_recommend_closest_with_reason_when_none_passes():
    m1 = [{"label": "TTFT p99", "metric": "ttft_s", "value": 0.9, "target": 0.5, "unit": "s", "better": "lower",
           "verdict": "WARN", "miss": 0.8}]
    m2 = [{"label": "TTFT p99", "metric": "ttft_s", "value": 0.6, "target": 0.5, "unit": "s", "better": "lower",
           "verdict": "WARN", "miss": 0.2}]
    rows = [{"id": "x", "label": "x", "status": "done", "verdict": "WARN", "cost": 0.1, "misses": m1},
            {"id": "y", "label": "y", "status": "done", "verdict": "WARN", "cost": 0.3, "misses": m2}]
    rec = recommend(rows)
    assert rec["kind"] == "closest" and rec["variant"] == "y"
    assert "600 ms" in rec["text"] and "500 ms" in rec["text"] and "+20%" in rec["text"]
    assert recommend([{"id": "z", "status": "cannot_run"}])["kind"] == "none"


def test_recommend_by_cost_at_capacity_when_it_was_searched():
    # b is cheaper at the offered load, d once both are full: at capacity d wins.
    rows = [{"id": "b", "label": "b", "status": "done", "verdict": "PASS", "cost": 0.5, "cost_at_capacity": 0.2,
             "capacity": 10.0, "capacity_unit": "req/s", "latency": 0.3},
            {"id": "d", "label": "d", "status": "done", "verdict": "PASS", "cost": 0.9, "cost_at_capacity": 0.1,
             "capacity": 40.0, "capacity_unit": "req/s", "latency": 0.1},
            {"id": "x", "label": "x", "status": "done", "verdict": "PASS", "cost": 0.05}]  # no capacity: ranked last
    assert recommend(rows)["variant"] == "x"
    rec = recommend(rows, cost_key="cost_at_capacity")
    assert rec["variant"] == "d" and "$0.10000 per 1k output tokens at its capacity of 40 req/s" in rec["text"]
