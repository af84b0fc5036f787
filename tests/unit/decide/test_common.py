"""Output folders of matrix / sweep / compare: a fresh one per command (even two in one second),
the newest one for --resume, and one-line errors for a taken --out."""

from datetime import datetime, timezone

import pytest

from harness.config import ConfigError
from harness.decide.common import PLAN_FILE, choose_out, latest_folder, metric_value
from harness.outdirs import new_out_dir


def test_two_commands_in_one_second_get_two_folders(tmp_path):
    a = choose_out("matrix-x", None, False, tmp_path, "matrix")
    b = choose_out("matrix-x", None, False, tmp_path, "matrix")
    assert a != b and a.is_dir() and b.is_dir()
    assert a.name.startswith("matrix-x-") and a.parent == b.parent == tmp_path


def test_resume_continues_the_newest_folder_of_that_name_only(tmp_path):
    t = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    made = [new_out_dir(tmp_path, "sweep-a", t) for _ in range(11)]  # ...Z, ...Z-2, ..., ...Z-11
    for d in made:
        (d / PLAN_FILE).write_text("{}")
    other = new_out_dir(tmp_path, "sweep-a-b", datetime(2027, 1, 1, tzinfo=timezone.utc))  # a longer name, later
    (other / PLAN_FILE).write_text("{}")
    assert latest_folder("sweep-a", tmp_path) == made[-1]  # -11 after -2, and never sweep-a-b
    assert choose_out("sweep-a", None, True, tmp_path, "sweep") == made[-1]


def test_resume_without_an_earlier_folder_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"--resume: no earlier sweep folder at .*sweep-a-\*: run without --resume"):
        choose_out("sweep-a", None, True, tmp_path, "sweep")


def test_a_taken_out_is_refused_in_one_line(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(ConfigError, match="already holds files: choose a new folder, or add --resume"):
        choose_out("m", tmp_path / "full", False, tmp_path, "matrix")
    (tmp_path / "f").write_text("")
    with pytest.raises(ConfigError, match="is a file: give a folder path"):
        choose_out("m", tmp_path / "f", False, tmp_path, "matrix")
    assert choose_out("m", tmp_path / "new", False, tmp_path, "matrix") == tmp_path / "new"


def test_metric_value_is_none_when_not_measured():
    s = {"metrics": {"ttft_s": {"p99": 0.2}}}
    assert metric_value(s, "ttft_s", "p99") == 0.2
    assert metric_value(s, "tpot_s", "p99") is None and metric_value({}, "ttft_s", "p50") is None
