"""Workload: what each request asks for (prompt text, output length) and the body each API takes.

Pure and seeded: the same seed and stream index give the same prompts and lengths. Synthetic
prompts are space-separated words, one word per requested token (exactly one on the simulated
backend), or, with a prompt calibration (harness/load/calibrate.py), as many words as make the
requested tokens on the server's tokenizer, its chat template included.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from harness.config import PromptCalibration, TokenDist, WorkloadConfig
# Dataset files are read (and checked line by line) in harness.load.dataset; re-exported here.
from harness.load.dataset import DatasetItem, load_dataset  # noqa: F401

# A fixed vocabulary of short common words (single tokens in Llama-family tokenizers).
WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but "
    "have an they you were her she there one all we their has been if more when will would who so no "
    "time out up can what some into two only other new could these may first then do any like my now "
    "over such our man me even most made after also did many before must through back years where "
    "much your way well down should because each just those people how too little state good very "
    "make world still own see men work long get here between both life being under never day same "
    "another know while last might us great old year off come since against go came right used take"
).split()


def sample_tokens(dist: TokenDist, rng: random.Random) -> int:
    """One draw from a token-length distribution, clipped to [min, max]."""
    if dist.dist == "fixed":
        n = dist.value
    elif dist.dist == "uniform":
        n = rng.randint(dist.min, dist.max)
    elif dist.dist == "normal":
        n = round(rng.gauss(dist.mean, dist.stddev))
    else:
        # mean/stddev describe the lognormal variable itself (as users quote dataset lengths),
        # converted to the underlying normal's mu/sigma.
        sigma2 = math.log(1 + (dist.stddev / dist.mean) ** 2)
        n = round(rng.lognormvariate(math.log(dist.mean) - sigma2 / 2, math.sqrt(sigma2)))
    hi = dist.max if dist.max is not None else 1_000_000
    return max(dist.min, min(hi, int(n)))


def synthetic_prompt(n_words: int, rng: random.Random) -> str:
    return " ".join(rng.choices(WORDS, k=n_words))


@dataclass(frozen=True)
class RequestSpec:
    prompt: str
    prompt_tokens: int  # what was asked for (the server's count may differ on real tokenizers)
    output_tokens: int
    synthetic: bool = True  # False: a dataset's prompt, whose prompt_tokens is only its word count


class PromptSource:
    """A reproducible stream of RequestSpecs for one simulated user (`stream` = its index).

    Synthetic prompts, or prompts drawn (seeded) from a dataset; an optional shared prefix is the
    same on every request of the run, so a server's prefix cache can be exercised. With a calibration
    (`workload.calibrate_prompt_tokens` holding the measured numbers) the word counts are scaled so that
    prefix + prompt + the chat template make the requested tokens; without one, a word per token.
    """

    def __init__(self, cfg: WorkloadConfig, stream: int = 0, dataset: list[DatasetItem] | None = None):
        self.cfg = cfg
        self.rng = random.Random(f"{cfg.seed}:{stream}")
        self.dataset = dataset
        cal = cfg.calibrate_prompt_tokens
        self.calibration = cal if isinstance(cal, PromptCalibration) else None
        n_prefix = cfg.shared_prefix_tokens
        self.prefix_words = self.calibration.words_for(n_prefix, False) if self.calibration and n_prefix else n_prefix
        self.prefix = synthetic_prompt(self.prefix_words, random.Random(f"{cfg.seed}:prefix")) if n_prefix else ""

    def next(self) -> RequestSpec:
        if self.dataset:
            item = self.dataset[self.rng.randrange(len(self.dataset))]
            prompt, n_in = item.prompt, len(item.prompt.split())
            n_out = item.output_tokens or sample_tokens(self.cfg.output_tokens, self.rng)
        else:
            n_in = sample_tokens(self.cfg.prompt_tokens, self.rng)
            n_out = sample_tokens(self.cfg.output_tokens, self.rng)
            words = n_in
            if self.calibration is not None:  # the whole request's tokens, less the prefix's words
                words = max(1, self.calibration.words_for(n_in + self.cfg.shared_prefix_tokens) - self.prefix_words)
            prompt = synthetic_prompt(words, self.rng)
        if self.prefix:
            prompt, n_in = f"{self.prefix} {prompt}", n_in + self.cfg.shared_prefix_tokens
        return RequestSpec(prompt, n_in, n_out, synthetic=not self.dataset)


# API → (path, whether the request can force the exact output length)
API_PATHS = {
    "openai-chat": "/v1/chat/completions",
    "openai-completions": "/v1/completions",
    "tgi-generate-stream": "/generate_stream",
}


class ChatSession:
    """One simulated user's multi-turn chat: the messages sent before each new prompt. Each turn
    adds its prompt and reply; the session starts again after `turns` turns or a failed turn."""

    def __init__(self, turns: int):
        self.turns = turns
        self.history: list[dict] = []
        self.turn = 0

    def record_turn(self, rec, prompt: str, reply: str) -> None:
        """Number the turn on its record and grow (or reset) the history for the next one."""
        self.turn += 1
        rec.turn = self.turn
        self.history += [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}]
        if self.turn >= self.turns or not rec.ok:
            self.history, self.turn = [], 0


def request_body(api: str, model: str | None, spec: RequestSpec, history: list[dict] | None = None,
                 usage_every_chunk: bool = False) -> tuple[str, dict, bool]:
    """(path, JSON body, forced_length) for one streamed request.

    OpenAI-style bodies set vLLM's `ignore_eos` and `min_tokens` so that the output length is
    exactly what was asked: throughput per request is then comparable across runs and engines.
    TGI's native API has no such switch, so its outputs may end early at EOS (not flagged).
    `history` (chat only): earlier turns of a multi-turn session, sent before the new prompt.
    `usage_every_chunk` (OpenAI APIs): vLLM's continuous_usage_stats, usage in every chunk.
    """
    n = spec.output_tokens
    usage = {"include_usage": True, "continuous_usage_stats": True} if usage_every_chunk else {"include_usage": True}
    if api == "openai-chat":
        messages = [*(history or ()), {"role": "user", "content": spec.prompt}]
        body = {"model": model, "messages": messages, "max_tokens": n,
                "stream": True, "stream_options": usage, "ignore_eos": True, "min_tokens": n}
        return API_PATHS[api], body, True
    if api == "openai-completions":
        body = {"model": model, "prompt": spec.prompt, "max_tokens": n, "stream": True,
                "stream_options": usage, "ignore_eos": True, "min_tokens": n}
        return API_PATHS[api], body, True
    if api == "tgi-generate-stream":
        body = {"inputs": spec.prompt, "parameters": {"max_new_tokens": n, "details": True}}
        return API_PATHS[api], body, False
    raise ValueError(f"unknown api '{api}'")
