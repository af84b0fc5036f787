"""Text seam: the simulator's stand-in tokenizer and text generator.

Tokenizer approximation (deterministic, documented so clients can predict usage):
  * plain text: one whitespace-separated word = one token (an empty prompt counts 0 words);
  * chat: per message, words of its content + CHAT_TOKENS_PER_MESSAGE (role header and end-of-turn
    markers, as in the Llama-3 template), plus CHAT_TOKENS_REPLY_PRIMER for the assistant header.
Generated text is readable words; every token is one word with a leading space.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

import numpy as np

CHAT_TOKENS_PER_MESSAGE = 4
CHAT_TOKENS_REPLY_PRIMER = 3
# Natural end-of-sequence hazard per generated token when ignore_eos is off: the output length is
# geometric with mean 1/EOS_PROB_PER_TOKEN (≈ 512 tokens), cut at max_tokens.
EOS_PROB_PER_TOKEN = 1 / 512

WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which "
    "but have an they you were her she there one all we their been has would when who will more "
    "no if out so said what up its about into than them can only other new some could time these "
    "two may then do first any my now such like our over man me even most made after also did "
    "many before must through back years where much your way well down should because each just "
    "those people how too little state good very make world still own see men work long get here "
    "between both life being under never day same another know while last might us great old year "
    "off come since against go came right used take three small model server token latency stream "
    "request batch memory cache queue window signal system value number result answer question "
    "river mountain garden window morning evening light water stone paper story music city road"
).split()


def count_words(text: str) -> int:
    return len(text.split())


def prompt_tokens_text(prompt: Any) -> int:
    """Completions `prompt`: a string (or a list of token ids / a one-element list of strings)."""
    if isinstance(prompt, str):
        return count_words(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return len(prompt)
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        return count_words(prompt[0])
    raise ValueError("prompt must be a string, a list of token ids, or a list with one string")


def prompt_tokens_chat(messages: list[dict[str, Any]]) -> int:
    total = CHAT_TOKENS_REPLY_PRIMER
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):  # OpenAI content parts: count the text parts
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        total += CHAT_TOKENS_PER_MESSAGE + count_words(content or "")
    return total


def choose_output_tokens(rng: random.Random, max_tokens: int, min_tokens: int, ignore_eos: bool) -> tuple[int, str]:
    """(tokens to generate, finish reason): `length` at max_tokens, else a seeded early `stop`."""
    if ignore_eos or max_tokens <= min_tokens:
        return max_tokens, "length"
    # Geometric draw (inverse CDF) of the first token that is EOS, counted from min_tokens.
    u = rng.random()
    n = max(min_tokens, 1) - 1 + max(1, math.ceil(math.log1p(-u) / math.log1p(-EOS_PROB_PER_TOKEN)))
    if n < max_tokens:
        return n, "stop"
    return max_tokens, "length"


class TextGen:
    """Seeded word stream for one request."""

    def __init__(self, rng: random.Random):
        self._rng = rng

    def token(self) -> str:
        return " " + self._rng.choice(WORDS)

    def tokens(self, n: int) -> list[str]:
        return [self.token() for _ in range(n)]

    def word_indices(self, n: int) -> list[int]:
        """Indices into WORDS of the next n `token()` draws, drawn in bulk (same words, same order).

        `choice` draws getrandbits(k) (k = bit length of len(WORDS)) until the value is in range,
        and getrandbits(k <= 32) is one 32-bit Mersenne-Twister output shifted right by 32 - k;
        getrandbits(32 * m) is m consecutive outputs, least significant first. The bulk draw can
        consume a few more outputs than n `token()` calls: use it as the RNG's last use."""
        size = len(WORDS)
        shift = 32 - size.bit_length()
        out: list[int] = []
        while len(out) < n:
            m = (n - len(out)) * 3 // 2 + 8  # ~70 % acceptance with 178 words in 8 bits
            raw = self._rng.getrandbits(32 * m).to_bytes(4 * m, "little")
            vals = np.frombuffer(raw, dtype="<u4") >> shift
            out += vals[vals < size].tolist()
        del out[n:]
        return out

    def token_details(self) -> tuple[int, str, float]:
        """(token id, text, logprob): ids are stable per word (offset past special ids)."""
        word = self._rng.choice(WORDS)
        return 1000 + _WORD_INDEX[word], " " + word, round(-self._rng.random() * 2.0, 4)


_WORD_INDEX = {w: i for i, w in enumerate(dict.fromkeys(WORDS))}
# Every word as the JSON string of its token text (" word"), ready to splice into a chunk.
WORD_JSON = tuple(json.dumps(" " + w, ensure_ascii=False).encode() for w in WORDS)
