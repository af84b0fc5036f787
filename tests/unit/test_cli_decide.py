"""`slabench matrix / sweep / compare` on the command line: every option explains itself and its
default; sweep's --target / --api-key-env mistakes are one line (exit 2) before any folder is made."""

import argparse
from pathlib import Path

import pytest

from harness.cli import _parser, main

ROOT = Path(__file__).resolve().parents[2]


def subcommand(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


@pytest.mark.parametrize("command", ["matrix", "sweep", "compare"])
def test_every_option_says_what_it_is_and_its_default(command):
    actions = [a for a in subcommand(command)._actions if not isinstance(a, argparse._HelpAction)]
    assert actions
    for a in actions:
        assert a.help and len(a.help) > 20, (command, a.dest)
        if a.option_strings:  # positionals have no default to state
            assert "default" in a.help, (command, a.option_strings, a.help)


def test_help_names_the_default_folders():
    assert "reports/sweep-<scenario name>-<UTC time>/" in " ".join(subcommand("sweep").format_help().split())
    assert "reports/<matrix name>-<UTC time>/" in " ".join(subcommand("matrix").format_help().split())
    assert "reports/compare-<UTC time>/" in " ".join(subcommand("compare").format_help().split())


def one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("slabench: error: "), err
    return err


def test_sweep_key_for_a_launched_sim_is_refused(capsys, tmp_path):
    scn = ROOT / "scenarios" / "open-loop-poisson.yaml"
    err = one_line_error(capsys, ["sweep", str(scn), "--api-key-env", "SOME_VAR", "--out", str(tmp_path / "o")])
    assert "--api-key-env" in err and "--target" in err
    assert not (tmp_path / "o").exists()


def test_sweep_with_an_unset_key_variable_stops_before_any_run(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("SLABENCH_TEST_UNSET_KEY", raising=False)
    scn = ROOT / "scenarios" / "open-loop-poisson.yaml"
    err = one_line_error(capsys, ["sweep", str(scn), "--target", "http://127.0.0.1:9", "--api-key-env",
                                  "SLABENCH_TEST_UNSET_KEY", "--out", str(tmp_path / "o")])
    assert "$SLABENCH_TEST_UNSET_KEY is not set: export it" in err
    assert not (tmp_path / "o").exists()


def test_sweep_bad_target_is_one_line(capsys, tmp_path):
    scn = ROOT / "scenarios" / "open-loop-poisson.yaml"
    err = one_line_error(capsys, ["sweep", str(scn), "--target", "not a url", "--out", str(tmp_path / "o")])
    assert "--target" in err


def test_compare_of_a_missing_folder_is_one_line(capsys, tmp_path):
    err = one_line_error(capsys, ["compare", str(tmp_path / "nope"), str(tmp_path), "--out", str(tmp_path / "o")])
    assert "nope: not a run folder" in err and not (tmp_path / "o").exists()
