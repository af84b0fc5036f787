"""Fuzzing run folders: hypothesis strategies that write a run folder, valid or damaged, into a path.

`run_folders(d)` builds a valid run from real RequestRecords (meta.json, scenario.yaml with an inline
policy, gpu.csv, server_metrics.csv, maybe a baseline) and then damages some files: each one missing,
binary garbage, truncated, re-encoded, mutated value by value or line by line; or `d` itself is
missing, a file, or an empty folder. `request_lines()` gives requests.jsonl bytes alone.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from harness.config import load_sla
from harness.records import (
    GPU_FILE, META_FILE, REQUESTS_FILE, SCENARIO_FILE, SERVER_FILE, GpuSample, RequestRecord, ServerSample,
    write_csv,
)
from tests.fuzzing.inputs import NUMBERS, corrupted, encoded, json_scalars, mutated, scenario_files, values

BASELINE_FILE = "baseline_summary.json"
FILES = (SCENARIO_FILE, META_FILE, REQUESTS_FILE, GPU_FILE, SERVER_FILE, BASELINE_FILE)
LOAD_START_S, LOAD_END_S = 100.0, 112.0


@dataclass
class FolderSpec:
    """What a drawn run folder is: `kind` "run" (a run folder, maybe damaged), "missing", "file" or
    "empty" (no run folder at all); `damage` maps each damaged file to what was done to it."""

    path: Path
    kind: str = "run"
    damage: dict[str, str] = field(default_factory=dict)
    n_records: int = 0  # records written before any damage

    @property
    def is_run_folder(self) -> bool:
        return self.kind == "run"


# ---------------------------------------------------------------- valid pieces

@st.composite
def request_records(draw, max_n: int = 150) -> list[RequestRecord]:
    """Plausible records in send order across the load window: ok ones with ITL gaps, some errors,
    open-loop ones with a schedule, one-token answers, the odd NaN the writer can emit. The values
    come from random.Random(seed): one draw per folder, not thousands (hypothesis stays quick)."""
    n, rng = draw(st.integers(0, max_n)), random.Random(draw(st.integers(0, 2**32)))
    span = LOAD_END_S - LOAD_START_S
    out = []
    for i in range(n):
        sent = LOAD_START_S - 1 + (span + 2) * i / max(n, 1) + rng.uniform(0, 0.01)
        ok = rng.random() > 0.1
        gaps = [rng.uniform(0.0, 0.2) for _ in range(rng.randint(0, 6))] if ok else []
        ttft = rng.uniform(0.0005, 3.0)
        e2e = ttft + sum(gaps)
        rec = RequestRecord(
            request_id=f"r{i}", api="openai-chat", sent_s=sent, end_s=sent + (e2e if ok else 0.01),
            status=200 if ok else rng.choice([0, 401, 429, 500, 503]), ok=ok,
            scheduled_s=sent - rng.uniform(0, 0.02) if rng.random() < 0.5 else None,
            first_token_s=sent + ttft if ok else None, ttft_s=ttft if ok else None, e2e_s=e2e if ok else None,
            itl_s=gaps, prompt_tokens=rng.randint(1, 4000) if rng.random() < 0.9 else None,
            output_tokens=len(gaps) + 1 if ok else 0, finish_reason="length" if ok else None,
            error_type=None if ok else rng.choice(["connect", "http_5xx", "overloaded_503"]),
            error=None if ok else rng.choice(["", "HTTP 500: boom", 'a "quoted", comma', "é \\ \u2028", "<b>x</b>"]),
            sent_unix_s=1.7e9 + sent, chunk_tokens=[1] * (len(gaps) + 1) if ok and rng.random() < 0.3 else None)
        if ok and rng.random() < 0.03:
            rec.scheduled_s = math.nan  # to_json writes NaN: a non-canonical line the json path reads
        out.append(rec)
    return out


@st.composite
def scenario_docs(draw) -> dict:
    policy = load_sla("guide").model_dump(mode="json")
    policy["min_samples"] = draw(st.sampled_from([1, 10, 100]))
    return {"name": "fuzz", "load": {"mode": "closed", "users": 4, "warmup_s": draw(st.sampled_from([0, 1, 2])),
                                     "cooldown_s": draw(st.sampled_from([0, 1]))},
            "backend": {"type": "sim", "gpu": "a100-80gb", "model": "llama-3-8b"}, "sla": policy}


@st.composite
def meta_docs(draw, baseline: bool) -> dict:
    meta: dict[str, Any] = {"schema_version": 1, "scenario_name": "fuzz", "started_utc": "2026-01-01T00:00:00Z",
                            "load_start_s": LOAD_START_S, "load_end_s": LOAD_END_S, "interrupted": False,
                            "load_outcome": "completed", "notes": [],
                            "backend": {"type": "sim", "gpu": "a100-80gb", "gpu_count": 1, "simulated": True,
                                        "command": ["slabench", "sim", "serve"]},
                            "load": {"mode": "closed", "users": 4, "api": "openai-chat"}}
    if baseline:
        meta["baseline"] = {"source": "base", "tolerance_pct": draw(st.sampled_from([5.0, 10.0]))}
    return meta


def _samples(n: int) -> tuple[list[GpuSample], list[ServerSample]]:
    ts = [LOAD_START_S + 0.5 * k for k in range(n)]
    return ([GpuSample(t_s=t, gpu_index=0, name="NVIDIA A100-SXM4-80GB", util_gpu_pct=70.0, power_w=250.0,
                       mem_used_bytes=2**35, simulated=True) for t in ts],
            [ServerSample(t_s=t, queue_depth=float(k % 7), running=4.0, kv_usage_frac=0.5) for k, t in enumerate(ts)])


BASELINE_DOC = {"schema_version": 1, "run": {"run_dir": "base"},
                "metrics": {"ttft_s": {"p50": 0.2, "p99": 0.8}, "e2e_s": {"p50": 0.3, "p99": 1.0}},
                "rates": {"request_rate_rps": 10.0, "error_rate_pct": 0.0}, "cost": {"usd_per_1k_output_tokens": 0.01}}


# ---------------------------------------------------------------- damage

HOSTILE = st.one_of(json_scalars, st.sampled_from(NUMBERS), values(json_scalars, max_leaves=3),
                    st.sampled_from([-1, -0.5, 1e400, -1e400, 10**30, "0.1", "", [], {}, [1, "x"], True]))
BAD_BYTES = [b"\xff", b"\xc3", b"\x00", b"\n", b",", b"]", b"}", b'"', b".", b"-", b"e", b"\\", b"\x85",
             b"\xe2\x80\xa8"]


def _line_of(d: dict) -> bytes:
    return json.dumps(d, separators=(",", ":")).encode("utf-8")  # NaN/Infinity as json writes them


@st.composite
def damaged_line(draw, rec: RequestRecord) -> bytes:
    """One record's line with one kind of damage: a field's value, a dropped key, bytes, a cut."""
    d = dict(vars(rec))
    op = draw(st.sampled_from(["value", "value", "value", "drop", "bytes", "cut", "other", "blank"]))
    if op == "value":
        d[draw(st.sampled_from(sorted(d)))] = draw(HOSTILE)
        return _line_of(d)
    if op == "drop":
        d.pop(draw(st.sampled_from(sorted(d))))
        return _line_of(d)
    line = _line_of(d)
    if op == "bytes":
        i = draw(st.integers(0, len(line)))
        return line[:i] + draw(st.sampled_from(BAD_BYTES) | st.binary(max_size=3)) + line[i:]
    if op == "cut":
        return line[:draw(st.integers(0, len(line)))]
    if op == "other":
        return draw(values(json_scalars, max_leaves=4).map(lambda v: json.dumps(v, default=str).encode()))
    return draw(st.sampled_from([b"", b"   ", b"\r"]))


@st.composite
def request_lines(draw, records: list[RequestRecord] | None = None, value_damage_only: bool = False,
                  max_n: int = 150) -> bytes:
    """requests.jsonl bytes: every record's to_json line, some of them damaged, maybe a torn last line.
    value_damage_only: only valid-JSON damage (values, dropped keys), no byte-level edits."""
    recs = draw(request_records(max_n)) if records is None else records
    lines = [r.to_json().encode("utf-8") for r in recs]
    if lines and draw(st.integers(0, 3)):
        for i in draw(st.lists(st.integers(0, len(lines) - 1), max_size=6)):
            if value_damage_only:
                d = dict(vars(recs[i]))
                key = draw(st.sampled_from(sorted(d)))
                if draw(st.integers(0, 4)):
                    d[key] = draw(HOSTILE)
                else:
                    del d[key]
                lines[i] = _line_of(d)
            else:
                lines[i] = draw(damaged_line(recs[i]))
    text = b"\n".join(lines) + (b"\n" if lines else b"")
    if lines and not value_damage_only and draw(st.integers(0, 4)) == 0:
        text = text[:-draw(st.integers(1, min(len(lines[-1]) + 1, len(text))))]  # torn mid-write
    return text


@st.composite
def csv_bytes(draw, text: str) -> bytes:
    """A telemetry CSV with damaged rows: garbage values, NaN/inf, missing or extra cells, a bad header."""
    rows = text.split("\n")
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["cell", "cell", "row", "header", "nul"]))
        i = draw(st.integers(0, max(len(rows) - 1, 0)))
        if op == "cell" and rows:
            cells = rows[i].split(",")
            cells[draw(st.integers(0, len(cells) - 1))] = draw(st.sampled_from(
                ["nan", "NaN", "inf", "-inf", "1e400", "abc", "", "True", "-1", "9" * 40, '"x,y"']))
            rows[i] = ",".join(cells)
        elif op == "row":
            rows.insert(i, draw(st.sampled_from(["garbage", "1,2", ",,,,,,,,,,,,,,", "a,b,c,d"])))
        elif op == "header" and rows:
            rows[0] = draw(st.sampled_from(["", "x,y,z", rows[0].replace("t_s", "time"), rows[0].upper()]))
        else:
            rows.insert(i, "\x00" * draw(st.integers(1, 3)))
    return "\n".join(rows).encode("utf-8")


@st.composite
def damaged_file(draw, name: str, good: bytes, doc: Any) -> tuple[bytes | None, str]:
    """(new bytes or None for "remove it", what was done) for one run-folder file."""
    ops = ["missing", "binary", "truncate", "encode", "corrupt"]
    if doc is not None:
        ops += ["mutate", "mutate", "other-json"]
    if name == REQUESTS_FILE:
        ops += ["lines", "lines", "lines", "folder"]
    if name in (GPU_FILE, SERVER_FILE):
        ops += ["rows", "rows", "rows"]
    if name == SCENARIO_FILE:
        ops += ["scenario-file"]
    op = draw(st.sampled_from(ops))
    dump = (lambda v: yaml.safe_dump(v, sort_keys=False)) if name.endswith(".yaml") else (
        lambda v: json.dumps(v, default=str))
    if op == "missing":
        return None, op
    if op == "folder":
        return b"", op
    if op == "binary":
        return draw(st.binary(max_size=200)), op
    if op == "truncate":
        return good[:draw(st.integers(0, len(good)))], op
    if op == "encode":
        return draw(encoded(st.just(good.decode("utf-8", "replace")))), op
    if op == "corrupt":
        return draw(corrupted(st.just(good.decode("utf-8", "replace")))).encode("utf-8", "surrogatepass"), op
    if op == "mutate":
        return dump(draw(mutated(st.just(doc)))).encode("utf-8", "surrogatepass"), op
    if op == "other-json":
        return dump(draw(values(json_scalars, max_leaves=6))).encode("utf-8", "surrogatepass"), op
    if op == "scenario-file":
        return draw(scenario_files()), op
    if op == "rows":
        return draw(csv_bytes(good.decode("utf-8"))), op
    return draw(request_lines(doc)), op  # "lines": doc holds the records


@st.composite
def run_folders(draw, d: Path | str) -> FolderSpec:
    """Write a run folder (valid, or with some files damaged) at `d`; or no run folder at all."""
    d = Path(d)
    kind = draw(st.sampled_from(["run"] * 12 + ["missing", "file", "empty"]))
    spec = FolderSpec(d, kind)
    if kind == "missing":
        return spec
    if kind == "file":
        d.parent.mkdir(parents=True, exist_ok=True)
        d.write_bytes(draw(st.binary(max_size=50)))
        return spec
    d.mkdir(parents=True, exist_ok=True)
    if kind == "empty":
        return spec
    recs = draw(request_records())
    spec.n_records = len(recs)
    baseline = draw(st.integers(0, 4)) == 0
    scen, meta = draw(scenario_docs()), draw(meta_docs(baseline))
    gpu, server = _samples(draw(st.integers(0, 30)))
    write_csv(d / GPU_FILE, gpu, GpuSample)
    write_csv(d / SERVER_FILE, server, ServerSample)
    docs: dict[str, Any] = {SCENARIO_FILE: scen, META_FILE: meta, REQUESTS_FILE: recs, GPU_FILE: None,
                            SERVER_FILE: None}
    (d / SCENARIO_FILE).write_text(yaml.safe_dump(scen, sort_keys=False), encoding="utf-8")
    (d / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    (d / REQUESTS_FILE).write_bytes(b"".join(r.to_json().encode() + b"\n" for r in recs))
    if baseline:
        docs[BASELINE_FILE] = BASELINE_DOC
        (d / BASELINE_FILE).write_text(json.dumps(BASELINE_DOC), encoding="utf-8")
    for name in draw(st.lists(st.sampled_from(sorted(docs)), unique=True, max_size=3)):
        path = d / name
        data, what = draw(damaged_file(name, path.read_bytes(), docs[name]))
        path.unlink()
        if what == "folder":
            path.mkdir()
        elif data is not None:
            path.write_bytes(data)
        spec.damage[name] = what
    return spec
