"""The Locust bridge's run state without gevent: cancelled_at_stop records, the stop moment, the
locust_meta.json it writes, and workers' cancelled counts reaching the master."""

import json
import subprocess
import sys
from types import SimpleNamespace

from harness.load.bridge_state import WORKER_FLUSH_S, BridgeState
from harness.load.openloop import DispatchStats
from harness.load.streams import OpenAIChatStream


def chat_chunk(content):
    return json.dumps({"id": "c", "choices": [{"index": 0, "delta": {"content": content},
                                               "finish_reason": None}]}).encode()


class FakeClock:
    def __init__(self, t=50.0):
        self.t = t

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


class FakeEvent:
    def __init__(self):
        self.is_set = False

    def set(self):
        self.is_set = True


class FakeRunner:
    def __init__(self, clients=()):
        self.sent: list[tuple] = []
        self.client_id = "w1"
        self.clients = SimpleNamespace(all=[SimpleNamespace(id=c) for c in clients])
        self.worker_count = len(clients)

    def send_message(self, kind, data=None):
        self.sent.append((kind, data))


def state(tmp_path, role="local", load=None, runner=None, clock=None):
    cfg = {"records_path": str(tmp_path / "requests.jsonl"), "locust_meta_path": str(tmp_path / "locust_meta.json"),
           "load": {"users": 2, "duration_s": 3, "drain_timeout_s": 1, **(load or {})}}
    clock = clock or FakeClock()
    env = SimpleNamespace(runner=runner or FakeRunner())
    return BridgeState(cfg, env, role, spawn=lambda fn: None, sleep=clock.sleep, stop_event=FakeEvent(),
                       clock=clock), clock


def test_a_request_cut_off_by_the_stop_keeps_its_ttft_and_tokens_so_far(tmp_path):
    st, clock = state(tmp_path)
    acc = OpenAIChatStream("u-1", sent_s=10.0, requested_output_tokens=16, forced_length=True)
    acc.rec.status = 200
    acc.feed([chat_chunk("a")], 10.05)
    acc.feed([chat_chunk("b")], 10.07)
    clock.t = 14.0
    rec = st.cancelled_record(acc)
    assert (rec.ok, rec.error_type, rec.status) == (False, "cancelled_at_stop", 200)
    assert abs(rec.ttft_s - 0.05) < 1e-9 and rec.output_tokens == 2 and rec.end_s == 14.0
    assert "load.drain_timeout_s (1 s)" in rec.error and "\n" not in rec.error
    assert st.cancelled == 1


def test_a_request_cut_off_before_its_first_token_has_no_ttft(tmp_path):
    st, _ = state(tmp_path)
    rec = st.cancelled_record(OpenAIChatStream("u-2", 10.0, 16, True))
    assert rec.error_type == "cancelled_at_stop" and rec.ttft_s is None and rec.output_tokens == 0


def test_a_stream_that_had_already_failed_keeps_its_cause(tmp_path):
    st, _ = state(tmp_path)
    acc = OpenAIChatStream("u-3", 10.0, 16, True)
    acc.feed([b"{not json"], 10.1)
    assert st.cancelled_record(acc).error_type == "malformed_stream" and st.cancelled == 0


def test_meta_ends_the_load_at_the_stop_not_after_the_drain(tmp_path):
    st, clock = state(tmp_path)
    st.load_start_s = 50.0
    clock.t = 53.0
    st.begin_stop()
    clock.t = 54.0
    st.begin_stop()  # a second stop (Locust's quit after the shape's stop) does not move it
    assert st.stopping and st.stop_event.is_set and st.stop_s == 53.0
    st.dispatch = DispatchStats(scheduled=10, sent=6, delayed_by_cap=2, not_sent=4)
    st.cancelled = 2
    clock.t = 54.5
    st.write_meta()
    meta = json.loads((tmp_path / "locust_meta.json").read_text())
    assert (meta["load_end_s"], meta["drain_end_s"], meta["drain_timeout_s"]) == (53.0, 54.5, 1.0)
    assert meta["cancelled_at_stop"] == 2
    clock.t = 60.0
    st.write_meta()  # again at Locust's quitting, after its report: the drain's end stays where it was
    assert json.loads((tmp_path / "locust_meta.json").read_text())["drain_end_s"] == 54.5
    assert meta["open_loop"] == {"scheduled": 10, "sent": 6, "delayed_by_cap": 2, "not_sent": 4,
                                 "stopped_early": False, "counted_exactly": True}


def test_workers_forward_their_cancelled_count_and_the_master_adds_them_up(tmp_path):
    worker, _ = state(tmp_path / "w", role="worker")
    worker.cancelled = 2
    worker.outbox = ["{}"]
    worker.forward()
    kind, data = worker.environment.runner.sent[-1]
    assert kind == "slabench_records" and data["cancelled"] == 2 and data["lines"] == ["{}"]
    master, _ = state(tmp_path / "m", role="master")
    for who, n in (("w1", 2), ("w2", 1), ("w1", 3)):  # counts are cumulative per worker
        master.on_records(SimpleNamespace(data={"worker": who, "lines": [], "issued": 5, "cancelled": n}))
    assert master.cancelled == 4 and master.issued == 10


def test_the_master_waits_for_workers_the_drain_timeout_plus_a_flush_margin(tmp_path):
    runner = FakeRunner(clients=["w1", "w2"])
    master, clock = state(tmp_path, role="master", load={"drain_timeout_s": 7}, runner=runner)
    master.workers_done = {"w1"}  # w2 never answers
    start = clock.t
    master.drain_workers()
    assert runner.sent[0][0] == "slabench_stop"
    assert 7 + WORKER_FLUSH_S <= clock.t - start <= 7 + WORKER_FLUSH_S + 0.1


def test_the_state_module_imports_no_gevent():
    code = "import sys, harness.load.bridge_state; sys.exit('gevent' in sys.modules or 'locust' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
