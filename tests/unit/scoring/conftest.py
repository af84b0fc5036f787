"""Builders for scoring tests: hand-made records and runs with known answers (as fixtures)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.records import RequestRecord, RunResult


def _make_rec(i: int = 0, sent_s: float = 0.0, ttft_s: float | None = 0.1, itl_s: list[float] | None = None,
             ok: bool = True, output_tokens: int | None = None, prompt_tokens: int | None = 10,
             error_type: str | None = None, error: str | None = None, **kw) -> RequestRecord:
    """An ok request whose e2e = ttft + sum(itl) and output tokens = len(itl) + 1, or an error."""
    itl_s = list(itl_s if itl_s is not None else [0.01, 0.01])
    if not ok:
        return RequestRecord(request_id=str(i), api="openai-chat", sent_s=sent_s, end_s=sent_s + 0.05,
                             status=kw.pop("status", 503), ok=False, error_type=error_type or "overloaded_503",
                             error=error or "overloaded", prompt_tokens=prompt_tokens, **kw)
    e2e = ttft_s + sum(itl_s)
    return RequestRecord(request_id=str(i), api="openai-chat", sent_s=sent_s, end_s=sent_s + e2e, status=200,
                         ok=True, ttft_s=ttft_s, e2e_s=e2e, first_token_s=sent_s + ttft_s, itl_s=itl_s,
                         output_tokens=output_tokens if output_tokens is not None else len(itl_s) + 1,
                         prompt_tokens=prompt_tokens, **kw)


def _policy(*rows: dict, name: str = "t") -> dict:
    return {"name": name, "rows": list(rows)}


def _make_run(records=(), scenario: dict | None = None, meta: dict | None = None, gpu=(), server=()) -> RunResult:
    return RunResult(run_dir=Path("/nonexistent"), scenario=scenario if scenario is not None else {"name": "t"},
                     records=list(records), gpu_samples=list(gpu), server_samples=list(server),
                     meta=meta if meta is not None else {})



@pytest.fixture
def make_rec():
    return _make_rec


@pytest.fixture
def make_run():
    return _make_run


@pytest.fixture
def policy():
    return _policy
