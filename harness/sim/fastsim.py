"""Fast offline scheduler: `Scheduler.step()` semantics at a cost per step independent of batch size.

Steady decoders (one token per step, KV grown one block every 16 steps) are kept as aggregates;
only prefilling, admitted, finishing and block-hungry sequences are touched each step. Steps that
would preempt or run out of token budget fall back to the reference `Scheduler.step()`. Prefix-cache
lookups go through the shared `_admit`; prompt blocks are cached as the reference step caches them.
"""

from __future__ import annotations

from .perfmodel import BLOCK_SIZE_TOKENS, blocks_for, step_pricer
from .scheduler import Scheduler, SimRequest

__all__ = ["FastScheduler", "step_pricer"]  # step_pricer: the perfmodel's, priced as step_cost prices


class FastScheduler(Scheduler):
    """Offline-only `Scheduler` (no StepResult): same token times, finishes, blocks and preemptions.

    A steady decoder has generated > 0 and computed == known - 1: each step it decodes one token
    and, every 16 steps, takes one KV block. It is stored as (first step s0, computed, generated,
    blocks at s0, first growth step); its state at any later step is arithmetic, and its token
    times are a slice of the per-step end times. Growth steps are counted per step index mod 16.
    """

    def __init__(self, dep, cfg):
        super().__init__(dep, cfg)
        self._price = step_pricer(dep)
        self._s = 0  # index of the next step
        self._ends: list[float] = []  # end time of every step, by index
        self._dec: dict[SimRequest, tuple[int, int, int, int, int | None]] = {}
        self._dec_sum = 0  # sum of the steady decoders' computed tokens before the next step
        self._grow_cnt = [0] * BLOCK_SIZE_TOKENS  # steady decoders growing at steps ≡ i (mod 16)
        self._join: dict[int, list[SimRequest]] = {}  # step → decoders whose first growth is then
        self._fin: dict[int, list[SimRequest]] = {}  # step → decoders emitting their last token then
        self._pref: list[SimRequest] = []  # running but not steady, in running (admission) order

    # ---- steady-decoder bookkeeping ----
    def _to_steady(self, r: SimRequest) -> None:
        s0, c0, g0, b0 = self._s, r.computed, r.generated, r.blocks
        last = s0 + r.output_tokens - g0 - 1
        first_growth: int | None = s0 + BLOCK_SIZE_TOKENS * b0 - c0
        if first_growth > last:
            first_growth = None  # finishes inside the blocks it holds (always so with reserve_full)
        else:
            self._join.setdefault(first_growth, []).append(r)
        self._dec[r] = (s0, c0, g0, b0, first_growth)
        self._dec_sum += c0
        self._fin.setdefault(last, []).append(r)

    def _materialize(self, r: SimRequest) -> None:
        """Write a steady decoder's arithmetic state back into the SimRequest (caller unlinks it)."""
        s0, c0, g0, b0, _ = self._dec.pop(r)
        k = self._s - s0
        r.computed, r.generated = c0 + k, g0 + k
        r.blocks = max(b0, blocks_for(r.computed))
        r.token_times_s.extend(self._ends[s0:self._s])

    def _sync_all(self) -> None:
        for r in list(self._dec):
            self._materialize(r)
        self._dec_sum = 0
        self._grow_cnt = [0] * BLOCK_SIZE_TOKENS
        self._join.clear()
        self._fin.clear()
        self._pref = []

    def _classify_running(self) -> None:
        for r in self.running:
            if r.generated > 0 and r.computed == r.known_tokens - 1:
                self._to_steady(r)
            else:
                self._pref.append(r)

    def cancel(self, req: SimRequest) -> None:
        self._sync_all()
        super().cancel(req)
        self._classify_running()

    def finish(self) -> None:
        """Bring every request's fields up to date (call before reading running requests)."""
        self._sync_all()
        self._classify_running()

    # ---- one engine step ----
    def step(self):  # type: ignore[override]  # offline: returns the step's end time, not a StepResult
        ready = self.next_ready_s()
        if ready is None:
            return None
        s, cfg = self._s, self.cfg
        n_steady = len(self._dec)
        demand = n_steady + sum(r.known_tokens - r.computed for r in self._pref)
        if demand > cfg.max_batched_tokens:
            return self._slow_step()
        for _ in self._join.pop(s, ()):
            self._grow_cnt[s % BLOCK_SIZE_TOKENS] += 1
        need = self._grow_cnt[s % BLOCK_SIZE_TOKENS]
        plan = []
        for r in self._pref:
            n = r.known_tokens - r.computed
            plan.append((r, n))
            need += max(blocks_for(r.computed + n) - r.blocks, 0)
        if need > self.free_blocks:
            return self._slow_step()  # somebody would be preempted
        self.now_s = ready
        cache = self.cache
        for r, n in plan:
            self._grow(r, r.computed + n)
        self.free_blocks -= self._grow_cnt[s % BLOCK_SIZE_TOKENS]
        if cache is not None:
            cache.trim(self.free_blocks)  # the steady decoders' new blocks evict idle cached ones
            for r, n in plan:  # then cache the computed prompt blocks, as Scheduler.step() does
                if r.block_hashes and r.cache_next < len(r.block_hashes):
                    self._cache_blocks(r, n)
        budget = cfg.max_batched_tokens - demand
        # FIFO admission, exactly as Scheduler.step() phase 2.
        budget = self._admit(plan, budget)
        if not n_steady and not plan:
            if self.running or not self.waiting:
                return None
            raise RuntimeError(f"request {self.waiting[0].rid} can never fit in the KV cache")
        n_dec, dec_sum, prefill = n_steady, self._dec_sum + n_steady, []
        for r, n in plan:
            if r.generated > 0 and n == 1 and r.computed == r.known_tokens - 1:
                n_dec += 1
                dec_sum += r.computed + 1
            else:
                prefill.append((n, r.computed + n))
        self.peak_used_blocks = max(self.peak_used_blocks, self.used_blocks)
        dt = self._price(n_dec, dec_sum, prefill)
        self.now_s += dt
        self.busy_s += dt
        self._ends.append(self.now_s)
        self._s = s + 1
        self._dec_sum += n_steady
        self._pref = []
        for r, n in plan:
            r.computed += n
            if r.computed < r.known_tokens:
                if r.generated > 0 and r.computed == r.known_tokens - 1:
                    self._to_steady(r)
                else:
                    self._pref.append(r)
                continue
            r.generated += 1
            r.token_times_s.append(self.now_s)
            if r.generated >= r.output_tokens:
                self._done(r)
            else:
                self._to_steady(r)
        for r in self._fin.pop(s, ()):
            first_growth = self._dec[r][4]
            self._materialize(r)
            self._dec_sum -= r.computed
            if first_growth is not None:
                self._grow_cnt[first_growth % BLOCK_SIZE_TOKENS] -= 1
            self._done(r)
        assert 0 <= self.free_blocks <= cfg.kv_blocks
        return self.now_s

    def _done(self, r: SimRequest) -> None:
        r.finished_s = self.now_s
        self._release(r)
        r.state = "done"
        self.running.remove(r)

    def _slow_step(self):
        self._sync_all()
        res = Scheduler.step(self)
        if res is not None:
            self._ends.append(self.now_s)
            self._s += 1
        self._classify_running()
        return None if res is None else self.now_s
