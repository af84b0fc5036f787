"""One-line config errors: pydantic ValidationErrors and YAML problems → `FILE: key.path: problem (fix)`.

Used by harness.config (scenarios, SLA policies) and by every other file format the harness reads.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError


class ConfigError(Exception):
    """A bad scenario, policy or flag: the message is one line naming the problem and the fix."""


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names valid at `loc` inside `model` (for 'did you mean' hints)."""
    cur: Any = [model]
    for part in loc[:-1]:
        if isinstance(part, int) or not cur:
            continue
        fld = next((m.model_fields[part] for m in cur if part in m.model_fields), None)
        if fld is None:
            return []
        ann = fld.annotation
        models = [c for cand in (ann, *getattr(ann, "__args__", ()))
                  for c in (cand, *getattr(cand, "__args__", ()))
                  if isinstance(c, type) and issubclass(c, BaseModel)]
        cur = models
    names: list[str] = []
    for m in cur if isinstance(cur, list) else [cur]:
        names += [n for n in getattr(m, "model_fields", {}) if n not in names]
    return names


_UNION_BRANCHES = {"sim", "external", "vllm", "tgi", "str", "SlaPolicy"}


def format_validation_error(source: str, err: ValidationError, model: type[BaseModel]) -> str:
    """First pydantic error as one line: `FILE: key.path: problem (fix)`."""
    errors = err.errors()
    # For `str | Model` unions, the branch that failed on type alone is the less useful message.
    # A misspelled key usually also causes a "field required": the unknown key is the better hint.
    e = next((x for x in errors if x["type"] == "extra_forbidden"),
             next((x for x in errors if x["type"] != "string_type"), errors[0]))
    loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p in _UNION_BRANCHES))
    path = ".".join(str(p) for p in loc) or "(top level)"
    if e["type"] == "extra_forbidden":
        key = str(loc[-1])
        hint = difflib.get_close_matches(key, _fields_at(model, loc), n=1)
        fix = f"did you mean '{hint[0]}'?" if hint else "remove it"
        return f"{source}: unknown key '{path}' ({fix})"
    if e["type"] == "union_tag_invalid":
        ctx = e.get("ctx", {})
        return f"{source}: {path}.type: unknown backend type {ctx.get('tag')!r} (use one of {ctx.get('expected_tags')})"
    msg = e["msg"].removeprefix("Value error, ")
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 and e is errors[0] else ""
    return f"{source}: {path}: {msg}{more}"


def read_yaml(path: Path) -> Any:
    if not path.exists():
        raise ConfigError(f"{path}: file not found (check the path)")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
