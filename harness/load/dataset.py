"""Dataset seam: prompt files (JSONL, ShareGPT JSON) → DatasetItems, any bad input a one-line ConfigError.

Read from a regular file of bounded size as UTF-8; JSONL is streamed line by line and each problem
names `FILE:LINE`, ShareGPT problems name the entry. NaN/Infinity and non-object lines are refused.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from harness.config import MAX_TOKENS, ConfigError, DatasetConfig
from harness.config.errors import clip, decode_utf8, has_surrogate, open_regular

# The ShareGPT V3 file vLLM's benchmark uses is 0.67 GB; 1 GiB admits it and stops a wrong path (a
# disk image, a log) before it is read. A JSONL line with a 1M-token prompt is about 6 MB.
MAX_DATASET_BYTES = 1 << 30
MAX_LINE_BYTES = 16 << 20


@dataclass(frozen=True)
class DatasetItem:
    prompt: str
    output_tokens: int | None  # the dataset's expected length, when it has one


class _BadNumber(ValueError):
    pass


def _no_constant(name: str) -> Any:
    # json accepts NaN / Infinity / -Infinity by default; they are not JSON and never a valid length.
    raise _BadNumber(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    x = float(text)
    if x in (float("inf"), float("-inf")):  # 1e400 parses to infinity
        raise _BadNumber(f"{clip(text, 30)} is too large for a number")
    return x


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)


def _kind(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(v), "a number")


def _json_problem(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply to read: a line holds one flat object"
    if isinstance(exc, _BadNumber):
        return f"not valid JSON ({exc}: use a finite number or null)"
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({exc.msg} at column {exc.colno})"
    return f"not valid JSON ({clip(exc, 120)})"


def _whole_tokens(v: Any) -> int | None:
    """A token count from JSON (an integer, or a float with no fraction) within [1, MAX_TOKENS]; else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if isinstance(v, float) and not v.is_integer():
        return None
    return int(v) if 1 <= v <= MAX_TOKENS else None


def _jsonl_item(obj: Any, cfg: DatasetConfig, where: str) -> DatasetItem:
    field = cfg.prompt_field
    if not isinstance(obj, dict):
        raise ConfigError(f"{where}: each line must be a JSON object like {{\"{clip(field)}\": \"...\"}}, "
                          f"got {_kind(obj)}")
    if field not in obj:
        raise ConfigError(f"{where}: no '{clip(field)}' text (set workload.dataset.prompt_field to the key "
                          "holding the prompt)")
    prompt = obj[field]
    if not isinstance(prompt, str):
        raise ConfigError(f"{where}: '{clip(field)}' must be a string, got {_kind(prompt)}")
    if not prompt.strip():
        raise ConfigError(f"{where}: '{clip(field)}' is empty: give a prompt or remove the line")
    if has_surrogate(prompt):
        raise ConfigError(f"{where}: '{clip(field)}' has a \\uD800-\\uDFFF escape (half a character): "
                          "write the character itself")
    out = obj.get(cfg.output_tokens_field) if cfg.output_tokens_field else None
    n_out = None if out is None else _whole_tokens(out)
    if out is not None and n_out is None:
        raise ConfigError(f"{where}: '{clip(cfg.output_tokens_field)}' must be a whole number of tokens from 1 "
                          f"to {MAX_TOKENS:,} (or null), got {clip(json.dumps(out), 40)}")
    return DatasetItem(prompt, n_out)


def _read_jsonl(fh: BinaryIO, path: Path, cfg: DatasetConfig) -> list[DatasetItem]:
    items: list[DatasetItem] = []
    n = 0
    while True:
        raw = fh.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return items
        n += 1
        if len(raw) > MAX_LINE_BYTES:
            raise ConfigError(f"{path}:{n}: line longer than {MAX_LINE_BYTES >> 20} MB: one prompt per line "
                              "(is this a JSONL file? ShareGPT files need format: sharegpt)")
        line = decode_utf8(raw, str(path), line_offset=n - 1)
        if not line.strip():
            continue
        try:
            obj = _loads(line)
        except (ValueError, RecursionError) as exc:
            raise ConfigError(f"{path}:{n}: {_json_problem(exc)}") from None
        items.append(_jsonl_item(obj, cfg, f"{path}:{n}"))


def _turn(conv: list, k: int, where: str) -> dict:
    t = conv[k]
    if not isinstance(t, dict):
        raise ConfigError(f"{where}: turn {k + 1} must be an object like {{\"from\": \"human\", \"value\": \"...\"}}, "
                          f"got {_kind(t)}")
    for key in ("from", "value"):
        if key in t and not isinstance(t[key], str):
            raise ConfigError(f"{where}: turn {k + 1} '{key}' must be a string, got {_kind(t[key])}")
        if key in t and has_surrogate(t[key]):
            raise ConfigError(f"{where}: turn {k + 1} '{key}' has a \\uD800-\\uDFFF escape (half a character): "
                              "write the character itself")
    return t


def _read_sharegpt(fh: BinaryIO, path: Path) -> list[DatasetItem]:
    data = fh.read(MAX_DATASET_BYTES + 1)
    if len(data) > MAX_DATASET_BYTES:
        raise ConfigError(f"{path}: over the {MAX_DATASET_BYTES / 1e9:.2f} GB limit for a dataset file: "
                          "use a sample of it")
    text = decode_utf8(data, str(path))
    try:
        convs = _loads(text)
    except (ValueError, RecursionError) as exc:
        hint = ": is it JSONL? set workload.dataset.format: jsonl" if "Extra data" in str(exc) else ""
        line = f":{exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise ConfigError(f"{path}{line}: {_json_problem(exc)}{hint}") from None
    if not isinstance(convs, list):
        raise ConfigError(f"{path}: a ShareGPT file is a JSON list of {{\"conversations\": [...]}} objects, "
                          f"got {_kind(convs)}")
    items: list[DatasetItem] = []
    for i, conv in enumerate(convs, 1):
        where = f"{path}: entry {i}"
        if not isinstance(conv, dict):
            raise ConfigError(f"{where}: must be an object with a 'conversations' list, got {_kind(conv)}")
        turns = conv.get("conversations")
        if not isinstance(turns, list):
            raise ConfigError(f"{where}: 'conversations' must be a list of {{\"from\", \"value\"}} turns, "
                              f"got {_kind(turns) if 'conversations' in conv else 'nothing'}")
        if len(turns) < 2:
            continue  # no recorded reply: skipped, as vLLM's benchmark does
        first, reply = _turn(turns, 0, where), _turn(turns, 1, where)
        value = first.get("value")
        if first.get("from") == "human" and isinstance(value, str) and value.strip():
            # Output length: the recorded answer's words (a word is about a token; vLLM's
            # benchmark uses its tokenizer here, which we do not have for every model).
            out = len(str(reply.get("value", "")).split()) or None
            items.append(DatasetItem(value, min(out, MAX_TOKENS) if out else None))
    return items


def load_dataset(cfg: DatasetConfig) -> list[DatasetItem]:
    """Read a JSONL or ShareGPT file; any problem is a one-line ConfigError naming file and line."""
    path = Path(cfg.path)
    if "\0" in cfg.path or not os.path.lexists(path):
        raise ConfigError(f"workload.dataset.path: {clip(path, 200)} not found (give a path relative to the "
                          "scenario file)")
    with open_regular(path, "dataset file") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > MAX_DATASET_BYTES:
            raise ConfigError(f"{path}: {size / 1e9:.2f} GB, over the {MAX_DATASET_BYTES / 1e9:.2f} GB limit for a "
                              "dataset file: use a sample of it")
        items = _read_jsonl(fh, path, cfg) if cfg.format == "jsonl" else _read_sharegpt(fh, path)
    if not items:
        raise ConfigError(f"{path}: no usable prompts in this {cfg.format} file")
    return items
