"""Trace prompts: shared leading hash ids give exactly that many shared leading blocks of text and
nothing more; sizes follow the entry (and a calibration); the text is seeded and single-token words."""

import random

import pytest
from hypothesis import given, settings, strategies as st

from harness.config import PromptCalibration, TraceConfig, WorkloadConfig
from harness.load.trace import TraceEntry
from harness.load.traceprompts import TracePrompts, seeded_words
from harness.load.workload import WORDS, request_body
from harness.sim.textgen import (CHAT_TOKENS_PER_MESSAGE, CHAT_TOKENS_REPLY_PRIMER, prompt_tokens_chat,
                                 prompt_tokens_text)


def prompts(block_tokens=8, seed=0, calibration=None):
    trace = TraceConfig(path="t.jsonl", format="mooncake", block_tokens=block_tokens)
    kw = {"calibrate_prompt_tokens": calibration} if calibration else {}
    return TracePrompts(WorkloadConfig(trace=trace, seed=seed, **kw))


def entry(ids, n_in, row=1, n_out=5):
    return TraceEntry(0.0, n_in, n_out, tuple(ids) if ids else None, None, None, row)


def shared_words(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a.split(" "), b.split(" ")):
        if x != y:
            break
        n += 1
    return n


def shared_ids(a, b) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


ids = st.lists(st.integers(0, 50), max_size=8)


@settings(max_examples=300, deadline=None)
@given(a=ids, b=ids, extra_a=st.integers(0, 20), extra_b=st.integers(0, 20), seed=st.integers(0, 2**32),
       block=st.sampled_from([4, 16, 32]))
def test_shared_leading_ids_are_shared_leading_blocks_and_nothing_after(a, b, extra_a, extra_b, seed, block):
    tp = prompts(block, seed)
    pa = tp.spec(entry(a, len(a) * block + extra_a, row=1)).prompt
    pb = tp.spec(entry(b, len(b) * block + extra_b, row=2)).prompt
    k = shared_ids(a, b)
    n = shared_words(pa, pb)
    # Exactly k whole blocks: the words after them are independent draws, equal by chance only
    # (about 1 in 134 for one more word), never a whole further block.
    assert k * block <= n < k * block + block or pa == pb == "" or (a == b and extra_a == extra_b == 0)
    if k < min(len(a), len(b)):  # both go on with blocks of their own: those differ
        wa, wb = pa.split(" "), pb.split(" ")
        assert wa[k * block:(k + 1) * block] != wb[k * block:(k + 1) * block]


def test_the_shared_prefix_is_exact_word_for_word_in_nearly_every_pair():
    # The next word after a shared prefix matches by chance only: measured over many pairs.
    rng = random.Random(5)
    tp = prompts(16)
    exact = 0
    for i in range(2000):
        common = [rng.randrange(10**6) for _ in range(rng.randint(0, 3))]
        a = common + [10**6 + 2 * i] * rng.randint(0, 1)
        b = common + [10**6 + 2 * i + 1] * rng.randint(0, 1)
        pa = tp.spec(entry(a, 16 * len(a) + 3, row=2 * i)).prompt
        pb = tp.spec(entry(b, 16 * len(b) + 3, row=2 * i + 1)).prompt
        exact += shared_words(pa, pb) == 16 * len(common)
    assert exact / 2000 > 0.98  # expected 1 - 1/134


def test_requests_sharing_no_ids_share_no_block_and_no_ids_means_unique_text():
    tp = prompts(32)
    assert shared_words(tp.spec(entry([1, 2], 64)).prompt, tp.spec(entry([3, 2], 64)).prompt) < 32
    p1, p2 = tp.spec(entry(None, 200, row=7)).prompt, tp.spec(entry(None, 200, row=8)).prompt
    assert shared_words(p1, p2) < 32 and tp.spec(entry(None, 200, row=7)).prompt == p1


def test_word_counts_follow_the_entry_with_a_partial_last_block():
    tp = prompts(512)
    full = tp.spec(entry([0, 1], 1024)).prompt.split(" ")
    assert len(full) == 1024
    part = tp.spec(entry([0, 1], 700, row=2)).prompt.split(" ")  # Mooncake: ceil(700 / 512) = 2 ids
    assert len(part) == 700 and part == full[:700]  # the last block cut where the prompt ends
    longer = tp.spec(entry([0, 1], 1100, row=3)).prompt.split(" ")
    assert len(longer) == 1100 and longer[:1024] == full  # then words of its own
    spec = tp.spec(entry([0], 300, n_out=42))
    assert (spec.prompt_tokens, spec.output_tokens, spec.synthetic) == (300, 42, True)


def test_words_are_single_token_vocabulary_and_seeded():
    a = prompts(16, seed=1).spec(entry([3, 4], 40))
    assert set(a.prompt.split(" ")) <= set(WORDS) and "  " not in a.prompt and a.prompt == a.prompt.strip()
    assert prompts(16, seed=1).spec(entry([3, 4], 40)) == a
    assert shared_words(prompts(16, seed=2).spec(entry([3, 4], 40)).prompt, a.prompt) < 16
    assert seeded_words("k", 10).split(" ") == seeded_words("k", 30).split(" ")[:10]  # prefix-stable draws


def test_calibration_scales_blocks_and_prompts_like_prompt_source():
    cal = PromptCalibration(tokens_per_word=1.25, template_tokens=10)
    tp = prompts(100, calibration=cal)
    assert tp.block_words == 80  # 100 tokens / 1.25
    pa = tp.spec(entry([5, 6, 7], 310, row=1)).prompt
    pb = tp.spec(entry([5, 6, 8], 310, row=2)).prompt
    assert len(pa.split(" ")) == cal.words_for(310) == 240  # (310 - 10 template) / 1.25
    assert 160 <= shared_words(pa, pb) < 240  # two shared blocks of 80 words


def test_the_sim_counts_one_token_per_word_and_the_chat_template_the_same_on_every_request():
    tp = prompts(16)
    a, b = tp.spec(entry([1, 2, 3], 50)), tp.spec(entry([1, 2, 4], 50, row=2))
    assert prompt_tokens_text(a.prompt) == 50
    template = CHAT_TOKENS_PER_MESSAGE + CHAT_TOKENS_REPLY_PRIMER
    path, body, forced = request_body("openai-chat", "m", a)
    assert body["messages"] == [{"role": "user", "content": a.prompt}] and body["max_tokens"] == 5 and forced
    assert prompt_tokens_chat(body["messages"]) == 50 + template
    assert request_body("openai-completions", "m", b)[1]["prompt"] == b.prompt


def test_a_recorded_prompt_is_sent_as_it_is():
    spec = prompts().spec(TraceEntry(0.0, 3, 4, None, None, "hello there world", 1))
    assert (spec.prompt, spec.prompt_tokens, spec.output_tokens, spec.synthetic) == ("hello there world", 3, 4, False)


@pytest.mark.parametrize("fmt", ["azure-csv", "burstgpt-csv", "slabench"])
def test_formats_without_hash_ids_get_unique_prompts_of_the_entry_length(fmt):
    tp = TracePrompts(WorkloadConfig(trace=TraceConfig(path="t", format=fmt)))
    assert tp.block_tokens == 0
    assert len(tp.spec(entry(None, 123)).prompt.split(" ")) == 123
