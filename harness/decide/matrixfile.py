"""Matrix files: one scenario and the axes to vary → a validated list of variant scenarios.

Seam: YAML → `MatrixFile` (pydantic, extra="forbid", one-line ConfigError) → `expand()` → `Variant`s,
each a full `Scenario` with its SLA inlined. Unknown axes or axis values fail here, before any run;
deployments that cannot start (weights do not fit) are found when the variant runs.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import Field, ValidationError, field_validator

from harness.config import ConfigError, Scenario, _Model, _read_yaml, format_validation_error, parse_scenario, \
    resolve_scenario
from harness.config.errors import clip

NAMED_AXES = ("backend", "gpu", "gpu_count", "quantization", "model")
BACKEND_TYPES = ("sim", "vllm", "tgi")
AXIS_HELP = "use backend, gpu, gpu_count, quantization, model, or a dotted scenario path such as backend.max_num_seqs"


class MatrixFile(_Model):
    """`slabench matrix FILE`: every combination of the axes' values is one variant run."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    scenario: Union[str, dict[str, Any]]  # a scenario file (relative to this file) or an inline scenario
    axes: dict[str, list[Any]] = Field(min_length=1)
    backends: dict[str, dict[str, Any]] = {}  # named backends for the `backend` axis (vllm / tgi need their model)
    exclude: list[dict[str, Any]] = []  # combinations listed as excluded, not run
    sla: str | None = None  # replaces the scenario's SLA policy (file path or name in scenarios/sla/)
    accept: list[Literal["PASS", "WARN"]] = ["PASS"]  # decision verdicts that count as meeting the SLA
    offline: bool = True  # sim variants are simulated in-process (seconds); false: launch the sim server

    @field_validator("axes")
    @classmethod
    def _axes(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in v.items():
            if key not in NAMED_AXES and "." not in key:
                hint = difflib.get_close_matches(key, NAMED_AXES, n=1)
                extra = f" (did you mean '{hint[0]}'?)" if hint else ""
                raise ValueError(f"unknown axis '{key}'{extra}: {AXIS_HELP}")
            if not values:
                raise ValueError(f"axis '{key}' has no values: give at least one")
            if len({json.dumps(x, sort_keys=True, default=str) for x in values}) != len(values):
                raise ValueError(f"axis '{key}' repeats a value: list each value once")
        return v


@dataclass
class Variant:
    id: str  # folder-safe, unique, from the axis values in file order
    values: dict[str, Any]  # axis → value as written
    scenario: Scenario  # resolved (SLA inline)
    excluded: bool = False

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={_show(v, self.scenario)}" for k, v in self.values.items())


def _show(v: Any, scn: Scenario) -> str:
    if isinstance(v, dict):
        return str(v.get(scn.backend.type, next(iter(v.values()), "")))
    return str(v)


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-.")
    return s or "x"


def load_matrix(path: Path | str) -> MatrixFile:
    """A validated matrix file, read by the config reader (regular file, size cap, UTF-8, bounded YAML)."""
    p = Path(path)
    data = _read_yaml(p, "matrix file")
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a matrix file must be a YAML mapping with name, scenario and axes")
    try:
        return MatrixFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(str(p), exc, MatrixFile)) from None


def base_scenario(mf: MatrixFile, path: Path) -> tuple[dict, Path]:
    """The matrix's scenario as a plain mapping, and the folder its relative paths resolve from."""
    if isinstance(mf.scenario, dict):
        return copy.deepcopy(mf.scenario), path.parent
    for cand in (path.parent / mf.scenario, Path(mf.scenario)):
        if _exists(cand, mf.scenario, path):
            try:  # the config reader refuses a folder, FIFO, device, huge or non-UTF-8 file in one line
                data = _read_yaml(cand, "scenario file")
            except ConfigError as exc:
                raise ConfigError(f"{path}: scenario: {exc}") from None
            if not isinstance(data, dict):
                raise ConfigError(f"{cand}: a scenario must be a YAML mapping with at least 'name'")
            return data, cand.parent
    raise ConfigError(f"{path}: scenario '{clip(mf.scenario)}' not found: give a path relative to the matrix file "
                      "or an inline scenario mapping")


def _exists(cand: Path, ref: str, path: Path) -> bool:
    """Whether something is at `cand` (what it is, the reader judges); ConfigError for a name the OS refuses."""
    try:
        os.stat(cand)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except ValueError:  # an embedded NUL character
        raise ConfigError(f"{path}: scenario '{clip(ref)}' is not a valid path (it contains a NUL character): "
                          "give a path relative to the matrix file or an inline scenario mapping") from None
    except OSError as exc:  # a name too long for the OS, a symlink loop, a folder we may not enter
        raise ConfigError(f"{path}: scenario '{clip(ref)}' cannot be opened ({exc.strerror or exc}): give a "
                          "path relative to the matrix file or an inline scenario mapping") from None
    return True


def _set_path(d: dict, dotted: str, value: Any, src: str) -> None:
    parts = dotted.split(".")
    cur = d
    for part in parts[:-1]:
        nxt = cur.get(part)
        if nxt is None:
            nxt = cur[part] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"{src}: axes.{dotted}: '{part}' is not a mapping in the scenario: point the axis at a key")
        cur = nxt
    cur[parts[-1]] = copy.deepcopy(value)


def _apply(scn: dict, axis: str, value: Any, mf: MatrixFile, src: str) -> None:
    backend = scn.setdefault("backend", {})
    btype = backend.get("type", "sim")
    if axis == "backend":
        if value in mf.backends:
            entry = copy.deepcopy(mf.backends[value])
            entry.setdefault("type", value if value in BACKEND_TYPES else "sim")
            scn["backend"] = entry
        elif value in BACKEND_TYPES:
            if value != btype:
                raise ConfigError(f"{src}: axes.backend: '{value}' differs from the scenario's backend ({btype}): "
                                  f"describe it under backends: {{{value}: {{type: {value}, ...}}}}")
        else:
            raise ConfigError(f"{src}: axes.backend: unknown backend '{value}': use sim, vllm, tgi or a name "
                              f"defined under backends: ({', '.join(mf.backends) or 'none defined'})")
        return
    if btype == "external" and axis in NAMED_AXES:
        raise ConfigError(f"{src}: axes.{axis}: an external backend is not launched, so it cannot vary: "
                          "use a sim, vllm or tgi backend")
    if isinstance(value, dict) and axis == "model":
        if btype not in value:
            raise ConfigError(f"{src}: axes.model: value {value} has no entry for backend '{btype}': add one")
        value = value[btype]
    if axis == "gpu":
        backend["gpu"] = value
    elif axis == "gpu_count":
        backend["num_shard" if btype == "tgi" else "tensor_parallel_size"] = value
        scn.setdefault("cost", {})["gpu_count"] = value
    elif axis == "model":
        backend["model_id" if btype == "tgi" else "model"] = value
    elif axis == "quantization":
        q = str(value).lower()
        if btype == "sim":
            backend["quantization"] = value
        else:
            key = "quantize" if btype == "tgi" else "quantization"
            if q in ("fp16", "bf16", "none"):
                backend.pop(key, None)
                backend["dtype"] = {"fp16": "float16", "bf16": "bfloat16"}.get(q, backend.get("dtype"))
                if backend["dtype"] is None:
                    backend.pop("dtype")
            else:
                backend[key] = value
                if btype == "tgi":
                    backend.pop("dtype", None)
    else:
        _set_path(scn, axis, value, src)


def _matches(values: dict[str, Any], rule: dict[str, Any]) -> bool:
    for k, want in rule.items():
        wants = want if isinstance(want, list) else [want]
        if k not in values or values[k] not in wants:
            return False
    return True


def _check_sim(v: Variant, src: str, catalog) -> None:
    from harness.sim.catalog import SimConfigError

    b = v.scenario.backend
    if b.type != "sim":
        return
    try:
        catalog.gpu(b.gpu), catalog.model(b.model), catalog.quant(b.quantization)
    except SimConfigError as exc:
        raise ConfigError(f"{src}: variant {v.id}: {exc}".replace(" (or add it with --catalog FILE)", "")) from None


def expand(mf: MatrixFile, path: Path | str) -> list[Variant]:
    """Every combination of the axes, as validated, resolved scenarios (ConfigError on the first bad one)."""
    from harness.sim.catalog import default_catalog

    path = Path(path)
    src = str(path)
    base, base_dir = base_scenario(mf, path)
    for rule in mf.exclude:
        unknown = [k for k in rule if k not in mf.axes]
        if unknown:
            raise ConfigError(f"{src}: exclude: '{unknown[0]}' is not an axis of this matrix: use one of "
                              f"{', '.join(mf.axes)}")
    catalog = default_catalog()
    axes = list(mf.axes)
    out: list[Variant] = []
    seen: set[str] = set()
    for combo in itertools.product(*(mf.axes[a] for a in axes)):
        values = dict(zip(axes, combo))
        scn_d = copy.deepcopy(base)
        for axis in sorted(axes, key=lambda a: a != "backend"):  # the backend first, then its fields
            _apply(scn_d, axis, values[axis], mf, src)
        btype = (scn_d.get("backend") or {}).get("type", "sim")
        vid = _slug("-".join(_slug(str(v.get(btype, "")) if isinstance(v, dict) else str(v)) for v in combo))
        if vid in seen:
            vid = f"{vid}-{len(out) + 1}"
        seen.add(vid)
        scn_d["name"] = _slug(f"{base.get('name', mf.name)}-{vid}")[:120]
        scn = parse_scenario(scn_d, f"{src}: variant {vid}")
        try:
            scn = resolve_scenario(scn, sla_override=mf.sla, base_dir=base_dir)
        except ConfigError as exc:
            raise ConfigError(f"{src}: {exc}") from None
        v = Variant(vid, values, scn, excluded=any(_matches(values, r) for r in mf.exclude))
        _check_sim(v, src, catalog)
        out.append(v)
    return out


def plan_digest(variants: list[Variant]) -> str:
    """A hash of every variant's scenario: resume refuses a folder whose plan differs."""
    h = hashlib.sha256()
    for v in variants:
        h.update(v.id.encode())
        h.update(v.scenario.model_dump_json().encode())
    return h.hexdigest()[:16]
