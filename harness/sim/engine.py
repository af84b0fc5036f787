"""Engine seam: turns submitted requests into token release times on the server's event loop.

`GpuEngine` runs the continuous-batching `Scheduler` as one asyncio task: it advances simulated
time step by step and sleeps until each step's absolute wall target (wall = t0 + sim / speed).
`FixedEngine` (calibration mode) releases token k at arrival + ttft + k * itl from one ticker.
Both hand out `Ticket`s with one interface, so the API layers do not know which is used.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections import deque
from typing import AsyncIterator, Callable

from .perfmodel import Deployment
from .scheduler import Scheduler, SchedulerConfig, SimRequest
from .telemetry import BusyTracker

Clock = Callable[[], float]
Writer = Callable[[int, float], None]
# asyncio's epoll wait rounds every timeout up to a whole millisecond, so a timer alone releases a
# token up to 1 ms late. Engines wake SPIN_S before a target and poll the loop (which still serves
# sockets) for the rest: sub-millisecond releases for one busy core while tokens are due.
SPIN_S = 0.001


async def sleep_until(target_s: float, clock: Clock, spin_s: float = SPIN_S) -> None:
    """Sleep until an absolute time on `clock` (never accumulates relative sleeps)."""
    delay = target_s - clock()
    if delay > spin_s:
        await asyncio.sleep(delay - spin_s)
    while clock() < target_s:
        await asyncio.sleep(0)


class Ticket:
    """One request inside an engine. The engine releases token k by calling the attached writer
    (`attach`: no task wakes per token) or, without one, through the `tokens()` iterator."""

    def __init__(self, arrival_s: float, output_tokens: int):
        self.arrival_s = arrival_s  # perf_counter time the request arrived
        self.output_tokens = output_tokens
        self.instant = False  # True: the whole response may be written at once (fixed 0/0)
        self.first_token_s: float | None = None
        self.done = False
        self._writer: Writer | None = None
        self._ready: deque[int] = deque()  # released, not yet taken by tokens()
        self._waiter: asyncio.Future[None] | None = None
        self._started = False

    def attach(self, writer: Writer) -> None:
        """Deliver every token as writer(k, now) from the engine's own release. Call it right after
        `submit`, before any await, or use `tokens()`; a fixed 0/0 ticket written at once uses neither."""
        self._writer = writer
        self._begin()

    def _begin(self) -> None:
        if not self._started:
            self._started = True
            self._start()

    def _start(self) -> None:
        """The handler chose how to take the tokens (engines that schedule lazily start here)."""

    def _release(self, k: int, now: float) -> None:
        if self.first_token_s is None:
            self.first_token_s = now
        if self._writer is not None:
            self._writer(k, now)
        else:
            self._ready.append(k)
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(None)

    async def tokens(self) -> AsyncIterator[int]:
        self._begin()
        try:
            for _ in range(self.output_tokens):
                while not self._ready:
                    self._waiter = asyncio.get_running_loop().create_future()
                    await self._waiter
                yield self._ready.popleft()
        finally:
            self.cancel()

    def cancel(self) -> None:
        self.done = True

    @property
    def scheduled_s(self) -> float | None:
        """perf_counter time the engine first scheduled the request (None: not yet). Calibration
        mode has no queue: the request is scheduled on arrival."""
        return self.arrival_s


class _GpuTicket(Ticket):
    def __init__(self, engine: "GpuEngine", req: SimRequest, arrival_s: float):
        super().__init__(arrival_s, req.output_tokens)
        self._engine = engine
        self.req = req

    def cancel(self) -> None:
        if not self.done:
            self.done = True
            self._engine._cancel(self)

    @property
    def scheduled_s(self) -> float | None:
        adm = self.req.admitted_s  # simulated time of the first admission (kept across preemptions)
        return None if adm is None else self._engine.wall(adm)


class GpuEngine:
    """Scheduler driven in (scaled) real time. Start with `start()`, stop with `stop()`."""

    def __init__(self, dep: Deployment, cfg: SchedulerConfig, speed: float = 1.0, clock: Clock = time.perf_counter):
        self.dep = dep
        self.sched = Scheduler(dep, cfg)
        self.speed = speed
        self.clock = clock
        self.t0 = clock()
        self.busy = BusyTracker(clock)
        self._tickets: dict[int, _GpuTicket] = {}
        self._next_id = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.on_step: Callable[[object], None] | None = None  # metrics hook (StepResult)

    def sim_now(self) -> float:
        return (self.clock() - self.t0) * self.speed

    def wall(self, sim_s: float) -> float:
        return self.t0 + sim_s / self.speed

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sim-engine")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    @property
    def prefix_caching(self) -> bool:
        """Whether requests should carry block hashes (the API layers hash prompts only then)."""
        return self.sched.cache is not None

    def submit(self, prompt_tokens: int, output_tokens: int, arrival_s: float | None = None,
               block_hashes: tuple[int, ...] | None = None) -> Ticket:
        arrival = self.clock() if arrival_s is None else arrival_s
        req = SimRequest(self._next_id, (arrival - self.t0) * self.speed, prompt_tokens, max(output_tokens, 1),
                         block_hashes=block_hashes)
        self._next_id += 1
        t = _GpuTicket(self, req, arrival)
        self._tickets[req.rid] = t
        self.sched.add(req)
        self._wake.set()
        return t

    def _cancel(self, t: _GpuTicket) -> None:
        self._tickets.pop(t.req.rid, None)
        if t.req.state != "done":
            self.sched.cancel(t.req)

    @property
    def num_running(self) -> int:
        return len(self.sched.running)

    @property
    def num_waiting(self) -> int:
        return len(self.sched.waiting)

    @property
    def kv_usage(self) -> float:
        return self.sched.kv_usage

    @property
    def kv_bytes_used_per_gpu(self) -> float:
        return self.sched.used_blocks * 16 * self.dep.kv_bytes_per_token / self.dep.tp

    async def _run(self) -> None:
        while True:
            ready = self.sched.next_ready_s()
            if ready is None:
                self._wake.clear()
                await self._wake.wait()
                # Idle gap: the simulated clock jumps to the present.
                self.sched.now_s = max(self.sched.now_s, self.sim_now())
                continue
            if self.wall(ready) > self.clock():
                await sleep_until(self.wall(ready), self.clock)
                continue
            step = self.sched.step()
            if step is None:
                await asyncio.sleep(0)
                continue
            start_wall, end_wall = self.wall(step.start_s), self.wall(step.end_s)
            await sleep_until(end_wall, self.clock)
            self.busy.add(start_wall, end_wall, step.cost.memory_bound_share)
            clock, tickets = self.clock, self._tickets
            for req in step.emitted:
                t = tickets.get(req.rid)
                if t is not None:
                    t._release(req.generated - 1, clock())
            for req in step.finished:
                self._tickets.pop(req.rid, None)
            if self.on_step:
                self.on_step(step)


class _FixedTicket(Ticket):
    def __init__(self, engine: "FixedEngine", arrival_s: float, output_tokens: int):
        super().__init__(arrival_s, output_tokens)
        self._engine = engine
        self.instant = engine.ttft_s == 0 and engine.itl_s == 0
        engine.busy.begin()

    def token_time_s(self, k: int) -> float:
        return self.arrival_s + self._engine.ttft_s + k * self._engine.itl_s

    def _start(self) -> None:
        if not self.done:
            self._engine._push(self.token_time_s(0), self, 0)

    def cancel(self) -> None:
        if not self.done:
            self.done = True
            self._engine.busy.end()


class FixedEngine:
    """Calibration mode: fixed TTFT and inter-token latency in wall seconds (--speed ignored).

    Token k of a request is due at arrival + ttft + k * itl. One ticker (a loop timer, no task per
    stream) keeps every pending token in a heap and, when woken, releases all tokens that are due,
    each with the clock read at its release; `release_due(now)` is that step, testable alone."""

    def __init__(self, ttft_s: float, itl_s: float, clock: Clock = time.perf_counter, spin_s: float = SPIN_S):
        self.ttft_s = ttft_s
        self.itl_s = itl_s
        self.clock = clock
        self.spin_s = spin_s
        self.busy = BusyTracker(clock)
        self.on_step = None
        # How late each token was released versus its absolute target (for /sim/stats).
        self.lateness_s: deque[float] = deque(maxlen=100_000)
        self._heap: list[tuple[float, int, _FixedTicket, int]] = []  # (due, tie-break, ticket, k)
        self._seq = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.Handle | None = None
        self._armed_s = math.inf

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._heap:
            self._arm(self._heap[0][0])

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._loop, self._timer, self._armed_s = None, None, math.inf

    prefix_caching = False  # fixed latencies: no KV cache is modelled

    def submit(self, prompt_tokens: int, output_tokens: int, arrival_s: float | None = None,
               block_hashes: tuple[int, ...] | None = None) -> Ticket:
        # Scheduled when the handler attaches a writer or iterates (a 0/0 response written at once
        # by its handler never enters the heap).
        return _FixedTicket(self, self.clock() if arrival_s is None else arrival_s, max(output_tokens, 1))

    def _push(self, due_s: float, t: _FixedTicket, k: int) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due_s, self._seq, t, k))
        if due_s < self._armed_s:
            self._arm(due_s)

    def release_due(self, now: float | None = None) -> float | None:
        """Release every token due by now (default: the clock); returns the next due time."""
        heap, clock, late = self._heap, self.clock, self.lateness_s
        limit = clock() if now is None else now
        while heap and heap[0][0] <= limit:
            due, _, t, k = heapq.heappop(heap)
            if t.done:
                continue
            at = clock() if now is None else now
            late.append(at - due)
            t._release(k, at)
            if k + 1 < t.output_tokens and not t.done:
                self._seq += 1
                heapq.heappush(heap, (t.token_time_s(k + 1), self._seq, t, k + 1))
        return heap[0][0] if heap else None

    def _arm(self, due_s: float) -> None:
        if self._loop is None:
            return  # not started (offline sizing, or a test driving release_due itself)
        if self._timer is not None:
            self._timer.cancel()
        self._armed_s = due_s
        delay = due_s - self.clock() - self.spin_s
        self._timer = self._loop.call_later(delay, self._tick) if delay > 0 else self._loop.call_soon(self._tick)

    def _tick(self) -> None:
        self._timer, self._armed_s = None, math.inf
        nxt = self.release_due()
        if nxt is not None:
            self._arm(nxt)

    @property
    def num_running(self) -> int:
        return self.busy.active

    num_waiting = 0
    kv_usage = 0.0
    kv_bytes_used_per_gpu = 0.0
