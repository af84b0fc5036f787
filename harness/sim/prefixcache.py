"""Prefix-cache seam: automatic prefix caching over the scheduler's KV blocks, as vLLM v1 does it.

`PrefixCache` holds full prompt blocks by chain hash with a holder count; blocks nobody holds stay
cached, count as free KV space, and are evicted least recently released first when space is needed.
The `*_block_hashes` helpers turn a prompt (the sim's word = token counting) into those hashes.
"""

from __future__ import annotations

import heapq
from typing import Any, Sequence

from .perfmodel import BLOCK_SIZE_TOKENS
from .textgen import CHAT_TOKENS_PER_MESSAGE, CHAT_TOKENS_REPLY_PRIMER

# Parent of a prompt's first block. Hashes live only inside one process (the cache is per server):
# Python's str hash is salted per process, which is fine, and int tuples hash the same everywhere.
ROOT_HASH = 0x51AB


def chain_hashes(tokens: Sequence[Any], parent: int = ROOT_HASH) -> tuple[int, ...]:
    """One hash per FULL block of `tokens`: hash(parent hash, the block's tokens). A trailing
    partial block gets none (vLLM caches full blocks only), so equal hashes mean equal prefixes."""
    out, h, bs = [], parent, BLOCK_SIZE_TOKENS
    for i in range(0, len(tokens) - bs + 1, bs):
        h = hash((h, *tokens[i:i + bs]))
        out.append(h)
    return tuple(out)


def prompt_block_hashes(prompt: Any) -> tuple[int, ...]:
    """Completions `prompt` (a string, token ids, or a one-string list), tokenized as the sim counts it."""
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    return chain_hashes(prompt.split() if isinstance(prompt, str) else prompt)


def chat_block_hashes(messages: list[dict[str, Any]]) -> tuple[int, ...]:
    """The rendered chat prompt the sim counts (textgen.prompt_tokens_chat): per message its template
    tokens (role header before the content, end-of-turn after) and content words, then the reply
    primer. The same system prompt and history therefore give the same leading blocks."""
    tokens: list[Any] = []
    for m in messages:
        role = str(m.get("role"))
        content = m.get("content")
        if isinstance(content, list):  # OpenAI content parts: the text parts, as the counter reads them
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        tokens += [f"\x00<hdr{i}:{role}>" for i in range(CHAT_TOKENS_PER_MESSAGE - 1)]
        tokens += (content or "").split()
        tokens.append("\x00<eot>")
    tokens += [f"\x00<hdr{i}:assistant>" for i in range(CHAT_TOKENS_REPLY_PRIMER)]
    return chain_hashes(tokens)


def synthetic_block_hashes(n_blocks: int, shared: tuple[int, ...], salt: int) -> tuple[int, ...]:
    """Offline workloads: the first len(shared) blocks are the run's shared prefix (`shared`, from
    `shared_prefix_hashes`), the rest unique to the request `salt`. Integers only: reproducible."""
    k = min(n_blocks, len(shared))
    out, h = list(shared[:k]), (shared[k - 1] if k else ROOT_HASH)
    for i in range(k, n_blocks):
        h = hash((h, 2, salt, i))
        out.append(h)
    return tuple(out)


def trace_block_hashes(hash_ids: tuple[int, ...] | None, block_tokens: int | None, input_tokens: int,
                       row: int) -> tuple[int, ...]:
    """The sim's 16-token block hashes of a replayed prompt: a block inside the trace's hash-id blocks is
    named by those ids and its offset (so equal leading ids give equal chains, as the prompts synthesized
    for a live replay do); the rest of the prompt is the row's own."""
    out, h, bs = [], ROOT_HASH, BLOCK_SIZE_TOKENS
    ids, bt = hash_ids or (), block_tokens or 0
    covered = len(ids) * bt
    for j in range(input_tokens // bs):
        a, b = j * bs, (j + 1) * bs
        if b <= covered:
            content = (3, *ids[a // bt:(b - 1) // bt + 1], a % bt)
        else:
            content = (4, row, j)
        h = hash((h, content))
        out.append(h)
    return tuple(out)


def shared_prefix_hashes(n_blocks: int, seed: int) -> tuple[int, ...]:
    out, h = [], ROOT_HASH
    for i in range(n_blocks):
        h = hash((h, 1, seed, i))
        out.append(h)
    return tuple(out)


class PrefixCache:
    """Cached blocks by hash. `held[h]` = running requests holding block h (0: idle, evictable).

    The scheduler keeps the arithmetic: a held block is used KV space, an idle one counts as free,
    and after every allocation `trim(free_blocks)` evicts idle blocks until the idle ones fit in the
    free space. Idle blocks leave in order of release (vLLM's free queue: least recently used first;
    a request's own blocks tail first, so shared heads outlive the unique tails). The order key is
    (release time, request id, -block index): independent of the order releases are made within one
    step, so the fast offline scheduler evicts exactly as the step-by-step one.
    Counters are in tokens, as vLLM's: lookups of new requests, and apart those of preempted ones.
    """

    def __init__(self) -> None:
        self.held: dict[int, int] = {}
        self._idle: dict[int, tuple] = {}  # hash → its order key
        self._heap: list[tuple] = []  # (key, hash); entries whose key no longer matches are stale
        self.queries_tokens = 0
        self.hits_tokens = 0
        self.preempted_queries_tokens = 0
        self.preempted_hits_tokens = 0
        self.evicted_blocks = 0

    @property
    def cached_blocks(self) -> int:  # (no __len__: an empty cache must still be truthy)
        return len(self.held)

    @property
    def idle_blocks(self) -> int:
        return len(self._idle)

    def lookup(self, hashes: Sequence[int], max_blocks: int) -> tuple[int, int]:
        """(leading blocks cached, how many of those are idle) of the first `max_blocks` hashes."""
        n = idle = 0
        held = self.held
        for h in hashes[:max_blocks]:
            c = held.get(h)
            if c is None:
                break
            n += 1
            idle += c == 0
        return n, idle

    def record(self, prompt_tokens: int, hit_tokens: int, preempted: bool) -> None:
        if preempted:
            self.preempted_queries_tokens += prompt_tokens
            self.preempted_hits_tokens += hit_tokens
        else:
            self.queries_tokens += prompt_tokens
            self.hits_tokens += hit_tokens

    def acquire(self, hashes: Sequence[int]) -> None:
        """Hold these cached blocks (a hit): idle ones stop being evictable."""
        held, idle = self.held, self._idle
        for h in hashes:
            if held[h] == 0:
                del idle[h]
            held[h] += 1

    def insert(self, h: int) -> bool:
        """A request computed block h: cache it, held by that request. False when h is already
        cached (the request keeps its own copy, as a duplicate block in vLLM)."""
        if h in self.held:
            return False
        self.held[h] = 1
        return True

    def release(self, hashes: Sequence[int], now_s: float, rid: int) -> int:
        """A request lets go of its cached blocks; returns how many became idle (free again)."""
        held, idle, heap = self.held, self._idle, self._heap
        freed = 0
        for i in range(len(hashes) - 1, -1, -1):
            h = hashes[i]
            c = held[h] - 1
            held[h] = c
            if c == 0:
                key = (now_s, rid, -i)
                idle[h] = key
                heapq.heappush(heap, (key, h))
                freed += 1
        if len(heap) > 2 * len(idle) + 1024:  # drop stale entries (blocks re-held since release)
            self._heap = [(k, h) for h, k in idle.items()]
            heapq.heapify(self._heap)
        return freed

    def trim(self, free_blocks: int) -> None:
        """Evict the oldest idle blocks until the idle ones fit in `free_blocks`."""
        idle, held, heap = self._idle, self.held, self._heap
        while len(idle) > free_blocks:
            key, h = heapq.heappop(heap)
            if idle.get(h) == key:
                del idle[h]
                del held[h]
                self.evicted_blocks += 1
