"""Matrix file paths fail closed (issue #12): `slabench matrix FILE` gives one line and exit 2, never a traceback.

The matrix file and the scenario file it names are both read by the config reader.
"""

from __future__ import annotations

import os

import pytest

from harness.cli import main
from harness.config import ConfigError
from harness.decide.matrixfile import expand, load_matrix

LONG = "a" * 300  # longer than NAME_MAX (255): os.stat raises OSError, not FileNotFoundError


def cli_error(capsys, *argv) -> str:
    assert main(["matrix", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("slabench: error: ") and "Traceback" not in err, err
    return err.strip().removeprefix("slabench: error: ")


def test_matrix_paths_that_are_not_regular_files(tmp_path, capsys):
    assert cli_error(capsys, str(tmp_path)) == \
        f"{tmp_path}: is a folder, not a matrix file (give the path of the file inside it)"
    assert cli_error(capsys, "/dev/zero") == \
        "/dev/zero: is a device, not a regular matrix file (give the path of a file on disk)"
    fifo = tmp_path / "m.yaml"
    os.mkfifo(fifo)  # nobody writes to it: opening must not wait for a writer
    assert "is a FIFO, not a regular matrix file" in cli_error(capsys, str(fifo))
    assert cli_error(capsys, str(tmp_path / LONG)) == \
        f"{tmp_path / LONG}: cannot be opened (File name too long): check the path"


@pytest.mark.parametrize("data,expect", [
    (b"\xff\xfen\x00a\x00", "m.yaml: is UTF-16 (or UTF-32) text: save it as UTF-8"),
    (b"name: m\ndescription: \"\xe9t\xe9\"\n", "m.yaml:2: not UTF-8 text (byte 0xe9): save the file as UTF-8"),
    ("name: m\naxes: " + "[" * 1000 + "]" * 1000 + "\n", "m.yaml:2: nested more than 64 levels deep"),
])
def test_bad_matrix_files(tmp_path, capsys, data, expect):
    p = tmp_path / "m.yaml"
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    assert expect in cli_error(capsys, str(p))


def scenario_ref_error(tmp_path, ref: str) -> str:
    p = tmp_path / "m.yaml"
    p.write_text(f"name: m\nscenario: '{ref}'\naxes: {{gpu: [a100-80gb]}}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as ei:
        expand(load_matrix(p), p)
    msg = str(ei.value)
    assert msg.splitlines() == [msg]
    return msg


def test_the_scenario_a_matrix_names_is_read_the_same_way(tmp_path):
    m = tmp_path / "m.yaml"
    assert scenario_ref_error(tmp_path, LONG) == (
        f"{m}: scenario '{LONG[:77]}...' cannot be opened (File name too long): give a path relative to the "
        "matrix file or an inline scenario mapping")
    (tmp_path / "runs").mkdir()
    assert scenario_ref_error(tmp_path, "runs") == \
        f"{m}: scenario: {tmp_path}/runs: is a folder, not a scenario file (give the path of the file inside it)"
    assert scenario_ref_error(tmp_path, "/dev/zero") == \
        f"{m}: scenario: /dev/zero: is a device, not a regular scenario file (give the path of a file on disk)"
    (tmp_path / "s.yaml").write_bytes(b"name: s\ndescription: \xff\n")
    assert scenario_ref_error(tmp_path, "s.yaml") == \
        f"{m}: scenario: {tmp_path}/s.yaml:2: not UTF-8 text (byte 0xff): save the file as UTF-8"
    assert "scenario 'nope.yaml' not found" in scenario_ref_error(tmp_path, "nope.yaml")
