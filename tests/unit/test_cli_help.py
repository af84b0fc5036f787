"""The CLI says what it does: every option of every subcommand has help text; a worker says what it
waits for; the sim's usage names `slabench sim` (issue #13)."""

from __future__ import annotations

import argparse
import subprocess

import pytest

from harness import cli


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("name", sorted(_subparsers(cli._parser())))
def test_every_option_has_help(name):
    sub = _subparsers(cli._parser())[name]
    if name == "sim":
        return  # delegated whole to the sim's own parser (checked below)
    missing = [a.option_strings[0] if a.option_strings else a.dest for a in sub._actions
               if not isinstance(a, argparse._HelpAction) and not a.help]
    assert missing == [], f"slabench {name}: no help for {missing}"


def test_sim_usage_names_slabench_sim(capsys):
    with pytest.raises(SystemExit):
        cli.main(["sim", "serve", "--help"])
    assert capsys.readouterr().out.startswith("usage: slabench sim serve")


def test_worker_says_what_it_waits_for(monkeypatch, capsys):
    seen = {}
    monkeypatch.setattr(subprocess, "call", lambda argv: seen.setdefault("argv", argv) and 0)
    assert cli.main(["worker", "--master-host", "10.0.0.7", "--master-port", "6000"]) == 0
    out = capsys.readouterr().out
    assert "waiting for the master at 10.0.0.7:6000" in out and "--expect-workers" in out
    assert seen["argv"][-4:] == ["--master-host", "10.0.0.7", "--master-port", "6000"]
