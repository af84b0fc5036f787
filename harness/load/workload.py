"""Workload: what each request asks for (prompt text, output length) and the body each API takes.

Pure and seeded: the same seed and stream index give the same prompts and lengths. Synthetic
prompts are space-separated words, so a word is about one token (exactly one on the simulated
backend); the server's `usage` gives the true prompt token count on real servers.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from harness.config import TokenDist, WorkloadConfig

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
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


@dataclass(frozen=True)
class RequestSpec:
    prompt: str
    prompt_tokens: int  # what was asked for (the server's count may differ on real tokenizers)
    output_tokens: int


class PromptSource:
    """A reproducible stream of RequestSpecs for one simulated user (`stream` = its index)."""

    def __init__(self, cfg: WorkloadConfig, stream: int = 0):
        self.cfg = cfg
        self.rng = random.Random(f"{cfg.seed}:{stream}")

    def next(self) -> RequestSpec:
        n_in = sample_tokens(self.cfg.prompt_tokens, self.rng)
        n_out = sample_tokens(self.cfg.output_tokens, self.rng)
        return RequestSpec(synthetic_prompt(n_in, self.rng), n_in, n_out)


# API → (path, whether the request can force the exact output length)
API_PATHS = {
    "openai-chat": "/v1/chat/completions",
    "openai-completions": "/v1/completions",
    "tgi-generate-stream": "/generate_stream",
}


def request_body(api: str, model: str | None, spec: RequestSpec) -> tuple[str, dict, bool]:
    """(path, JSON body, forced_length) for one streamed request.

    OpenAI-style bodies set vLLM's `ignore_eos` and `min_tokens` so that the output length is
    exactly what was asked: throughput per request is then comparable across runs and engines.
    TGI's native API has no such switch, so its outputs may end early at EOS (not flagged).
    """
    n = spec.output_tokens
    if api == "openai-chat":
        body = {"model": model, "messages": [{"role": "user", "content": spec.prompt}], "max_tokens": n,
                "stream": True, "stream_options": {"include_usage": True}, "ignore_eos": True, "min_tokens": n}
        return API_PATHS[api], body, True
    if api == "openai-completions":
        body = {"model": model, "prompt": spec.prompt, "max_tokens": n, "stream": True,
                "stream_options": {"include_usage": True}, "ignore_eos": True, "min_tokens": n}
        return API_PATHS[api], body, True
    if api == "tgi-generate-stream":
        body = {"inputs": spec.prompt, "parameters": {"max_new_tokens": n, "details": True}}
        return API_PATHS[api], body, False
    raise ValueError(f"unknown api '{api}'")
