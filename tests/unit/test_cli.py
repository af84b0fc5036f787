"""CLI exit codes: the contract in README ('Exit codes'), tested line by line on summaries."""

import os
import signal

import pytest

from harness.cli import EXIT_ERROR, EXIT_GATE_FAIL, EXIT_OK, _verdict_code
from harness.runner import held_interrupts


def summary(overall="PASS", valid=True, reasons=(), inconclusive=(), regressed=False):
    rows = [{"label": lab, "verdict": "INCONCLUSIVE", "needed_requests": 250} for lab in inconclusive]
    return {"validity": {"valid": valid, "reasons": list(reasons)},
            "sla": {"overall": overall, "rows": rows, "inconclusive_hard": list(inconclusive)},
            "regression": {"verdict": "REGRESSED" if regressed else "OK"}}


@pytest.mark.parametrize("gate", [False, True])
def test_invalid_run_is_2_with_or_without_gate(gate, capsys):
    assert _verdict_code(summary("PASS", valid=False, reasons=["no request was recorded"]), gate) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid run: no request was recorded" in err


def test_gate_fail_regression_and_pass():
    assert _verdict_code(summary("FAIL"), gate=False) == EXIT_OK
    assert _verdict_code(summary("FAIL"), gate=True) == EXIT_GATE_FAIL
    assert _verdict_code(summary("PASS", regressed=True), gate=True) == EXIT_GATE_FAIL
    assert _verdict_code(summary("WARN"), gate=True) == EXIT_OK


def test_inconclusive_hard_row_fails_the_gate_unless_allowed(capsys):
    s = summary("INCONCLUSIVE", inconclusive=["Request latency"])
    assert _verdict_code(s, gate=True) == EXIT_GATE_FAIL
    assert "about 250 requests" in capsys.readouterr().err
    assert _verdict_code(s, gate=True, allow_inconclusive=True) == EXIT_OK
    assert _verdict_code(s, gate=False) == EXIT_OK


def test_no_judgeable_hard_row_fails_the_gate(capsys):
    assert _verdict_code(summary("INCONCLUSIVE"), gate=True) == EXIT_GATE_FAIL
    assert "no hard SLA row could be judged" in capsys.readouterr().err


def test_old_summaries_without_validity_are_valid():
    assert _verdict_code({"sla": {"overall": "PASS"}}, gate=True) == EXIT_OK


def test_interrupts_are_held_until_the_block_ends():
    with held_interrupts() as came:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        reached_end = True
    assert reached_end and came == [signal.SIGINT, signal.SIGTERM]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_main_maps_oserror_to_one_line(tmp_path, capsys):
    from harness.cli import main

    rc = main(["report", str(tmp_path / "missing")])
    err = capsys.readouterr().err
    assert rc == EXIT_ERROR and err.startswith("slabench: error:") and "Traceback" not in err
