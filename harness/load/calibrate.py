"""Prompt calibration: how many of the server's tokens slabench's synthetic words make, measured before the load.

Two streamed probes (one output token each) with the scenario's API and model: every vocabulary word
once, then every word twice. Their `usage.prompt_tokens` difference over the vocabulary's size is the mean
tokens per word that the workload's uniform word draws average to; what the first probe counts beyond
that mean times its words is the fixed overhead (chat template, BOS). Both probes hold each word equally
often, so neither number depends on which words a short sample happened to draw. Plain blocking HTTP,
called by the runner before Locust starts (no gevent, no asyncio).
"""

from __future__ import annotations

import os
import random
import time
from typing import Callable

from harness.backends.probe import http_get
from harness.config import PromptCalibration, Scenario
from harness.config.calibration import MAX_TOKENS_PER_WORD, calibration_wanted
from harness.load.sse import SSEParser
from harness.load.failures import error_message
from harness.load.streams import ACCUMULATORS
from harness.load.workload import WORDS, RequestSpec, request_body

PROBE_TIMEOUT_S = 30.0  # per probe: a prompt of ~200 tokens and one output token, even on 2 CPU threads
PROBE_MAX_BYTES = 1 << 20  # a one-token stream is a few KB


class CalibrationError(Exception):
    """A probe failed or the server's counts make no sense; the message is one line."""


def probe_prompts(seed: str = "slabench-calibration") -> tuple[tuple[str, int], tuple[str, int]]:
    """(short prompt, its words), (long prompt, its words): every vocabulary word once (shuffled), then
    the same followed by every word once more (~140 and ~280 words, a few hundred tokens)."""
    rng = random.Random(seed)
    once = rng.sample(WORDS, len(WORDS))
    twice = once + rng.sample(WORDS, len(WORDS))
    return (" ".join(once), len(once)), (" ".join(twice), len(twice))


def solve(short_words: int, short_tokens: int, long_words: int, long_tokens: int) -> PromptCalibration:
    """The calibration from two probes: tokens per word from their difference, the overhead from the short
    one (rounded; a negative one, from words that merged across a space, counts as none)."""
    if long_words <= short_words:
        raise CalibrationError("the long probe must have more words than the short one")
    tpw = (long_tokens - short_tokens) / (long_words - short_words)
    if not 0 < tpw <= MAX_TOKENS_PER_WORD:
        raise CalibrationError(f"the server counted {short_tokens} and {long_tokens} prompt tokens for {short_words} "
                               f"and {long_words} words: {tpw:.2f} tokens per word is not a tokenizer's count")
    return PromptCalibration(tokens_per_word=round(tpw, 4), template_tokens=max(0, round(short_tokens - tpw * short_words)))


def probe_prompt_tokens(url: str, api: str, model: str | None, prompt: str, headers: dict,
                        timeout_s: float = PROBE_TIMEOUT_S) -> tuple[int, int]:
    """(prompt tokens the server counted, output tokens it generated) for one streamed request of one
    output token, read with the load's own stream accounting. Raises CalibrationError."""
    path, body, forced = request_body(api, model, RequestSpec(prompt, 0, 1))
    status, raw = http_get(url.rstrip("/") + path, timeout_s=timeout_s, headers=headers, json_body=body,
                           max_bytes=PROBE_MAX_BYTES)
    if status != 200:
        why = raw.decode("utf-8", "replace") if status == 0 else f"HTTP {status}: {error_message(raw)}"
        raise CalibrationError(f"the probe request got no stream ({why[:200]})")
    acc = ACCUMULATORS[api]("calibration", 0.0, 1, forced)
    parser = SSEParser()
    acc.feed(parser.feed(raw), 0.0)
    rec = acc.finish(0.0, status)
    if not rec.ok:
        raise CalibrationError(f"the probe stream failed ({rec.error_type}: {rec.error})")
    if rec.prompt_tokens is None:
        raise CalibrationError("the server's stream did not say how many prompt tokens it counted (usage)")
    return rec.prompt_tokens, rec.output_tokens


def calibrate(url: str, api: str, model: str | None, headers: dict, seen: dict,
              timeout_s: float = PROBE_TIMEOUT_S) -> PromptCalibration:
    """Probe the server twice and solve; `seen` gets what the probes saw (for meta.json), also when one
    fails: its `probe_output_tokens` are tokens the server generated outside the load."""
    seen.setdefault("probes", [])
    seen.setdefault("probe_output_tokens", 0)
    for prompt, words in probe_prompts():
        tokens, generated = probe_prompt_tokens(url, api, model, prompt, headers, timeout_s)
        seen["probes"].append({"words": words, "prompt_tokens": tokens})
        seen["probe_output_tokens"] += generated
    (short, long) = seen["probes"]
    return solve(short["words"], short["prompt_tokens"], long["words"], long["prompt_tokens"])


def calibrate_scenario(scn: Scenario, url: str, model: str | None,
                       echo: Callable[[str], None] = print) -> tuple[Scenario, dict]:
    """The scenario with its workload's calibration measured (when `calibrate_prompt_tokens` asks for one)
    and what to keep in meta.json's `prompt_calibration`. A failed probe never stops the run: prompts
    then stay one word per token, and the meta says why."""
    wl = scn.workload
    given = wl.calibrate_prompt_tokens
    out: dict = {"api": scn.load.api, "mode": given if isinstance(given, str) else "given", "status": "off",
                 "tokens_per_word": None, "template_tokens": None, "probe_output_tokens": 0, "reason": None}
    if isinstance(given, PromptCalibration):
        out.update(status="given", **given.model_dump())
        return scn, out
    if not calibration_wanted(given, scn.backend.type):
        out["reason"] = ("calibrate_prompt_tokens: off" if given == "off" else
                         f"auto measures llamacpp and external backends; calibrate_prompt_tokens: on measures "
                         f"this {scn.backend.type} one")
        return scn, out
    if wl.dataset is not None:
        out.update(status="not needed", reason="dataset prompts are sent as they are")
        return scn, out
    key_env = getattr(scn.backend, "api_key_env", None)
    key = os.environ.get(key_env) if key_env else None
    headers = {"Accept": "text/event-stream", "Accept-Encoding": "identity",
               **({"Authorization": f"Bearer {key}"} if key else {})}
    t0 = time.perf_counter()
    try:
        cal = calibrate(url, scn.load.api, model, headers, out, min(PROBE_TIMEOUT_S, scn.load.timeout_s))
    except CalibrationError as exc:
        out.update(status="failed", reason=str(exc), probe_s=time.perf_counter() - t0)
        echo(f"prompt calibration failed: {exc}; prompts stay one word per requested token")
        return scn, out
    out.update(status="measured", probe_s=time.perf_counter() - t0, **cal.model_dump())
    what = "chat template" if scn.load.api == "openai-chat" else "prompt framing"
    echo(f"prompt calibration: {cal.tokens_per_word:.3f} server tokens per word, the {what} adds "
         f"{cal.template_tokens} token{'' if cal.template_tokens == 1 else 's'}")
    workload = wl.model_copy(update={"calibrate_prompt_tokens": cal})
    return scn.model_copy(update={"workload": workload}), out
