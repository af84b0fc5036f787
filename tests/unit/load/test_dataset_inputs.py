"""Dataset files fail closed (issue #12): every bad line is one ConfigError line naming FILE:LINE.

Regressions for the reproductions (Infinity, strings or lists where objects belong, encodings, file
types), then properties over generated JSONL and ShareGPT files (tests/fuzzing/inputs.py).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from harness.config import ConfigError, DatasetConfig
from harness.load.dataset import DatasetItem, load_dataset
from tests.fuzzing.inputs import dataset_files, valid_jsonl_files

QUICK = settings(max_examples=100, deadline=None, database=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                        HealthCheck.filter_too_much, HealthCheck.large_base_example])


def error(path: Path, fmt: str = "jsonl") -> str:
    with pytest.raises(ConfigError) as ei:
        load_dataset(DatasetConfig(path=str(path), format=fmt))
    msg = str(ei.value)
    assert msg and msg.splitlines() == [msg], msg
    return msg


def write(tmp_path: Path, data: str | bytes, name: str = "data.jsonl") -> Path:
    p = tmp_path / name
    p.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return p


@pytest.mark.parametrize("line,expect", [
    ('{"prompt": "x", "output_tokens": Infinity}', "not valid JSON (Infinity is not a JSON number: use a finite "
                                                   "number or null)"),
    ('{"prompt": "x", "output_tokens": NaN}', "NaN is not a JSON number"),
    ('{"prompt": "x", "output_tokens": 1e400}', "1e400 is too large for a number"),
    ('"just a string"', "each line must be a JSON object like {\"prompt\": \"...\"}, got a string"),
    ('["a", "list"]', "each line must be a JSON object like {\"prompt\": \"...\"}, got a list"),
    ("42", "got a number"),
    ('{"prompt": ["a"]}', "'prompt' must be a string, got a list"),
    ('{"prompt": 7}', "'prompt' must be a string, got a number"),
    ('{"prompt": "  "}', "'prompt' is empty: give a prompt or remove the line"),
    ('{"prompt": "\\ud800"}', "escape (half a character)"),
    ('{"prompt": "x", "output_tokens": "7"}', "'output_tokens' must be a whole number of tokens from 1 to "
                                              "1,000,000 (or null), got \"7\""),
    ('{"prompt": "x", "output_tokens": 2.5}', "must be a whole number of tokens"),
    ('{"prompt": "x", "output_tokens": 0}', "must be a whole number of tokens"),
    ('{"prompt": "x", "output_tokens": true}', "must be a whole number of tokens"),
    ('{"prompt": "x", "output_tokens": 10000000}', "must be a whole number of tokens"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply to read"),
    ('{"prompt": "x"', "not valid JSON (Expecting"),
])
def test_each_bad_line_is_named_with_its_number(tmp_path, line, expect):
    p = write(tmp_path, '{"prompt": "fine", "output_tokens": 3}\n\n' + line + "\n")
    msg = error(p)
    assert msg.startswith(f"{p}:3: ") and expect in msg


def test_good_lines_keep_their_lengths(tmp_path):
    p = write(tmp_path, '\ufeff{"prompt": "a b", "output_tokens": 7.0}\r\n{"prompt": "c", "output_tokens": null}\n')
    assert load_dataset(DatasetConfig(path=str(p))) == [DatasetItem("a b", 7), DatasetItem("c", None)]


def test_encodings(tmp_path):
    assert error(write(tmp_path, '{"prompt": "x"}\n'.encode("utf-16"))) == \
        f"{tmp_path}/data.jsonl: is UTF-16 (or UTF-32) text: save it as UTF-8"
    msg = error(write(tmp_path, b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n'))
    assert msg == f"{tmp_path}/data.jsonl:2: not UTF-8 text (byte 0xe9): save the file as UTF-8"
    assert "contains NUL bytes" in error(write(tmp_path, '{"prompt": "x"}\n'.encode("utf-16-le")))


def test_folders_devices_fifos_and_missing_files(tmp_path):
    assert "is a folder, not a dataset file" in error(tmp_path)
    assert error(Path("/dev/zero")) == "/dev/zero: is a device, not a regular dataset file (give the path of a file " \
                                       "on disk)"
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    assert "is a FIFO, not a regular dataset file" in error(fifo)
    assert "not found (give a path relative to the scenario file)" in error(tmp_path / "missing.jsonl")


def test_an_overlong_line_is_refused_without_reading_it_all(tmp_path, monkeypatch):
    import harness.load.dataset as ds

    monkeypatch.setattr(ds, "MAX_LINE_BYTES", 100)
    msg = error(write(tmp_path, '{"prompt": "' + "x" * 200 + '"}\n'))
    assert "data.jsonl:1: line longer than" in msg and "format: sharegpt" in msg


@pytest.mark.parametrize("doc,expect", [
    (["a", "b"], "entry 1: must be an object with a 'conversations' list, got a string"),
    ({"a": 1}, "a ShareGPT file is a JSON list of {\"conversations\": [...]} objects, got an object"),
    ([{"conversations": "hi"}], "entry 1: 'conversations' must be a list of {\"from\", \"value\"} turns, got a string"),
    ([{"id": 1}], "entry 1: 'conversations' must be a list of {\"from\", \"value\"} turns, got nothing"),
    ([{"conversations": ["hi", "there"]}], "entry 1: turn 1 must be an object like"),
    ([{"conversations": [{"from": "human", "value": ["x"]}, {"from": "gpt", "value": "y"}]}],
     "entry 1: turn 1 'value' must be a string, got a list"),
    ([{"conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": 3}]}],
     "entry 1: turn 2 'value' must be a string, got a number"),
])
def test_sharegpt_entries_of_the_wrong_shape(tmp_path, doc, expect):
    assert expect in error(write(tmp_path, json.dumps(doc), "sg.json"), "sharegpt")


def test_sharegpt_numbers_and_wrong_format(tmp_path):
    bad = '[{"conversations": [{"from": "human", "value": "x", "n": Infinity}, {"from": "gpt", "value": "y"}]}]'
    assert "Infinity is not a JSON number" in error(write(tmp_path, bad, "sg.json"), "sharegpt")
    jsonl = '{"prompt": "a"}\n{"prompt": "b"}\n'
    assert "sg.json:2: not valid JSON (Extra data at column 1): is it JSONL? set workload.dataset.format: jsonl" in \
        error(write(tmp_path, jsonl, "sg.json"), "sharegpt")


def _load(data: bytes, fmt: str):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("data.jsonl" if fmt == "jsonl" else "data.json")
        path.write_bytes(data)
        try:
            return load_dataset(DatasetConfig(path=str(path), format=fmt))
        except ConfigError as exc:
            msg = str(exc)
            assert msg and msg.splitlines() == [msg], msg
            msg.encode("utf-8")
            return None


@QUICK
@given(dataset_files("jsonl"))
def test_any_jsonl_file_gives_items_or_one_line_error(data):
    items = _load(data, "jsonl")
    assert items is None or (items and all(isinstance(i.prompt, str) and i.prompt.strip() for i in items))


@QUICK
@given(dataset_files("sharegpt"))
def test_any_sharegpt_file_gives_items_or_one_line_error(data):
    items = _load(data, "sharegpt")
    assert items is None or all(i.output_tokens is None or 1 <= i.output_tokens <= 1_000_000 for i in items)


@QUICK
@given(valid_jsonl_files())
def test_valid_jsonl_keeps_every_prompt(case):
    data, n = case
    assert len(_load(data, "jsonl")) == n
