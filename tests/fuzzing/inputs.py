"""Fuzzing inputs: hypothesis strategies for the bytes of the files slabench reads.

`scenario_files()`, `sla_files()` and `dataset_files(fmt)` mix valid files, mutated shipped
examples (scenarios/*.yaml) and broken ones (random values, bytes, encodings, deep nesting, YAML
alias bombs); `valid_scenario_docs()` etc. give the valid documents alone. Used by tests/unit and `make fuzz`.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
DATASET_NAME = "data.jsonl"  # the dataset path generated scenarios refer to (next to the scenario file)

ENCODINGS = ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1", "cp1252", "utf-8-sig")
YAML_NOISE = list(":[]{}&*!|>'\"#%@`,?-\t\n\\") + ["\x00", "\x85", "\u2028", "\ufeff", "é", "---", "..."]
NUMBERS = [0, -1, 1, 1e-300, 1e-3, 0.5, 1e9, 1e308, 2**63, -2**63 - 1, 10**30, float("nan"), float("inf"),
           float("-inf")]

# ---------------------------------------------------------------- values

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.integers(0, 300), st.sampled_from(NUMBERS),
    st.floats(), st.text(max_size=12), st.sampled_from(["", " ", "0", "1e9", ".inf", "NaN", "guide", "http://a b"]))
yaml_scalars = st.one_of(json_scalars, st.dates())
keys = st.one_of(st.text(max_size=10), st.sampled_from(
    ["name", "backend", "load", "workload", "sla", "cost", "type", "rows", "metric", "stat", "target", "alert",
     "duration_s", "rate_rps", "users", "mode", "dataset", "prompt", "conversations", "from", "value"]),
    st.integers(-3, 3), st.booleans(), st.none())


def values(scalars: st.SearchStrategy = yaml_scalars, max_leaves: int = 20) -> st.SearchStrategy:
    """Random nested lists/mappings of hostile scalars."""
    return st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(keys, c, max_size=4),
                        max_leaves=max_leaves)


# ---------------------------------------------------------------- valid documents

names = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,20}\Z")
small = st.floats(min_value=0.01, max_value=100, allow_nan=False)


@st.composite
def token_dists(draw) -> Any:
    kind = draw(st.sampled_from(["bare", "fixed", "uniform", "normal", "lognormal"]))
    if kind == "bare":
        return draw(st.integers(1, 4096))
    if kind == "fixed":
        return {"dist": "fixed", "value": draw(st.integers(1, 4096))}
    lo = draw(st.integers(1, 512))
    hi = draw(st.integers(lo, 4096))
    if kind == "uniform":
        return {"dist": "uniform", "min": lo, "max": hi}
    return {"dist": kind, "mean": draw(st.floats(1, 2000)), "stddev": draw(st.floats(0, 500)), "min": lo, "max": hi}


@st.composite
def valid_policy_docs(draw) -> dict:
    """An SLA policy that validates: rows with a known metric, a fitting stat, alert beyond target."""
    dist = {"ttft_s", "tpot_s", "itl_s", "e2e_s"}
    gauges = {"gpu_utilization_pct", "queue_depth"}
    lower = {"ttft_s", "tpot_s", "itl_s", "e2e_s", "error_rate_pct", "queue_depth"}
    metrics = sorted(dist | gauges | {"request_rate_rps", "output_token_rate_tps", "total_token_rate_tps",
                                      "goodput_rps", "error_rate_pct"})
    rows = []
    for metric in draw(st.lists(st.sampled_from(metrics), min_size=1, max_size=6)):
        target = draw(st.floats(0, 1e4))
        gap = draw(st.floats(0, 1e3))
        row = {"metric": metric, "target": target,
               "alert": target + gap if metric in lower else max(target - gap, 0.0)}
        if metric in dist:
            row["stat"] = draw(st.sampled_from(["p50", "p90", "p95", "p99", "p99.9", "mean", "max"]))
        elif metric in gauges:
            row["stat"] = draw(st.sampled_from(["value", "mean", "max", "p99"]))
        if draw(st.booleans()):
            row["hard"] = draw(st.booleans())
        rows.append(row)
    doc = {"name": draw(names), "rows": rows}
    if draw(st.booleans()):
        doc["min_samples"] = draw(st.integers(1, 10_000))
    return doc


@st.composite
def valid_scenario_docs(draw, dataset: bool = True) -> dict:
    """A scenario that validates (short runs on the sim, an external URL, or a dataset next to it)."""
    doc: dict = {"name": draw(names)}
    if draw(st.booleans()):
        doc["backend"] = {"type": "sim", "flavor": draw(st.sampled_from(["vllm", "tgi"])),
                          "model": draw(st.sampled_from(["llama-3-8b", "mistral-7b", "llama-2-7b"])),
                          "gpu": draw(st.sampled_from(["a100-80gb", "h100-sxm", "l4"])),
                          "speed": draw(st.floats(1e-3, 1e6))}
    elif draw(st.booleans()):
        doc["backend"] = {"type": "external", "url": f"http://127.0.0.1:{draw(st.integers(1, 65535))}"}
    duration = draw(st.floats(0.5, 60))
    if draw(st.booleans()):
        load = {"mode": "closed", "users": draw(st.integers(1, 64)), "duration_s": duration}
    else:
        load = {"mode": "open", "rate_rps": draw(small), "duration_s": duration,
                "arrival": draw(st.sampled_from(["constant", "poisson", "gamma"])),
                "burstiness": draw(st.floats(0.01, 1000))}
    if draw(st.booleans()):
        load["warmup_s"] = duration * draw(st.floats(0, 0.45))
    load["api"] = draw(st.sampled_from(["openai-chat", "openai-completions", "tgi-generate-stream"]))
    doc["load"] = load
    workload = {"prompt_tokens": draw(token_dists()), "output_tokens": draw(token_dists()),
                "seed": draw(st.integers(0, 2**32))}
    if dataset and draw(st.booleans()):
        workload["dataset"] = {"path": DATASET_NAME, "format": "jsonl"}
    doc["workload"] = workload
    doc["sla"] = draw(st.one_of(st.just("guide"), valid_policy_docs()))
    return doc


# ---------------------------------------------------------------- mutations and damage

def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every location inside a nested document (the root is ())."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, prefix + (i,))
    return out


@st.composite
def mutated(draw, docs: st.SearchStrategy) -> Any:
    """A document with 1-3 random edits: a value replaced, a key dropped or added, a value wrapped."""
    doc = copy.deepcopy(draw(docs))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        if not path:
            doc = draw(values()) if draw(st.integers(0, 9)) == 0 else doc
            continue
        parent = doc
        for p in path[:-1]:
            parent = parent[p]
        key, op = path[-1], draw(st.sampled_from(["replace", "replace", "number", "drop", "add", "wrap"]))
        if op == "replace":
            parent[key] = draw(values(max_leaves=5))
        elif op == "number":
            parent[key] = draw(st.sampled_from(NUMBERS) | st.floats())
        elif op == "drop" and isinstance(parent, dict):
            del parent[key]
        elif op == "add" and isinstance(parent, dict):
            parent[draw(keys)] = draw(values(max_leaves=3))
        else:
            parent[key] = [parent[key]] if draw(st.booleans()) else {"value": parent[key]}
    return doc


def _dump_yaml(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


@st.composite
def encoded(draw, texts: st.SearchStrategy) -> bytes:
    """Text as UTF-8 mostly, else another encoding (a non-ASCII character included, so it differs)."""
    text = draw(texts)
    if draw(st.integers(0, 3)):
        return text.encode("utf-8", "surrogatepass")
    enc = draw(st.sampled_from(ENCODINGS))
    return ("# café\n" + text if enc in ("latin-1", "cp1252") else text).encode(enc, "replace")


@st.composite
def corrupted(draw, texts: st.SearchStrategy) -> str:
    """Text truncated, with characters inserted, or lines dropped or repeated."""
    text = draw(texts)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["cut", "insert", "insert", "line"]))
        i = draw(st.integers(0, len(text)))
        if op == "cut":
            text = text[:i]
        elif op == "insert":
            text = text[:i] + draw(st.sampled_from(YAML_NOISE) | st.text(max_size=3)) + text[i:]
        else:
            lines = text.split("\n")
            j = draw(st.integers(0, max(len(lines) - 1, 0)))
            lines[j:j + 1] = draw(st.sampled_from([[], [lines[j]] * 2, ["  " + lines[j]]])) if lines else []
            text = "\n".join(lines)
    return text


@st.composite
def deep_yaml(draw) -> str:
    n = draw(st.integers(1, 3000))
    kind = draw(st.sampled_from(["flow-list", "flow-map", "block"]))
    if kind == "flow-list":
        return "name: x\nload: " + "[" * n + "]" * n + "\n"
    if kind == "flow-map":
        return "name: x\nload: " + "{a: " * n + "1" + "}" * n + "\n"
    return "name: x\n" + "".join("  " * i + f"k{i}:\n" for i in range(min(n, 300)))


@st.composite
def alias_bombs(draw) -> str:
    """'Billion laughs': each level an anchored list of aliases to the level before."""
    levels, fan = draw(st.integers(1, 12)), draw(st.integers(2, 10))
    lines = ["name: x", 'l0: &l0 ["lol"]']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * fan) + "]")
    lines.append(f"load: *l{levels}" if draw(st.booleans()) else f"sla: {{name: p, rows: *l{levels}}}")
    return "\n".join(lines) + "\n"


ODD_YAML = [
    "name: x\n---\nname: y\n", "!!python/object/apply:os.system ['true']\n", "name: !!binary 'AAAA'\n",
    "? [1, 2]\n: x\n", "a: &a [*a]\n", "a: *nope\n", "name: x\nload: {<<: {users: 2}}\n",
    "name: x\ncost: {price_set_on: 2024-02-30}\n", "name: x\nworkload: {seed: " + "9" * 5000 + "}\n",
    "%YAML 9.9\n---\nname: x\n", "name: x\n\tload: 1\n", "name: \"\\x00\"\n", "name: \"\\ud800\"\n", "",
    "~\n", "[]\n", "'just a string'\n", "name: x\nload: {duration_s: .inf}\n", "name: x\nsla: {name: p, rows: "
    "[{metric: ttft_s, stat: p99, target: .nan, alert: .nan}]}\n",
]


def _yaml_files(valid: st.SearchStrategy, shipped_glob: str) -> st.SearchStrategy:
    """About 2 in 5 valid (generated or shipped, as UTF-8), 2 in 5 broken text, 1 in 5 random bytes."""
    shipped = st.deferred(lambda: st.sampled_from(_shipped(shipped_glob)))
    docs = st.one_of(valid, shipped)
    good = docs.map(_dump_yaml).map(lambda t: t.encode("utf-8"))
    broken = st.one_of(mutated(docs).map(_dump_yaml), values().map(_dump_yaml), corrupted(docs.map(_dump_yaml)),
                       deep_yaml(), alias_bombs(), st.sampled_from(ODD_YAML), st.text(max_size=200))
    return st.one_of(good, good, encoded(broken), encoded(broken), st.binary(max_size=300))


def _shipped(pattern: str) -> list[dict]:
    files = sorted(p for p in ROOT.glob(pattern) if not p.name.startswith("matrix-"))
    return [yaml.safe_load(p.read_text(encoding="utf-8")) for p in files]


def scenario_files() -> st.SearchStrategy[bytes]:
    """Bytes of a scenario file: valid, mutated shipped or generated, or broken in one of many ways.

    Valid ones may name a dataset `data.jsonl` next to the scenario file (write one from `dataset_files()`).
    """
    return _yaml_files(valid_scenario_docs(), "scenarios/*.yaml")


def sla_files() -> st.SearchStrategy[bytes]:
    """Bytes of an SLA policy file: valid, mutated shipped (scenarios/sla/) or generated, or broken."""
    return _yaml_files(valid_policy_docs(), "scenarios/sla/*.yaml")


# ---------------------------------------------------------------- datasets

prompts = st.text(min_size=1, max_size=40).filter(lambda s: s.strip())


@st.composite
def valid_jsonl_lines(draw) -> str:
    obj: dict = {"prompt": draw(prompts)}
    if draw(st.booleans()):
        obj["output_tokens"] = draw(st.integers(1, 100_000) | st.none())
    if draw(st.booleans()):  # an extra key is ignored
        obj[draw(st.text(max_size=6).filter(lambda k: k not in obj))] = draw(values(json_scalars, max_leaves=3))
    return json.dumps(obj, ensure_ascii=draw(st.booleans()))


def _json(v: Any) -> str:
    return json.dumps(v, default=str)  # NaN and Infinity stay as json writes them (not JSON: must be refused)


broken_jsonl_lines = st.one_of(
    st.fixed_dictionaries({"prompt": values(json_scalars, max_leaves=3)}).map(_json),
    st.fixed_dictionaries({"prompt": prompts, "output_tokens": values(json_scalars, max_leaves=2)}).map(_json),
    values(json_scalars, max_leaves=5).map(_json),
    st.sampled_from(["", "   ", "{", "NaN", '{"prompt": "x", "output_tokens": Infinity}', '{"prompt": "x"} junk',
                     '{"prompt": "x", "output_tokens": 1e400}', "[" * 5000 + "]" * 5000, '"\\ud800"',
                     '{"prompt": "\\u0000"}']),
    st.text(max_size=30),
)


@st.composite
def sharegpt_docs(draw, broken: bool) -> Any:
    turn = st.fixed_dictionaries({"from": st.sampled_from(["human", "gpt", "system"]), "value": prompts})
    convs = st.lists(st.fixed_dictionaries({"id": st.text(max_size=4), "conversations": st.lists(turn, max_size=4)}),
                     max_size=6)
    doc = draw(convs)
    if broken:
        doc = draw(mutated(st.just(doc) if doc else st.just([{"conversations": []}])))
    return doc


@st.composite
def dataset_files(draw, fmt: str = "jsonl") -> bytes:
    """Bytes of a dataset file in `fmt` ("jsonl" or "sharegpt"): valid (about half), damaged, or not the format."""
    if draw(st.booleans()):
        return draw(valid_jsonl_files().map(lambda case: case[0]) if fmt == "jsonl" else
                    sharegpt_docs(broken=False).map(lambda d: _json(d).encode("utf-8")))
    if fmt == "jsonl":
        lines = draw(st.lists(st.one_of(valid_jsonl_lines(), valid_jsonl_lines(), broken_jsonl_lines), max_size=8))
        sep = draw(st.sampled_from(["\n", "\n", "\r\n"]))
        text = sep.join(lines) + draw(st.sampled_from(["", sep]))
    else:
        text = _json(draw(sharegpt_docs(broken=draw(st.booleans()))))
    damage = draw(st.integers(0, 9))
    if damage == 0:
        return draw(st.binary(max_size=300))
    if damage == 1:
        text = draw(corrupted(st.just(text)))
    return draw(encoded(st.just(text)))


def valid_jsonl_files() -> st.SearchStrategy[tuple[bytes, int]]:
    """(bytes of a valid JSONL dataset, number of prompts in it), blank lines included."""
    return st.lists(valid_jsonl_lines() | st.just(""), max_size=10).filter(
        lambda ls: any(ls)).map(lambda ls: ("\n".join(ls).encode("utf-8"), sum(1 for x in ls if x)))
