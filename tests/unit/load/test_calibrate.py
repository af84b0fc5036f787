"""Prompt calibration: the arithmetic of two probes, the word counts it gives, and when it runs (no server:
the probes over HTTP are in tests/integration/test_llamacpp.py)."""

import random
import statistics
from collections import Counter

import pytest

from harness.config import ConfigError, PromptCalibration, WorkloadConfig, parse_scenario
from harness.config.calibration import calibration_wanted
from harness.load.calibrate import CalibrationError, calibrate_scenario, probe_prompts, solve
from harness.load.workload import WORDS, PromptSource

TEMPLATE = 31  # e.g. SmolLM2's ChatML with its default system prompt


def tokenizer(tokens_of_word, template=TEMPLATE):
    """An additive tokenizer: the template's tokens plus each word's."""
    return lambda text: template + sum(tokens_of_word(w) for w in text.split())


LONG_WORDS_SPLIT = tokenizer(lambda w: 1 + len(w) // 5)  # words of 5 letters or more are two tokens


def test_the_probes_hold_every_vocabulary_word_equally_often():
    (short, n_short), (long, n_long) = probe_prompts()
    assert Counter(short.split()) == Counter(WORDS) and n_short == len(WORDS)
    assert Counter(long.split()) == Counter(WORDS * 2) and n_long == 2 * len(WORDS)
    assert probe_prompts() == ((short, n_short), (long, n_long))  # seeded: every run probes the same text


def test_two_probes_recover_an_additive_tokenizers_mean_and_template_exactly():
    (short, ns), (long, nl) = probe_prompts()
    cal = solve(ns, LONG_WORDS_SPLIT(short), nl, LONG_WORDS_SPLIT(long))
    vocab_mean = statistics.mean(1 + len(w) // 5 for w in WORDS)
    assert cal.tokens_per_word == pytest.approx(vocab_mean, abs=1e-4) and cal.template_tokens == TEMPLATE


@pytest.mark.parametrize("short_tokens, long_tokens", [(100, 100), (100, 90), (10, 10_000)])
def test_counts_no_tokenizer_gives_are_refused_in_one_line(short_tokens, long_tokens):
    with pytest.raises(CalibrationError, match="tokens per word is not a tokenizer's count"):
        solve(139, short_tokens, 278, long_tokens)


def test_a_negative_overhead_counts_as_none():
    assert solve(10, 9, 20, 19).template_tokens == 0


@pytest.mark.parametrize("api_template", [TEMPLATE, 1, 0])
def test_calibrated_prompts_hit_the_requested_length_within_5_pct_on_average(api_template):
    tok = tokenizer(lambda w: 1 + len(w) // 5, api_template)
    (short, ns), (long, nl) = probe_prompts()
    cal = solve(ns, tok(short), nl, tok(long))
    wl = WorkloadConfig.model_validate({"prompt_tokens": {"dist": "uniform", "min": 48, "max": 512},
                                        "calibrate_prompt_tokens": cal.model_dump(), "seed": 5})
    specs = [PromptSource(wl, s).next() for s in range(400)]
    ratios = [tok(s.prompt) / s.prompt_tokens for s in specs]
    assert abs(statistics.mean(ratios) - 1) < 0.05
    # Uncalibrated, the same tokenizer is far off (its words are ~1.3 tokens): the case calibration is for.
    raw = WorkloadConfig.model_validate({"prompt_tokens": {"dist": "uniform", "min": 48, "max": 512}, "seed": 5})
    raw_specs = [PromptSource(raw, s).next() for s in range(400)]
    assert statistics.mean(tok(s.prompt) / s.prompt_tokens for s in raw_specs) > 1.2


def test_a_shared_prefix_is_counted_in_the_calibrated_length():
    cal = PromptCalibration(tokens_per_word=2.0, template_tokens=10)
    wl = WorkloadConfig.model_validate({"prompt_tokens": 100, "shared_prefix_tokens": 40,
                                        "calibrate_prompt_tokens": cal.model_dump()})
    spec = PromptSource(wl).next()
    # 140 tokens asked: 10 template + 2 x 65 words, of which the prefix's 20 words make its 40 tokens.
    assert spec.prompt_tokens == 140 and len(spec.prompt.split()) == 65
    assert spec.prompt.split()[:20] == PromptSource(wl, 3).next().prompt.split()[:20]


def test_uncalibrated_prompts_are_one_word_per_token_as_before():
    wl = WorkloadConfig.model_validate({"prompt_tokens": 37, "calibrate_prompt_tokens": "on"})
    spec = PromptSource(wl).next()
    assert len(spec.prompt.split()) == 37 and spec.synthetic  # `on` is measured by the runner, not here


def test_words_for_never_gives_an_empty_prompt():
    assert PromptCalibration(tokens_per_word=1.0, template_tokens=50).words_for(10) == 1


@pytest.mark.parametrize("mode, backend, wanted", [
    ("auto", "llamacpp", True), ("auto", "external", True), ("auto", "sim", False), ("auto", "vllm", False),
    ("on", "sim", True), ("off", "llamacpp", False),
    (PromptCalibration(tokens_per_word=1.1, template_tokens=3), "llamacpp", False),
])
def test_auto_probes_only_where_the_tokenizer_is_unknown(mode, backend, wanted):
    assert calibration_wanted(mode, backend) is wanted


@pytest.mark.parametrize("yaml_value, read", [(True, "on"), (False, "off"), ("auto", "auto")])
def test_yaml_on_and_off_are_read_as_the_modes(yaml_value, read):
    assert WorkloadConfig.model_validate({"calibrate_prompt_tokens": yaml_value}).calibrate_prompt_tokens == read


@pytest.mark.parametrize("value, message", [
    ("sometimes", "must be auto, on, off or {tokens_per_word, template_tokens}"),
    ({"tokens_per_word": 0}, "tokens_per_word: Input should be greater than 0"),
    ({"tokens_per_word": 1.0, "template": 3}, "template: Extra inputs are not permitted"),
])
def test_a_bad_calibration_is_one_line_naming_the_key(value, message):
    with pytest.raises(ConfigError) as e:
        parse_scenario({"name": "x", "workload": {"calibrate_prompt_tokens": value}})
    assert "workload.calibrate_prompt_tokens" in str(e.value) and message in str(e.value)
    assert "\n" not in str(e.value)


def _scn(backend, **workload):
    return parse_scenario({"name": "x", "backend": backend, "workload": workload})


def test_no_probe_where_none_is_wanted_and_a_given_calibration_is_kept():
    unreachable = "http://127.0.0.1:9"  # any request here would fail: none may be sent
    scn, meta = calibrate_scenario(_scn({"type": "sim"}), unreachable, "m", echo=lambda s: None)
    assert meta["status"] == "off" and "calibrate_prompt_tokens: on" in meta["reason"]
    scn, meta = calibrate_scenario(_scn({"type": "external", "url": unreachable}, calibrate_prompt_tokens="off"),
                                   unreachable, "m", echo=lambda s: None)
    assert meta["status"] == "off"
    given = {"tokens_per_word": 1.25, "template_tokens": 7}
    scn, meta = calibrate_scenario(_scn({"type": "external", "url": unreachable}, calibrate_prompt_tokens=given),
                                   unreachable, "m", echo=lambda s: None)
    assert meta["status"] == "given" and meta["template_tokens"] == 7
    assert scn.workload.calibrate_prompt_tokens == PromptCalibration(**given)


def test_a_failed_probe_is_a_note_not_a_stop(tmp_path):
    lines = []
    scn = _scn({"type": "external", "url": "http://127.0.0.1:9"})
    out, meta = calibrate_scenario(scn, "http://127.0.0.1:9", "m", echo=lines.append)
    assert out is scn and meta["status"] == "failed" and meta["reason"].startswith("the probe request got no stream")
    assert lines and lines[0].startswith("prompt calibration failed:") and "one word per requested token" in lines[0]


def test_random_word_draws_average_to_the_vocabulary_mean():
    # Why probing every word once is enough: the workload draws words uniformly from the same vocabulary.
    rng = random.Random(1)
    draws = rng.choices(WORDS, k=50_000)
    assert statistics.mean(1 + len(w) // 5 for w in draws) == pytest.approx(
        statistics.mean(1 + len(w) // 5 for w in WORDS), rel=0.01)
