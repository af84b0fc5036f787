"""Decisions never accept an INCONCLUSIVE row or an invalid run (matrix, sweep, capacity, recommendation)."""

from harness.decide.pareto import decision_verdict, miss_text, misses, recommend
from harness.decide.sweep import sweep_passes


def row(metric, verdict, value=0.2, target=0.5, better="lower", hard=True, needed=None):
    return {"metric": metric, "label": metric, "verdict": verdict, "value": value, "target": target,
            "alert": target * 2, "better": better, "hard": hard, "offered_limited": False, "unit": "s",
            "stat": "p99", "needed_requests": needed}


def test_inconclusive_is_worse_than_warn_and_never_accepted():
    s = {"sla": {"rows": [row("ttft_s", "PASS"), row("tpot_s", "INCONCLUSIVE", value=0.01, needed=340)]}}
    assert decision_verdict(s) == "INCONCLUSIVE"
    m = misses(s, accept=("PASS", "WARN"))
    assert [x["metric"] for x in m] == ["tpot_s"] and m[0]["miss"] == 0.0
    assert miss_text(m[0]) == "tpot_s 10 ms (target < 500 ms) inconclusive: too few samples, needs about 340 requests"
    s["sla"]["rows"].append(row("e2e_s", "FAIL", value=2.0))
    assert decision_verdict(s) == "FAIL"


def test_a_sweep_point_judged_on_too_few_samples_does_not_pass():
    ok, ms = sweep_passes({"sla": {"rows": [row("ttft_s", "PASS"), row("tpot_s", "INCONCLUSIVE", needed=200)]}})
    assert ok is False and [m["metric"] for m in ms] == ["tpot_s"]
    assert sweep_passes({"sla": {"rows": [row("ttft_s", "PASS")]}})[0] is True


def test_an_invalid_run_never_meets_the_sla():
    s = {"sla": {"rows": [row("ttft_s", "PASS")]}, "validity": {"valid": False, "reasons": ["no request succeeded"]}}
    assert decision_verdict(s) == "INVALID" and sweep_passes(s)[0] is False
    m = misses(s)
    assert m[0]["verdict"] == "INVALID" and miss_text(m[0]) == "invalid run: no request succeeded"
    rows = [{"id": "bad", "label": "bad", "status": "done", "verdict": "INVALID", "cost": 0.01, "misses": m},
            {"id": "slow", "label": "slow", "status": "done", "verdict": "WARN", "cost": 0.5,
             "misses": misses({"sla": {"rows": [row("ttft_s", "WARN", value=0.6)]}})}]
    rec = recommend(rows, accept=("PASS", "WARN"))
    assert rec["variant"] == "slow" and rec["kind"] == "cheapest_passing"
    rec = recommend(rows)
    assert rec["kind"] == "closest" and rec["variant"] == "slow"  # never the invalid one, however cheap
    assert decision_verdict({"sla": {"rows": [row("ttft_s", "PASS")]}, "validity": {"valid": True}}) == "PASS"


def test_sweep_points_run_long_enough_to_judge_their_tail_rows():
    from harness.config import Scenario
    from harness.decide.search import point_scenario

    scn = Scenario.model_validate({
        "name": "s", "backend": {"type": "sim", "model": "llama-3-8b", "gpu": "a100-80gb"},
        "load": {"mode": "open", "rate_rps": 2, "duration_s": 20, "warmup_s": 2},
        "workload": {"prompt_tokens": 128, "output_tokens": 64, "seed": 1},
        "sla": {"name": "t", "min_samples": 100, "rows": [{"metric": "ttft_s", "stat": "p99", "target": 0.5, "alert": 1}]}})
    assert point_scenario(scn, 2.0, 0, False).load.duration_s == 2 + 125 / 2.0  # 125 scored requests at 2 req/s
    assert point_scenario(scn, 64.0, 0, False).load.duration_s == 20  # the scenario's own length already suffices
    no_tail = scn.model_copy(update={"sla": scn.sla.model_copy(update={"rows": [
        scn.sla.rows[0].model_copy(update={"stat": "p50"})]})})
    assert point_scenario(no_tail, 2.0, 0, False).load.duration_s == 20
