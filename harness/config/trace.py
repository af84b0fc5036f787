"""Config: `workload.trace`, a recorded production trace replayed by `load.mode: replay`.

The trace file says when each request goes out and how long its prompt and output are; the reader
(harness/load/trace.py) streams it, and harness/load/traceprompts.py turns each row into a prompt.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

TraceFormat = Literal["mooncake", "azure-csv", "burstgpt-csv", "slabench"]
TRACE_FORMATS: tuple[str, ...] = TraceFormat.__args__  # type: ignore[attr-defined]

# Tokens per hash id where the format has hash ids and the scenario does not say. Mooncake's FAST'25
# release (kvcache-ai/Mooncake, FAST25-release/traces) hashes blocks of 512 tokens: its rows carry
# ceil(input_length / 512) ids. Alibaba's Bailian traces in the same JSONL layout use 16-token blocks:
# replay them with `block_tokens: 16`.
DEFAULT_BLOCK_TOKENS = {"mooncake": 512}
# Bounds no real replay exceeds: a month-long trace is ~2.6e6 s, a 1000x slow-down or speed-up is far
# past any test. Past them a value is a typo that would hang the run (a replay that never starts).
MAX_TRACE_OFFSET_S = 1e9
MIN_TIME_SCALE, MAX_TIME_SCALE = 1e-6, 1e6
MAX_BLOCK_TOKENS = 1_000_000  # one block per prompt at most (MAX_TOKENS)


class TraceConfig(BaseModel):
    """A trace to replay: its file, its format, and how much of it to send how fast.

    `time_scale` multiplies the recorded offsets (0.5 sends the trace twice as fast); `start_s` skips the
    rows recorded before that offset and starts the replay there; `max_requests` stops after that many
    sent; `sample_sessions` keeps that fraction of sessions, whole (chosen by a seeded hash of each
    session's key, so the workload seed picks which); `block_tokens` is the tokens each hash id stands for.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    path: str = Field(min_length=1)
    format: TraceFormat
    time_scale: float = Field(1.0, ge=MIN_TIME_SCALE, le=MAX_TIME_SCALE)
    start_s: float = Field(0.0, ge=0, le=MAX_TRACE_OFFSET_S)
    max_requests: int | None = Field(None, ge=1, le=1_000_000_000)
    sample_sessions: float | None = Field(None, gt=0, le=1)
    block_tokens: int | None = Field(None, ge=1, le=MAX_BLOCK_TOKENS)

    @model_validator(mode="after")
    def _check(self) -> "TraceConfig":
        if self.block_tokens is not None and self.format not in DEFAULT_BLOCK_TOKENS:
            raise ValueError(f"block_tokens applies to traces with hash_ids (format: mooncake); "
                             f"format {self.format} has none: remove block_tokens")
        return self

    @property
    def tokens_per_block(self) -> int | None:
        """Tokens each hash id stands for (the format's default when unset); None: no hash ids."""
        return self.block_tokens if self.block_tokens is not None else DEFAULT_BLOCK_TOKENS.get(self.format)
