"""Property: whatever the input, `slabench` exits 0, 1 or 2 with no traceback (issue #12).

A quick profile runs in `make test`; `make fuzz` runs FUZZ_EXAMPLES (10,000 in all) and prints the
exit codes it saw per command. Inputs: scenario, SLA and dataset files (tests/fuzzing/inputs.py),
request records for the faked load stage, and damaged run folders (tests/fuzzing/run_folders.py).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing.cli_fuzz import Tally, drive, fake_stages, maybe_without_plots
from tests.fuzzing.inputs import dataset_files, scenario_files, sla_files
from tests.fuzzing.run_folders import run_folders

TOTAL = int(os.environ.get("FUZZ_EXAMPLES", "0"))
# make fuzz: the total split over the targets, run-heavy; make test: a quick look at each.
SHARE = {"run": 0.5, "report": 0.35, "alerts": 0.15}
TALLY = Tally()
plots = st.integers(0, 9).map(lambda k: k == 0)  # real plots in about 1 example of 10


def examples(target: str, quick: int) -> settings:
    n = max(1, int(TOTAL * SHARE[target])) if TOTAL else quick
    return settings(max_examples=n, deadline=None, database=None, derandomize=not TOTAL,
                    suppress_health_check=list(HealthCheck))


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e3, max_value=1e3)
weird = st.one_of(finite, st.none(), st.just(float("nan")), st.just(1e308), st.text(max_size=5),
                  st.integers(min_value=-2**70, max_value=2**70), st.booleans(), st.lists(finite, max_size=3))


@st.composite
def records(draw) -> list[dict]:
    """Request records as the load stage writes them: mostly plausible, some fields hostile."""
    out = []
    for i in range(draw(st.integers(0, 40))):
        sent = draw(st.floats(90, 115))
        ok = draw(st.booleans())
        ttft = draw(st.floats(0.001, 5))
        itl = draw(st.lists(st.floats(0, 0.5), max_size=8))
        rec = {"request_id": f"r{i}", "api": "openai-chat", "sent_s": sent, "end_s": sent + ttft + sum(itl),
               "status": 200 if ok else draw(st.sampled_from([0, 401, 429, 500, 503])), "ok": ok,
               "ttft_s": ttft if ok else None, "e2e_s": ttft + sum(itl) if ok else None, "itl_s": itl if ok else [],
               "output_tokens": len(itl) + 1 if ok else 0, "prompt_tokens": draw(st.integers(1, 4000)),
               "error_type": None if ok else draw(st.sampled_from(["connect", "http_4xx", "overloaded_503"]))}
        if draw(st.integers(0, 9)) == 0:  # one hostile field now and then
            rec[draw(st.sampled_from(sorted(rec)))] = draw(weird)
        out.append(rec)
    return out


@pytest.fixture(scope="module", autouse=True)
def _print_tally():
    yield
    if TOTAL:
        print("\nfuzz exit codes (every one checked: no traceback, bounded time, exit 1 only after a valid run):")
        for line in TALLY.lines():
            print("  " + line)


@examples("run", quick=15)
@given(scenario=scenario_files(), dataset=dataset_files(), recs=records(), gate=st.booleans(), draw_plots=plots)
def test_run_never_tracebacks(scenario, dataset, recs, gate, draw_plots):
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        maybe_without_plots(mp, draw_plots)
        d = Path(tmp)
        (d / "scenario.yaml").write_bytes(scenario)
        (d / "data.jsonl").write_bytes(dataset)
        fake_stages(mp, recs)
        out = d / "run"
        drive(["run", str(d / "scenario.yaml"), "--out", str(out), *(["--gate"] if gate else [])], TALLY, out)


@examples("report", quick=15)
@given(data=st.data(), draw_plots=plots)
def test_report_never_tracebacks(data, draw_plots):
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        maybe_without_plots(mp, draw_plots)
        d = Path(tmp) / "run"
        data.draw(run_folders(d))
        drive(["report", str(d), "--gate"], TALLY, d)


@examples("alerts", quick=25)
@given(policy=sla_files())
def test_alerts_never_tracebacks(policy):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "policy.yaml"
        path.write_bytes(policy)
        rc, stdout, _ = drive(["alerts", str(path)], TALLY)
        if rc == 0:
            assert "groups:" in stdout
