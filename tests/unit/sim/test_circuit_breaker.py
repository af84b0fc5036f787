"""The sim gateway's circuit breaker (guide section 6) on an injected clock, its in-stream error test,
the 503 it answers, and the overload flags (breaker, vLLM queue caps) from the CLI to ServeOptions."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.sim.catalog import SimConfigError
from harness.sim.cli import _options, _parser
from harness.sim.gate import CircuitBreaker, circuit_open, error_event, gate_middleware
from harness.sim.server import ServeOptions, build_server


class Clock:
    def __init__(self):
        self.t = 50.0

    def __call__(self):
        return self.t


def fail(b, n=1):
    for _ in range(n):
        assert b.admit() == (True, False)
        b.record(True, False)


def test_opens_after_n_consecutive_failures_only():
    b = CircuitBreaker(3, 30, Clock())
    fail(b, 2)
    b.admit()
    b.record(False, False)  # a success resets the count
    fail(b, 2)
    assert b.state == "closed" and b.failures == 2
    fail(b)
    assert b.state == "open" and b.trips == 1


def test_open_refuses_for_recovery_s_then_one_probe():
    c = Clock()
    b = CircuitBreaker(2, 30, c)
    fail(b, 2)
    assert b.admit() == (False, False) and b.retry_after_s() == pytest.approx(30)
    c.t += 29.9
    assert b.admit() == (False, False) and b.retry_after_s() == pytest.approx(0.1)
    c.t += 0.1
    assert b.admit() == (True, True) and b.state == "half-open"
    assert b.admit() == (False, False)  # a second request while the probe is out
    b.record(False, True)
    assert b.state == "closed" and b.failures == 0
    assert b.admit() == (True, False) and b.refused == 3


def test_failed_probe_reopens_for_another_period():
    c = Clock()
    b = CircuitBreaker(1, 10, c)
    fail(b)
    c.t += 10
    assert b.admit() == (True, True)
    c.t += 4  # the probe takes 4 s and fails: the new open period starts when it fails
    b.record(True, True)
    assert b.state == "open" and b.trips == 2 and b.retry_after_s() == pytest.approx(10)
    c.t += 9.99
    assert b.admit()[0] is False


def test_probe_without_verdict_lets_the_next_request_probe():
    c = Clock()
    b = CircuitBreaker(1, 5, c)
    fail(b)
    c.t += 5
    assert b.admit() == (True, True)
    b.record(None, True)  # the probe's client went away
    assert b.state == "half-open" and b.admit() == (True, True)


def test_results_of_requests_admitted_before_the_trip_are_ignored():
    b = CircuitBreaker(2, 5, Clock())
    assert b.admit() == (True, False) and b.admit() == (True, False)  # two in flight, then two failures
    b.record(True, False)
    b.record(True, False)
    assert b.state == "open"
    b.record(False, False)  # a late success from before the trip does not close it
    assert b.state == "open"


def test_state_changes_are_reported():
    seen = []
    c = Clock()
    b = CircuitBreaker(1, 1, c, on_change=seen.append)
    fail(b)
    c.t += 1
    b.admit()
    b.record(False, True)
    assert seen == ["open", "half-open", "closed"]


@given(st.lists(st.sampled_from(["ok", "fail", "gone", "tick"]), max_size=80))
def test_never_more_than_one_probe_and_never_admits_while_open(events):
    c = Clock()
    b = CircuitBreaker(2, 3, c)
    probes = []
    for e in events:
        if e == "tick":
            c.t += 1
            continue
        was_open = b.state == "open" and c.t - b.opened_s < 3
        allowed, probe = b.admit()
        assert not (was_open and allowed)
        if not allowed:
            continue
        if probe:
            probes.append(1)
            assert len(probes) == 1
        b.record({"ok": False, "fail": True, "gone": None}[e], probe)
        if probe:
            probes.pop()


def test_bad_breaker_settings_are_refused():
    with pytest.raises(ValueError):
        CircuitBreaker(0, 30)
    with pytest.raises(ValueError):
        CircuitBreaker(5, 0)
    with pytest.raises(ValueError):
        CircuitBreaker(5, float("inf"))


def test_error_events_in_both_framings():
    assert error_event(b'data:{"error":"Model is overloaded","error_type":"overloaded"}\n\n')
    assert error_event(b'data: {"error": {"message": "x", "type": "y"}}\n\ndata: [DONE]\n\n')
    assert error_event(b'data:{"index":1}\n\ndata:{"error":{"message":"x","http_status_code":422}}\n\n')
    assert not error_event(b'data: {"id":"c","choices":[{"delta":{"content":"{\\"error\\""}}]}\n\n')
    assert not error_event(b'data:{"index":1,"token":{"text":" error"}}\n\n')
    assert not error_event(b"")


def test_open_circuit_answer():
    c = Clock()
    b = CircuitBreaker(5, 30, c)
    fail(b, 5)
    c.t += 12.2
    resp = circuit_open(b)
    body = json.loads(resp.body)
    assert resp.status == 503 and resp.headers["Retry-After"] == "18"
    assert body["error_type"] == "circuit_open" and "5 requests in a row" in body["error"]
    c.t += 20
    b.admit()  # half-open, probe out
    body = json.loads(circuit_open(b).body)
    assert "half-open" in body["error"] and circuit_open(b).headers["Retry-After"] == "1"


def test_cli_flags_reach_serve_options():
    opts = _options(_parser().parse_args(["serve"]))
    assert opts.circuit_failure_threshold is None and opts.max_num_queued_reqs is None
    opts = _options(_parser().parse_args(["serve", "--circuit-failure-threshold", "5", "--circuit-recovery-s", "2.5",
                                          "--max-num-queued-reqs", "0", "--max-num-queued-tokens", "4096"]))
    assert (opts.circuit_failure_threshold, opts.circuit_recovery_s) == (5, 2.5)
    assert (opts.max_num_queued_reqs, opts.max_num_queued_tokens) == (0, 4096)
    for bad in (["--circuit-failure-threshold", "0"], ["--circuit-recovery-s", "0"], ["--circuit-recovery-s", "nan"],
                ["--max-num-queued-reqs", "-1"]):
        with pytest.raises(SystemExit):
            _parser().parse_args(["serve", *bad])


def test_build_refuses_inconsistent_overload_switches():
    with pytest.raises(SimConfigError, match="needs --circuit-failure-threshold"):
        build_server(ServeOptions(circuit_recovery_s=5))
    with pytest.raises(SimConfigError, match="vLLM flags"):
        build_server(ServeOptions(flavor="tgi", max_num_queued_reqs=4))
    assert gate_middleware("vllm", None, None, breaker=CircuitBreaker(5, 30)) is not None
    server = build_server(ServeOptions(circuit_failure_threshold=5))
    assert server.app.on_response_prepare  # the stream watch that lets the breaker see in-stream errors
