"""Scheduler seam: continuous batching in simulated time, shared by the server and `simulate`.

One `Scheduler` owns a FIFO waiting queue, a running batch and a paged KV cache (with automatic
prefix caching when on: prefixcache.py); `step()` plans one engine step (decodes first, then chunked
prefill, then FIFO admission), prices it with the performance model and advances the simulated
clock. No sockets, no wall clock, no randomness.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Iterable

from .perfmodel import BLOCK_SIZE_TOKENS, FRONTEND_OVERHEAD_S, Deployment, StepCost, blocks_for
from .prefixcache import PrefixCache


@dataclass
class SchedulerConfig:
    max_num_seqs: int  # vLLM --max-num-seqs (TGI: no cap, use a large number)
    max_batched_tokens: int  # tokens per step (chunked-prefill budget)
    kv_blocks: int  # KV cache size in blocks
    # TGI admits a request only if prompt + max_new_tokens fit (reserves the whole budget up
    # front, never preempts); vLLM allocates blocks as sequences grow and preempts on a shortage.
    reserve_full: bool = False
    frontend_overhead_s: float = FRONTEND_OVERHEAD_S
    # Automatic prefix caching (vLLM's default, TGI 3's with flashinfer/flashdecoding): requests
    # carrying block hashes reuse cached full prompt blocks. Off: exactly the scheduler without it.
    prefix_caching: bool = False


@dataclass(eq=False)  # identity equality: list membership must not compare fields
class SimRequest:
    rid: int
    arrival_s: float  # simulated time the request reached the server
    prompt_tokens: int
    output_tokens: int  # tokens this request will produce (EOS decided by the caller)
    computed: int = 0  # tokens whose KV is in the cache
    generated: int = 0
    blocks: int = 0
    admitted_s: float | None = None
    token_times_s: list[float] = field(default_factory=list)
    finished_s: float | None = None
    preemptions: int = 0
    cancelled: bool = False
    state: str = "new"  # new | waiting | running | done
    block_hashes: tuple[int, ...] | None = None  # one chain hash per full prompt block (None: unknown)
    cached_tokens: int = 0  # prompt tokens found in the prefix cache at the first admission
    cache_refs: list[int] = field(default_factory=list)  # cached blocks this request holds
    cache_next: int = 0  # index of the next prompt block to put in the cache

    def __post_init__(self) -> None:
        if self.block_hashes is not None and len(self.block_hashes) > self.prompt_tokens // BLOCK_SIZE_TOKENS:
            raise ValueError(f"request {self.rid}: {len(self.block_hashes)} block hashes but a "
                             f"{self.prompt_tokens}-token prompt has {self.prompt_tokens // BLOCK_SIZE_TOKENS} full "
                             f"{BLOCK_SIZE_TOKENS}-token blocks: give one hash per full block of the prompt")

    @property
    def known_tokens(self) -> int:
        return self.prompt_tokens + self.generated


@dataclass
class StepResult:
    start_s: float
    end_s: float
    cost: StepCost
    prefill_tokens: int
    decode_tokens: int
    emitted: list[SimRequest]  # one new token each, stamped end_s
    finished: list[SimRequest]


class Scheduler:
    def __init__(self, dep: Deployment, cfg: SchedulerConfig):
        self.dep = dep
        self.cfg = cfg
        self.now_s = 0.0
        self.waiting: deque[SimRequest] = deque()
        self.running: list[SimRequest] = []
        self.free_blocks = cfg.kv_blocks
        self.num_preemptions = 0
        self.busy_s = 0.0
        self.peak_used_blocks = 0
        self.cache: PrefixCache | None = PrefixCache() if cfg.prefix_caching else None
        # prompt tokens of requests past their prefill (first token out), and how many came from the cache
        self.prefilled_tokens = 0
        self.prefilled_cached_tokens = 0

    # ---- queue ----
    def add(self, req: SimRequest) -> None:
        """Enqueue (FIFO). The request becomes schedulable after the frontend overhead."""
        req.state = "waiting"
        self.waiting.append(req)

    def cancel(self, req: SimRequest) -> None:
        req.cancelled = True
        if req.state == "running":
            self._release(req)
            self.running.remove(req)
        elif req.state == "waiting":
            self.waiting.remove(req)
        req.state = "done"

    def has_work(self) -> bool:
        return bool(self.running or self.waiting)

    def next_ready_s(self) -> float | None:
        """Earliest time something can be scheduled (None when idle)."""
        if self.running:
            return self.now_s
        if self.waiting:
            return max(self.now_s, self.waiting[0].arrival_s + self.cfg.frontend_overhead_s)
        return None

    @property
    def used_blocks(self) -> int:
        return self.cfg.kv_blocks - self.free_blocks

    @property
    def kv_usage(self) -> float:
        return self.used_blocks / self.cfg.kv_blocks if self.cfg.kv_blocks else 0.0

    # ---- blocks ----
    def _grow(self, req: SimRequest, tokens: int) -> bool:
        need = blocks_for(tokens) - req.blocks
        if need <= 0:
            return True
        if need > self.free_blocks:
            return False
        self.free_blocks -= need
        req.blocks += need
        if self.cache is not None:
            self.cache.trim(self.free_blocks)  # idle cached blocks make way for the new ones
        return True

    def _release(self, req: SimRequest) -> None:
        refs = req.cache_refs
        if refs:  # cached blocks stay cached; those no one else holds become free (evictable)
            self.free_blocks += req.blocks - len(refs) + self.cache.release(refs, self.now_s, req.rid)
            req.cache_refs = []
        else:
            self.free_blocks += req.blocks
        req.blocks = 0
        req.cache_next = 0

    def _cache_blocks(self, req: SimRequest, n: int) -> None:
        """Put the full prompt blocks the step computes into the cache when they are scheduled (as
        vLLM does: a request admitted later in the same step can already hit them)."""
        hashes = req.block_hashes
        upto = min((req.computed + n) // BLOCK_SIZE_TOKENS, len(hashes))
        cache = self.cache
        for i in range(req.cache_next, upto):
            if cache.insert(hashes[i]):
                req.cache_refs.append(hashes[i])
        req.cache_next = max(req.cache_next, upto)

    def _lookup(self, req: SimRequest) -> tuple[int, int]:
        """(cached leading blocks, how many of them idle) for a request about to be admitted. The
        hit stops one token short of the known tokens: the last one is always computed for its logits."""
        if self.cache is None or req.block_hashes is None:
            return 0, 0
        return self.cache.lookup(req.block_hashes, (req.known_tokens - 1) // BLOCK_SIZE_TOKENS)

    def _hold_hits(self, req: SimRequest, hit: int, idle: int) -> None:
        hits = req.block_hashes[:hit]
        self.cache.acquire(hits)
        self.free_blocks -= idle
        req.cache_refs = list(hits)
        req.blocks = req.cache_next = hit
        req.computed = hit * BLOCK_SIZE_TOKENS

    def _preempt(self, victim: SimRequest) -> None:
        # vLLM v1 preempts by recompute: drop the KV, requeue at the head, redo prefill later.
        self._release(victim)
        victim.computed = 0
        victim.preemptions += 1
        self.num_preemptions += 1
        self.running.remove(victim)
        victim.state = "waiting"
        self.waiting.appendleft(victim)

    # ---- one engine step ----
    def _admit(self, plan: list, budget: int) -> int:
        """FIFO admission while budget, seats and KV blocks allow (the head blocks the queue).

        Appends (request, tokens this step) to `plan`; returns the budget left. Shared by
        step() and FastScheduler so both admit exactly alike.
        """
        cfg, waiting = self.cfg, self.waiting
        while (waiting and budget > 0 and len(self.running) < cfg.max_num_seqs
               and waiting[0].arrival_s + cfg.frontend_overhead_s <= self.now_s):
            req = waiting[0]
            hit, idle = self._lookup(req)
            done = req.computed + hit * BLOCK_SIZE_TOKENS
            n = min(req.known_tokens - done, budget)
            reserve = req.prompt_tokens + req.output_tokens if cfg.reserve_full else done + n
            if hit:
                # Idle cached blocks it hits leave the free pool: they count against the space too.
                if blocks_for(reserve) - hit + idle > self.free_blocks:
                    break
                self._hold_hits(req, hit, idle)
                self._grow(req, reserve)
            elif not self._grow(req, reserve):
                break
            if self.cache is not None and req.block_hashes is not None:  # looked up: count it once admitted
                self.cache.record(req.known_tokens, hit * BLOCK_SIZE_TOKENS, req.preemptions > 0)
                if req.admitted_s is None:
                    req.cached_tokens = hit * BLOCK_SIZE_TOKENS
            waiting.popleft()
            req.state = "running"
            self.running.append(req)
            if req.admitted_s is None:
                req.admitted_s = self.now_s
            plan.append((req, n))
            if req.block_hashes and self.cache is not None:
                self._cache_blocks(req, n)
            budget -= n
        return budget

    def step(self) -> StepResult | None:
        """Plan and run one step starting at now_s; None if nothing is schedulable yet."""
        ready = self.next_ready_s()
        if ready is None:
            return None
        self.now_s = ready
        budget = self.cfg.max_batched_tokens
        plan: list[tuple[SimRequest, int]] = []
        # 1) running sequences in admission order: decode (1 token) or the next prefill chunk.
        i = 0
        while i < len(self.running) and budget > 0:
            req = self.running[i]
            n = min(req.known_tokens - req.computed, budget)
            while not self._grow(req, req.computed + n):
                victim = self.running[-1]  # newest admitted goes first
                self._preempt(victim)
                if victim is req:
                    break
            if req.state != "running":
                break
            plan.append((req, n))
            budget -= n
            i += 1
        if self.cache is not None:  # after all of phase 1's allocations, as FastScheduler does
            for req, n in plan:
                if req.block_hashes and req.cache_next < len(req.block_hashes):
                    self._cache_blocks(req, n)
        # 2) FIFO admission while budget, seats and blocks allow; the head blocks the queue.
        budget = self._admit(plan, budget)
        if not plan:
            # Nothing fits (e.g. the head needs more blocks than exist); nothing will change.
            if self.running or not self.waiting:
                return None
            raise RuntimeError(f"request {self.waiting[0].rid} can never fit in the KV cache")
        # A decode step feeds back the one token sampled last step; everything else is prefill
        # (first chunk, later chunks, or recompute after preemption).
        is_decode = [r.generated > 0 and n == 1 and r.computed == r.known_tokens - 1 for r, n in plan]
        decode_ctx = [r.computed + 1 for (r, _), d in zip(plan, is_decode) if d]
        prefill = [(n, r.computed + n) for (r, n), d in zip(plan, is_decode) if not d]
        self.peak_used_blocks = max(self.peak_used_blocks, self.used_blocks)
        cost = self.dep.step_cost(decode_ctx, prefill)
        start = self.now_s
        self.now_s += cost.time_s
        self.busy_s += cost.time_s
        emitted, finished = [], []
        for req, n in plan:
            req.computed += n
            if req.computed < req.known_tokens:
                continue  # partial prefill chunk: no token yet
            req.generated += 1
            req.token_times_s.append(self.now_s)
            emitted.append(req)
            if req.generated == 1:
                self.prefilled_tokens += req.prompt_tokens
                self.prefilled_cached_tokens += req.cached_tokens
            if req.generated >= req.output_tokens:
                req.finished_s = self.now_s
                self._release(req)
                req.state = "done"
                finished.append(req)
        if finished:
            self.running = [r for r in self.running if r.state == "running"]
        assert 0 <= self.free_blocks <= self.cfg.kv_blocks
        return StepResult(start, self.now_s, cost, sum(n for n, _ in prefill), len(decode_ctx), emitted, finished)


# ---- offline simulation --------------------------------------------------------------------

@dataclass(frozen=True)
class TraceRequest:
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    block_hashes: tuple[int, ...] | None = None  # full prompt blocks' chain hashes (prefix caching)


@dataclass
class RequestResult:
    arrival_s: float
    ttft_s: float
    token_times_s: list[float]  # absolute simulated times of every token
    e2e_s: float
    queue_s: float
    preemptions: int
    cached_tokens: int = 0  # prompt tokens served from the prefix cache at first admission


@dataclass
class SimulationResult:
    requests: list[RequestResult]
    makespan_s: float
    busy_s: float
    num_preemptions: int
    max_kv_blocks_used: int
    prefix_cache_queries_tokens: int = 0  # vLLM's counters: prompt tokens looked up / found cached
    prefix_cache_hits_tokens: int = 0

    @property
    def output_tokens_per_s(self) -> float:
        total = sum(len(r.token_times_s) for r in self.requests)
        return total / self.makespan_s if self.makespan_s > 0 else 0.0


def simulate(trace: Iterable[TraceRequest], dep: Deployment, cfg: SchedulerConfig) -> SimulationResult:
    """Run a trace through the same scheduler the server uses (pure function, no sockets).

    Runs `fastsim.FastScheduler`, which gives exactly the step-by-step `Scheduler`'s results at a
    cost per step that does not grow with the batch (tests compare the two)."""
    from .fastsim import FastScheduler  # imports this module: resolved at call time

    return run_trace(trace, FastScheduler(dep, cfg))


def run_trace(trace: Iterable[TraceRequest], sched: Scheduler) -> SimulationResult:
    """`simulate` on a given scheduler instance (the reference `Scheduler` or the fast one)."""
    pending = sorted(enumerate(trace), key=lambda x: (x[1].arrival_s, x[0]))
    reqs: list[SimRequest] = []
    i = 0
    while i < len(pending) or sched.has_work():
        nxt = sched.next_ready_s()
        # Admit everything that has arrived by the time the next step could start.
        horizon = nxt if nxt is not None else pending[i][1].arrival_s
        while i < len(pending) and pending[i][1].arrival_s <= horizon:
            rid, t = pending[i]
            r = SimRequest(rid, t.arrival_s, t.prompt_tokens, max(t.output_tokens, 1), block_hashes=t.block_hashes)
            reqs.append(r)
            sched.add(r)
            i += 1
        sched.step()
    reqs.sort(key=lambda r: r.rid)
    out = [RequestResult(r.arrival_s, r.token_times_s[0] - r.arrival_s, list(r.token_times_s),
                         r.finished_s - r.arrival_s, (r.admitted_s or r.arrival_s) - r.arrival_s, r.preemptions,
                         r.cached_tokens)
           for r in reqs]
    first = min((r.arrival_s for r in reqs), default=0.0)
    c = sched.cache
    return SimulationResult(out, sched.now_s - first, sched.busy_s, sched.num_preemptions, sched.peak_used_blocks,
                            *((c.queries_tokens, c.hits_tokens) if c is not None else (0, 0)))
