"""Engine seam: turns submitted requests into token release times on the server's event loop.

`GpuEngine` runs the continuous-batching `Scheduler` as one asyncio task: it advances simulated
time step by step and sleeps until each step's absolute wall target (wall = t0 + sim / speed).
`FixedEngine` (calibration mode) releases token k at arrival + ttft + k * itl, on the same absolute
schedule. Both hand out `Ticket`s with one interface, so the API layers do not know which is used.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import AsyncIterator, Callable

from .perfmodel import Deployment
from .scheduler import Scheduler, SchedulerConfig, SimRequest
from .telemetry import BusyTracker

Clock = Callable[[], float]


async def sleep_until(target_s: float, clock: Clock) -> None:
    """Sleep until an absolute time on `clock` (never accumulates relative sleeps)."""
    delay = target_s - clock()
    if delay > 0:
        await asyncio.sleep(delay)


class Ticket:
    """One request inside an engine. Iterate `tokens()` to learn when each token exists."""

    def __init__(self, arrival_s: float, output_tokens: int):
        self.arrival_s = arrival_s  # perf_counter time the request arrived
        self.output_tokens = output_tokens
        self.instant = False  # True: the whole response may be written at once (fixed 0/0)
        self.first_token_s: float | None = None
        self.done = False

    async def tokens(self) -> AsyncIterator[int]:  # pragma: no cover - overridden
        raise NotImplementedError
        yield 0

    def cancel(self) -> None:
        self.done = True


class _GpuTicket(Ticket):
    def __init__(self, engine: "GpuEngine", req: SimRequest, arrival_s: float):
        super().__init__(arrival_s, req.output_tokens)
        self._engine = engine
        self.req = req
        self._queue: asyncio.Queue[int] = asyncio.Queue()

    def _release(self, k: int, wall_s: float) -> None:
        if self.first_token_s is None:
            self.first_token_s = wall_s
        self._queue.put_nowait(k)

    async def tokens(self) -> AsyncIterator[int]:
        try:
            for _ in range(self.output_tokens):
                yield await self._queue.get()
        finally:
            self.cancel()

    def cancel(self) -> None:
        if not self.done:
            self.done = True
            self._engine._cancel(self)


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

    def submit(self, prompt_tokens: int, output_tokens: int, arrival_s: float | None = None) -> Ticket:
        arrival = self.clock() if arrival_s is None else arrival_s
        req = SimRequest(self._next_id, (arrival - self.t0) * self.speed, prompt_tokens, max(output_tokens, 1))
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
            for req in step.emitted:
                t = self._tickets.get(req.rid)
                if t is not None:
                    t._release(req.generated - 1, end_wall)
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

    async def tokens(self) -> AsyncIterator[int]:
        try:
            for k in range(self.output_tokens):
                target = self.token_time_s(k)
                await sleep_until(target, self._engine.clock)
                now = self._engine.clock()
                self._engine.lateness_s.append(now - target)
                if self.first_token_s is None:
                    self.first_token_s = now
                yield k
        finally:
            self.cancel()

    def cancel(self) -> None:
        if not self.done:
            self.done = True
            self._engine.busy.end()


class FixedEngine:
    """Calibration mode: fixed TTFT and inter-token latency in wall seconds (--speed ignored)."""

    def __init__(self, ttft_s: float, itl_s: float, clock: Clock = time.perf_counter):
        self.ttft_s = ttft_s
        self.itl_s = itl_s
        self.clock = clock
        self.busy = BusyTracker(clock)
        self.on_step = None
        # How late each token was released versus its absolute target (for /sim/stats).
        self.lateness_s: deque[float] = deque(maxlen=100_000)

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def submit(self, prompt_tokens: int, output_tokens: int, arrival_s: float | None = None) -> Ticket:
        return _FixedTicket(self, self.clock() if arrival_s is None else arrival_s, max(output_tokens, 1))

    @property
    def num_running(self) -> int:
        return self.busy.active

    num_waiting = 0
    kv_usage = 0.0
    kv_bytes_used_per_gpu = 0.0
