"""Config: `workload.calibrate_prompt_tokens`, how synthetic prompts meet the server's tokenizer.

`auto` (the default) measures it before the load on the backends whose tokenizer slabench does not know
(llamacpp, external), `on` on every backend, `off` never (one word per requested token); or the measured
numbers themselves, `{tokens_per_word, template_tokens}` (as a run's summary reports them), to reuse them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CalibrationMode = Literal["auto", "on", "off"]
# Backends `auto` calibrates: their tokenizer is unknown to slabench. The sim counts one token per word
# (its chat template's tokens are its own, documented in harness/sim/textgen.py); vLLM and TGI take `on`.
AUTO_CALIBRATED = ("llamacpp", "external")
# A vocabulary word of slabench's prompts is at most 8 letters: even byte-level tokens stay below 16.
MAX_TOKENS_PER_WORD = 16.0
MAX_TEMPLATE_TOKENS = 100_000  # a chat template with a long default system prompt is a few hundred


class PromptCalibration(BaseModel):
    """Server tokens per synthetic prompt: `template_tokens` + `tokens_per_word` x words."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    tokens_per_word: float = Field(gt=0, le=MAX_TOKENS_PER_WORD)
    template_tokens: int = Field(0, ge=0, le=MAX_TEMPLATE_TOKENS)  # chat template, BOS: fixed per request

    def words_for(self, tokens: int, with_template: bool = True) -> int:
        """Words that make `tokens` server tokens (at least one), the fixed overhead counted in or not."""
        left = tokens - (self.template_tokens if with_template else 0)
        return max(1, round(left / self.tokens_per_word))


def calibration_wanted(mode: "CalibrationMode | PromptCalibration", backend_type: str) -> bool:
    """Whether a probe should measure the calibration before the load (a given one is used as it is)."""
    if isinstance(mode, PromptCalibration):
        return False
    return mode == "on" or (mode == "auto" and backend_type in AUTO_CALIBRATED)
