"""Run state of the Locust bridge, one per Locust process: config, where records go, counters, stop.

The bridge (harness/load/locust_bridge.py) hands in gevent's spawn, sleep and an Event, so this
module imports neither gevent nor locust and its stop, drain and record accounting is unit-tested.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Callable

from harness.config import LoadConfig, WorkloadConfig
from harness.load.progress import write_status
from harness.load.shape import StartPacer
from harness.load.workload import load_dataset
from harness.records import CANCELLED_AT_STOP, RecordWriter

FORWARD_EVERY_S = 0.5  # workers send their records to the master this often (and at stop)
WORKER_FLUSH_S = 10.0  # master: how long past the drain timeout a worker may take to flush and say done


class BridgeState:
    """Per-process run state shared by all users: config, where records go, request counters.

    local: records go straight to requests.jsonl. worker (--processes, --worker): records are
    forwarded to the master in batches as Locust messages. master: writes what workers forward,
    and at the end waits until every worker has flushed, so no record is lost or duplicated.
    """

    def __init__(self, cfg: dict, environment, role: str, *, spawn: Callable, sleep: Callable[[float], None],
                 stop_event, clock: Callable[[], float] = time.perf_counter):
        self.role = role
        self._spawn, self._sleep, self._clock = spawn, sleep, clock
        self.apply_config(cfg)
        self.writer = RecordWriter(cfg["records_path"]) if role != "worker" else None
        if self.writer is not None:
            atexit.register(self.writer.close)
        self.outbox: list[str] = []  # worker: serialised records not yet sent to the master
        self.meta_path = cfg.get("locust_meta_path")
        self.status_path = cfg.get("status_path")
        self._loops: list = []
        self.environment = environment
        self.issued = 0
        self.completed = 0
        self.next_stream = 0
        self.worker_issued: dict[str, int] = {}  # master: latest issued count per worker
        self.worker_cancelled: dict[str, int] = {}  # master: cancelled_at_stop count per worker
        self.cancelled = 0  # requests recorded as cancelled_at_stop (every worker's, on the master)
        # Requests in flight in this process, by the greenlet sending each: a stop that kills the
        # greenlet still writes its record (_LLMUser._request) from the accumulator kept here.
        self.in_flight: dict = {}
        self.stopping = False  # the runner is stopping: the open-loop dispatcher sends nothing more
        self.stop_event = stop_event  # set with `stopping`: wakes a sleeping open-loop dispatcher
        self.stop_s: float | None = None  # when the load stopped (before the drain): the end of scoring
        self.drain_end_s: float | None = None  # when the stop was over (first meta written after it)
        self.workers_done: set[str] = set()
        self.load_start_s: float | None = None
        self.load_start_unix_s: float | None = None
        self.dispatch = None  # open loop: OpenLoopDispatcher stats
        self.replay = None  # mode replay: the ReplayFeed (its meta says what of the trace was sent)
        self.load_error: str | None = None  # what ended the load before its end (a bad trace row)
        self.pacer: StartPacer | None = None  # closed loop: each new user's start slot

    def apply_config(self, cfg: dict) -> None:
        self.cfg = cfg
        self.api: str = cfg.get("api", "openai-chat")
        self.model: str | None = cfg.get("model")
        self.workload = WorkloadConfig.model_validate(cfg.get("workload", {}))
        self.load = LoadConfig.model_validate(cfg.get("load", {}))
        key_env = cfg.get("api_key_env")
        self.api_key = os.environ.get(key_env) if key_env else None
        auth = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self.headers = {"Content-Type": "application/json", "Accept": "text/event-stream",
                        "Accept-Encoding": "identity", **auth}  # identity: raw SSE bytes, no gzip
        # Loaded once per process and shared by every user (their draws stay independent and seeded).
        self.dataset = load_dataset(self.workload.dataset) if self.workload.dataset else None

    def config_for_workers(self) -> dict:
        """What a worker on another machine needs (no master-local paths), and its share of the users."""
        return {**{k: self.cfg.get(k) for k in ("api", "model", "workload", "load", "api_key_env")},
                "share": self.environment.runner.worker_count}

    def on_config(self, msg, **_kw) -> None:
        self.apply_config(msg.data)

    def take_slot(self) -> bool:
        """Count one more request, or say the max_requests limit has been reached (per process)."""
        cap = self.load.max_requests
        if cap is not None and self.issued >= cap:
            return False
        self.issued += 1
        return True

    def begin_stop(self) -> None:
        """The runner is stopping (end of the run, max_requests, a signal): no new requests."""
        self.load_stopped()
        self.stopping = True
        self.stop_event.set()

    def load_stopped(self) -> None:
        """The load ends now; in-flight requests get drain_timeout_s more (the first call counts)."""
        if self.stop_s is None:
            self.stop_s = self._clock()

    def cancelled_record(self, acc):
        """The record of a request a stop cut off: what it received so far (TTFT, tokens), ok False."""
        drain_s = self.load.drain_timeout_s
        rec = acc.finish(self._clock(), acc.rec.status, (
            CANCELLED_AT_STOP, f"still in flight when the load stopped and not finished within "
            f"load.drain_timeout_s ({drain_s:g} s); raise drain_timeout_s to let such requests finish"))
        if rec.error_type == CANCELLED_AT_STOP:  # an earlier failure on the stream stays its cause
            self.cancelled += 1
        return rec

    def record(self, rec) -> None:
        self.completed += 1
        if self.role == "worker":
            self.outbox.append(rec.to_json())
            return
        self.writer.write(rec)
        self._check_cap()

    def _check_cap(self) -> None:
        cap = self.load.max_requests
        if cap is not None and self.completed >= cap and self.environment.runner is not None:
            self._spawn(self.environment.runner.quit)

    # -- worker side

    def forward(self) -> None:
        lines, self.outbox = self.outbox, []
        self.environment.runner.send_message("slabench_records", {
            "worker": self.environment.runner.client_id, "lines": lines, "issued": self.issued,
            "cancelled": self.cancelled})

    def forward_loop(self) -> None:
        while True:
            self._sleep(FORWARD_EVERY_S)
            if self.outbox:
                self.forward()

    def on_stop_request(self, msg=None, **_kw) -> None:
        """Master asks to stop: finish in-flight requests (stop_timeout), flush, say done."""
        runner = self.environment.runner
        runner.stop()  # graceful: users end their current request first
        self.forward()
        runner.send_message("slabench_done", {"worker": runner.client_id, "completed": self.completed})

    # -- master side

    def on_records(self, msg, **_kw) -> None:
        data = msg.data
        for line in data["lines"]:
            self.writer.write_line(line)
        self.completed += len(data["lines"])
        self.worker_issued[data["worker"]] = data["issued"]
        self.issued = sum(self.worker_issued.values())
        self.worker_cancelled[data["worker"]] = data.get("cancelled", 0)
        self.cancelled = sum(self.worker_cancelled.values())
        self._check_cap()

    def on_done(self, msg, **_kw) -> None:
        self.workers_done.add(msg.data["worker"])

    def drain_workers(self) -> None:
        """Before the master stops: ask every worker to finish and flush, and wait for all of them."""
        runner = self.environment.runner
        expected = {c.id for c in runner.clients.all}
        if not expected or expected <= self.workers_done:
            return
        runner.send_message("slabench_stop")
        # Each worker drains for drain_timeout_s (Locust's stop timeout), records what it had to
        # cancel, then flushes: its cancelled_at_stop records reach this folder too.
        deadline = self._clock() + self.load.drain_timeout_s + WORKER_FLUSH_S
        while not expected <= self.workers_done and self._clock() < deadline:
            self._sleep(0.05)

    # -- files the harness reads (local and master only)

    def write_status(self) -> None:
        """Counters the harness's progress line reads, every second."""
        if self.status_path and self.role != "worker":
            write_status(self.status_path, self.issued, self.completed)

    def status_loop(self) -> None:
        while True:
            self.write_status()
            self._sleep(1.0)

    def write_meta(self) -> None:
        if not self.meta_path or self.role == "worker":
            return
        now = self._clock()
        if self.stop_s is not None and self.drain_end_s is None:
            self.drain_end_s = now  # a later write (Locust's quitting, after its report) keeps it
        # load_end_s is when the load stopped, not when the drain ended: the scored window (and every
        # rate) covers the time load was offered; requests sent in it and finished in the drain count.
        meta = {"load_start_s": self.load_start_s, "load_start_unix_s": self.load_start_unix_s,
                "load_end_s": self.stop_s if self.stop_s is not None else now,
                "drain_end_s": self.drain_end_s if self.drain_end_s is not None else now,
                "drain_timeout_s": self.load.drain_timeout_s, "issued": self.issued, "completed": self.completed,
                "cancelled_at_stop": self.cancelled, "role": self.role, "workers": sorted(self.worker_issued)}
        if self.dispatch is not None:
            meta["open_loop"] = dataclasses.asdict(self.dispatch)
        if self.load_error:
            meta["load_error"] = self.load_error
        if self.replay is not None and self.workload.trace is not None:
            meta["replay"] = self.replay.meta(self.workload.trace)
        Path(self.meta_path).write_text(json.dumps(meta), encoding="utf-8")
