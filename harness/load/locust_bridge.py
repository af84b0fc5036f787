"""The Locust bridge: the only harness module that imports locust/gevent.

Locustfiles in `loadtests/` import a user class from here. Each user streams one request per
task, times the bytes as they arrive, turns the stream into a RequestRecord (harness.load.streams)
and appends it to `requests.jsonl`; Locust's own stats get the same request with E2E as its time.
"""

from __future__ import annotations

import atexit
import dataclasses
import gc
import json
import os
import random
import socket
import time
from pathlib import Path

import gevent
import gevent.pool
from locust import FastHttpUser, LoadTestShape, between, constant, events, task
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from harness.config import LoadConfig, WorkloadConfig
from harness.load.arrivals import arrival_times, rate_profile
from harness.load.openloop import OpenLoopDispatcher
from harness.load.progress import write_status
from harness.load.rawread import consume
from harness.load.shape import StartPacer, users_at
from harness.load.streams import ACCUMULATORS
from harness.load.workload import ChatSession, PromptSource, load_dataset, request_body
from harness.records import RecordWriter

FORWARD_EVERY_S = 0.5  # workers send their records to the master this often (and at stop)


class BridgeState:
    """Per-process run state shared by all users: config, where records go, request counters.

    local: records go straight to requests.jsonl. worker (--processes, --worker): records are
    forwarded to the master in batches as Locust messages. master: writes what workers forward,
    and at the end waits until every worker has flushed, so no record is lost or duplicated.
    """

    def __init__(self, cfg: dict, environment, role: str):
        self.role = role
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
        self.workers_done: set[str] = set()
        self.load_start_s: float | None = None
        self.load_start_unix_s: float | None = None
        self.dispatch = None  # open loop: OpenLoopDispatcher stats
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
            gevent.spawn(self.environment.runner.quit)

    # -- worker side

    def forward(self) -> None:
        lines, self.outbox = self.outbox, []
        self.environment.runner.send_message("slabench_records", {
            "worker": self.environment.runner.client_id, "lines": lines, "issued": self.issued})

    def forward_loop(self) -> None:
        while True:
            gevent.sleep(FORWARD_EVERY_S)
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
        deadline = time.perf_counter() + min(self.load.timeout_s, 60.0) + 10
        while not expected <= self.workers_done and time.perf_counter() < deadline:
            gevent.sleep(0.05)

    # -- files the harness reads (local and master only)

    def write_status(self) -> None:
        """Counters the harness's progress line reads, every second."""
        if self.status_path and self.role != "worker":
            write_status(self.status_path, self.issued, self.completed)

    def status_loop(self) -> None:
        while True:
            self.write_status()
            gevent.sleep(1.0)

    def write_meta(self) -> None:
        if not self.meta_path or self.role == "worker":
            return
        meta = {"load_start_s": self.load_start_s, "load_start_unix_s": self.load_start_unix_s,
                "load_end_s": time.perf_counter(), "issued": self.issued, "completed": self.completed,
                "role": self.role, "workers": sorted(self.worker_issued)}
        if self.dispatch is not None:
            meta["open_loop"] = dataclasses.asdict(self.dispatch)
        Path(self.meta_path).write_text(json.dumps(meta), encoding="utf-8")


@events.init_command_line_parser.add_listener
def _add_arguments(parser):
    parser.add_argument("--slabench-config", type=str, env_var="SLABENCH_CONFIG", default="",
                        help="JSON written by `slabench run` (api, model, workload, load, records_path)")


@events.init.add_listener
def _on_init(environment, **_kw):
    path = getattr(environment.parsed_options, "slabench_config", "") if environment.parsed_options else ""
    if path:
        cfg = json.loads(Path(path).read_text(encoding="utf-8"))
    else:  # run by hand: `locust -f loadtests/openai_chat.py --host URL -u 8 -t 30s`
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        cfg = {"records_path": f"reports/locust-{stamp}/requests.jsonl", "by_hand": True}
    runner = environment.runner
    role = "master" if isinstance(runner, MasterRunner) else "worker" if isinstance(runner, WorkerRunner) else "local"
    st = environment.slabench = BridgeState(cfg, environment, role)
    if role == "master":
        runner.register_message("slabench_records", st.on_records)
        runner.register_message("slabench_done", st.on_done)
    elif role == "worker":
        runner.register_message("slabench_stop", st.on_stop_request, concurrent=True)
        runner.register_message("slabench_config", st.on_config)
    load = st.load
    for cls in (OpenAIChatUser, OpenAICompletionsUser, TGIStreamUser):
        cls.network_timeout = load.timeout_s
        cls.connection_timeout = min(load.timeout_s, 10.0)
        cls.wait_time = (between(load.think_time_s, load.think_time_max_s) if load.think_time_max_s is not None
                         else constant(load.think_time_s))
        if load.mode == "open":  # one dispatcher user owns every connection
            cls.concurrency = load.max_in_flight or 1024


@events.test_start.add_listener
def _on_start(environment, **_kw):
    st = getattr(environment, "slabench", None)
    if st is not None and st.load_start_s is None:
        # Everything alive now (imports, Locust, config) lives for the whole run: freeze it so the
        # collector never walks it again. A full collection over it stalled every stream ~50 ms.
        gc.collect()
        gc.freeze()
        st.load_start_s = time.perf_counter()
        st.load_start_unix_s = time.time()
        if st.model is None and environment.host and st.role != "worker":
            from harness.backends.probe import served_model  # by hand: ask the server what it serves

            st.model = served_model(environment.host.rstrip("/"))
        loop = st.forward_loop if st.role == "worker" else st.status_loop
        st._loops.append(gevent.spawn(loop))
        if st.role == "master":  # test_start fires before the spawn messages: workers get it first
            environment.runner.send_message("slabench_config", st.config_for_workers())
        elif st.load.mode == "closed" and not st.cfg.get("by_hand"):
            st.pacer = StartPacer(st.load.closed_stages(), st.load_start_s, share=st.cfg.get("share", 1))


@events.test_stopping.add_listener
def _on_stopping(environment, **_kw):
    st = getattr(environment, "slabench", None)
    if st is not None and st.role == "master":
        st.drain_workers()


@events.test_stop.add_listener
def _on_stop(environment, **_kw):
    st = getattr(environment, "slabench", None)
    if st is None:
        return
    for g in st._loops:
        g.kill(block=False)
    if st.role == "worker":
        if st.outbox:
            st.forward()
        return
    st.writer.flush()
    st.write_status()
    st.write_meta()


@events.quitting.add_listener
def _on_quit(environment, **_kw):
    # Locust fires `quitting` before it stops the runner (e.g. on SIGTERM): records may still
    # arrive after this, so only flush here; the file is closed at exit (atexit in BridgeState).
    st = getattr(environment, "slabench", None)
    if st is None or st.writer is None:
        return
    if st.role == "master":
        st.drain_workers()
        st.write_meta()
    st.writer.flush()


class _LLMUser(FastHttpUser):
    """Closed loop: each user sends its next request when the last ended (plus think time).
    Open loop (`mode: open`, run with one user): this user is the dispatcher that sends every
    request of the schedule at its due time from a pool of greenlets."""

    abstract = True
    api = ""

    def on_start(self) -> None:
        st: BridgeState = self.environment.slabench
        self.prompts = PromptSource(st.workload, stream=st.next_stream, dataset=st.dataset)
        self.session = ChatSession(st.workload.turns)  # multi-turn: this user's messages so far
        self.user_name = f"{socket.gethostname()}-{os.getpid()}-{st.next_stream}"
        st.next_stream += 1
        self.seq = 0
        if st.pacer is not None:  # spread the users Locust spawned together (see StartPacer)
            gevent.sleep(max(st.pacer.slot_s(time.perf_counter()) - time.perf_counter(), 0.0))

    @task
    def stream_one(self) -> None:
        st: BridgeState = self.environment.slabench
        if st.load.mode == "open":
            self._dispatch_schedule(st)
            raise StopUser()
        if not st.take_slot():
            raise StopUser()
        spec = self.prompts.next()
        if st.workload.turns == 1:
            st.record(self._one_request(st, spec, None)[0])
            return
        rec, reply = self._one_request(st, spec, None, history=self.session.history)
        self.session.record_turn(rec, spec.prompt, reply)
        st.record(rec)

    def _dispatch_schedule(self, st: BridgeState) -> None:
        load = st.load
        due = arrival_times(rate_profile(load), load.arrival, random.Random(f"{st.workload.seed}:arrivals"),
                            load.burstiness, max_count=load.max_requests)
        pool = gevent.pool.Pool(load.max_in_flight)

        def launch(k: int, scheduled_s: float) -> None:
            st.issued += 1
            # The prompt is drawn in the request's own greenlet (in schedule order: gevent runs
            # spawned greenlets FIFO), so a long soak never holds every prompt in memory.
            pool.spawn(lambda: st.record(self._one_request(st, self.prompts.next(), scheduled_s)[0]))

        def sleep_until(t: float) -> None:
            dt = t - time.perf_counter()
            if dt > 0:
                gevent.sleep(dt)

        dispatcher = OpenLoopDispatcher(due, time.perf_counter(), sleep_until=sleep_until, launch=launch,
                                        in_flight=lambda: len(pool), wait_slot=pool.wait_available,
                                        max_in_flight=load.max_in_flight)
        stats = dispatcher.run()
        pool.join(timeout=load.timeout_s)
        st.dispatch = stats
        gevent.spawn(self.environment.runner.quit)

    def _one_request(self, st: BridgeState, spec, scheduled_s: float | None, history: list[dict] | None = None):
        """One streamed request → (its record, the reply text when `history` is kept)."""
        path, body, forced = request_body(self.api, st.model, spec, history, st.workload.usage_every_chunk)
        payload = json.dumps(body).encode()
        self.seq += 1
        sent_unix_s = time.time()
        sent_s = time.perf_counter()
        rid = f"{self.user_name}-{self.seq}"
        acc = ACCUMULATORS[self.api](rid, sent_s, spec.output_tokens, forced,
                                     scheduled_s=scheduled_s, sent_unix_s=sent_unix_s, user=self.user_name)
        acc.keep_text = history is not None
        try:
            with gevent.Timeout(st.load.timeout_s, TimeoutError(f"no complete response in {st.load.timeout_s:g} s")):
                # X-Request-Id: vLLM takes it as its request id, so server logs match the record.
                with self.client.request("POST", path, data=payload, headers={**st.headers, "X-Request-Id": rid},
                                         stream=True, catch_response=True, name=path) as resp:
                    rec = consume(resp, acc)
                    resp.request_meta["response_time"] = (rec.end_s - rec.sent_s) * 1000
                    if rec.ok:
                        resp.success()
                    else:
                        resp.failure(f"{rec.error_type}: {rec.error}")
        except TimeoutError as exc:
            rec = acc.finish(time.perf_counter(), acc.rec.status, ("timeout", str(exc)))
        except (ConnectionError, OSError) as exc:
            kind = "connect" if acc.rec.status == 0 else "stream_error"
            rec = acc.finish(time.perf_counter(), acc.rec.status, (kind, f"{type(exc).__name__}: {exc}"))
        except Exception as exc:  # anything else is still one failed request, never a lost one
            rec = acc.finish(time.perf_counter(), acc.rec.status, ("stream_error", f"{type(exc).__name__}: {exc}"))
        return rec, "".join(acc.text)


class SlabenchShape(LoadTestShape):
    """Users over time from the scenario: closed-loop stages (ramp, step, spike, soak), one
    dispatcher for open loop. By hand, it follows Locust's own -u/-r/-t instead."""

    def tick(self):
        env = self.runner.environment
        st: BridgeState | None = getattr(env, "slabench", None)
        t = self.get_run_time()
        if st is None:
            return None
        if st.cfg.get("by_hand"):
            o = env.parsed_options
            run_time = getattr(o, "run_time", None)
            if run_time and t >= run_time:
                return None
            return (getattr(o, "num_users", None) or 1, getattr(o, "spawn_rate", None) or 1.0)
        if st.load.mode == "open":  # the dispatcher ends the run itself; this is only a backstop
            return (1, 1.0) if t < st.load.duration_s + min(st.load.timeout_s, 60.0) + 5 else None
        return users_at(st.load.closed_stages(), t)


class OpenAIChatUser(_LLMUser):
    """Streams POST /v1/chat/completions (vLLM, TGI's Messages API, any OpenAI-compatible server)."""

    api = "openai-chat"


class OpenAICompletionsUser(_LLMUser):
    """Streams POST /v1/completions."""

    api = "openai-completions"


class TGIStreamUser(_LLMUser):
    """Streams TGI's native POST /generate_stream."""

    api = "tgi-generate-stream"
