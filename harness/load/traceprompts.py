"""Trace prompts: a TraceEntry → the RequestSpec to send, its text sharing exactly the prefix its hash ids share.

Each hash id is a fixed block of words (seeded by the id and the workload seed) from the workload's
single-token vocabulary; a prompt is its blocks in order, then words unique to its row. Pure and
seeded like harness.load.workload: the same entry and seed always give the same text.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from harness.config import PromptCalibration, WorkloadConfig
from harness.load.trace import TraceEntry
from harness.load.workload import WORDS, RequestSpec

# Block texts kept for reuse: a shared block (a system prompt, a conversation's history) is built once
# while it keeps coming back. 4096 blocks of 512 words are ~10 MB of text.
CACHE_BLOCKS = 4096
# One pseudo-random byte picks one word: the vocabulary repeated to 256 entries (its first words a
# little more often than the rest; every one is still a single token).
_BYTE_WORD = tuple(WORDS[i % len(WORDS)] for i in range(256))


def seeded_words(key: str, n: int) -> str:
    """`n` words drawn by SHAKE-128 of `key`: stable across processes and Python versions, cheaper than a
    random.Random per block, and prefix-stable (the first m of n words are the m words of key)."""
    table = _BYTE_WORD
    return " ".join([table[b] for b in hashlib.shake_128(key.encode()).digest(n)])


class TracePrompts:
    """Prompts for a replayed trace (`workload.trace`), sized like PromptSource sizes synthetic ones.

    Word counts: one word per token on the simulated backend (its tokenizer counts a word as a token,
    harness/sim/textgen.py); each WORDS entry is one token with its leading space on Llama-family
    tokenizers, so blocks joined by single spaces tokenize to the concatenation of their tokens. With a
    PromptCalibration a block of `block_tokens` tokens is `words_for(block_tokens, False)` words and the
    whole prompt `words_for(input_tokens)` words (the template's tokens counted in), as in PromptSource.

    Prefix sharing: two prompts whose hash ids agree on their first k ids begin with the same
    k x words-per-block words; the next words are independent draws (a different block, or each row's
    own words), so they agree on one more word only by chance (about 1 in 134), on a whole server block
    (16 tokens in vLLM) with probability ~1e-34: the shared whole blocks are exactly the shared ids.
    Prompts with different first ids share no block. The chat API puts the template's tokens (role
    header) before the content: the same tokens on every request, so the shared text stays a shared
    token prefix, shifted by the template; a server caches its own block-aligned share of it. A prompt
    shorter than its blocks (the partial last block of a Mooncake row) ends inside its last block.
    """

    def __init__(self, cfg: WorkloadConfig, cache_blocks: int = CACHE_BLOCKS):
        self.seed = cfg.seed
        cal = cfg.calibrate_prompt_tokens
        self.calibration = cal if isinstance(cal, PromptCalibration) else None
        self.block_tokens = (cfg.trace.tokens_per_block if cfg.trace is not None else None) or 0
        self.block_words = self._words(self.block_tokens, False) if self.block_tokens else 0
        self._block = lru_cache(maxsize=cache_blocks)(self._make_block)

    def _words(self, tokens: int, with_template: bool = True) -> int:
        return self.calibration.words_for(tokens, with_template) if self.calibration else max(1, tokens)

    def _block_key(self, hash_id: int) -> str:
        return f"{self.seed}:block:{hash_id}"

    def _make_block(self, hash_id: int) -> str:
        return seeded_words(self._block_key(hash_id), self.block_words)

    def words(self, entry: TraceEntry) -> int:
        """Words of this entry's prompt."""
        return self._words(entry.input_tokens)

    def spec(self, entry: TraceEntry) -> RequestSpec:
        """The request for one trace entry (its recorded prompt where the trace kept one)."""
        if entry.prompt is not None:
            return RequestSpec(entry.prompt, entry.input_tokens, entry.output_tokens, synthetic=False)
        total = self.words(entry)
        parts: list[str] = []
        left = total
        for h in entry.hash_ids or ():
            if left <= 0:
                break
            # A prompt ending inside this block gets its first `left` words (prefix-stable draws).
            parts.append(self._block(h) if left >= self.block_words else seeded_words(self._block_key(h), left))
            left -= self.block_words
        if left > 0:
            parts.append(seeded_words(f"{self.seed}:row:{entry.row}", left))
        return RequestSpec(" ".join(parts), entry.input_tokens, entry.output_tokens)
