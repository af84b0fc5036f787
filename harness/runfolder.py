"""Run folder reading: what of each saved file is usable (run folder → RunResult, records seam).

Any file may be missing, corrupt or mutated: what can be read is used, each problem is one line in
RunResult.reader_notes, and what leaves the run unmeasured is a reason in RunResult.reader_problems
(summary validity). Only a path that is no run folder at all raises RunFolderError (one line).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

from harness.config.errors import ConfigError, parse_yaml
from harness.records import (
    GPU_FILE, MAX_ABS, META_FILE, REQUESTS_FILE, SCENARIO_FILE, SERVER_FILE, GpuSample, RunResult, ServerSample,
    iter_records,
)

RUN_FILES = (SCENARIO_FILE, META_FILE, REQUESTS_FILE)
BASELINE_FILE = "baseline_summary.json"  # harness.scoring.regression.BASELINE_FILE (not imported: no cycle)


class RunFolderError(ConfigError):
    """The path is not a readable slabench run folder: one line naming it and the fix (CLI exit 2)."""


class LineSkips:
    """Lines (or rows) of one run-folder file that were skipped: how many, and the first one's reason."""

    def __init__(self, name: str, unit: str = "line"):
        self.name, self.unit = name, unit
        self.count = 0
        self.first: tuple[int, str] | None = None
        self.unusable_why: str | None = None

    def add(self, line_no: int, why: str) -> None:
        self.count += 1
        if self.first is None or line_no < self.first[0]:
            self.first = (line_no, why)

    def unusable(self, why: str) -> None:
        self.unusable_why = why

    def note(self) -> str | None:
        """'requests.jsonl: 3 lines skipped (line 17: 'ttft_s' is not a number)', or None."""
        if self.unusable_why:
            return f"{self.name}: {self.unusable_why}: file ignored"
        if not self.count or self.first is None:
            return None
        s = "" if self.count == 1 else "s"
        return f"{self.name}: {self.count} {self.unit}{s} skipped (line {self.first[0]}: {self.first[1]})"


def _read_text(path: Path) -> tuple[str | None, str | None]:
    """(text, None) or (None, why it cannot be read)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or type(exc).__name__})"
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text (byte {exc.start})"


def _is_num(v: Any) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def _kind_ok(v: Any, kind: str) -> bool:
    if v is None:
        return True  # null reads as absent everywhere
    return {"num": _is_num, "int": lambda x: _is_num(x) and float(x).is_integer(), "str": lambda x: isinstance(x, str),
            "bool": lambda x: isinstance(x, bool), "dict": lambda x: isinstance(x, dict),
            "list": lambda x: isinstance(x, list), "cmd": lambda x: isinstance(x, (list, str))}[kind](v)


# Keys the scoring and report code reads, with the type it expects. A value of another type is
# dropped with a note; where it decides whether the run is valid, it is also a validity reason.
META_KEYS = {"schema_version": "int", "slabench_version": "str", "scenario_name": "str", "scenario_path": "str",
             "started_utc": "str", "finished_utc": "str", "planned_duration_s": "num", "interrupted": "bool",
             "load": "dict", "host": "dict", "notes": "list", "backend": "dict", "telemetry": "dict", "error": "str",
             "load_start_s": "num", "load_end_s": "num", "load_start_unix_s": "num", "load_outcome": "str",
             "open_loop": "dict", "baseline": "dict", "offered_rate_rps": "num", "invalid_reasons": "list"}
META_NESTED = {"load": {"mode": "str", "users": "int", "offered_rate_rps": "num", "api": "str"},
               "open_loop": {"delayed_by_cap": "int"}, "baseline": {"tolerance_pct": "num"},
               "backend": {"command": "cmd", "gpu": "str", "gpu_count": "int", "url": "str", "type": "str",
                           "simulated": "bool"}}
META_DECIDES_VALIDITY = ("interrupted", "load_outcome", "invalid_reasons")
SCENARIO_KEYS = {"name": "str", "load": "dict", "backend": "dict", "cost": "dict"}
SCENARIO_NESTED = {"load": {"warmup_s": "num", "cooldown_s": "num", "users": "int"},
                   "backend": {"gpu": "str", "tensor_parallel_size": "int"},
                   "cost": {"gpu_price_usd_per_hour": "num", "gpu_count": "int", "gpu": "str"}}
SCENARIO_DECIDES_VALIDITY = ("load.warmup_s", "load.cooldown_s")  # they set the scored window


def _sanitize(obj: dict, keys: dict, nested: dict, name: str, notes: list[str]) -> list[str]:
    """Drop keys of the wrong type (in place); returns the dotted names dropped, each noted."""
    dropped = []
    for key, kind in keys.items():
        if key in obj and not _kind_ok(obj[key], kind):
            dropped.append(key)
            obj.pop(key)
    for key, sub in nested.items():
        inner = obj.get(key)
        if isinstance(inner, dict):
            inner = obj[key] = dict(inner)
            for k, kind in sub.items():
                if k in inner and not _kind_ok(inner[k], kind):
                    dropped.append(f"{key}.{k}")
                    inner.pop(k)
    if dropped:
        keys = ", ".join(f"'{k}'" for k in dropped)
        notes.append(f"{name}: {keys} {'has' if len(dropped) == 1 else 'have'} the wrong type: ignored")
    return dropped


def read_meta(d: Path, notes: list[str], problems: list[str]) -> dict:
    """meta.json as a dict of usable keys ({} when missing or unreadable, which is noted)."""
    path = d / META_FILE
    if not path.exists():
        notes.append(f"{META_FILE} is missing: the load window is taken from the records")
        return {}
    text, why = _read_text(path)
    if text is not None:
        try:
            meta = json.loads(text)
            why = None if isinstance(meta, dict) else f"holds a JSON {type(meta).__name__}, not an object"
        except (ValueError, RecursionError):
            why = "not valid JSON"
    if why:
        notes.append(f"{META_FILE}: {why}: ignored")
        problems.append(f"{META_FILE} is unreadable ({why}): whether the load completed is unknown")
        return {}
    dropped = _sanitize(meta, META_KEYS, META_NESTED, META_FILE, notes)
    if isinstance(meta.get("notes"), list):
        meta["notes"] = [str(n) for n in meta["notes"]]
    if isinstance(meta.get("invalid_reasons"), list):
        meta["invalid_reasons"] = [str(n) for n in meta["invalid_reasons"]]
    problems += [f"{META_FILE}: '{k}' has the wrong type: whether the load completed is unknown"
                 for k in dropped if k in META_DECIDES_VALIDITY]
    return meta


def read_scenario(d: Path, notes: list[str], problems: list[str]) -> dict:
    """scenario.yaml as a dict of usable keys ({} when missing or unreadable: a validity reason,
    since the SLA policy and the scored window are then unknown)."""
    from harness.scoring.sla import resolve_policy  # local: scoring imports records, which imports this lazily

    path = d / SCENARIO_FILE
    if not path.exists():
        problems.append(f"{SCENARIO_FILE} is missing: the SLA policy and the scored window are unknown")
        return {}
    text, why = _read_text(path)
    if text is not None:
        try:  # the config reader's bounded parse: no alias bombs, no unbounded nesting
            scen = parse_yaml(text, SCENARIO_FILE)
            why = None if isinstance(scen, dict) else f"holds a YAML {type(scen).__name__}, not a scenario mapping"
        except ConfigError as exc:  # "scenario.yaml:2: not valid YAML (...)" → "line 2: not valid YAML (...)"
            why = re.sub(r"^(\d+):\s*", r"line \1: ", str(exc).removeprefix(SCENARIO_FILE + ":").strip())
    if why:
        notes.append(f"{SCENARIO_FILE}: {why}: ignored")
        problems.append(f"{SCENARIO_FILE} is unreadable ({why}): the SLA policy and the scored window are unknown")
        return {}
    dropped = _sanitize(scen, SCENARIO_KEYS, SCENARIO_NESTED, SCENARIO_FILE, notes)
    for k in dropped:
        if k in SCENARIO_DECIDES_VALIDITY or k == "load":
            problems.append(f"{SCENARIO_FILE}: '{k}' has the wrong type: the scored window is unknown")
    policy, policy_notes = resolve_policy(scen["sla"]) if scen.get("sla") is not None else ({}, [])
    if policy is None:
        problems.append(f"{SCENARIO_FILE}: {policy_notes[0]}")
    return scen


def read_csv(path: Path | str, cls: type, skips: Any = None) -> list[Any]:
    """Read a CSV written by `write_csv` back into dataclass rows (missing file → []).

    A row that cannot be converted is skipped and reported to `skips.add(line_no, why)`; a file whose
    header lacks a required column gives [] (`skips.unusable(why)`). An empty cell or NaN in an
    optional number reads as None (not recorded); other numbers must be finite.
    """
    p = Path(path)
    if not p.exists():
        return []
    fields = {f.name: f for f in dataclasses.fields(cls)}
    required = [k for k, f in fields.items() if f.default is dataclasses.MISSING]
    out = []
    with open(p, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.DictReader(fh)
        try:
            header = reader.fieldnames or []
            missing = [k for k in required if k not in header]
            if missing:
                if skips is not None:
                    skips.unusable(f"no '{missing[0]}' column in its header" if header else "empty, no header")
                return []
            for row in reader:
                try:
                    out.append(cls(**{k: _csv_value(k, str(fields[k].type), v) for k, v in row.items() if k in fields}))
                except ValueError as exc:
                    if skips is not None:
                        skips.add(reader.line_num, str(exc))
        except csv.Error as exc:  # a NUL byte, an oversized field: the rest of the file is not CSV
            if skips is not None:
                skips.add(reader.line_num, f"not CSV from here on ({exc})")
    return out


def _csv_value(name: str, kind: str, v: str | None) -> Any:
    """One CSV cell as the field's type; ValueError names the field when the value is unusable.
    Empty or NaN reads as None (not recorded) where the field is optional."""
    optional = "None" in kind
    if v is None or v == "":
        if optional:
            return None
        raise ValueError(f"'{name}' is missing")
    if kind.startswith("bool"):
        return v == "True"
    if kind.startswith("str"):
        return v
    try:
        f = float(v)
    except ValueError:
        raise ValueError(f"'{name}' is not a number") from None
    if f != f and optional:
        return None
    if not abs(f) <= MAX_ABS:  # NaN (required), inf, absurd sizes
        raise ValueError(f"'{name}' is not a finite number")
    return int(f) if kind.startswith("int") else f


def _samples(d: Path, name: str, cls: type, notes: list[str]) -> list:
    skips = LineSkips(name, "row")
    try:
        rows = read_csv(d / name, cls, skips)
    except OSError as exc:
        notes.append(f"{name}: cannot be read ({exc.strerror or type(exc).__name__}): ignored")
        return []
    if note := skips.note():
        notes.append(note)
    return rows


def run_folder(run_dir: Path | str) -> Path:
    """The run folder as a Path, or RunFolderError saying why it is not one."""
    d = Path(run_dir)
    fix = "give the folder `slabench run` wrote (reports/<scenario>-<UTC time>/)"
    try:
        if not d.exists():
            raise RunFolderError(f"run folder {d} does not exist: {fix}")
        if not d.is_dir():
            raise RunFolderError(f"{d} is a file, not a run folder: {fix}")
        if not any((d / f).exists() for f in RUN_FILES):
            raise RunFolderError(f"{d} is not a slabench run folder (no {', '.join(RUN_FILES)}): {fix}")
    except OSError as exc:
        raise RunFolderError(f"run folder {d} cannot be read ({exc.strerror or type(exc).__name__})") from None
    return d


def load_run_parts(run_dir: Path | str) -> RunResult:
    """A run folder without its request records (records=[]): scenario, meta and samples."""
    d = run_folder(run_dir)
    notes: list[str] = []
    problems: list[str] = []
    scenario = read_scenario(d, notes, problems)
    meta = read_meta(d, notes, problems)
    return RunResult(run_dir=d, scenario=scenario, records=[], meta=meta,
                     gpu_samples=_samples(d, GPU_FILE, GpuSample, notes),
                     server_samples=_samples(d, SERVER_FILE, ServerSample, notes),
                     reader_notes=notes, reader_problems=problems)


def note_records(run: RunResult, skips: LineSkips, n_records: int, error: str | None = None) -> None:
    """Add what reading requests.jsonl found to the run's notes and problems."""
    path = Path(run.run_dir) / REQUESTS_FILE
    if error is not None:
        run.reader_notes.append(f"{REQUESTS_FILE}: {error}")
        run.reader_problems.append(f"{REQUESTS_FILE} {error}: no request can be scored")
    elif not path.exists():
        run.reader_notes.append(f"{REQUESTS_FILE} is missing: no request was recorded")
    elif (note := skips.note()) is not None:
        run.reader_notes.append(note)
        if n_records == 0:
            run.reader_problems.append(f"{REQUESTS_FILE}: none of its lines is a readable record "
                                       f"({skips.count} skipped; line {skips.first[0]}: {skips.first[1]})")


def load_run(run_dir: Path | str) -> RunResult:
    """Load a saved run folder with its records as RequestRecord objects (unusable lines skipped)."""
    run = load_run_parts(run_dir)
    path = run.run_dir / REQUESTS_FILE
    skips, error = LineSkips(REQUESTS_FILE), None
    try:
        run.records = list(iter_records(path, skips)) if path.exists() else []
    except OSError as exc:
        error = f"cannot be read ({exc.strerror or type(exc).__name__})"
    note_records(run, skips, len(run.records), error)
    return run


def read_baseline(run: RunResult) -> dict | None:
    """The baseline summary `--baseline` copied into the folder, or None (absent, or unreadable:
    noted, and a validity reason, since the regression check it asked for cannot run)."""
    path = Path(run.run_dir) / BASELINE_FILE
    if not path.is_file():
        if isinstance(run.meta.get("baseline"), dict):
            run.reader_problems.append(f"{BASELINE_FILE} is missing: the regression check asked for cannot run")
        return None
    text, why = _read_text(path)
    if text is not None:
        try:
            # NaN/Infinity and numbers no float holds read as null: the comparison skips them.
            base = json.loads(text, parse_constant=lambda _c: None,
                              parse_int=lambda t: int(t) if len(t) < 300 else None)
            ok = isinstance(base, dict) and isinstance(base.get("metrics"), dict)
            why = None if ok else "not a slabench summary (no 'metrics' object)"
            if ok and not isinstance(base.get("run") or {}, dict):
                base.pop("run")
        except (ValueError, RecursionError):
            why = "not valid JSON"
    if why:
        run.reader_notes.append(f"{BASELINE_FILE}: {why}: no regression section")
        run.reader_problems.append(f"{BASELINE_FILE} is unreadable ({why}): the regression check cannot run")
        return None
    return base
