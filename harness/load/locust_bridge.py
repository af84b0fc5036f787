"""The Locust bridge: the only harness module that imports locust/gevent.

Locustfiles in `loadtests/` import a user class from here. Each user streams one request per
task, times the bytes as they arrive, turns the stream into a RequestRecord (harness.load.streams)
and appends it to `requests.jsonl`; Locust's own stats get the same request with E2E as its time.
"""

from __future__ import annotations

import gc
import json
import os
import random
import signal
import socket
import time
from pathlib import Path

import gevent
import gevent.event
import gevent.pool
from locust import FastHttpUser, LoadTestShape, between, constant, events, task
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from harness.config import OPEN_LOOP_MODES as OPEN_LOOP
from harness.config import ConfigError
from harness.load.arrivals import ArrivalSchedule, rate_profile
from harness.load.replay import replay_feed
from harness.load.traceprompts import TracePrompts
from harness.load.bridge_state import BridgeState
from harness.load.openloop import OpenLoopDispatcher
from harness.load.rawread import ANY_STATUS, consume, transport_error
from harness.load.shape import StartPacer, users_at
from harness.load.streams import ACCUMULATORS
from harness.load.workload import ChatSession, PromptSource, request_body

STOP_POLL_S = 0.05  # open loop: a dispatcher held by max_in_flight looks for a stop this often


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
    st = environment.slabench = BridgeState(cfg, environment, role, spawn=gevent.spawn, sleep=gevent.sleep,
                                            stop_event=gevent.event.Event())
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
        if load.mode in OPEN_LOOP:  # one dispatcher user owns every connection
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
        if st.role != "worker":
            # Headless with a load shape, Locust installs its SIGTERM handler only once the run is over:
            # until then SIGTERM (how `slabench run` stops it on Ctrl-C or a crash) killed it outright,
            # losing in-flight and unflushed records. End the run as the shape ends it instead.
            gevent.signal_handler(signal.SIGTERM, _end_run_early, environment)
        elif getattr(environment.parsed_options, "processes", None):
            # A --processes worker gets the SIGTERM sent to its master's process group too. Its master
            # stops it (slabench_stop: drain, cancelled records, flush); quitting on its own first
            # lost its records. The harness still SIGKILLs the group if the master does not end.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if st.role == "master":  # test_start fires before the spawn messages: workers get it first
            environment.runner.send_message("slabench_config", st.config_for_workers())
        elif st.load.mode == "closed" and not st.cfg.get("by_hand"):
            st.pacer = StartPacer(st.load.closed_stages(), st.load_start_s, share=st.cfg.get("share", 1))


@events.test_stopping.add_listener
def _on_stopping(environment, **_kw):
    st = getattr(environment, "slabench", None)
    if st is None:
        return
    st.begin_stop()
    if st.role == "master":
        st.drain_workers()
    else:  # in-flight requests get exactly drain_timeout_s (Locust's own stop timeout is whole seconds)
        st._loops.append(gevent.spawn(_cancel_in_flight, st))


def _end_run_early(environment) -> None:
    """SIGTERM during the run: end the shape, so Locust stops the users (drain, then cancelled_at_stop
    records), fires test_stop (locust_meta.json) and writes its report, as at a normal end."""
    shape = getattr(environment.runner, "shape_greenlet", None)
    if shape is not None and not shape.dead:
        shape.kill(block=False)  # a second SIGTERM, or one while stopping, changes nothing


def _cancel_in_flight(st: BridgeState) -> None:
    """When the drain is over, kill every request still in flight; each records itself (_LLMUser._request)."""
    # On perf_counter, re-checked: gevent's timers run on the loop's cached clock, which can lag
    # behind by tens of ms, and the drain must never be shorter than drain_timeout_s.
    while (left_s := st.stop_s + st.load.drain_timeout_s - time.perf_counter()) > 0:
        gevent.sleep(left_s)
    for g in list(st.in_flight):
        g.kill(block=False)


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
        # Every status is a response for consume() to read (bounded): geventhttpclient would otherwise
        # read an error's whole body and decode it as UTF-8 itself (a 100 MB 500 body took 2 GB).
        self.client.client.valid_response_codes = ANY_STATUS
        if st.pacer is not None:  # spread the users Locust spawned together (see StartPacer)
            gevent.sleep(max(st.pacer.slot_s(time.perf_counter()) - time.perf_counter(), 0.0))

    @task
    def stream_one(self) -> None:
        st: BridgeState = self.environment.slabench
        if st.load.mode in OPEN_LOOP:
            self._dispatch_schedule(st)
            raise StopUser()
        if not st.take_slot():
            raise StopUser()
        spec = self.prompts.next()
        self._request(st, spec, None, history=self.session.history if st.workload.turns > 1 else None)

    def _request(self, st: BridgeState, spec, scheduled_s: float | None, history: list[dict] | None = None,
                 cap_wait_s: float | None = None) -> None:
        """One request, recorded. A stop that kills this greenlet mid-request (Locust's stop timeout,
        the open-loop drain) raises GreenletExit here: the request is recorded as cancelled_at_stop,
        with whatever it had received, before the greenlet ends. Multi-turn sessions (`history`)
        number the turn and grow their history."""
        me = gevent.getcurrent()
        try:
            rec, reply = self._one_request(st, spec, scheduled_s, history=history)
        except gevent.GreenletExit:
            acc = st.in_flight.pop(me, None)
            if acc is not None:  # None: killed before the request was built, so nothing was sent
                rec = st.cancelled_record(acc)
                rec.cap_wait_s = cap_wait_s
                if history is not None:
                    self.session.record_turn(rec, spec.prompt, "")
                st.record(rec)
            raise
        finally:
            st.in_flight.pop(me, None)
        rec.cap_wait_s = cap_wait_s
        if history is not None:
            self.session.record_turn(rec, spec.prompt, reply)
        st.record(rec)

    def _dispatch_schedule(self, st: BridgeState) -> None:
        load = st.load
        pool = gevent.pool.Pool(load.max_in_flight)
        if load.mode == "replay":
            # A trace streamed from its file: its recorded offsets are the due times, each launch takes
            # the entry of the due time it used; the prompt is built in the request's own greenlet.
            feed = replay_feed((load, st.workload))
            schedule, st.replay = feed, feed
            prompts = TracePrompts(st.workload)

            def next_spec():
                entry = feed.take()
                return lambda: prompts.spec(entry)
        else:
            # Lazy: due times are drawn as dispatch reaches them, so memory does not grow with the rate.
            schedule = ArrivalSchedule(rate_profile(load), load.arrival, random.Random(f"{st.workload.seed}:arrivals"),
                                       load.burstiness, max_count=load.max_requests)

            def next_spec():
                return self.prompts.next

        def launch(k: int, scheduled_s: float, cap_wait_s: float | None) -> None:
            st.issued += 1
            # The prompt is drawn in the request's own greenlet (in schedule order: gevent runs
            # spawned greenlets FIFO), so a long soak never holds every prompt in memory.
            make = next_spec()
            pool.spawn(lambda: self._request(st, make(), scheduled_s, cap_wait_s=cap_wait_s))

        def sleep_until(t: float) -> None:
            dt = t - time.perf_counter()
            if dt <= 0:
                # Behind schedule: still yield, so the requests just spawned start now. Without it a
                # dispatcher that fell behind spawned its whole schedule before any request ran.
                gevent.sleep(0)
            while dt > 0 and not st.stopping:  # re-checked: gevent timers run on a cached clock, may wake early
                st.stop_event.wait(dt)  # a stop wakes it at once
                dt = t - time.perf_counter()

        def wait_slot(deadline_s: float) -> bool:
            while pool.full() and not st.stopping:
                left_s = deadline_s - time.perf_counter()
                if left_s <= 0:
                    return False
                pool.wait_available(timeout=min(left_s, STOP_POLL_S))  # short slices: a stop is seen at once
            return not pool.full()

        start_s = time.perf_counter()
        dispatcher = OpenLoopDispatcher(schedule, start_s, sleep_until=sleep_until, launch=launch,
                                        in_flight=lambda: len(pool), wait_slot=wait_slot,
                                        max_in_flight=load.max_in_flight, should_stop=lambda: st.stopping,
                                        end_s=start_s + load.duration_s, clock=time.perf_counter)
        try:
            try:
                dispatcher.run()
            except ConfigError as exc:  # a trace row past the checked head: the requests so far are kept
                st.load_error = f"trace error: {exc}"
            # The last requests spawned start (stamping sent_s, so they fall inside the load window, and
            # are recorded even with no drain) before the load end is stamped.
            gevent.sleep(0)
            st.load_stopped()
            pool.join(timeout=load.drain_timeout_s)
        finally:
            # Still in flight after the drain (or when Locust kills this user): each request's greenlet
            # is killed and writes its cancelled_at_stop record before it ends (see _request).
            pool.kill(block=True)
            st.dispatch = dispatcher.stats
        gevent.spawn(self.environment.runner.quit)

    def _one_request(self, st: BridgeState, spec, scheduled_s: float | None, history: list[dict] | None = None):
        """One streamed request → (its record, the reply text when `history` is kept)."""
        path, body, forced = request_body(self.api, st.model, spec, history, st.workload.usage_every_chunk)
        payload = json.dumps(body).encode()
        self.seq += 1
        sent_unix_s = time.time()
        sent_s = time.perf_counter()
        rid = f"{self.user_name}-{self.seq}"
        # The prompt tokens asked for: a synthetic prompt's, without a chat history nobody asked a length of.
        asked = spec.prompt_tokens if spec.synthetic and not history else None
        acc = ACCUMULATORS[self.api](rid, sent_s, spec.output_tokens, forced, scheduled_s=scheduled_s,
                                     sent_unix_s=sent_unix_s, user=self.user_name, requested_prompt_tokens=asked)
        acc.keep_text = history is not None
        st.in_flight[gevent.getcurrent()] = acc  # a stop mid-request records it as cancelled_at_stop (_request)
        try:
            with gevent.Timeout(st.load.timeout_s, TimeoutError(f"no complete response in {st.load.timeout_s:g} s")):
                # X-Request-Id: vLLM takes it as its request id, so server logs match the record.
                headers = {**st.headers, "X-Request-Id": rid}
                sent = self.client.request("POST", path, data=payload, headers=headers, stream=True,
                                           catch_response=True, name=path)
                # The kept-alive connection was closed before any answer (llama-server closes after every
                # stream): send again on a new one, counted on the record; the failed try never enters the
                # with-block, so Locust's stats do not count it either.
                while acc.may_resend(sent.status_code or 0, getattr(sent, "error", None)):
                    acc.resend(time.perf_counter(), time.time())
                    sent = self.client.request("POST", path, data=payload, headers=headers, stream=True,
                                               catch_response=True, name=path)
                with sent as resp:
                    rec = consume(resp, acc)
                    resp.request_meta["response_time"] = (rec.end_s - rec.sent_s) * 1000
                    if rec.ok:
                        resp.success()
                    else:
                        resp.failure(f"{rec.error_type}: {rec.error}")
        except Exception as exc:  # a timeout, a reset, broken framing: one failed request, never a lost one
            rec = acc.finish(time.perf_counter(), acc.rec.status, transport_error(exc, acc.rec.status))
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
        if st.load.mode in OPEN_LOOP:  # the dispatcher ends the run itself; this is only a backstop
            return (1, 1.0) if t < st.load.duration_s + st.load.drain_timeout_s + 5 else None
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
